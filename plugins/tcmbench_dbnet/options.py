"""DBNet's architecture options and its postprocessor, torch-free.

Declared here, apart from :mod:`tcmbench_dbnet.model` (which builds the torch
modules), so a checkpoint's options are checked and its postprocessor built
without importing torch: ``--runtime onnxruntime`` on an already exported
checkpoint (``DetectorSpec.build_postprocess``).

Architecture options (``DetectorConfig.options``; all optional):

- ``neck`` (``fpnc``): ``fpnc`` (mmocr's FPNC) or ``rse_fpn`` (the
  residual squeeze-excitation FPN of PaddleOCR's PP-OCR detectors,
  :mod:`tcmbench_dbnet.ppocr`);
- ``lateral_channels`` (256), ``smooth_channels`` (lateral / 4): the neck's
  widths; the head sees ``4 * smooth_channels`` channels;
- ``k`` (50): steepness of the approximate binarisation;
- ``shrink_ratio`` (0.4), ``thr_min`` (0.3), ``thr_max`` (0.7),
  ``min_text_size`` (8): target builder;
- ``alpha`` (5), ``beta`` (10), ``negative_ratio`` (3), ``binary_weight``
  (1): loss (``binary_weight`` weighs the approximate binary map's dice;
  ``beta`` and ``binary_weight`` 0 train the probability map alone, all an
  imported inference graph's postprocessing reads);
- ``prob_loss`` (``bce``): the probability-map term, DBNet's balanced BCE
  with hard negative mining, or ``dice``, what PaddleOCR's DB configs train
  with (``main_loss_type: DiceLoss``; its BalanceLoss then reduces to plain
  dice). A model trained with one and fine-tuned with the other is pulled
  towards other maps: fine-tuning the imported PP-OCRv3 detector with BCE
  made it worse (docs/benchmarks.md);
- ``postprocess``: dict of :class:`DBPostprocessor` parameters.
"""

from __future__ import annotations

from typing import Any

from tcmbench.contract.options import Opt, check_options
from tcmbench.contract.options import resolve_options as resolve_options_declared
from tcmbench.contract.spec import DetectorConfig
from tcmbench.errors import PluginError
from tcmbench.inference.db_postprocess import POSTPROCESS_PARAMS, DBPostprocessor
from tcmbench_dbnet.ppocr import RSE_FPN

#: Necks ``options.neck`` chooses from.
NECKS = ("fpnc", RSE_FPN)

#: Widest FPNC layer accepted: ample for any published DBNet (256), small
#: enough that a forged config cannot ask for gigabytes of weights.
MAX_CHANNELS = 4096

#: Declared options: defaults, types and ranges (checked by resolve_options;
#: a checkpoint's config.json is untrusted input).
OPTIONS: dict[str, Opt] = {
    "neck": Opt(
        "fpnc",
        "str",
        choices=NECKS,
        help="fpnc (mmocr's FPNC) or rse_fpn (PP-OCR's residual squeeze-excitation FPN)",
    ),
    "lateral_channels": Opt(256, "int", ge=1, le=MAX_CHANNELS, help="FPNC lateral width"),
    "smooth_channels": Opt(
        None,
        "int",
        ge=1,
        le=MAX_CHANNELS,
        nullable=True,
        help="FPNC per-level output (null: lateral / 4); the head gets 4x this",
    ),
    "k": Opt(50.0, "float", gt=0, le=1000, help="steepness of the approximate binarisation"),
    "shrink_ratio": Opt(0.4, "float", gt=0, lt=1, help="r in D = A (1 - r^2) / L"),
    "thr_min": Opt(0.3, "float", ge=0, le=1, help="threshold-map range, low end (< thr_max)"),
    "thr_max": Opt(0.7, "float", ge=0, le=1, help="threshold-map range, high end"),
    "min_text_size": Opt(
        8.0,
        "float",
        ge=0,
        help="polygons whose min-area rectangle is thinner (input pixels) become don't-care",
    ),
    "alpha": Opt(5.0, "float", ge=0, help="weight of the probability-map loss"),
    "beta": Opt(10.0, "float", ge=0, help="weight of the threshold-map loss"),
    "binary_weight": Opt(
        1.0, "float", ge=0, help="weight of the approximate binary map's dice loss"
    ),
    "negative_ratio": Opt(3.0, "float", gt=0, help="hard negatives kept per positive"),
    "prob_loss": Opt(
        "bce",
        "str",
        choices=("bce", "dice"),
        help="probability-map loss: balanced BCE with OHEM (DBNet) or dice (PaddleOCR)",
    ),
    "postprocess": Opt(None, "dict", nullable=True, help="postprocessor parameters (table below)"),
}


def resolve_options(options: Any) -> dict[str, Any]:
    """Defaults merged with ``options``; an unknown key, a wrong type or an
    out-of-range value is a PluginError naming the option (a typo or a
    forged value in a recipe or checkpoint config must not be silently
    ignored, truncated or allocated)."""
    resolved = resolve_options_declared("DBNet", OPTIONS, options)
    if resolved["smooth_channels"] is None:
        resolved["smooth_channels"] = max(1, resolved["lateral_channels"] // 4)
    if resolved["thr_min"] >= resolved["thr_max"]:
        raise PluginError(
            f"DBNet option thr_min ({resolved['thr_min']}) must be below thr_max "
            f"({resolved['thr_max']})"
        )
    return resolved


def build_postprocessor(params: Any = None) -> DBPostprocessor:
    checked = check_options("DBNet", POSTPROCESS_PARAMS, params, what="postprocess parameter")
    try:
        return DBPostprocessor(**checked)
    except ValueError as exc:
        raise PluginError(f"bad DBNet postprocess parameters: {exc}") from exc


def build_postprocess(config: DetectorConfig) -> DBPostprocessor:
    """``DetectorSpec.build_postprocess``: the postprocessor ``config``'s
    options ask for (every option checked), without torch."""
    return build_postprocessor(resolve_options(config.options)["postprocess"])
