"""The monotone-band simplicity certificate (tcmbench/eval/monotone.py).

It may only say "simple" where GEOS says the polygon is valid: checked on
random curved bands (the text shapes it is for), bands whose chains touch,
cross or come within rounding distance of each other, and random polygons
on a small grid (mostly not simple), all certified together in one batch as
the scorer does.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcmbench.data.schema import Instance, Prediction
from tcmbench.eval import evaluate
from tcmbench.eval.api import get_protocol_spec
from tcmbench.eval.bounds import ImageLimits
from tcmbench.eval.monotone import chunks, monotone_simple
from tcmbench.eval.polygons import _pack_part, _star_shaped, pack, pack_flat

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def certify(polys: list[np.ndarray]) -> np.ndarray:
    counts = np.array([len(p) for p in polys], dtype=np.int64)
    coords = np.concatenate(polys).astype(np.float64)
    start = np.cumsum(counts) - counts
    return monotone_simple(coords, start, counts, np.arange(len(polys)))


def geos_valid(p: np.ndarray) -> bool:
    return bool(shapely.Polygon(p).is_valid)


@st.composite
def band(draw: st.DrawFn) -> np.ndarray:
    """A curved text band: a spine bent by up to ~200 degrees, a top and a
    bottom chain at (possibly zero, negative or rounding-sized) offsets,
    rotated, translated, rounded to a grid or to float32, either orientation."""
    k = draw(st.integers(2, 20))
    bend = draw(st.floats(-3.5, 3.5))
    length = draw(st.floats(1e-3, 1e4))
    t = np.linspace(0.0, 1.0, k)
    ang = bend * (t - 0.5)
    # spine: integrate the direction
    d = np.stack([np.cos(ang), np.sin(ang)], axis=1) * (length / max(k - 1, 1))
    spine = np.cumsum(d, axis=0)
    normal = np.stack([-np.sin(ang), np.cos(ang)], axis=1)
    width = draw(st.floats(1e-9, 1.0)) * length
    w_top = np.full(k, width)
    w_bot = np.full(k, width)
    mode = draw(st.sampled_from(["plain", "touch", "cross", "near", "noise", "skew"]))
    i = draw(st.integers(0, k - 1))
    if mode == "touch":  # the chains meet at one station
        w_top[i] = w_bot[i] = 0.0
    elif mode == "cross":
        w_top[i] = -draw(st.floats(0.0, 2.0)) * width - w_bot[i]
    elif mode == "near":  # within a few ulps of touching
        w_top[i] = -w_bot[i] + draw(st.sampled_from([1e-15, 1e-12, 1e-9])) * length
    elif mode == "noise":
        w_top = w_top * draw(st.floats(0.0, 2.0))
        w_bot = w_bot * draw(st.floats(0.0, 2.0))
    elif mode == "skew":  # the bottom chain slides along the spine
        w_bot = -w_bot
    top = spine + normal * w_top[:, None]
    bottom = spine - normal * w_bot[:, None]
    if mode == "skew":
        bottom = spine + normal * (width * 0.5) + d * draw(st.floats(-3.0, 3.0))
    pts = np.concatenate([top, bottom[::-1]])
    rot = draw(st.floats(0.0, 2 * math.pi))
    c, s = math.cos(rot), math.sin(rot)
    pts = pts @ np.array([[c, -s], [s, c]])
    pts = pts + np.array([draw(st.sampled_from([0.0, 500.0, 1e6, -3e7])), 0.0])
    rounding = draw(st.sampled_from(["none", "int", "float32"]))
    if rounding == "int":
        pts = np.round(pts)
    elif rounding == "float32":
        pts = pts.astype(np.float32).astype(np.float64)
    if draw(st.booleans()):
        pts = pts[::-1]
    shift = draw(st.integers(0, len(pts) - 1))
    return np.roll(pts, shift, axis=0)


grid_polygon = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=3, max_size=12
).map(lambda pts: np.array(pts, dtype=np.float64))


@SETTINGS
@given(polys=st.lists(st.one_of(band(), grid_polygon), min_size=1, max_size=12))
def test_certified_polygons_are_valid(polys: list[np.ndarray]) -> None:
    sure = certify(polys)
    for p, ok in zip(polys, sure):
        if ok:
            assert geos_valid(p), p.tolist()


@SETTINGS
@given(polys=st.lists(band(), min_size=1, max_size=6))
def test_certified_after_packing_are_valid(polys: list[np.ndarray]) -> None:
    """The same through pack (duplicates removed, contours reoriented,
    float32 coordinates as the curved script stores them)."""
    batch = pack(polys, "float32")
    for i in np.flatnonzero(batch.simple):
        assert geos_valid(batch.vertices(int(i)))


def arc_band(k: int = 7, inner: float = 100.0, outer: float = 130.0) -> np.ndarray:
    """A CTW1500-style 2k-point band along a half circle: not star-shaped
    around its vertex mean nor around the middle of its spine."""
    a = np.linspace(math.pi, 0.0, k)
    top = np.stack([outer * np.cos(a), -outer * np.sin(a)], axis=1)
    bottom = np.stack([inner * np.cos(a), -inner * np.sin(a)], axis=1)[::-1]
    return np.round(np.concatenate([top, bottom]) + 400.0)


def test_arc_band_is_certified_where_the_star_test_is_not() -> None:
    p = arc_band()
    assert geos_valid(p)
    batch = pack([p, p[::-1]], "float32")
    assert not _star_shaped(batch).any()
    assert certify([p, p[::-1]]).all()
    assert batch.simple.all()


@pytest.mark.parametrize(
    "what",
    ["pinched", "crossed", "spike", "repeated", "nan"],
)
def test_touching_or_broken_bands_are_not_certified(what: str) -> None:
    p = arc_band()
    k = len(p) // 2
    if what == "pinched":  # top vertex 3 placed on the bottom chain's vertex
        p[3] = p[2 * k - 1 - 3]
    elif what == "crossed":  # top vertex 3 pushed through the bottom chain
        p[3] = p[3] + 1.5 * (p[2 * k - 1 - 3] - p[3])
    elif what == "spike":  # top vertex 3 on the middle of a bottom edge
        p[3] = 0.5 * (p[2 * k - 1 - 3] + p[2 * k - 1 - 4])
    elif what == "repeated":
        p[4] = p[3]
    else:
        p[5, 0] = math.nan
    assert not certify([arc_band(), p])[1]
    assert certify([arc_band(), p])[0]  # a bad neighbour does not spoil the batch


def test_chunks_cover_every_polygon_once() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=500)
    counts[17] = 100  # larger than the limit: a run of its own
    parts = chunks(counts, 64)
    assert parts[0][0] == 0 and parts[-1][1] == counts.size
    for (lo, hi), (lo2, _) in itertools.pairwise(parts):
        assert hi == lo2 and hi > lo
    for lo, hi in parts:
        assert counts[lo:hi].sum() <= 64 or hi - lo == 1


def test_pack_in_runs_equals_pack_in_one() -> None:
    """pack_flat joins cache-sized runs: the same batch as one pass."""
    rng = np.random.default_rng(1)
    polys = [
        arc_band(int(k)) + rng.normal(0, 3, (2 * int(k), 2)) for k in rng.integers(2, 25, 3000)
    ]
    polys += [rng.integers(0, 9, size=(int(n), 2)).astype(float) for n in rng.integers(1, 9, 500)]
    counts = np.array([len(p) for p in polys], dtype=np.int64)
    flat = np.concatenate(polys)
    assert len(chunks(counts)) > 1
    for mode in ("float32", "int32"):
        a, b = pack_flat(flat, counts, mode), _pack_part(flat, counts, mode)
        for name in (
            "coords",
            "start",
            "count",
            "signed_area",
            "area",
            "bbox",
            "void",
            "simple",
            "integral",
        ):
            assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


# --------------------------------------------------------------------------- shared with the limits


def clockwise(p: np.ndarray) -> np.ndarray:
    """The order the curved script accepts (shapely's is_ccw False)."""
    return p[::-1] if shapely.LinearRing(p).is_ccw else p


def band_image(n: int = 12) -> tuple[dict[str, list[Instance]], dict[str, list[Prediction]]]:
    """One image of ``n`` arc bands (enough 14-point polygons that the limits
    must measure it rather than bound it by point counts) and a detection
    per band, shifted a little."""
    bands = [clockwise(arc_band() + [300.0 * (i % 4), 200.0 * (i // 4)]) for i in range(n)]
    gt = {"1": [Instance(polygon=b) for b in bands]}
    dets = {"1": [Prediction(polygon=b + [3.0, 2.0], score=0.9) for b in bands]}
    return gt, dets


def test_limits_certificates_reach_packing() -> None:
    gt, dets = band_image()
    limits = ImageLimits(gt, dets)
    assert limits.verdict("1", "gt") is None and limits.verdict("1", "det") is None
    polys = [x.polygon for x in gt["1"]] + [d.polygon for d in dets["1"]]
    sure = limits.certified_simple(polys)
    copies = limits.certified_simple([p.copy() for p in polys])
    assert sure is not None and copies is not None
    assert sure.all()
    assert not copies.any()  # by identity, not by content: a copy was never measured
    # the same figures with the certificates (evaluate) as without (the bare protocol)
    for protocol in ("ctw1500-iou", "totaltext-iou"):
        with_limits = evaluate(gt, dets, protocol, details=True)
        bare = get_protocol_spec(protocol).evaluate(gt, dets, details=True)
        assert with_limits.per_image == bare.per_image
        assert with_limits.hmean == bare.hmean == 1.0


def test_known_simple_is_trusted_only_where_coordinates_are_kept() -> None:
    bow = np.array([[0.1, 0.1], [10.1, 10.1], [10.1, 5.1], [10.1, 0.1], [0.1, 10.1], [0.1, 5.1]])
    told = np.array([True])
    # float32 moves 0.1: the (wrong) certificate is not trusted, the exact test runs
    assert not pack([bow], "float32", told).simple[0]
    assert not pack([bow], "float32").simple[0]
    # coordinates kept: the certificate is the caller's word (the limits' own test)
    assert pack([bow], "float64", told).simple[0]
    arc = arc_band()
    assert pack([arc], "float32", told).simple[0] == pack([arc], "float32").simple[0]
