"""The one sample schema every reader produces and every consumer accepts.

Modelled on mmocr 1.x's packed text-detection format: a sample is an image
with its instances; an instance is a polygon (float32, N x 2, N >= 3), a
don't-care flag and an optional transcription. Keeping a single schema means
a new dataset format needs one reader and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tcmbench.safety.run_limits import env_positive_int

_DIGITS = re.compile(r"(\d+)")
# Digit runs up to this long become ints in the sort key; Python refuses to
# convert longer ones (``sys.get_int_max_str_digits()``, 4300 by default).
_INT_KEY_DIGITS = 640


def _number_key(digits: str) -> tuple[int, int | str]:
    """A digit run as a key that orders like its integer value: first by
    length without leading zeros, then by value. Long runs compare as
    strings, which for equal lengths is the same order (and ``int()`` would
    refuse runs over 4300 digits)."""
    core = digits.lstrip("0")
    return (len(core), int(core or "0") if len(core) <= _INT_KEY_DIGITS else core)


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders ``img_2`` before ``img_10`` (numeric-aware): the
    order samples are listed in and the order official scripts sum per-image
    credits in. Any id works, however long its digit runs (ids come from
    file names and JSON keys, which a hostile file controls)."""
    parts = _DIGITS.split(text)
    return tuple(_number_key(p) if i % 2 else p.lower() for i, p in enumerate(parts))


# --------------------------------------------------------------------------- limits

# Limits on the geometry one input may carry. They exist because the
# official geometry costs quadratic time and memory in the points of a
# polygon (repairing a self-intersecting contour: a random 5,000-point one
# took 41 s and 5.9 GB under totaltext-deteval, 150,000 points ended in
# std::bad_alloc) and in the polygons of an image (every GT against every
# detection), so one hostile line could otherwise take minutes and
# gigabytes. Real data stays below them: the largest polygon of the
# reference data has 552 points (a contour of the official Total-Text DetEval
# example predictions), reference ground truth has at most 19 points per
# polygon and 90 polygons per image (see docs/formats.md, "Limits"). Each can
# be raised through the environment variable of the same name prefixed with
# ``TCMBENCH_`` (e.g. ``TCMBENCH_MAX_POLYGON_POINTS=4096``).

#: Points of one polygon (ground truth or detection).
MAX_POLYGON_POINTS = 1024
#: Polygons of one image, counted separately for ground truth and detections
#: (2,000 x 2,000 pairs keep the DetEval tables of one image near 400 MB).
MAX_IMAGE_POLYGONS = 2_000
#: The quadratic work of one image: the sum over its polygons of (points)^2,
#: counted separately for ground truth and detections. 2^22 is four polygons
#: at MAX_POLYGON_POINTS (a few seconds even when all self-intersect), 2,000
#: polygons of 45 points, or 60 contours of 260 points.
MAX_IMAGE_WORK = 1 << 22
#: The matching work of one image: over the (ground truth, detection) pairs
#: whose bounding boxes overlap, the sum of (vertices of one) x (vertices of
#: the other), a self-intersecting contour counted with the vertices its
#: repair creates (every crossing is a new vertex). Exact intersections cost
#: about that much; 1,000,000 is about a second on one core and 24x the
#: densest image of the reference data (41,440: CTW1500's curved example
#: detections against its curved ground truth).
MAX_IMAGE_PAIR_WORK = 1_000_000
#: (ground truth, detection) pairs of one image whose bounding boxes overlap:
#: every such pair is intersected exactly. Real images have a few per
#: detection (at most 94 per image in the reference data: PixelLink on
#: ICDAR 2015); 5,000 is e.g. 70 detections all stacked on 70 texts.
MAX_IMAGE_OVERLAPS = 5_000
#: Largest absolute coordinate: what float32 (the schema's polygon type) can
#: hold. A larger value would be stored as infinity.
MAX_COORDINATE = float(np.finfo(np.float32).max)

_LIMIT_DEFAULTS = {
    "MAX_POLYGON_POINTS": MAX_POLYGON_POINTS,
    "MAX_IMAGE_POLYGONS": MAX_IMAGE_POLYGONS,
    "MAX_IMAGE_WORK": MAX_IMAGE_WORK,
    "MAX_IMAGE_PAIR_WORK": MAX_IMAGE_PAIR_WORK,
    "MAX_IMAGE_OVERLAPS": MAX_IMAGE_OVERLAPS,
}


def image_work(point_counts: Sequence[int]) -> int:
    """The MAX_IMAGE_WORK measure of one image's polygons (one side)."""
    return sum(n * n for n in point_counts)


def limit(name: str) -> int:
    """The value of limit ``name`` (``MAX_POLYGON_POINTS``, ...): the
    ``TCMBENCH_<name>`` environment variable when set to a positive integer,
    else the default constant. Read once per process
    (:func:`tcmbench.safety.run_limits.clear_limit_cache` forgets it)."""
    return env_positive_int(f"TCMBENCH_{name}", _LIMIT_DEFAULTS[name])


def limit_hint(name: str) -> str:
    """How to raise limit ``name``, for error messages."""
    return f"the limit {name} = {limit(name)}; set TCMBENCH_{name} to raise it"


def polygon_array(
    values: Sequence[Any] | np.ndarray, *, min_points: int = 3, keep_float64: bool = False
) -> np.ndarray:
    """Flat ``x1, y1, x2, y2, ...`` (or N x 2) -> an N x 2 array, checked.

    The one place every reader (annotations and predictions) turns parsed
    numbers into geometry, so the rules are the same everywhere: an even
    count, ``min_points`` <= N <= :data:`MAX_POLYGON_POINTS`, and every
    coordinate finite *after the cast to float32* (``1e39`` is finite as a
    float64 but would be stored as infinity). Raises ValueError with a short
    reason that readers report as a malformed line. Returns float32 (the
    schema's type), or float64 when ``keep_float64`` (predictions keep their
    values: the RRC protocol truncates them itself).
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except OverflowError:
        raise ValueError("a coordinate is too large for a number") from None
    except (TypeError, ValueError):
        raise ValueError("coordinates must be numbers (flat or as [x, y] pairs)") from None
    if arr.ndim == 2 and arr.shape[1] == 2:
        flat = arr.reshape(-1)
    elif arr.ndim == 1:
        flat = arr
    else:
        raise ValueError(f"coordinates of shape {arr.shape} are not a polygon")
    if flat.size % 2:
        raise ValueError(f"odd number of coordinates ({flat.size})")
    n = flat.size // 2
    if n < min_points:
        raise ValueError(f"{n} point(s); a polygon needs at least {min_points}")
    if n > limit("MAX_POLYGON_POINTS"):
        raise ValueError(f"{n} points in one polygon; over {limit_hint('MAX_POLYGON_POINTS')}")
    with np.errstate(over="ignore", invalid="ignore"):
        as32 = flat.astype(np.float32)
    if not np.isfinite(as32).all():
        bad = flat[~np.isfinite(as32)][0]
        what = "non-finite" if not np.isfinite(bad) else "out-of-range (beyond float32)"
        raise ValueError(f"{what} coordinate {float(bad):g}")
    return (flat if keep_float64 else as32).reshape(-1, 2)


def polygon_rows(
    values: Sequence[float] | np.ndarray,
    counts: Sequence[int],
    *,
    min_points: int = 3,
    keep_float64: bool = False,
) -> tuple[list[bool], np.ndarray]:
    """:func:`polygon_array`'s rules for many polygons at once.

    ``values`` holds the coordinates of every polygon back to back,
    ``counts`` how many each has. Returns (ok, the values as float32, or
    float64 with ``keep_float64``): ``ok[k]`` is True where
    :func:`polygon_array` accepts polygon k. A
    reader parses a file's lines into one list, checks them here, and
    re-parses only the refused lines one by one, for the exact error. The
    usual file (every polygon well formed) costs a few array operations.
    """
    flat = np.asarray(values, dtype=np.float64)  # a float64 array is used as it is
    n = len(counts)
    if not n:
        return [], flat if keep_float64 else flat.astype(np.float32)
    top = 2 * limit("MAX_POLYGON_POINTS")
    in_range = bool(np.abs(flat).max(initial=0.0) <= MAX_COORDINATE)  # False for NaN
    shapes_ok = min(counts) >= 2 * min_points and max(counts) <= top
    if in_range and shapes_ok and all(c % 2 == 0 for c in counts):
        return [True] * n, flat if keep_float64 else flat.astype(np.float32)
    cnt = np.asarray(counts, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        as32 = flat.astype(np.float32)
    ok = (cnt % 2 == 0) & (cnt >= 2 * min_points) & (cnt <= top)
    finite = np.isfinite(as32)
    if not finite.all():
        owner = np.repeat(np.arange(n), cnt)
        ok &= np.bincount(owner[~finite], minlength=n) == 0
    return ok.tolist(), flat if keep_float64 else as32


@dataclass
class Instance:  # noqa: PLW1641  (mutable, compared by value: deliberately unhashable)
    """One text instance.

    ``polygon`` is float32 of shape (N, 2), N >= 3, in pixel coordinates of
    the original image. ``ignore`` marks don't-care regions (``###``,
    illegible, difficult); they are excluded from recall and absorb
    detections under every protocol.
    """

    polygon: np.ndarray
    ignore: bool = False
    text: str | None = None

    def __post_init__(self) -> None:
        poly = self.polygon
        # Readers hand over float32 (N, 2) arrays already: checked without a
        # conversion (this runs once per ground-truth line).
        if not (type(poly) is np.ndarray and poly.dtype == np.float32):
            poly = np.asarray(poly, dtype=np.float32)
        if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
            raise ValueError(f"polygon must be N x 2 with N >= 3, got shape {poly.shape}")
        self.polygon = poly

    def to_dict(self) -> dict[str, Any]:
        return {
            "polygon": self.polygon.reshape(-1).tolist(),
            "ignore": bool(self.ignore),
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Instance:
        pts = np.asarray(d["polygon"], dtype=np.float32).reshape(-1, 2)
        return cls(polygon=pts, ignore=bool(d.get("ignore", False)), text=d.get("text"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instance):
            return NotImplemented
        return (
            self.ignore == other.ignore
            and self.text == other.text
            and self.polygon.shape == other.polygon.shape
            and bool(np.array_equal(self.polygon, other.polygon))
        )


@dataclass
class Sample:
    """One image and its ground truth.

    ``image_path`` may be None and ``width`` / ``height`` 0 when only the
    annotations are available (e.g. an RRC GT zip); evaluation needs no
    pixels. ``id`` is the stable key that predictions are matched on (for
    RRC-style data the numeric image id, e.g. ``"17"`` for ``gt_img_17.txt``).
    """

    id: str
    image_path: str | None
    width: int
    height: int
    instances: list[Instance] = field(default_factory=list)

    @property
    def num_ignored(self) -> int:
        return sum(1 for inst in self.instances if inst.ignore)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "image_path": self.image_path,
            "width": int(self.width),
            "height": int(self.height),
            "instances": [inst.to_dict() for inst in self.instances],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        return cls(
            id=str(d["id"]),
            image_path=d.get("image_path"),
            width=int(d.get("width") or 0),
            height=int(d.get("height") or 0),
            instances=[Instance.from_dict(x) for x in d.get("instances", [])],
        )


@dataclass
class Prediction:
    """One detected polygon with an optional confidence.

    Coordinates are in original-image pixels; float (a detector's output) or
    integral (an RRC submission). ``score`` is None when the source has no
    confidences. Protocols decide how to round (icdar2015 truncates with
    ``int()`` as the official script does).
    """

    polygon: np.ndarray
    score: float | None = None

    def __post_init__(self) -> None:
        poly = self.polygon
        if not (
            type(poly) is np.ndarray
            and poly.dtype == np.float64
            and poly.ndim == 2
            and poly.shape[1] == 2
        ):  # readers hand over float64 (N, 2) arrays already
            poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        self.polygon = poly

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"polygon": self.polygon.reshape(-1).tolist()}
        if self.score is not None:
            d["score"] = float(self.score)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prediction:
        score = d.get("score")
        return cls(
            polygon=np.asarray(d["polygon"], dtype=np.float64),
            score=None if score is None else float(score),
        )
