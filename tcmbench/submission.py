"""Predictions in the official submission formats, ready for upload.

- ``icdar2015`` / ``msra-td500``: the ICDAR Robust Reading Competition zip:
  one ``res_img_<N>.txt`` per image, lines of 8 integers ``x1,y1,...,x4,y4``
  (clockwise on screen, as the RRC script validates), optionally a 9th
  field with the confidence. Non-quad polygons become their minimum-area
  rectangle.
- ``icdar2013`` / ``icdar2013-deteval``: the same zip with LTRB boxes
  ``xmin,ymin,xmax,ymax``.
- curved-text protocols (``totaltext-*``, ``ctw1500-iou``, ``tiou``): one
  ``<id>.txt`` per image (``1001.txt``, ``img12.txt``), lines of integer
  polygon coordinates ``x1,y1,...,xn,yn`` as the TIoU / CTW1500 scripts read;
  for ``totaltext-deteval`` ``y1,x1,...,yn,xn``, the order the official
  ``Deteval.py`` reads (``tcmbench score`` reads both by the same rule).

Every file is written atomically; images without detections get an empty
file so the archive lists every test image.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from tcmbench.data.schema import Prediction
from tcmbench.paths import atomic_write_bytes, atomic_write_text

Predictions = Mapping[str, Sequence[Prediction]]

RRC_QUAD_PROTOCOLS = frozenset({"icdar2015", "msra-td500"})
RRC_LTRB_PROTOCOLS = frozenset({"icdar2013", "icdar2013-deteval"})
POLYGON_PROTOCOLS = frozenset({"totaltext-deteval", "totaltext-iou", "ctw1500-iou", "tiou"})
# Deteval.py reads a result line as y1,x1,y2,x2,... (tcmbench.eval.io.PROTOCOL_INPUTS).
YX_POLYGON_PROTOCOLS = frozenset({"totaltext-deteval"})


def rrc_entry_name(sample_id: str) -> str:
    """``img_17`` -> ``res_img_17.txt``; ``IMG_0059`` / ``59`` ->
    ``res_img_59.txt`` (the numbering of the IC15-format TD500 GT)."""
    if re.fullmatch(r"img_\d+", sample_id):
        return f"res_{sample_id}.txt"
    m = re.fullmatch(r"(?:img_?)?0*(\d+)", sample_id, flags=re.IGNORECASE)
    if m:
        return f"res_img_{int(m.group(1))}.txt"
    return f"res_{sample_id}.txt"


def _signed_edge_sum(pts: np.ndarray) -> float:
    nxt = np.roll(pts, -1, axis=0)
    return float(np.sum((nxt[:, 0] - pts[:, 0]) * (nxt[:, 1] + pts[:, 1])))


def rrc_quad(polygon: np.ndarray) -> np.ndarray:
    """Four integer corners, clockwise on screen (edge sum <= 0)."""
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(pts) != 4:
        pts = cv2.boxPoints(cv2.minAreaRect(pts.astype(np.float32).reshape(-1, 1, 2))).astype(
            np.float64
        )
    quad = np.round(pts).astype(np.int64)
    if _signed_edge_sum(quad) > 0:
        quad = quad[::-1]
    return quad


def _score_suffix(pred: Prediction, scores: bool) -> str:
    return (
        f",{min(1.0, max(0.0, float(pred.score))):.6f}" if scores and pred.score is not None else ""
    )


def rrc_lines(preds: Sequence[Prediction], scores: bool = False) -> str:
    rows = []
    for p in preds:
        q = rrc_quad(p.polygon)
        rows.append(",".join(str(int(v)) for v in q.reshape(-1)) + _score_suffix(p, scores))
    return "\n".join(rows) + ("\n" if rows else "")


def ltrb_lines(preds: Sequence[Prediction], scores: bool = False) -> str:
    rows = []
    for p in preds:
        pts = np.asarray(p.polygon, dtype=np.float64).reshape(-1, 2)
        x0, y0 = np.floor(pts.min(axis=0)).astype(int)
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
        rows.append(f"{x0},{y0},{x1},{y1}" + _score_suffix(p, scores))
    return "\n".join(rows) + ("\n" if rows else "")


def polygon_lines(preds: Sequence[Prediction], scores: bool = False, yx: bool = False) -> str:
    """Integer polygon lines, ``x,y`` pairs (``y,x`` with ``yx``)."""
    rows = []
    for p in preds:
        pts = np.round(np.asarray(p.polygon, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
        if yx:
            pts = pts[:, ::-1]
        rows.append(",".join(str(int(v)) for v in pts.reshape(-1)) + _score_suffix(p, scores))
    return "\n".join(rows) + ("\n" if rows else "")


def _zip(entries: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            zf.writestr(name, entries[name])
    return buf.getvalue()


def submission_entries(
    predictions: Predictions, protocol: str, scores: bool = False
) -> dict[str, str]:
    """Zip entry name -> text for ``protocol``'s official format."""
    if protocol in RRC_QUAD_PROTOCOLS:
        return {rrc_entry_name(sid): rrc_lines(p, scores) for sid, p in predictions.items()}
    if protocol in RRC_LTRB_PROTOCOLS:
        return {rrc_entry_name(sid): ltrb_lines(p, scores) for sid, p in predictions.items()}
    if protocol in POLYGON_PROTOCOLS:
        yx = protocol in YX_POLYGON_PROTOCOLS
        return {f"{sid}.txt": polygon_lines(p, scores, yx) for sid, p in predictions.items()}
    # Unknown (plugin) protocols: the general polygon format.
    return {f"{sid}.txt": polygon_lines(p, scores) for sid, p in predictions.items()}


def write_submission(
    out_dir: str | Path,
    predictions: Predictions,
    protocol: str,
    scores: bool = False,
) -> dict[str, Path]:
    """Write ``submit.zip`` (official format) and ``predictions.json``
    (every polygon with its float coordinates and score) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = submission_entries(predictions, protocol, scores)
    if len(entries) != len(predictions):
        raise ValueError("two sample ids map to the same submission file name")
    zip_path = out / "submit.zip"
    atomic_write_bytes(zip_path, _zip(entries))
    json_path = out / "predictions.json"
    doc = {
        "protocol": protocol,
        "predictions": {sid: [p.to_dict() for p in ps] for sid, ps in predictions.items()},
    }
    atomic_write_text(json_path, json.dumps(doc) + "\n")
    return {"zip": zip_path, "json": json_path}
