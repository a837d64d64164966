"""Prediction readers (every style) against hostile files."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcmbench.eval.io import read_predictions

from .conftest import contract, fuzz_settings
from .fuzz_strategies import (
    PREDICTION_TEMPLATES,
    PREDICTIONS_JSON_SEED,
    container,
    hostile_json_text,
    materialise,
    prediction_file,
)


def check_predictions(files) -> int:
    """Finite (N >= 3, 2) polygons and finite scores, whatever came in."""
    count = 0
    for key, preds in files.items():
        assert isinstance(key, str)
        for pred in preds:
            poly = np.asarray(pred.polygon)
            # >= 1 point: curved-text result lines may hold a degenerate detection
            # (the official scripts accept and count it; the protocols void it).
            assert poly.ndim == 2 and poly.shape[1] == 2 and poly.shape[0] >= 1, poly.shape
            assert np.isfinite(poly.astype(np.float32)).all(), key
            assert pred.score is None or np.isfinite(pred.score), pred.score
            count += 1
    return count


def _read(path: Path, style: str, confidences: bool, skip_invalid: bool) -> int:
    files, _report = read_predictions(
        path, style=style, confidences=confidences, skip_invalid=skip_invalid
    )
    return check_predictions(files)


@pytest.mark.parametrize("style", sorted(PREDICTION_TEMPLATES))
@fuzz_settings()
@given(data=st.data(), confidences=st.booleans(), skip_invalid=st.booleans())
def test_prediction_text_styles(
    style: str, data: st.DataObject, confidences: bool, skip_invalid: bool
) -> None:
    name = PREDICTION_TEMPLATES[style][0]
    handed = data.draw(container({name: data.draw(prediction_file(style))}))
    with tempfile.TemporaryDirectory() as tmp:
        path = materialise(Path(tmp), handed, stem="submit")
        contract(f"predictions {style}", lambda: _read(path, style, confidences, skip_invalid))


@fuzz_settings()
@given(data=st.data(), skip_invalid=st.booleans())
def test_prediction_json(data: st.DataObject, skip_invalid: bool) -> None:
    text = data.draw(hostile_json_text(PREDICTIONS_JSON_SEED))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.json"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        contract("predictions json", lambda: _read(path, "json", False, skip_invalid))


def test_json_seed_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(PREDICTIONS_JSON_SEED))
    files, _ = read_predictions(path, style="json")
    assert check_predictions(files) == 2
