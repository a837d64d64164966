"""blobs: the example detector plugin of docs/plugins.md ("Writing a detector").

A package registered in the ``tcmbench`` entry-point group. This module is
imported when the CLI starts, so it stays torch-free: the spec points at a
builder that imports torch only when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcmbench.contract.hookspecs import hookimpl
from tcmbench_blobs.spec import VERSION as __version__

__all__ = ["__version__", "register_detectors"]


@hookimpl
def register_detectors(register: Callable[[Any], None]) -> None:
    from tcmbench_blobs.spec import blobs_spec

    register(blobs_spec())
