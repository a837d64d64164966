"""FCENet's architecture options and its postprocessor, torch-free.

Declared here, apart from :mod:`tcmbench_fcenet.model` (which builds the
torch modules), so a checkpoint's options are checked and its
postprocessor built without importing torch: ``--runtime onnxruntime`` on
an already exported checkpoint (``DetectorSpec.build_postprocess``).

Architecture options (``DetectorConfig.options``; all optional):

- ``neck_channels`` (256): FPN width, also the head's input;
- ``head_convs`` (0): 3x3 conv + ReLU layers in front of the head's
  outputs (0 = mmocr's FCEHead);
- ``fourier_degree`` (5): K, the head regresses (2K + 1) x 2 numbers;
- ``strides`` ([8, 16, 32]): one per level (C3, C4, C5 -> P3, P4, P5);
- ``level_proportion_range`` (((0, 0.25), (0.2, 0.65), (0.55, 1.0))):
  target level assignment by relative size (tcmbench_fcenet.targets);
- ``center_ratio`` (0.3): text-centre region thickness;
- ``center_region`` ("offset"): how the centre region is drawn,
  ``sidelines`` (mmocr's band between the sidelines, the paper / TCM
  recipes) or ``offset`` (tcmbench's inward offset); see
  :mod:`tcmbench_fcenet.targets`;
- ``center_resample_step`` (4.0): ``sidelines``' resampling step, level
  pixels (mmocr's ``resample_step``);
- ``num_sample`` (50): contour points of the regression loss;
- ``negative_ratio`` (3): OHEM negatives per positive;
- ``postprocess``: dict of :class:`FCEPostprocessor` parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcmbench.contract.options import Opt
from tcmbench.contract.options import resolve_options as resolve_options_declared
from tcmbench.contract.spec import DetectorConfig
from tcmbench.errors import PluginError
from tcmbench_fcenet.postprocess import FCEPostprocessor
from tcmbench_fcenet.targets import CENTER_REGIONS

#: Widest FPN accepted: ample for any published FCENet (256), small enough
#: that a forged config cannot ask for gigabytes of weights.
MAX_CHANNELS = 4096

#: Declared options: defaults, types and ranges (resolve_options checks
#: them; a checkpoint's config.json is untrusted input).
OPTIONS: dict[str, Opt] = {
    "neck_channels": Opt(256, "int", ge=1, le=MAX_CHANNELS, help="FPN width (head input)"),
    "head_convs": Opt(0, "int", ge=0, le=8, help="3x3 conv + ReLU layers before the head outputs"),
    "fourier_degree": Opt(5, "int", ge=1, le=32, help="K: the head regresses (2K+1) x 2 numbers"),
    "strides": Opt([8, 16, 32], "list", help="one stride per level (C3, C4, C5)"),
    "level_proportion_range": Opt(
        [[0.0, 0.25], [0.2, 0.65], [0.55, 1.0]],
        "list",
        help="(low, high] relative size per level",
    ),
    "center_ratio": Opt(0.3, "float", gt=0, lt=1, help="text-centre band / word thickness"),
    "center_region": Opt(
        "offset",
        "str",
        choices=CENTER_REGIONS,
        help="centre region: sidelines (mmocr's band, paper / TCM recipes) or offset (tcmbench's)",
    ),
    "center_resample_step": Opt(
        4.0, "float", gt=0, le=1000, help="sidelines: resampling step in level pixels (mmocr 4)"
    ),
    "num_sample": Opt(50, "int", ge=4, le=10_000, help="contour points of the regression loss"),
    "negative_ratio": Opt(3.0, "float", gt=0, help="OHEM negatives per positive"),
    "postprocess": Opt(None, "dict", nullable=True, help="FCEPostprocessor parameters"),
}

#: The C3..C5 backbone stages FCENet's neck reads.
IN_STAGES = (1, 2, 3)


def resolve_options(options: Any) -> dict[str, Any]:
    """Defaults merged with ``options``, checked. An unknown key, a wrong
    type or an out-of-range value is a PluginError naming the option (a
    typo or a forged value must not be silently ignored or allocated)."""
    out = resolve_options_declared("FCENet", OPTIONS, options)
    strides = out["strides"]
    if len(strides) != len(IN_STAGES) or any(
        isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 1024 for s in strides
    ):
        raise PluginError(
            f"FCENet option strides must be {len(IN_STAGES)} integers in [1, 1024] "
            f"(one per level C3, C4, C5), got {strides!r}"
        )
    out["strides"] = tuple(int(s) for s in strides)
    ranges = out["level_proportion_range"]
    pairs: tuple[tuple[float, float], ...] = ()
    if all(
        isinstance(r, (list, tuple))
        and len(r) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
        for r in ranges
    ):
        pairs = tuple((float(lo), float(hi)) for lo, hi in ranges)
    if len(pairs) != len(out["strides"]) or any(not 0 <= lo < hi <= 10 for lo, hi in pairs):
        raise PluginError(
            "FCENet option level_proportion_range must be one [low, high] pair per level "
            f"with 0 <= low < high, got {ranges!r}"
        )
    out["level_proportion_range"] = pairs
    return out


def build_postprocessor(
    params: Mapping[str, Any] | None = None,
    fourier_degree: int = 5,
    strides: tuple[int, ...] = (8, 16, 32),
) -> FCEPostprocessor:
    """The postprocessor; unknown or bad parameters are PluginErrors."""
    base = FCEPostprocessor(fourier_degree=fourier_degree, strides=strides)
    return base.with_params(**dict(params or {}))


def build_postprocess(config: DetectorConfig) -> FCEPostprocessor:
    """``DetectorSpec.build_postprocess``: the postprocessor ``config``'s
    options ask for (every option checked), without torch."""
    opts = resolve_options(dict(config.options))
    return build_postprocessor(opts["postprocess"], opts["fourier_degree"], opts["strides"])
