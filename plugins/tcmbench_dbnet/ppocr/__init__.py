"""PaddleOCR's PP-OCR text detectors as trainable DBNet parts.

PaddleOCR ships its mobile detectors (Apache-2.0) as inference graphs; the
``onnx`` plugin runs them through onnxruntime. This package rebuilds them
in PyTorch, as named parts of the ``dbnet`` plugin, so that ``tcmbench
import ppocr MODEL.onnx --out DIR`` turns a graph into an ordinary
tcmbench checkpoint that evaluates, predicts, exports and fine-tunes like
any other (docs/dbnet.md, "PP-OCR detectors as trainable DBNet
checkpoints").

The parts, each written from the graphs themselves (op types, shapes,
attributes), not from PaddleOCR's code:

- backbone ``ppocrv3_mobilenetv3`` (:mod:`.mobilenetv3`): the MobileNetV3
  of ``ch_PP-OCRv3_det`` (large layout at width 0.5, no squeeze-excitation);
- backbone ``ppocrv4_lcnetv3`` (:mod:`.lcnetv3`): the PP-LCNetV3 of
  ``ch_PP-OCRv4_det`` (width 0.75) in its deployed form, each
  re-parameterised branch group already one convolution with a bias;
- neck ``rse_fpn`` (:mod:`.rse_fpn`): the residual squeeze-excitation FPN
  both use (``options.neck``);
- the head is the plugin's own :class:`~tcmbench_dbnet.head.DBHead`, whose
  layout (3x3 conv + BN + ReLU, two stride-2 transposed convs, sigmoid) is
  the graphs' exactly.

This module stays torch-free (the names are read when recipes and configs
are checked); the builders import torch.
"""

from __future__ import annotations

#: Backbone name -> (module, builder function), imported when built.
BACKBONES: dict[str, tuple[str, str]] = {
    "ppocrv3_mobilenetv3": ("tcmbench_dbnet.ppocr.mobilenetv3", "ppocrv3_mobilenetv3"),
    "ppocrv4_lcnetv3": ("tcmbench_dbnet.ppocr.lcnetv3", "ppocrv4_lcnetv3"),
}
#: The neck PP-OCR detectors use (``options.neck``).
RSE_FPN = "rse_fpn"


def canonical_name(name: str) -> str:
    """``PPOCRv3-MobileNetV3`` -> ``ppocrv3_mobilenetv3`` (the spelling
    config.json records)."""
    return name.strip().lower().replace("-", "_")


def is_ppocr_backbone(name: str) -> bool:
    return canonical_name(name) in BACKBONES
