"""Property tests: every registered protocol on random and adversarial input.

Bow-ties, collinear and duplicate points, NaN / inf, fewer than 3 points and
huge coordinates must never crash a protocol; every figure stays in [0, 1];
a perfect prediction scores 1.0; intersection areas and IoU are symmetric.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcmbench.contract.registry import protocols
from tcmbench.data.schema import Instance, Prediction
from tcmbench.eval import evaluate
from tcmbench.eval.intersection import intersection_area
from tcmbench.eval.polygons import pack

PROTOCOLS = sorted(protocols())
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

special = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e12, 1e149, -1e200, -(2.0**31) - 3, 2.0**31 + 5, 0.0]
)
coord = st.one_of(
    st.integers(0, 12).map(float),  # small grid: shared edges, collinear and duplicate points
    st.floats(-50, 200, allow_nan=False, allow_infinity=False),
    special,
)


@st.composite
def polygon(draw: st.DrawFn) -> np.ndarray:
    kind = draw(
        st.sampled_from(["random", "random", "quad", "bowtie", "collinear", "short", "duplicate"])
    )
    if kind == "bowtie":
        x, y, s = draw(st.integers(0, 20)), draw(st.integers(0, 20)), draw(st.integers(1, 15))
        return np.array([[x, y], [x + s, y + s], [x + s, y], [x, y + s]], dtype=np.float64)
    if kind == "collinear":
        x, y = draw(st.integers(0, 20)), draw(st.integers(0, 20))
        return np.array([[x, y], [x + 3, y + 3], [x + 6, y + 6], [x + 1, y + 1]], dtype=np.float64)
    if kind == "quad":
        x, y = draw(st.integers(0, 30)), draw(st.integers(0, 30))
        w, h = draw(st.integers(1, 20)), draw(st.integers(1, 20))
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)
    n = {"short": draw(st.integers(1, 2)), "duplicate": 4}.get(kind, draw(st.integers(3, 9)))
    pts = np.array([[draw(coord), draw(coord)] for _ in range(n)], dtype=np.float64)
    if kind == "duplicate":
        pts[1] = pts[0]
        pts[3] = pts[2]
    return pts


@st.composite
def image(draw: st.DrawFn) -> tuple[list[Instance], list[Prediction]]:
    gts = [
        Instance(
            polygon=p if len(p) >= 3 else np.vstack([p, p, p])[:3],
            ignore=draw(st.booleans()),
            text=None,
        )
        for p in draw(st.lists(polygon(), max_size=5))
    ]
    preds = [
        Prediction(polygon=p, score=draw(st.floats(0, 1)))
        for p in draw(st.lists(polygon(), max_size=6))
    ]
    return gts, preds


def relaxed(protocol: str) -> dict[str, object]:
    """Parameters that let a protocol score what its official script would
    reject outright (validation off), plus the sweep where offered."""
    spec = protocols()[protocol]
    params: dict[str, object] = {}
    if "validate" in spec.params:
        params["validate"] = False
    if "sweep" in spec.params:
        params["sweep"] = True
    return params


def figures(result) -> list[float]:
    values = [
        result.precision,
        result.recall,
        result.hmean,
        result.ap,
        result.tiou_precision,
        result.tiou_recall,
        result.tiou_hmean,
    ]
    if result.sweep:
        values += result.sweep["precision"] + result.sweep["recall"] + result.sweep["hmean"]
    return [v for v in values if v is not None]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.filterwarnings(
    "ignore::RuntimeWarning"
)  # float overflow of the huge inputs is expected
@SETTINGS
@given(images=st.lists(image(), min_size=1, max_size=3), missing=st.booleans())
def test_random_and_adversarial_input_never_crashes(protocol: str, images, missing: bool) -> None:
    gt = {f"img_{i}": g for i, (g, _) in enumerate(images)}
    preds = {f"img_{i}": p for i, (_, p) in enumerate(images)}
    if missing:
        preds.pop("img_0")
    result = evaluate(gt, preds, protocol, **relaxed(protocol))
    for value in figures(result):
        assert 0.0 <= value <= 1.0, (protocol, value)


@st.composite
def clean_image(draw: st.DrawFn) -> list[np.ndarray]:
    """Disjoint integer rectangles (a grid), as any dataset's GT could be."""
    cells = draw(st.lists(st.integers(0, 15), min_size=1, max_size=6, unique=True))
    out = []
    for c in cells:
        x0, y0 = (c % 4) * 40, (c // 4) * 40
        w, h = draw(st.integers(5, 35)), draw(st.integers(5, 35))
        out.append(
            np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], dtype=np.float64)
        )
    return out


@pytest.mark.parametrize("protocol", PROTOCOLS)
@SETTINGS
@given(images=st.lists(clean_image(), min_size=1, max_size=3))
def test_perfect_prediction_scores_one(protocol: str, images) -> None:
    gt = {
        f"img_{i}": [Instance(polygon=p, text="word") for p in polys]
        for i, polys in enumerate(images)
    }
    preds = {
        f"img_{i}": [Prediction(polygon=p.copy(), score=1.0) for p in polys]
        for i, polys in enumerate(images)
    }
    params = {"validate": False} if "validate" in protocols()[protocol].params else {}
    result = evaluate(gt, preds, protocol, **params)
    assert (result.precision, result.recall, result.hmean) == (1.0, 1.0, 1.0)
    if result.tiou_hmean is not None:
        assert result.tiou_hmean == pytest.approx(1.0)


@SETTINGS
@given(
    pairs=st.lists(st.tuples(polygon(), polygon()), min_size=1, max_size=20),
    mode=st.sampled_from(["float64", "float32", "int32"]),
)
def test_intersection_and_iou_are_symmetric(pairs, mode: str) -> None:
    a = pack([p for p, _ in pairs], mode)
    b = pack([q for _, q in pairs], mode)
    idx = np.arange(len(pairs))
    ab = intersection_area(a, idx, b, idx)
    ba = intersection_area(b, idx, a, idx)
    # The kernel's rounding error grows with the square of the coordinates,
    # not with the area: a thin triangle with corners near 1e9 (int32-wrapped
    # 1e12) may differ in the last 0.4 of 2.7e8 with the operands swapped.
    scale = np.maximum(
        np.abs(np.nan_to_num(a.bbox, posinf=0, neginf=0)).max(axis=1),
        np.abs(np.nan_to_num(b.bbox, posinf=0, neginf=0)).max(axis=1),
    )
    assert np.all(np.abs(ab - ba) <= 1e-9 * np.abs(ba) + 1e-6 + 1e-15 * scale**2)
    assert np.all(np.isfinite(ab)) and np.all(ab >= 0)
    union_ab = a.area + b.area - ab
    union_ba = b.area + a.area - ba
    iou_ab = np.divide(ab, union_ab, out=np.zeros_like(ab), where=union_ab != 0)
    iou_ba = np.divide(ba, union_ba, out=np.zeros_like(ba), where=union_ba != 0)
    np.testing.assert_allclose(iou_ab, iou_ba, rtol=1e-9, atol=1e-9)
