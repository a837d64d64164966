"""Hugging Face ``datasets`` interop: explicit Features, parquet export and
loading back through the real ``datasets.load_dataset``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared_file

from tcmbench.data.formats.api import read_annotations
from tcmbench.data.hf import export_parquet, load_hf, sample_features, samples_to_dataset
from tcmbench.data.schema import Instance, Sample
from tcmbench.errors import AnnotationFormatError, DatasetNotFoundError


def _fixture_samples(tmp_path: Path) -> list[Sample]:
    from PIL import Image

    rng = np.random.default_rng(0)
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(png)
    Image.fromarray(rng.integers(0, 255, (16, 12, 3), dtype=np.uint8)).save(jpg, quality=80)
    curved = np.array([[0.5, 1.25], [10.1, 1.3], [20.7, 4.9], [20.2, 9.5], [0.33, 9.9]], np.float32)
    return [
        Sample(
            "a",
            str(png),
            30,
            20,
            [
                Instance(curved, False, "Ünïcode wörd"),
                Instance(np.array([[1, 1], [5, 1], [5, 5], [1, 5]], np.float32), True, None),
            ],
        ),
        Sample("b", str(jpg), 12, 16, []),
        Sample(
            "c", None, 0, 0, [Instance(np.array([[0, 0], [3, 0], [3, 3]], np.float32), False, "")]
        ),
    ]


def test_features_are_explicit() -> None:
    from datasets import Image, List, Value

    f = sample_features()
    assert list(f) == ["id", "image", "width", "height", "polygons", "ignore", "text"]
    assert f["image"] == Image()
    assert f["width"] == Value("int32") and f["height"] == Value("int32")
    assert f["polygons"] == List(List(Value("float32")))
    assert f["ignore"] == List(Value("bool")) and f["text"] == List(Value("string"))


def test_fixture_round_trip_through_load_dataset(tmp_path: Path) -> None:
    import datasets

    samples = _fixture_samples(tmp_path)
    out = tmp_path / "export"
    files = export_parquet(samples, out, split="train", progress=False)
    assert [f.name for f in files] == ["train-00000-of-00001.parquet"]
    ds = datasets.load_dataset(
        "parquet",
        data_files={"train": [str(f) for f in files]},
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert ds.features == sample_features()
    ds = ds.cast_column("image", datasets.Image(decode=False))
    assert len(ds) == 3
    for row, s in zip(ds, samples, strict=True):
        assert row["id"] == s.id and (row["width"], row["height"]) == (s.width, s.height)
        assert row["ignore"] == [i.ignore for i in s.instances]
        assert row["text"] == [i.text for i in s.instances]
        got = [np.asarray(p, np.float32).reshape(-1, 2) for p in row["polygons"]]
        assert len(got) == len(s.instances)
        assert all(np.array_equal(g, i.polygon) for g, i in zip(got, s.instances, strict=True))
        if s.image_path is None:
            assert row["image"] is None
        else:
            assert row["image"]["bytes"] == Path(s.image_path).read_bytes()

    # load_hf gives back equal samples, images written to the cache.
    back, report = load_hf(out, split="train")
    assert report.skipped == []
    assert [b.id for b in back] == [s.id for s in samples]
    for b, s in zip(back, samples, strict=True):
        assert (b.width, b.height, b.instances) == (s.width, s.height, s.instances)
        if s.image_path is None:
            assert b.image_path is None
        else:
            assert Path(b.image_path).read_bytes() == Path(s.image_path).read_bytes()
            assert Path(b.image_path).suffix == Path(s.image_path).suffix


def test_re_export_replaces_the_split_and_shards(tmp_path: Path) -> None:
    samples = _fixture_samples(tmp_path)
    out = tmp_path / "export"
    export_parquet(samples, out, split="test", progress=False, max_shard_bytes=1)
    shards = sorted(p.name for p in (out / "data").iterdir())
    # One row group of up to 100 rows per shard at this limit: 1 shard here.
    assert shards == ["test-00000-of-00001.parquet"]
    export_parquet(samples[:1], out, split="test", progress=False)
    back, _ = load_hf(
        out / "data" / "test-00000-of-00001.parquet", split="test", materialize_images=False
    )
    assert [b.id for b in back] == ["a"] and back[0].image_path is None
    assert not [p for p in (out / "data").iterdir() if p.name.startswith(".")]


def test_samples_to_dataset_in_memory(tmp_path: Path) -> None:
    samples = _fixture_samples(tmp_path)
    d = samples_to_dataset(samples)
    assert d.features == sample_features() and d["id"] == ["a", "b", "c"]
    assert len(samples_to_dataset([])) == 0


def test_hf_format_through_the_reader_api(tmp_path: Path) -> None:
    samples = _fixture_samples(tmp_path)
    export_parquet(samples, tmp_path / "export", split="test", progress=False)
    back, report = read_annotations("hf", tmp_path / "export", split="test")
    assert [b.instances for b in back] == [s.instances for s in samples]
    assert report.skipped == []


def _write_rows(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = sample_features()
    pq.write_table(
        pa.Table.from_pylist([f.encode_example(r) for r in rows], schema=f.arrow_schema), path
    )


def test_malformed_rows_name_the_row_or_are_skipped(tmp_path: Path) -> None:
    good = {
        "id": "g",
        "image": None,
        "width": 1,
        "height": 1,
        "polygons": [[0, 0, 1, 0, 1, 1]],
        "ignore": [False],
        "text": ["x"],
    }
    odd = {**good, "id": "odd", "polygons": [[0, 0, 1, 0, 1]]}
    lengths = {**good, "id": "len", "ignore": [False, True]}
    path = tmp_path / "bad.parquet"
    _write_rows(path, [good, odd, lengths])
    with pytest.raises(AnnotationFormatError) as exc:
        load_hf(path, split="test")
    assert f"{path}[test], line 2" in str(exc.value) and "5 coordinates" in str(exc.value)
    samples, report = load_hf(path, split="test", skip_invalid=True)
    assert len(report.skipped) == 2 and "line 3" in str(report.skipped[1])
    assert [(s.id, len(s.instances)) for s in samples] == [("g", 1), ("odd", 0)]


def test_missing_columns_and_missing_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": ["a"], "label": [1]}), path)
    with pytest.raises(AnnotationFormatError, match=r"missing column.*image"):
        load_hf(path, split="test")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DatasetNotFoundError, match="not a parquet file"):
        load_hf(garbage, split="test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="cannot load Hugging Face dataset"):
        load_hf(tmp_path / "empty", split="test")


def test_hub_id_offline_without_cache_is_a_clear_error(tmp_path: Path) -> None:
    """The real Hub path: with HF_HUB_OFFLINE=1 and an empty cache,
    datasets.load_dataset fails and we say why, in one line."""
    code = (
        "from tcmbench.data.hf import load_hf\n"
        "from tcmbench.errors import DatasetNotFoundError\n"
        "try:\n"
        "    load_hf('tcmbench-tests/no-such-dataset', split='test')\n"
        "except DatasetNotFoundError as exc:\n"
        "    print('ERR', exc)\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TCMBENCH_CACHE": str(tmp_path / "c"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(
        "ERR cannot load Hugging Face dataset 'tcmbench-tests/no-such-dataset'"
    )
    assert "HF_HUB_OFFLINE is set" in proc.stdout


@pytest.mark.realdata
def test_msra_td500_test_round_trips_exactly(tmp_path: Path) -> None:
    import datasets

    from tcmbench.data.dataset import load_split

    samples, _ = load_split(
        "msra-td500", "test", data_root=shared_file("msra-td500"), need_images=True
    )
    assert len(samples) == 200
    files = export_parquet(samples, tmp_path / "td500", split="test", progress=False)
    ds = datasets.load_dataset(
        "parquet",
        data_files={"test": [str(f) for f in files]},
        split="test",
        cache_dir=str(tmp_path / "hf"),
    )
    assert ds.features == sample_features() and len(ds) == 200
    raw = ds.cast_column("image", datasets.Image(decode=False))
    for row, s in zip(raw, samples, strict=True):
        assert row["id"] == s.id
        assert (row["width"], row["height"]) == (s.width, s.height) and s.width > 0
        assert row["ignore"] == [i.ignore for i in s.instances]
        assert row["text"] == [i.text for i in s.instances]
        assert len(row["polygons"]) == len(s.instances)
        for flat, inst in zip(row["polygons"], s.instances, strict=True):
            assert np.array_equal(np.asarray(flat, np.float32).reshape(-1, 2), inst.polygon)
        assert row["image"]["bytes"] == Path(s.image_path).read_bytes()
    # Decoded pixels equal those of the original file for a few images.
    from PIL import Image

    for i in (0, 99, 199):
        with Image.open(samples[i].image_path) as orig:
            assert np.array_equal(np.asarray(ds[i]["image"]), np.asarray(orig))


def test_a_dataset_yaml_can_point_at_exported_parquet(tmp_path: Path) -> None:
    """Format ``hf`` in a (plugin) dataset YAML: load_split reads parquet."""
    from tcmbench.contract import registry as plugins
    from tcmbench.contract.hookspecs import hookimpl
    from tcmbench.data.dataset import load_split

    samples = _fixture_samples(tmp_path)
    export_parquet(samples, tmp_path / "root" / "hf_export", split="test", progress=False)
    yaml_path = tmp_path / "hfset.yaml"
    yaml_path.write_text(
        "name: hfset-test\nformat: hf\nprotocol: icdar2015\n"
        "splits:\n  test:\n    annotations: [hf_export]\n    options: {split: test}\n"
        "    expected: {images: 3}\n"
    )

    class HFSet:
        @hookimpl
        def register_datasets(self, register):
            register(yaml_path)

    pm = plugins.get_plugin_manager()
    plugin = HFSet()
    pm.register(plugin, name="hfset-test")
    try:
        back, report = load_split("hfset-test", "test", data_root=tmp_path / "root")
    finally:
        pm.unregister(plugin)
    assert [b.id for b in back] == ["a", "b", "c"] and report.skipped == []
    assert [b.instances for b in back] == [s.instances for s in samples]
