"""PaddleOCR's own text-detection pipeline on a folder of images, written
as a tcmbench JSON prediction file (``{id: [{"polygon": [...], "score"}]}``)
for ``tcmbench score``.

Run it in a separate, throwaway virtual environment: PaddleOCR is not a
tcmbench dependency and must never be imported by tcmbench itself.

    python3.11 -m venv /tmp/paddle-venv
    /tmp/paddle-venv/bin/pip install paddleocr==2.10.0 paddlepaddle==2.6.2 onnxruntime
    /tmp/paddle-venv/bin/python benchmarks/paddleocr_det_reference.py \
        ../shared/data/models/ch_PP-OCRv3_det_infer.onnx ../shared/data/msra-td500/test \
        --out /tmp/paddle_td500.json
    tcmbench score --dataset msra-td500 --data-root ../shared/data/msra-td500 \
        --pred /tmp/paddle_td500.json

The detector is ``paddleocr.tools.infer.predict_det.TextDetector``, the
object ``PaddleOCR(...).ocr(img, rec=False)`` calls, built from PaddleOCR's
own argument defaults (``det_limit_side_len`` 960, ``det_limit_type`` max,
``det_db_thresh`` 0.3, ``det_db_box_thresh`` 0.6, ``det_db_unclip_ratio``
1.5, ``use_dilation`` False, ``det_db_score_mode`` fast) with only the
model swapped for the local ONNX file (``use_onnx``; nothing is downloaded).
Images are read as PaddleOCR reads them (``cv2.imread``, which applies EXIF
orientation) unless ``--ignore-exif`` asks for the stored pixel grid, which
is what benchmark annotations (and tcmbench's reader) use.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
from paddleocr.tools.infer import utility
from paddleocr.tools.infer.predict_det import TextDetector

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="the detection model (.onnx)")
    ap.add_argument("images", help="folder of images")
    ap.add_argument("--out", required=True, help="JSON prediction file to write")
    ap.add_argument("--ignore-exif", action="store_true", help="decode without EXIF orientation")
    opts = ap.parse_args()

    args = utility.init_args().parse_args([])
    args.det_model_dir = opts.model
    args.use_onnx = True
    args.use_gpu = False
    detector = TextDetector(args)
    flags = cv2.IMREAD_COLOR | (cv2.IMREAD_IGNORE_ORIENTATION if opts.ignore_exif else 0)
    out: dict[str, list[dict[str, object]]] = {}
    files = sorted(p for p in Path(opts.images).iterdir() if p.suffix.lower() in SUFFIXES)
    t0 = time.perf_counter()
    for path in files:
        image = cv2.imread(str(path), flags)
        boxes, _ = detector(image)
        out[path.stem] = [{"polygon": [float(v) for v in box.reshape(-1)]} for box in boxes]
    seconds = time.perf_counter() - t0
    Path(opts.out).write_text(json.dumps(out) + "\n")
    n = sum(len(v) for v in out.values())
    print(f"{len(files)} images, {n} boxes, {seconds:.1f} s ({len(files) / seconds:.2f} img/s)")


if __name__ == "__main__":
    main()
