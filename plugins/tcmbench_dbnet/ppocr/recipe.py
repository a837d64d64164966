"""The test settings an imported PP-OCR detector records (torch-free).

PaddleOCR measures its detectors with ``tools/infer/predict_det.py``'s
defaults; the ``onnx`` plugin's built-in ``ppocr-det`` config holds the
same values (plugins/tcmbench_onnx/configs/ppocr_det.json, where each is
cited), and a test keeps the two equal, so that the imported PyTorch model
and the ONNX file give the same boxes:

- resize: PaddleOCR's ``DetResizeForTest`` type 0, longer side limited to
  960 (never upscaled), each side rounded to a multiple of 32
  (``test.rule: limit_side``, :class:`tcmbench.data.transforms.InferenceTransform`);
- normalisation: ImageNet mean / std for pixels in [0, 1], applied by
  PaddleOCR to the *BGR* image ``cv2.imread`` gives. tcmbench feeds RGB, so
  the importer reverses the input channels of the first convolution and
  the recipe lists mean / std in RGB order, scaled to 0-255: the network
  computes exactly what it computed in PaddleOCR;
- DB post-processing: threshold 0.3, box threshold 0.6 ("fast" score: the
  mean inside the contour's min-area rectangle), unclip ratio 1.5, 1000
  candidates, minimum size 3, no dilation, every contour (``RETR_LIST``).
"""

from __future__ import annotations

import copy
from typing import Any

#: ImageNet mean / std for pixels in [0, 1], in the channel order PaddleOCR
#: applies them to (B, G, R).
PADDLE_MEAN_BGR = (0.485, 0.456, 0.406)
PADDLE_STD_BGR = (0.229, 0.224, 0.225)

PPOCR_TEST: dict[str, Any] = {
    "rule": "limit_side",
    "limit_side_len": 960,
    "limit_type": "max",
    "divisor": 32,
}
PPOCR_POSTPROCESS: dict[str, Any] = {
    "output": "quad",
    "mask_thr": 0.3,
    "min_score": 0.6,
    "unclip_ratio": 1.5,
    "max_candidates": 1000,
    "min_size": 3,
    "dilation": False,
    "score_mode": "fast",
    "all_contours": True,
}
SOURCE = (
    "PaddleOCR 2.x text detector test defaults (tools/infer/utility.py init_args, "
    "tools/infer/predict_det.py): det_limit_side_len 960, det_limit_type max, ImageNet "
    "mean/std on the BGR image scaled to [0, 1] (here: RGB order, 0-255, first conv's input "
    "channels reversed on import), det_db_thresh 0.3, det_db_box_thresh 0.6, "
    "det_db_unclip_ratio 1.5, max_candidates 1000, use_dilation False, det_db_score_mode fast; "
    "contours from cv2.RETR_LIST. Written by `tcmbench import ppocr`."
)


def normalize_rgb(bgr_input: bool = True) -> dict[str, list[float]]:
    """``recipe.normalize`` (RGB, 0-255) that reproduces PaddleOCR's
    normalisation for a network whose first conv takes RGB (after the
    importer reversed it when the graph took BGR)."""
    mean, std = list(PADDLE_MEAN_BGR), list(PADDLE_STD_BGR)
    if bgr_input:
        mean, std = mean[::-1], std[::-1]
    # Rounded: 0.224 * 255 is 57.120000000000005 in binary floating point.
    return {"mean": [round(m * 255.0, 6) for m in mean], "std": [round(s * 255.0, 6) for s in std]}


def ppocr_recipe(model: dict[str, Any], bgr_input: bool = True) -> dict[str, Any]:
    """The recipe an imported checkpoint records: its architecture and
    PaddleOCR's test settings (no training settings: a fine-tune names its
    own recipe)."""
    return {
        "model": copy.deepcopy(model),
        "normalize": normalize_rgb(bgr_input),
        "test": dict(PPOCR_TEST),
        "postprocess": dict(PPOCR_POSTPROCESS),
        "source": SOURCE,
    }
