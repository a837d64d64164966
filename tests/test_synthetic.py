"""synthtext-mini: determinism, exact polygons, night variant, cache.

Generation is a few tens of milliseconds per image, so these tests work on
a handful of images (``num_images``) and never on the full 1200-image set,
except the one ``slow`` test that checks the YAML's expected counts against
a real generation of the test split.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from shapely.geometry import Polygon as ShapelyPolygon

from tcmbench.data.source import AnnotationSource, ParseReport
from tcmbench.data.synthetic import generate
from tcmbench.data.synthetic.generate import (
    GENERATOR_VERSION,
    SPLIT_SIZES,
    SyntheticImage,
    load_synthtext_mini,
    split_dir,
    synthesize,
)
from tcmbench.data.synthetic.night import apply_night
from tcmbench.data.synthetic.render import (
    apply_homography,
    box_height,
    curved_word,
    font_size_for_height,
    perspective_word,
    rasterize,
    rotation,
    signed_area,
    straight_word,
    translation,
)
from tcmbench.errors import AnnotationFormatError, DatasetNotFoundError

REPO = Path(__file__).resolve().parent.parent
NUM_SCENES = 24


@pytest.fixture(scope="module")
def scenes() -> list[SyntheticImage]:
    """The first images of the test split, in memory (scene kept)."""
    return [synthesize(0, "test", i) for i in range(NUM_SCENES)]


def _polygon_mask(
    polygon: np.ndarray, height: int, width: int, *, continuous: bool = False
) -> np.ndarray:
    """Pixels whose centre is inside. Annotations put pixel centres on
    integers (OpenCV); the renderer's own shapes use continuous coordinates
    where pixel i spans [i, i+1)."""
    shift = 0.5 if continuous else 0.0
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round((polygon - shift) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = load_synthtext_mini("test", num_images=4, cache_dir=tmp_path / "a")
    b = load_synthtext_mini("test", num_images=4, cache_dir=tmp_path / "b")
    files_a = _files(split_dir("test", 0, 4, tmp_path / "a"))
    files_b = _files(split_dir("test", 0, 4, tmp_path / "b"))
    assert files_a.keys() == files_b.keys()
    assert sum(name.startswith("images/") for name in files_a) == 4
    assert files_a == files_b
    assert [s.to_dict()["instances"] for s in a] == [s.to_dict()["instances"] for s in b]
    assert [s.id for s in a] == [s.id for s in b]
    # Every image depends only on (seed, split, index): a shorter generation
    # is a prefix of a longer one.
    c = load_synthtext_mini("test", num_images=2, cache_dir=tmp_path / "c")
    files_c = _files(split_dir("test", 0, 2, tmp_path / "c"))
    for s in c:
        name = f"images/{Path(s.image_path).name}"
        assert files_c[name] == files_a[name]


def test_other_seed_or_split_gives_other_images() -> None:
    base = synthesize(0, "test", 0)
    assert synthesize(1, "test", 0).pixels.tobytes() != base.pixels.tobytes()
    other_split = synthesize(0, "train", 0)
    assert other_split.id.startswith("train_00001")
    assert other_split.pixels.tobytes() != base.pixels.tobytes()


# --------------------------------------------------------------------------- geometry


def test_polygons_are_valid_clockwise_and_inside(scenes: list[SyntheticImage]) -> None:
    kinds = set()
    for item in scenes:
        height, width = item.pixels.shape[:2]
        assert 320 <= width <= 448 and 320 <= height <= 448
        assert 2 <= len(item.instances) <= 10
        assert len(item.instances) == len(item.scene.words)
        geoms = []
        for inst, word in zip(item.instances, item.scene.words):
            kinds.add(word.kind)
            poly = inst.polygon
            assert poly.dtype == np.float32 and poly.shape[1] == 2
            assert len(poly) == (14 if word.kind == "curved" else 4)
            assert (poly[:, 0] >= 0).all() and (poly[:, 0] <= width - 1).all()
            assert (poly[:, 1] >= 0).all() and (poly[:, 1] <= height - 1).all()
            # Clockwise in image coordinates (y down): TL, TR, BR, BL.
            assert signed_area(poly.astype(np.float64)) > 0
            geom = ShapelyPolygon(poly)
            assert geom.is_valid, (item.id, inst.text)
            geoms.append(geom)
            if inst.ignore:
                assert inst.text == "###"
            else:
                assert inst.text and inst.text.isalnum()
        # Words are placed apart from each other.
        for i in range(len(geoms)):
            for j in range(i + 1, len(geoms)):
                assert geoms[i].distance(geoms[j]) > 2.0
    assert kinds == {"horizontal", "rotated", "perspective", "curved"}


def test_quads_start_top_left_of_the_reading_direction() -> None:
    shape = straight_word("Hello", 40, 0, angle_deg=30.0)
    tl, tr, _, bl = shape.polygon
    # The top edge runs along the reading direction, rotated by 30 degrees.
    angle = math.degrees(math.atan2(tr[1] - tl[1], tr[0] - tl[0]))
    assert angle == pytest.approx(30.0, abs=1e-6)
    assert np.linalg.norm(tr - tl) > np.linalg.norm(bl - tl)  # a word is wider than tall
    # Rotation is exact: the rotated polygon is the upright one rotated.
    upright = straight_word("Hello", 40, 0).polygon
    np.testing.assert_allclose(
        apply_homography(rotation(math.radians(30.0)), upright), shape.polygon, atol=1e-9
    )


def test_box_height_follows_the_requested_text_height() -> None:
    for height in (10, 15, 26, 40, 58):
        assert abs(box_height(font_size_for_height(height)) - height) <= 1


@pytest.mark.parametrize("kind", ["horizontal", "rotated", "perspective", "curved"])
def test_rendered_glyphs_lie_inside_their_polygon(kind: str) -> None:
    rng = np.random.default_rng(7)
    for text in ("Street", "jumpy", "WELCOME", "2024"):
        size = 36
        if kind == "horizontal":
            shape = straight_word(text, size, 2)
        elif kind == "rotated":
            shape = straight_word(text, size, 0, angle_deg=float(rng.uniform(-45, 45)), shear=0.2)
        elif kind == "perspective":
            shape = perspective_word(text, size, 0, rng, angle_deg=10.0)
        else:
            shape = curved_word(text, size, 0, rng, angle_deg=-8.0)
        shape = shape.moved(translation(200.0, 150.0))
        fill, outline = rasterize(shape, 400, 300)
        ink = fill if outline is None else np.maximum(fill, outline)
        inside = _polygon_mask(shape.polygon, 300, 400, continuous=True)
        total = float(ink.sum())
        assert total > 50
        # All ink (but a trace of anti-aliasing) is inside...
        assert float(ink[inside].sum()) / total > 0.995, (kind, text)
        # ...and the polygon is tight: the ink spans it along both axes.
        ys, xs = np.nonzero(ink > 0.5)
        hull = ShapelyPolygon(cv2.convexHull(np.stack([xs, ys], 1).astype(np.float32))[:, 0, :])
        poly = ShapelyPolygon(shape.polygon)
        assert hull.intersection(poly).area / poly.area > 0.45, (kind, text)


def test_polygons_cover_the_pixels_that_text_changed(scenes: list[SyntheticImage]) -> None:
    """Independent of the geometry code: compare the scene rendered with and
    without text; the pixels that differ must lie in the polygons."""
    fractions = []
    for item in scenes:
        scene = item.scene
        height, width = scene.image.shape[:2]
        changed = (
            np.abs(scene.image.astype(np.int16) - scene.background.astype(np.int16)).max(axis=2) > 8
        )
        union = np.zeros((height, width), bool)
        for inst in item.instances:
            union |= _polygon_mask(inst.polygon, height, width)
        n = int(changed.sum())
        assert n > 0
        fractions.append(float(changed[union].sum()) / n)
        # Every legible word changed a real share of its polygon.
        for inst in item.instances:
            if not inst.ignore:
                mask = _polygon_mask(inst.polygon, height, width)
                assert changed[mask].mean() > 0.08, (item.id, inst.text)
    assert min(fractions) > 0.99
    assert float(np.mean(fractions)) > 0.995


# --------------------------------------------------------------------------- content


def test_night_variant_is_darker_and_marked(scenes: list[SyntheticImage]) -> None:
    night = [s for s in scenes if s.night]
    day = [s for s in scenes if not s.night]
    assert night and day
    for item in scenes:
        assert item.id.endswith("_night") == item.night
    for item in night:
        assert item.pixels.mean() < 0.75 * item.scene.image.mean()
    assert np.mean([s.pixels.mean() for s in night]) < 0.7 * np.mean([s.pixels.mean() for s in day])


def test_night_transform_lowers_brightness_and_adds_noise() -> None:
    day = np.full((320, 320, 3), 180, np.uint8)
    day[100:200, 50:250] = 40
    for seed in range(5):
        out = apply_night(day, np.random.default_rng(seed))
        assert np.median(out) < 180 * 0.6
        # Contrast between the dark bar and the surround shrinks (medians:
        # robust to a lamp falling on either).
        contrast_day = float(np.median(day[0:50]) - np.median(day[125:175, 100:200]))
        contrast_night = float(np.median(out[0:50]) - np.median(out[125:175, 100:200]))
        assert 0 < contrast_night < contrast_day * 0.7
        # Sensor noise: a flat area is no longer flat.
        assert out[130:170, 110:190, 1].std() > 0.5


def test_dont_care_words_are_tiny_or_faint(scenes: list[SyntheticImage]) -> None:
    ignored = [(item, inst) for item in scenes for inst in item.instances if inst.ignore]
    assert ignored, "expected some don't-care words in the first images"
    for item, inst in ignored:
        poly = inst.polygon.astype(np.float64)
        edge_heights = [np.linalg.norm(poly[3] - poly[0]), np.linalg.norm(poly[2] - poly[1])]
        tiny = max(edge_heights) < 10.5
        if not tiny:  # then faint: almost no contrast with what is under it
            height, width = item.scene.image.shape[:2]
            mask = _polygon_mask(inst.polygon, height, width)
            diff = np.abs(
                item.scene.image.astype(np.int16) - item.scene.background.astype(np.int16)
            )
            assert diff[mask].max() <= 20, item.id
    legible = [
        inst
        for item in scenes
        for inst in item.instances
        if not inst.ignore and len(inst.polygon) == 4
    ]
    assert min(np.linalg.norm(i.polygon[3] - i.polygon[0]) for i in legible) >= 10


# --------------------------------------------------------------------------- cache


def test_second_call_reads_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_synthtext_mini("train", num_images=3, cache_dir=tmp_path)
    folder = split_dir("train", 0, 3, tmp_path)
    assert folder == tmp_path.resolve() / f"v{GENERATOR_VERSION}-seed0" / "train-first3"
    stamp = (folder / "train.jsonl").stat().st_mtime_ns
    assert first[0].id.startswith("train_00001")
    assert all(Path(s.image_path).is_absolute() and Path(s.image_path).is_file() for s in first)

    def no_generation(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated although the cache is complete")

    monkeypatch.setattr(generate, "synthesize", no_generation)
    second = load_synthtext_mini("train", num_images=3, cache_dir=tmp_path)
    assert [s.to_dict() for s in second] == [s.to_dict() for s in first]
    assert (folder / "train.jsonl").stat().st_mtime_ns == stamp


def test_subset_is_served_from_a_cached_full_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SPLIT_SIZES, "test", 5)
    full = load_synthtext_mini("test", cache_dir=tmp_path)
    assert len(full) == 5
    monkeypatch.setattr(
        generate, "synthesize", lambda *a, **k: (_ for _ in ()).throw(AssertionError("regenerated"))
    )
    subset = load_synthtext_mini("test", num_images=3, cache_dir=tmp_path)
    assert [s.to_dict() for s in subset] == [s.to_dict() for s in full[:3]]
    assert not split_dir("test", 0, 3, tmp_path).exists()


def test_interrupted_generation_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = generate.synthesize

    def interrupted(seed: int, split: str, index: int) -> SyntheticImage:
        if index == 2:
            raise KeyboardInterrupt
        return real(seed, split, index)

    monkeypatch.setattr(generate, "synthesize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_synthtext_mini("test", num_images=4, cache_dir=tmp_path)
    root = split_dir("test", 0, 4, tmp_path).parent
    assert not split_dir("test", 0, 4, tmp_path).exists()
    assert list(root.iterdir()) == []  # no half-written temporary folder either

    monkeypatch.setattr(generate, "synthesize", real)
    samples = load_synthtext_mini("test", num_images=4, cache_dir=tmp_path)
    assert len(samples) == 4
    assert len(list((split_dir("test", 0, 4, tmp_path) / "images").iterdir())) == 4


def test_generation_says_what_it_makes_and_where_without_v(tmp_path: Path) -> None:
    """A run whose stderr is no terminal (no bar) still sees one line at the
    start of a generation, through the CLI's default logging (no -v), and
    none when the cache already holds the split."""
    code = (
        "import sys\n"
        "from tcmbench.cli import cli\n"
        "from tcmbench.data.synthetic.generate import load_synthtext_mini\n"
        "cli(['plugins'], standalone_mode=False)\n"  # the CLI's logging set-up
        "load_synthtext_mini('test', num_images=2, cache_dir=sys.argv[1])\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    folder = split_dir("test", 0, 2, tmp_path)
    lines = [ln for ln in runs[0].stderr.splitlines() if "generating" in ln]
    expected = f"generating synthtext-mini test: 2 images (seed 0), cached in {folder}"
    assert lines == [f"INFO tcmbench.progress: {expected}"]
    assert "generating" not in runs[1].stderr  # read from the cache: nothing to announce


def test_default_cache_location_follows_tcmbench_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCMBENCH_CACHE", str(tmp_path))
    samples = load_synthtext_mini("test", num_images=1, seed=5)
    expected = (
        tmp_path.resolve()
        / "datasets"
        / "synthtext-mini"
        / f"v{GENERATOR_VERSION}-seed5"
        / "test-first1"
    )
    assert Path(samples[0].image_path).parent.parent == expected
    meta = json.loads((expected / "meta.json").read_text())
    assert (
        meta["seed"] == 5
        and meta["num_images"] == 1
        and meta["generator_version"] == GENERATOR_VERSION
    )


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no split 'val'"):
        load_synthtext_mini("val", cache_dir=tmp_path)
    with pytest.raises(ValueError):
        load_synthtext_mini("test", num_images=0, cache_dir=tmp_path)


# --------------------------------------------------------------------------- reader


def test_registered_reader_reads_a_generated_folder(tmp_path: Path) -> None:
    from tcmbench.contract.registry import get_dataset_format

    sizes = {"train": 2, "test": 3}
    samples = {
        split: load_synthtext_mini(split, num_images=n, cache_dir=tmp_path)
        for split, n in sizes.items()
    }
    reader = get_dataset_format("synthtext-mini").reader
    folder = split_dir("test", 0, 3, tmp_path)

    for source_path in (folder, folder / "test.jsonl"):
        with AnnotationSource(source_path) as source:
            got = reader(source, None, ParseReport())
        assert [s.to_dict() for s in got] == [s.to_dict() for s in samples["test"]]

    # A cache folder laid out like a full generation: <split>/<split>.jsonl.
    root = tmp_path / "copy"
    for split, count in sizes.items():
        src = split_dir(split, 0, count, tmp_path)
        dst = root / split
        dst.mkdir(parents=True)
        (dst / f"{split}.jsonl").write_bytes((src / f"{split}.jsonl").read_bytes())
    (root / ".test.tmp").mkdir()  # an unfinished generation: never read
    (root / ".test.tmp" / "test.jsonl").write_text("not json\n")
    with AnnotationSource(root) as source:
        only_test = reader(source, None, ParseReport(), split="test")
        everything = reader(source, None, ParseReport())
    assert [s.id for s in only_test] == [s.id for s in samples["test"]]
    assert only_test[0].image_path == str(
        root / "test" / "images" / Path(samples["test"][0].image_path).name
    )
    assert sorted(s.id for s in everything) == sorted(s.id for v in samples.values() for s in v)
    with AnnotationSource(root) as source, pytest.raises(DatasetNotFoundError, match="split 'val'"):
        reader(source, None, ParseReport(), split="val")


def test_reader_names_file_and_line_of_a_malformed_record(tmp_path: Path) -> None:
    from tcmbench.contract.registry import get_dataset_format

    load_synthtext_mini("test", num_images=2, cache_dir=tmp_path)
    ann = split_dir("test", 0, 2, tmp_path) / "test.jsonl"
    lines = ann.read_text().splitlines()
    lines[1] = lines[1].replace('"polygon": [', '"polygon": ["x", ', 1)
    ann.write_text("\n".join(lines) + "\n")
    reader = get_dataset_format("synthtext-mini").reader
    with AnnotationSource(ann.parent) as source, pytest.raises(AnnotationFormatError) as err:
        reader(source, None, ParseReport())
    assert "test.jsonl" in str(err.value) and err.value.line == 2
    with AnnotationSource(ann.parent) as source:
        report = ParseReport(skip_invalid=True)
        assert len(reader(source, None, report)) == 1
        assert len(report.skipped) == 1


# --------------------------------------------------------------------------- dataset YAML


def _yaml() -> dict:
    import yaml

    return yaml.safe_load((REPO / "datasets_cfg" / "synthtext-mini.yaml").read_text())


def test_yaml_matches_the_generator() -> None:
    import importlib

    cfg = _yaml()
    assert cfg["name"] == "synthtext-mini" and cfg["format"] == "synthtext-mini"
    assert cfg["builtin"] is True
    module, _, func = cfg["generator"].partition(":")
    assert getattr(importlib.import_module(module), func) is load_synthtext_mini
    assert set(cfg["splits"]) == set(SPLIT_SIZES)
    for split, spec in cfg["splits"].items():
        assert spec["expected"]["images"] == SPLIT_SIZES[split]
        seed = spec["options"]["seed"]
        # The documented cache paths are the ones the generator writes.
        assert spec["annotations"] == f"v{GENERATOR_VERSION}-seed{seed}/{split}/{split}.jsonl"
        assert spec["images"] == f"v{GENERATOR_VERSION}-seed{seed}/{split}/images"


def _min_area_quad(polygon: np.ndarray) -> np.ndarray:
    """The rotated rectangle around a polygon, TL, TR, BR, BL clockwise on
    screen: the best a quad-output detector can answer for a curved word."""
    box = cv2.boxPoints(cv2.minAreaRect(polygon.astype(np.float32))).astype(np.float64)
    centre = box.mean(axis=0)
    box = box[np.argsort(np.arctan2(box[:, 1] - centre[1], box[:, 0] - centre[0]))]
    return np.roll(box, -int(np.argmin(box.sum(axis=1))), axis=0)


def test_declared_protocol_scores_the_annotations(scenes: list[SyntheticImage]) -> None:
    """The YAML's protocol and params accept every polygon the generator
    writes, and curved words stay within reach of a quad detector."""
    from tcmbench.data.schema import Prediction, Sample
    from tcmbench.eval import evaluate

    protocol = _yaml()["protocol"]
    gt = [Sample(s.id, None, s.pixels.shape[1], s.pixels.shape[0], s.instances) for s in scenes]
    exact = {s.id: [Prediction(i.polygon, 1.0) for i in s.instances if not i.ignore] for s in gt}
    quads = {
        s.id: [Prediction(_min_area_quad(i.polygon), 1.0) for i in s.instances if not i.ignore]
        for s in gt
    }
    for preds in (exact, quads):
        result = evaluate(gt, preds, protocol["default"], **protocol["params"])
        assert result.hmean == pytest.approx(1.0)
    # Missing every curved word must cost recall: they are scored, not skipped.
    straight_only = {k: [p for p in v if len(p.polygon) == 4] for k, v in exact.items()}
    result = evaluate(gt, straight_only, protocol["default"], **protocol["params"])
    assert result.recall < 1.0 and result.precision == pytest.approx(1.0)


@pytest.mark.slow
def test_test_split_matches_the_yaml_counts(tmp_path: Path) -> None:
    spec = _yaml()["splits"]["test"]
    samples = load_synthtext_mini("test", cache_dir=tmp_path, **spec["options"])
    assert len(samples) == spec["expected"]["images"]
    assert sum(len(s.instances) for s in samples) == spec["expected"]["instances"]
    assert sum(s.num_ignored for s in samples) == spec["expected"]["ignored"]
    night = sum(s.id.endswith("_night") for s in samples)
    assert 0.15 * len(samples) < night < 0.35 * len(samples)
    assert (tmp_path.resolve() / spec["annotations"]).is_file()
