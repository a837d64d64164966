"""The result of scoring predictions with a protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """Global figures plus per-image details.

    ``precision`` / ``recall`` / ``hmean`` are the official figures at the
    protocol's fixed rules (every submitted detection). Optional figures are
    None where the protocol does not define them (``ap`` needs confidences;
    ``tiou_*`` exist for the IoU protocols). ``sweep`` holds the
    best-threshold sweep when asked for, kept apart so it is never mistaken
    for the official number. ``per_image`` maps sample id -> dict of that
    image's counts and matches.
    """

    protocol: str
    precision: float
    recall: float
    hmean: float
    ap: float | None = None
    tiou_precision: float | None = None
    tiou_recall: float | None = None
    tiou_hmean: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    per_image: dict[str, dict[str, Any]] = field(default_factory=dict)
    sweep: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Top-level figures as a JSON-ready dict (no per-image details)."""
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "precision": self.precision,
            "recall": self.recall,
            "hmean": self.hmean,
        }
        for key in ("ap", "tiou_precision", "tiou_recall", "tiou_hmean"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["params"] = dict(self.params)
        if self.sweep is not None:
            out["sweep"] = self.sweep
        out.update(self.extra)
        return out
