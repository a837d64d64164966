"""Every registered protocol against hostile geometry: random, degenerate,
self-intersecting and long polygons, many per image, with or without
scores. The figures must stay in [0, 1] or the input is refused."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcmbench.contract.registry import protocols
from tcmbench.data.schema import Instance, Prediction
from tcmbench.eval.api import evaluate

from .conftest import contract, fuzz_settings
from .fuzz_strategies import polygon

PROTOCOLS = sorted(protocols())


@st.composite
def scene(draw: st.DrawFn) -> tuple[dict, dict]:
    """GT and predictions for 1-3 images; sometimes dense (many overlapping
    polygons), sometimes an image with no prediction file at all."""
    gt: dict = {}
    preds: dict = {}
    for i in range(draw(st.integers(1, 3))):
        key = f"img_{i + 1}"
        dense = draw(st.integers(0, 9)) == 0
        n_gt = draw(st.integers(0, 120 if dense else 8))
        n_pred = draw(st.integers(0, 120 if dense else 8))
        gt[key] = [Instance(draw(polygon()), ignore=draw(st.booleans())) for _ in range(n_gt)]
        if draw(st.integers(0, 6)) == 0:
            continue  # no prediction file for this image
        with_scores = draw(st.booleans())
        preds[key] = [
            Prediction(
                draw(polygon()), score=draw(st.floats(0, 1, width=32)) if with_scores else None
            )
            for _ in range(n_pred)
        ]
    return gt, preds


def _score(gt: dict, preds: dict, protocol: str, sweep: bool) -> float:
    params = {"sweep": True} if sweep else {}
    result = evaluate(gt, preds, protocol=protocol, **params)
    for value in (result.precision, result.recall, result.hmean):
        assert math.isfinite(value) and 0.0 <= value <= 1.0, (protocol, value)
    return result.hmean


@pytest.mark.parametrize("protocol", PROTOCOLS)
@fuzz_settings(fast_examples=25)
@given(data=scene(), sweep=st.booleans())
def test_protocols(protocol: str, data: tuple[dict, dict], sweep: bool) -> None:
    gt, preds = data
    contract(f"protocol {protocol}", lambda: _score(gt, preds, protocol, sweep))
