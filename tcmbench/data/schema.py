"""The one sample schema every reader produces and every consumer accepts.

Modelled on mmocr 1.x's packed text-detection format: a sample is an image
with its instances; an instance is a polygon (float32, N x 2, N >= 3), a
don't-care flag and an optional transcription. Keeping a single schema means
a new dataset format needs one reader and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders ``img_2`` before ``img_10`` (numeric-aware): the
    order samples are listed in and the order official scripts sum per-image
    credits in."""
    parts = _DIGITS.split(text)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts))


@dataclass
class Instance:
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
        poly = np.asarray(self.polygon, dtype=np.float32)
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
        self.polygon = np.asarray(self.polygon, dtype=np.float64).reshape(-1, 2)

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
