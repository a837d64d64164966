"""Every annotation reader against hostile files (see conftest.py for the
contract): samples come back well formed, or one TcmbenchError."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcmbench.data.formats.api import read_annotations
from tcmbench.data.schema import Sample

from .conftest import contract, fuzz_settings
from .fuzz_strategies import (
    FILE_NAMES,
    JSON_SEEDS,
    JSONL_SEED,
    container,
    hostile_json_text,
    materialise,
    text_file,
)


def check_samples(samples: list[Sample]) -> None:
    """What a reader may return: float32 (N >= 3, 2) finite polygons."""
    for sample in samples:
        assert isinstance(sample.id, str)
        for inst in sample.instances:
            poly = inst.polygon
            assert isinstance(poly, np.ndarray) and poly.dtype == np.float32, sample.id
            assert poly.ndim == 2 and poly.shape[1] == 2 and poly.shape[0] >= 3, poly.shape
            assert np.isfinite(poly).all(), f"{sample.id}: non-finite polygon {poly[:4]}"


def _read(fmt: str, path: Path, skip_invalid: bool) -> list[Sample]:
    samples, _report = read_annotations(fmt, path, skip_invalid=skip_invalid)
    check_samples(samples)
    return samples


@pytest.mark.parametrize("fmt", sorted(FILE_NAMES))
@fuzz_settings()
@given(data=st.data(), skip_invalid=st.booleans())
def test_text_readers(fmt: str, data: st.DataObject, skip_invalid: bool) -> None:
    payload = data.draw(text_file(fmt))
    handed = data.draw(container({FILE_NAMES[fmt]: payload}))
    with tempfile.TemporaryDirectory() as tmp:
        path = materialise(Path(tmp), handed)
        contract(f"reader {fmt}", lambda: _read(fmt, path, skip_invalid))


@pytest.mark.parametrize("fmt", sorted(JSON_SEEDS))
@fuzz_settings()
@given(data=st.data(), skip_invalid=st.booleans())
def test_json_readers(fmt: str, data: st.DataObject, skip_invalid: bool) -> None:
    name, seed = JSON_SEEDS[fmt]
    text = data.draw(hostile_json_text(seed))
    handed = data.draw(container({name: text.encode("utf-8", "surrogatepass")}))
    with tempfile.TemporaryDirectory() as tmp:
        path = materialise(Path(tmp), handed)
        contract(f"reader {fmt}", lambda: _read(fmt, path, skip_invalid))


@fuzz_settings()
@given(data=st.data(), skip_invalid=st.booleans())
def test_jsonl_reader(data: st.DataObject, skip_invalid: bool) -> None:
    lines = [
        data.draw(hostile_json_text(JSONL_SEED)).replace("\n", " ")
        for _ in range(data.draw(st.integers(1, 4)))
    ]
    text = "\n".join(lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "test.jsonl"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        contract("reader jsonl", lambda: _read("jsonl", path, skip_invalid))


def test_seeds_are_valid_documents(tmp_path: Path) -> None:
    """The JSON seeds parse as they are: the fuzzers start from the format,
    so their mutations reach the deep parsing code."""
    for fmt, (name, seed) in JSON_SEEDS.items():
        folder = tmp_path / fmt
        folder.mkdir()
        (folder / name).write_text(json.dumps(seed))
        samples, _ = read_annotations(fmt, folder)
        assert sum(len(s.instances) for s in samples) >= 1, fmt
    (tmp_path / "a.jsonl").write_text(json.dumps(JSONL_SEED))
    samples, _ = read_annotations("jsonl", tmp_path / "a.jsonl")
    assert len(samples[0].instances) == 1
