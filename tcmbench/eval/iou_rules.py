"""What the official scripts of the IoU family accept, and how each
protocol of the family is set up (:class:`Rules`, :class:`Params`).

* The RRC ICDAR 2015 ``script.py`` (``icdar2015``, ``msra-td500``, ``tiou``
  with ``rules=icdar2015``) keeps only 4-point lines and checks that each
  is "clockwise": ``sum((x2 - x1) * (y2 + y1)) <= 0`` on the ``int()``
  points; a failing line makes it reject the whole submission.
* TIoU-metric's ``curved-tiou/script.py`` (``totaltext-iou``,
  ``ctw1500-iou``, ``tiou``) checks each line with shapely:
  ``Polygon(points).is_valid`` and ``not LinearRing(points).is_ccw``.

tcmbench rejects the same lines, with the line named, unless
``validate=false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from tcmbench.errors import ProtocolError
from tcmbench.eval.api import check_params, parse_bool, parse_float
from tcmbench.eval.polygons import CoordMode, PolygonBatch, shapely_is_valid

RRC_EXPECTED_POINTS = 4
#: Safety margin on the bounds that skip exact geometry (a pair, a TIoU
#: term): they only skip what is provably hopeless or negligible.
BOUND_MARGIN = 1.0 - 1e-9


class Rules(NamedTuple):
    """What differs between the official scripts of the family (a named
    tuple: a frozen dataclass costs a ``score`` run's start-up more)."""

    protocol: str
    coords: CoordMode
    validation: str  # "rrc" | "curved"
    gt_round: bool = False  # msra-td500: GT corners rounded to int (DBNet's conversion)
    ot_tolerance: float = 0.0
    tiou_headline: bool = False


ICDAR2015 = Rules("icdar2015", "int32", "rrc", ot_tolerance=0.001)
MSRA_TD500 = Rules("msra-td500", "int32", "rrc", gt_round=True, ot_tolerance=0.001)
TOTALTEXT_IOU = Rules("totaltext-iou", "float32", "curved")
CTW1500_IOU = Rules("ctw1500-iou", "float32", "curved")
TIOU_CURVED = Rules("tiou", "float32", "curved", tiou_headline=True)
TIOU_ICDAR2015 = Rules("tiou", "int32", "rrc", ot_tolerance=0.001, tiou_headline=True)


class Params(NamedTuple):
    iou_threshold: float
    area_precision_threshold: float
    confidences: bool
    validate: bool
    tiou: bool
    sweep: bool
    details: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "iou_threshold": self.iou_threshold,
            "area_precision_threshold": self.area_precision_threshold,
            "confidences": self.confidences,
            "validate": self.validate,
            "tiou": self.tiou,
        }


def resolve_params(protocol: str, given: Mapping[str, Any]) -> tuple[Params, dict[str, Any]]:
    from tcmbench.eval.catalog import IOU_PROTOCOLS

    p = check_params(protocol, IOU_PROTOCOLS[protocol][2], given)
    params = Params(
        iou_threshold=parse_float(p["iou_threshold"], "iou_threshold", protocol),
        area_precision_threshold=parse_float(
            p["area_precision_threshold"], "area_precision_threshold", protocol
        ),
        confidences=parse_bool(p["confidences"], "confidences", protocol),
        validate=parse_bool(p["validate"], "validate", protocol),
        tiou=parse_bool(p.get("tiou", True), "tiou", protocol),
        sweep=parse_bool(p["sweep"], "sweep", protocol),
        details=parse_bool(p["details"], "details", protocol),
    )
    return params, p


# --------------------------------------------------------------------------- validation


def reject(rules: Rules, sid: str, role: str, index: int, reason: str) -> ProtocolError:
    script = "the RRC script" if rules.validation == "rrc" else "the curved TIoU script"
    err = ProtocolError(
        f"{rules.protocol}: sample {sid}, {role} {index + 1}: {reason}; {script} rejects the "
        f"whole submission on such a line (pass --param validate=false to score it anyway)"
    )
    err.sample_id = sid  # type: ignore[attr-defined]
    err.role = role  # type: ignore[attr-defined]
    err.index = index  # type: ignore[attr-defined]
    return err


class Owners:
    """The sample id of each polygon of a chunk (``ids[image[k]]``), looked
    up only to name a rejected line."""

    def __init__(self, ids: list[str], image: np.ndarray) -> None:
        self.ids = ids
        self.image = image

    def __getitem__(self, k: int) -> str:
        return self.ids[int(self.image[k])]


def validate_rrc(
    rules: Rules, polys: list[np.ndarray], owner_ids: Owners, local: np.ndarray, role: str
) -> None:
    """4 points, finite, and the RRC "clockwise" sum on int() points <= 0."""
    counts = np.fromiter(map(len, polys), dtype=np.int64, count=len(polys))
    wrong = np.flatnonzero(counts != RRC_EXPECTED_POINTS)
    if wrong.size:
        k = int(wrong[0])
        raise reject(
            rules,
            owner_ids[k],
            role,
            int(local[k]),
            f"has {counts[k]} points; the ICDAR 2015 format has exactly 4 (x1,y1,...,x4,y4)",
        )
    if not polys:
        return
    quads = np.concatenate(polys, axis=0, dtype=np.float64).reshape(-1, RRC_EXPECTED_POINTS, 2)
    finite = np.isfinite(quads).all(axis=(1, 2))
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise reject(rules, owner_ids[k], role, int(local[k]), "has a non-finite coordinate")
    pts = np.trunc(quads)
    if np.abs(pts).max() < 2**25:
        nxt = np.roll(pts, -1, axis=1)
        edge = (nxt[..., 0] - pts[..., 0]) * (nxt[..., 1] + pts[..., 1])
        bad = edge.sum(axis=1) > 0
    else:  # exact with Python ints, as the script computes
        bad = np.array(
            [
                sum(
                    (int(q[(i + 1) % 4, 0]) - int(q[i, 0]))
                    * (int(q[(i + 1) % 4, 1]) + int(q[i, 1]))
                    for i in range(4)
                )
                > 0
                for q in quads
            ]
        )
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise reject(
            rules,
            owner_ids[k],
            role,
            int(local[k]),
            "its points are not in clockwise order (image coordinates, y down)",
        )


def validate_curved(
    rules: Rules, batch: PolygonBatch, owner_ids: Owners, local: np.ndarray, role: str
) -> None:
    """shapely's ``Polygon(points).is_valid`` and ``not LinearRing.is_ccw``."""
    n = len(batch)
    if n == 0:
        return
    valid = shapely_is_valid(batch, np.arange(n))
    if not valid.all():
        k = int(np.flatnonzero(~valid)[0])
        what = (
            "has fewer than 3 distinct points or a non-finite coordinate"
            if batch.void[k]
            else "is not a valid polygon (its sides intersect or it has no area)"
        )
        raise reject(rules, owner_ids[k], role, int(local[k]), what)
    ccw = batch.signed_area > 0
    if ccw.any():
        k = int(np.flatnonzero(ccw)[0])
        raise reject(
            rules,
            owner_ids[k],
            role,
            int(local[k]),
            "its points run in the order the curved script rejects (shapely "
            "LinearRing(points).is_ccw is True); reverse the point order",
        )
