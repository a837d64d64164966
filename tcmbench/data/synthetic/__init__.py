"""synthtext-mini: the built-in synthetic text detection dataset.

Words in Pillow's embedded scalable font on textured, cluttered backgrounds;
horizontal, rotated, perspective and curved text with exact polygons; a
night-time variant; a few don't-care words. Generated deterministically from
a seed on first use and cached, so every command runs on a fresh machine
without downloads. See docs/synthtext-mini.md.

Modules: :mod:`.render` (glyphs and geometry), :mod:`.backgrounds`,
:mod:`.night`, :mod:`.scene` (placement and colour), :mod:`.generate`
(cache, loader, reader), :mod:`.words` (vocabulary). This package imports
nothing heavy at import time; the loader imports OpenCV and Pillow only when
it must generate.
"""

from __future__ import annotations

from tcmbench.data.synthetic.generate import (
    GENERATOR_VERSION,
    SPLIT_SIZES,
    load_synthtext_mini,
    read_synthtext_mini,
)

__all__ = ["GENERATOR_VERSION", "SPLIT_SIZES", "load_synthtext_mini", "read_synthtext_mini"]
