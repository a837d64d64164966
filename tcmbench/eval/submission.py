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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from tcmbench.data.schema import Prediction
from tcmbench.safety.paths import atomic_write_bytes, atomic_write_text, check_destination

Predictions = Mapping[str, Sequence[Prediction]]

RRC_QUAD_PROTOCOLS = frozenset({"icdar2015", "msra-td500"})
RRC_LTRB_PROTOCOLS = frozenset({"icdar2013", "icdar2013-deteval"})
POLYGON_PROTOCOLS = frozenset({"totaltext-deteval", "totaltext-iou", "ctw1500-iou", "tiou"})
# The TIoU / CTW1500 / Total-Text IoU scripts reject counter-clockwise rings (shapely's is_ccw).
CURVED_SCRIPT_PROTOCOLS = frozenset({"totaltext-iou", "ctw1500-iou", "tiou"})
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


def submitted_polygon(polygon: np.ndarray, protocol: str) -> np.ndarray:
    """The integer geometry ``protocol``'s submission line carries for one
    detection, as float32 corners: what the official scripts read back.

    This is the one coordinate rule of tcmbench: ``evaluate`` scores these
    polygons, ``submit.zip`` writes them, and ``score`` applies the same rule
    to evaluate's ``predictions.json``, so the three figures are equal. Quads
    (``icdar2015``, ``msra-td500``): 4 rounded corners, clockwise on screen
    (a non-quad polygon becomes its minimum-area rectangle first); LTRB
    (``icdar2013*``): the enclosing integer box; curved-text and unknown
    protocols: every point rounded.
    """
    if protocol in RRC_QUAD_PROTOCOLS:
        pts = rrc_quad(polygon)
    elif protocol in RRC_LTRB_PROTOCOLS:
        x0, y0, x1, y1 = _ltrb(polygon)
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    else:
        pts = np.round(np.asarray(polygon, dtype=np.float64).reshape(-1, 2))
        if protocol in CURVED_SCRIPT_PROTOCOLS and _signed_area(pts) > 0:
            # The curved scripts reject a line whose ring shapely calls
            # counter-clockwise; the reversed ring is the same region.
            pts = pts[::-1]
    return np.ascontiguousarray(pts, dtype=np.float32).reshape(-1, 2)


def _signed_area(pts: np.ndarray) -> float:
    """Shoelace area on the raw coordinates: > 0 where shapely's
    ``LinearRing(points).is_ccw`` is True."""
    x, y = pts[:, 0], pts[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0


def submitted_predictions(predictions: Predictions, protocol: str) -> dict[str, list[Prediction]]:
    """Every detection with :func:`submitted_polygon`'s geometry (scores and
    order kept): the predictions exactly as ``submit.zip`` holds them."""
    return {
        sid: [Prediction(polygon=submitted_polygon(p.polygon, protocol), score=p.score) for p in ps]
        for sid, ps in predictions.items()
    }


def _ltrb(polygon: np.ndarray) -> tuple[int, int, int, int]:
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def _integer_line(pts: np.ndarray, pred: Prediction, scores: bool) -> str:
    return ",".join(str(int(v)) for v in np.asarray(pts).reshape(-1)) + _score_suffix(pred, scores)


def rrc_lines(preds: Sequence[Prediction], scores: bool = False) -> str:
    rows = [_integer_line(submitted_polygon(p.polygon, "icdar2015"), p, scores) for p in preds]
    return "\n".join(rows) + ("\n" if rows else "")


def ltrb_lines(preds: Sequence[Prediction], scores: bool = False) -> str:
    rows = [_integer_line(np.array(_ltrb(p.polygon)), p, scores) for p in preds]
    return "\n".join(rows) + ("\n" if rows else "")


def polygon_lines(
    preds: Sequence[Prediction], scores: bool = False, yx: bool = False, protocol: str = "polygon"
) -> str:
    """Integer polygon lines, ``x,y`` pairs (``y,x`` with ``yx``), oriented
    as ``protocol``'s script accepts them."""
    rows = []
    for p in preds:
        pts = submitted_polygon(p.polygon, protocol)
        rows.append(_integer_line(pts[:, ::-1] if yx else pts, p, scores))
    return "\n".join(rows) + ("\n" if rows else "")


def _zip(entries: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            zf.writestr(name, entries[name])
    return buf.getvalue()


def entry_name(sample_id: str, protocol: str) -> str:
    """The zip member that holds ``sample_id``'s lines under ``protocol``:
    ``res_img_<N>.txt`` for the RRC protocols, ``<id>.txt`` otherwise."""
    if protocol in RRC_QUAD_PROTOCOLS or protocol in RRC_LTRB_PROTOCOLS:
        return rrc_entry_name(sample_id)
    return f"{sample_id}.txt"


def entry_names(sample_ids: Iterable[str], protocol: str) -> dict[str, str]:
    """Sample id -> zip member name, checked: every member is one plain
    file name (:func:`tcmbench.safety.paths.name_problem`: ``res_../../x.txt`` or
    ``res_/abs/x.txt`` cannot happen, whatever the ids), and no two ids
    share a member (``IMG_0059`` and ``IMG_59`` both give
    ``res_img_59.txt``). Raises a one-line
    :class:`~tcmbench.errors.TcmbenchError` naming the ids; ``evaluate``
    calls it before inference."""
    from tcmbench.errors import TcmbenchError, UnsafePathError
    from tcmbench.safety.paths import name_problem

    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    for sid in sample_ids:
        name = entry_name(sid, protocol)
        problem = name_problem(name)
        if problem is not None:
            raise UnsafePathError(
                f"sample id {sid!r:.80} cannot name a submission file ({name!r:.80}: {problem})"
            )
        if name in owner:
            raise TcmbenchError(
                f"sample ids {owner[name]!r} and {sid!r} both map to the submission file "
                f"{name} under {protocol}; rename one of the images (or its annotation file)"
            )
        owner[name] = sid
        names[sid] = name
    return names


def submission_entries(
    predictions: Predictions, protocol: str, scores: bool = False
) -> dict[str, str]:
    """Zip entry name -> text for ``protocol``'s official format (names
    checked by :func:`entry_names`)."""
    names = entry_names(predictions, protocol)
    if protocol in RRC_QUAD_PROTOCOLS:
        return {names[sid]: rrc_lines(p, scores) for sid, p in predictions.items()}
    if protocol in RRC_LTRB_PROTOCOLS:
        return {names[sid]: ltrb_lines(p, scores) for sid, p in predictions.items()}
    if protocol in POLYGON_PROTOCOLS:
        yx = protocol in YX_POLYGON_PROTOCOLS
        return {
            names[sid]: polygon_lines(p, scores, yx, protocol) for sid, p in predictions.items()
        }
    # Unknown (plugin) protocols: the general polygon format.
    return {names[sid]: polygon_lines(p, scores) for sid, p in predictions.items()}


def write_submission(
    out_dir: str | Path,
    predictions: Predictions,
    protocol: str,
    scores: bool = False,
) -> dict[str, Path]:
    """Write ``submit.zip`` (official format) and ``predictions.json``
    (every polygon with its float coordinates and score) into ``out_dir``."""
    out = check_destination(out_dir, "--save-predictions")
    entries = submission_entries(predictions, protocol, scores)
    out.mkdir(parents=True, exist_ok=True)
    zip_path = out / "submit.zip"
    atomic_write_bytes(zip_path, _zip(entries))
    json_path = out / "predictions.json"
    doc = {
        "format": "tcmbench evaluate predictions",
        "protocol": protocol,
        "coordinates": "float, as the detector gave them; scored (by evaluate and score) after "
        "the submission's integer rule, as submit.zip holds them",
        "predictions": {sid: [p.to_dict() for p in ps] for sid, ps in predictions.items()},
    }
    atomic_write_text(json_path, json.dumps(doc) + "\n")
    return {"zip": zip_path, "json": json_path}
