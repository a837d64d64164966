"""Dataset configs (datasets_cfg/*.yaml), root resolution and load_split."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, shared_file

from tcmbench.contract import registry as plugins
from tcmbench.contract.hookspecs import hookimpl
from tcmbench.data import dataset as ds
from tcmbench.data.config import (
    DatasetConfigError,
    builtin_config_dir,
    load_config_file,
    parse_dataset_config,
)
from tcmbench.data.schema import Instance, Sample
from tcmbench.errors import DatasetNotFoundError, ImageReadError, PluginError

BUILTIN = {
    "icdar2013",
    "icdar2015",
    "totaltext",
    "ctw1500",
    "msra-td500",
    "hust-tr400",
    "mlt17",
    "art",
    "nighttime-art",
    "synthtext",
}
# The protocol names of ARCHITECTURE.md / PROTOCOLS.md.
PROTOCOL_NAMES = {
    "icdar2015",
    "icdar2013",
    "icdar2013-deteval",
    "totaltext-deteval",
    "totaltext-iou",
    "ctw1500-iou",
    "msra-td500",
    "tiou",
}


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No $TCMBENCH_DATA, and a cache of this test's own: prepared datasets
    must not leak from one test into another's "not found" expectations."""
    monkeypatch.delenv(ds.DATA_ENV, raising=False)
    monkeypatch.setenv("TCMBENCH_CACHE", str(tmp_path / "tcmbench-cache"))


# --------------------------------------------------------------------------- the YAMLs


def test_builtin_configs_parse_and_are_complete() -> None:
    configs = ds.list_dataset_configs()
    assert set(configs) >= BUILTIN
    formats = plugins.dataset_formats()
    for name in BUILTIN:
        cfg = configs[name]
        assert cfg.path is not None and cfg.path.parent == builtin_config_dir()
        assert cfg.path.stem == name
        assert cfg.format in formats, f"{name}: format {cfg.format!r} is not registered"
        assert cfg.protocol in PROTOCOL_NAMES, name
        assert set(cfg.other_protocols) <= PROTOCOL_NAMES, name
        assert cfg.splits, name
        assert all(sc.annotations for sc in cfg.splits.values()), name
        assert cfg.licence and cfg.how_to_get and cfg.title, name
        assert cfg.citation.startswith("@") and cfg.citation.rstrip().endswith("}"), name
        assert cfg.citation.count("{") == cfg.citation.count("}"), name
        assert cfg.sources, name


def test_default_protocols_follow_the_papers() -> None:
    configs = ds.list_dataset_configs()
    want = {
        "icdar2015": "icdar2015",
        "icdar2013": "icdar2013",
        "totaltext": "totaltext-iou",
        "ctw1500": "ctw1500-iou",
        "msra-td500": "msra-td500",
        "hust-tr400": "msra-td500",
        "mlt17": "icdar2015",
        "synthtext": "icdar2015",
        "art": "ctw1500-iou",
        "nighttime-art": "ctw1500-iou",
    }
    assert {n: configs[n].protocol for n in want} == want
    assert "totaltext-deteval" in configs["totaltext"].other_protocols
    assert list(configs["hust-tr400"].splits) == ["train"]


def test_expected_counts_are_the_published_ones() -> None:
    """The counts of ../shared/data/README.md and issue 2."""
    configs = ds.list_dataset_configs()
    got = {
        (n, s): (e.images, e.instances, e.ignored)
        for n, s in [
            ("msra-td500", "test"),
            ("msra-td500", "train"),
            ("icdar2015", "test"),
            ("ctw1500", "test"),
            ("totaltext", "test"),
            ("icdar2013", "test"),
        ]
        for e in [configs[n].splits[s].expected]
    }
    assert got == {
        ("msra-td500", "test"): (200, 651, 69),
        ("msra-td500", "train"): (300, 1068, 101),
        ("icdar2015", "test"): (500, 5230, 3153),
        ("ctw1500", "test"): (500, 3068, 0),
        ("totaltext", "test"): (300, 2545, 331),
        ("icdar2013", "test"): (233, 1095, 0),
    }


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name, rel",
    [
        ("icdar2015", "icdar2015/test_gt.zip"),
        ("icdar2013", "icdar2013/test_gt.zip"),
        ("ctw1500", "ctw1500/test_gt.zip"),
        ("totaltext", "totaltext/test_gt.zip"),
    ],
)
def test_recorded_sha256_is_that_of_the_distributed_gt_zip(name: str, rel: str) -> None:
    path = shared_file(rel)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    cfg = ds.get_dataset_config(name)
    matching = [s for s in cfg.sources if s.sha256 == digest]
    assert len(matching) == 1, f"{name}: no source records the sha256 of {rel}"
    assert matching[0].split == "test" and matching[0].unpack is False
    assert matching[0].url and matching[0].url.startswith("https://github.com/")


def test_builtin_config_dir_holds_the_yamls() -> None:
    names = {p.stem for p in builtin_config_dir().glob("*.yaml")}
    assert names >= BUILTIN


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: x\nformat: [unclosed\n", "not valid YAML"),
        ("title: no name\nformat: icdar2015\n", "missing 'name'"),
        ("name: x\n", "missing 'format'"),
        (
            "name: x\nformat: icdar2015\nsplits:\n  test:\n    annotations: 3\n",
            "splits.test.annotations",
        ),
        (
            "name: x\nformat: icdar2015\nsplits:\n  test:\n    expected: {images: -1}\n",
            "expected.images",
        ),
        ("name: x\nformat: icdar2015\nsources:\n  - {url: http://x}\n", "needs a filename"),
        (
            "name: x\nformat: icdar2015\nsources:\n  - {filename: a.zip, sha256: abc}\n",
            "64 hex digits",
        ),
    ],
)
def test_malformed_yaml_names_the_file_and_the_key(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(DatasetConfigError) as exc:
        load_config_file(p)
    assert str(p) in str(exc.value) and needle in str(exc.value)


def test_unknown_split_and_unknown_dataset() -> None:
    with pytest.raises(DatasetConfigError, match="has no split 'val'; splits: train, test"):
        ds.load_split("icdar2015", "val")
    with pytest.raises(DatasetNotFoundError, match=r"unknown dataset 'nope'.*icdar2015"):
        ds.get_dataset_config("nope")


# --------------------------------------------------------------------------- root resolution


def _cfg(name: str = "icdar2015"):
    return ds.get_dataset_config(name)


def test_root_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tcmbench.safety.paths import datasets_cache_dir

    cfg = _cfg()
    cache_root = datasets_cache_dir() / "icdar2015"
    env_base = tmp_path / "data"
    explicit = tmp_path / "explicit"
    assert str(cache_root).startswith(str(tmp_path))
    for p in (cache_root, env_base / "icdar2015", explicit):
        p.mkdir(parents=True)
    monkeypatch.setenv(ds.DATA_ENV, str(env_base))
    assert ds.resolve_root(cfg, explicit) == explicit
    assert ds.resolve_root(cfg) == env_base / "icdar2015"
    (env_base / "icdar2015").rmdir()
    assert ds.resolve_root(cfg) == cache_root
    monkeypatch.delenv(ds.DATA_ENV)
    assert ds.resolve_root(cfg) == cache_root


def test_missing_dataset_says_where_to_get_it_and_the_prepare_command(tmp_path: Path) -> None:
    cfg = _cfg()
    with pytest.raises(DatasetNotFoundError) as exc:
        ds.resolve_root(cfg)
    msg = str(exc.value)
    assert "rrc.cvc.uab.es" in msg
    assert "tcmbench datasets prepare icdar2015 --from ARCHIVE_OR_DIR" in msg
    assert "$TCMBENCH_DATA" in msg and "--data-root" in msg
    assert "\n" not in msg
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ds.resolve_root(cfg, tmp_path / "nowhere")


# --------------------------------------------------------------------------- load_split


IC15_GT = {
    "gt_img_1.txt": "\ufeff10,10,50,10,50,30,10,30,hello\n60,10,90,10,90,30,60,30,###\n",
    "gt_img_2.txt": "0,0,20,0,20,20,0,20,world\n",
}


def _write_gt(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in IC15_GT.items():
        (folder / name).write_text(text, encoding="utf-8")


def test_load_split_from_a_laid_out_root_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_gt(tmp_path / "data" / "icdar2015" / "test_gts")
    monkeypatch.setenv(ds.DATA_ENV, str(tmp_path / "data"))
    samples, report = ds.load_split("icdar2015", "test")
    assert [s.id for s in samples] == ["img_1", "img_2"]
    assert [len(s.instances) for s in samples] == [2, 1]
    assert samples[0].instances[1].ignore and not samples[0].instances[0].ignore
    assert report.skipped == []


def test_load_split_from_a_folder_that_directly_holds_the_gt(tmp_path: Path) -> None:
    _write_gt(tmp_path / "flat")
    samples, _ = ds.load_split("icdar2015", "test", data_root=tmp_path / "flat")
    assert [s.id for s in samples] == ["img_1", "img_2"]
    # No images there: fine for annotations, an error when images are needed.
    with pytest.raises(DatasetNotFoundError, match="images of icdar2015 split 'test' not found"):
        ds.load_split("icdar2015", "test", data_root=tmp_path / "flat", need_images=True)


def test_need_images_checks_every_sample(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "icdar2015"
    _write_gt(root / "test_gts")
    (root / "test_images").mkdir()
    Image.new("RGB", (100, 40)).save(root / "test_images" / "img_1.jpg")
    Image.new("RGB", (30, 30)).save(root / "test_images" / "img_2.jpg")
    samples, _ = ds.load_split("icdar2015", "test", data_root=root, need_images=True)
    assert [(s.width, s.height) for s in samples] == [(100, 40), (30, 30)]
    assert all(Path(s.image_path).is_file() for s in samples)
    with pytest.raises(ImageReadError, match=r"not found: /no/such\.jpg"):
        ds.check_images([Sample("x", "/no/such.jpg", 1, 1)])


def test_load_split_root_without_the_split(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DatasetNotFoundError, match=r"no annotations for icdar2015 split 'test'.*test_gts"
    ):
        ds.load_split("icdar2015", "test", data_root=tmp_path / "empty")


@pytest.mark.realdata
def test_load_split_from_a_gt_zip_and_a_folder_of_files() -> None:
    zip_samples, _ = ds.load_split(
        "icdar2015", "test", data_root=shared_file("icdar2015/test_gt.zip")
    )
    assert len(zip_samples) == 500 and zip_samples[0].image_path is None
    toy = shared_file("icdar2015-toy/train_gts")
    samples, _ = ds.load_split("icdar2015", "train", data_root=toy)
    assert len(samples) == 10
    # The toy root holds train_gts/ and train_images/: images are found.
    samples, _ = ds.load_split(
        "icdar2015", "train", data_root=SHARED_DATA / "icdar2015-toy", need_images=True
    )
    assert len(samples) == 10 and all(s.width > 0 for s in samples)


# --------------------------------------------------------------------------- plugins


def read_toy(source, images, report, **options):
    """`id: x1 y1 x2 y2 ...` per line in *.toy files."""
    out: dict[str, Sample] = {}
    for name in source.names("*.toy"):
        for lineno, line in source.iter_lines(name):
            sid, _, coords = line.partition(":")
            try:
                inst = Instance(
                    np.array([float(v) for v in coords.split()], np.float32).reshape(-1, 2)
                )
            except ValueError as exc:
                report.fail(source.location(name), lineno, "id: x1 y1 x2 y2 x3 y3 ...", str(exc))
                continue
            out.setdefault(sid, Sample(sid, None, 0, 0)).instances.append(inst)
    return [out[k] for k in sorted(out)]


class ToyDatasets:
    def __init__(self, yaml_path: Path) -> None:
        self.yaml_path = yaml_path

    @hookimpl
    def register_dataset_formats(self, register):
        register(plugins.DatasetFormat(name="toy-cfg", reader=read_toy, pattern="*.toy"))

    @hookimpl
    def register_datasets(self, register):
        register(self.yaml_path)


def test_plugin_dataset_config_and_format(tmp_path: Path) -> None:
    yaml_path = tmp_path / "toyset.yaml"
    yaml_path.write_text(
        textwrap.dedent(
            """\
            name: toyset-cfg
            format: toy-cfg
            protocol: icdar2015
            splits:
              test:
                annotations: [gts, gts.zip]
                expected: {images: 2, instances: 3}
            """
        )
    )
    (tmp_path / "gts").mkdir()
    (tmp_path / "gts" / "a.toy").write_text("b: 0 0 4 0 4 4\na: 0 0 1 0 1 1\na: 1 1 2 1 2 2 1 2\n")
    pm = plugins.get_plugin_manager()
    plugin = ToyDatasets(yaml_path)
    pm.register(plugin, name="toy-datasets-cfg")
    try:
        assert "toyset-cfg" in ds.list_dataset_configs()
        samples, _ = ds.load_split("toyset-cfg", "test", data_root=tmp_path)
        assert [(s.id, len(s.instances)) for s in samples] == [("a", 2), ("b", 1)]
        assert samples[0].instances[1].polygon.shape == (4, 2)
        # A folder that directly holds *.toy files works as the root too.
        samples, _ = ds.load_split("toyset-cfg", "test", data_root=tmp_path / "gts")
        assert len(samples) == 2
    finally:
        pm.unregister(plugin)
    assert "toyset-cfg" not in ds.list_dataset_configs()


def test_a_dataset_defined_twice_is_an_error(tmp_path: Path) -> None:
    yaml_path = tmp_path / "icdar2015.yaml"
    yaml_path.write_text("name: icdar2015\nformat: icdar2015\n")

    class Dup:
        @hookimpl
        def register_datasets(self, register):
            register(yaml_path)

    pm = plugins.get_plugin_manager()
    plugin = Dup()
    pm.register(plugin, name="dup-datasets")
    try:
        with pytest.raises(PluginError, match="dataset 'icdar2015' defined twice"):
            ds.list_dataset_configs()
    finally:
        pm.unregister(plugin)


def test_parse_keeps_unknown_keys_and_protocol_mapping() -> None:
    cfg = parse_dataset_config(
        {
            "name": "x",
            "format": "icdar2015",
            "protocol": {"default": "icdar2015", "others": ["tiou"], "note": "n"},
            "extra_key": 1,
            "splits": {"test": {"annotations": "a", "images": ["i1", "i2"], "options": {"k": 1}}},
        }
    )
    assert (
        cfg.protocol == "icdar2015"
        and cfg.other_protocols == ("tiou",)
        and cfg.protocol_note == "n"
    )
    assert cfg.raw["extra_key"] == 1
    sc = cfg.splits["test"]
    assert sc.annotations == ("a",) and sc.images == ("i1", "i2") and dict(sc.options) == {"k": 1}
    assert sc.expected.as_dict() == {"images": None, "instances": None, "ignored": None}
