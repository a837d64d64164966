"""JSON-based readers: ArT, COCO-style (coco-text, nighttime-art), mmocr 1.x
and tcmbench's own JSON lines (with write_jsonl)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcmbench.data.formats.api import read_annotations
from tcmbench.data.formats.jsonl import write_jsonl
from tcmbench.data.schema import Instance, Sample
from tcmbench.errors import AnnotationFormatError, DatasetNotFoundError, ImageReadError


def write_sources(tmp_path: Path, files: dict[str, str | bytes]) -> list[Path]:
    """The same files as a folder, a flat zip and a zip with a sub-folder."""
    folder = tmp_path / "gt_dir"
    folder.mkdir(exist_ok=True)
    flat, nested = tmp_path / "gt.zip", tmp_path / "gt_nested.zip"
    with zipfile.ZipFile(flat, "w") as zf, zipfile.ZipFile(nested, "w") as zn:
        for name, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
            zf.writestr(name, data)
            zn.writestr(f"labels/{name}", data)
    return [folder, flat, nested]


def pretty(obj: object) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)


# ----------------------------------------------------------------- ArT

ART = {
    "gt_10": [
        {
            "points": [[1, 1], [9, 1], [9, 9]],
            "transcription": "a",
            "language": "Latin",
            "illegibility": False,
        }
    ],
    "gt_2": [
        {
            "points": [[0, 0], [10, 0], [10, 5], [0, 5]],
            "transcription": "中文",
            "language": "Chinese",
            "illegibility": False,
        },
        {
            "points": [[0, 0], [10, 0], [10, 5]],
            "transcription": "x",
            "language": "Latin",
            "illegibility": True,
        },
        {
            "points": [[0, 0], [10, 0], [10, 5]],
            "transcription": "###",
            "language": "Latin",
            "illegibility": False,
        },
    ],
    "gt_1": [],
}


@pytest.mark.parametrize("which", [0, 1, 2])
def test_art(tmp_path: Path, which: int) -> None:
    src = write_sources(tmp_path, {"train_labels.json": json.dumps(ART, ensure_ascii=False)})[which]
    samples, report = read_annotations("art", src)
    assert [s.id for s in samples] == ["gt_1", "gt_2", "gt_10"]
    assert [(i.text, i.ignore) for i in samples[1].instances] == [
        ("中文", False),
        ("x", True),
        (None, True),
    ]
    np.testing.assert_array_equal(samples[2].instances[0].polygon, [[1, 1], [9, 1], [9, 9]])
    assert report.skipped == []


def test_art_malformed_names_line_and_record(tmp_path: Path) -> None:
    bad = {
        **ART,
        "gt_3": [
            {"points": [[0, 0], [1, 1]], "transcription": "two points", "illegibility": False}
        ],
    }
    path = tmp_path / "train_labels.json"
    path.write_text(pretty(bad))
    line = pretty(bad).splitlines().index('  "gt_3": [') + 2  # the record opens on the next line
    with pytest.raises(AnnotationFormatError) as exc:
        read_annotations("art", path)
    msg = str(exc.value)
    assert f"train_labels.json, line {line}" in msg and "['gt_3'][0]" in msg and "2 point(s)" in msg
    assert '"points": [[x, y], ...]' in msg
    samples, report = read_annotations("art", path, skip_invalid=True)
    assert len(samples) == 4 and samples[2].instances == [] and len(report.skipped) == 1
    path.write_text('{"gt_1": [\n  {"points": [[0, 0], [1, 1], [2, 2]]\n')
    with pytest.raises(AnnotationFormatError, match=r"line 3.*invalid JSON"):
        read_annotations("art", path)


def test_art_with_images(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"gt_5": ART["gt_10"]}))
    (tmp_path / "img").mkdir()
    Image.new("RGB", (30, 40)).save(tmp_path / "img" / "gt_5.jpg")
    (s,), _ = read_annotations("art", path, images=tmp_path / "img")
    assert (s.width, s.height) == (30, 40) and s.image_path.endswith("gt_5.jpg")


# ----------------------------------------------------------------- COCO / NightTime-ArT

COCO = {
    "images": [
        {"id": 1, "file_name": "gt_12.jpg", "height": 40, "width": 60},
        {"id": 2, "file_name": "gt_3.jpg", "height": 50, "width": 70},
        {"id": 3, "file_name": "gt_4.jpg", "height": 50, "width": 70},
    ],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [1, 2, 10, 5],
            "segmentation": [[1, 2, 11, 2, 11, 7, 1, 7]],
            "iscrowd": 0,
            "text": "OPEN",
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1,
            "bbox": [20, 20, 5, 5],
            "segmentation": [],
            "iscrowd": 1,
        },
        {
            "id": 3,
            "image_id": 2,
            "category_id": 1,
            "bbox": [0, 0, 4, 4],
            "segmentation": [[0, 0, 4, 0, 4, 4]],
            "iscrowd": 0,
            "text": "###",
        },
    ],
    "categories": [{"id": 1, "name": "text"}],
}


def check_coco_samples(samples: list[Sample]) -> None:
    assert [s.id for s in samples] == ["gt_3", "gt_4", "gt_12"]
    s3, s4, s12 = samples
    assert (s12.width, s12.height) == (60, 40) and s12.image_path is None
    assert [(i.text, i.ignore) for i in s12.instances] == [("OPEN", False), (None, True)]
    np.testing.assert_array_equal(s12.instances[0].polygon, [[1, 2], [11, 2], [11, 7], [1, 7]])
    np.testing.assert_array_equal(
        s12.instances[1].polygon, [[20, 20], [25, 20], [25, 25], [20, 25]]
    )  # bbox
    assert [(i.text, i.ignore) for i in s3.instances] == [(None, True)]
    assert s4.instances == []


@pytest.mark.parametrize("which", [0, 1, 2])
def test_coco_text(tmp_path: Path, which: int) -> None:
    src = write_sources(tmp_path, {"instances_all.json": json.dumps(COCO)})[which]
    samples, _ = read_annotations("coco-text", src)
    check_coco_samples(samples)


def test_coco_text_malformed(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(COCO))
    bad["annotations"].append({"id": 9, "image_id": 77, "bbox": [0, 0, 1, 1]})
    bad["annotations"].append({"id": 10, "image_id": 1, "segmentation": [[0, 0, 1, "x", 2, 2]]})
    path = tmp_path / "coco.json"
    path.write_text(pretty(bad))
    lines = pretty(bad).splitlines()
    with pytest.raises(AnnotationFormatError) as exc:
        read_annotations("coco-text", path)
    msg = str(exc.value)
    line = next(i for i, t in enumerate(lines, 1) if '"id": 9' in t) - 1
    assert f"coco.json, line {line}" in msg and "image_id 77" in msg and '"images": [{' in msg
    samples, report = read_annotations("coco-text", path, skip_invalid=True)
    check_coco_samples(samples)
    assert len(report.skipped) == 2


NIGHT_FILES = {
    "Text_at_Night/test_gts/gt_jsons/instances_all_test.json": json.dumps(COCO),
    "Text_at_Night/train_gts/gt_jsons/instances_all.json": json.dumps(
        {"images": [{"id": 1, "file_name": "gt_1.jpg", "height": 8, "width": 8}], "annotations": []}
    ),
}


def test_nighttime_art_layout(tmp_path: Path) -> None:
    folder, flat, nested = write_sources(tmp_path, NIGHT_FILES)
    for src in (folder, flat, nested, folder / "Text_at_Night"):
        check_coco_samples(read_annotations("nighttime-art", src)[0])  # default split: test
        train, _ = read_annotations("nighttime-art", src, split="train")
        assert [s.id for s in train] == ["gt_1"]
    single = folder / "Text_at_Night" / "test_gts" / "gt_jsons" / "instances_all_test.json"
    check_coco_samples(read_annotations("nighttime-art", single)[0])
    with pytest.raises(DatasetNotFoundError, match=r"Text_at_Night/val_gts/gt_jsons/instances_all"):
        read_annotations("nighttime-art", flat, split="val")
    with pytest.raises(DatasetNotFoundError):
        read_annotations("nighttime-art", folder, name="night")
    # images are found in <split>_images beside <split>_gts
    images = folder / "Text_at_Night" / "test_images"
    images.mkdir()
    for name, size in (("gt_12.jpg", (60, 40)), ("gt_3.jpg", (70, 50)), ("gt_4.jpg", (70, 50))):
        Image.new("RGB", size).save(images / name)
    samples, _ = read_annotations("nighttime-art", folder)
    assert [Path(s.image_path).parent for s in samples] == [images] * 3
    Image.new("RGB", (8, 8)).save(images / "gt_4.jpg")
    assert read_annotations("nighttime-art", folder)[0][1].width == 8  # the header wins
    (images / "gt_4.jpg").unlink()
    with pytest.raises(ImageReadError, match=r"gt_4\.jpg"):
        read_annotations("nighttime-art", folder)


# ----------------------------------------------------------------- mmocr

MMOCR = {
    "metainfo": {
        "dataset_type": "TextDetDataset",
        "task_name": "textdet",
        "category": [{"id": 0, "name": "text"}],
    },
    "data_list": [
        {
            "img_path": "textdet_imgs/test/img_10.jpg",
            "height": 720,
            "width": 1280,
            "seg_map": "x",
            "instances": [
                {
                    "polygon": [1, 2, 5, 2, 5, 6, 1, 6],
                    "bbox": [1, 2, 5, 6],
                    "bbox_label": 0,
                    "ignore": False,
                    "text": "hi",
                },
                {"bbox": [0, 0, 3, 3], "bbox_label": 0, "ignore": True},
            ],
        },
        {"img_path": "textdet_imgs/test/img_9.jpg", "height": 10, "width": 20, "instances": []},
    ],
}


@pytest.mark.parametrize("which", [0, 1, 2])
def test_mmocr(tmp_path: Path, which: int) -> None:
    src = write_sources(tmp_path, {"textdet_test.json": json.dumps(MMOCR)})[which]
    (s9, s10), _ = read_annotations("mmocr", src)
    assert (s9.id, s9.width, s9.height, s9.instances) == ("img_9", 20, 10, [])
    assert s10.id == "img_10" and (s10.width, s10.height) == (1280, 720)
    assert [(i.text, i.ignore) for i in s10.instances] == [("hi", False), (None, True)]
    np.testing.assert_array_equal(s10.instances[1].polygon, [[0, 0], [3, 0], [3, 3], [0, 3]])


def test_mmocr_malformed_and_file_choice(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(MMOCR))
    bad["data_list"][1]["instances"] = [{"polygon": [1, 2, 3], "ignore": False}]
    files = {"textdet_test.json": pretty(bad), "textdet_train.json": json.dumps(MMOCR)}
    src = write_sources(tmp_path, files)[0]
    with pytest.raises(DatasetNotFoundError, match=r"several JSON files.*file: NAME"):
        read_annotations("mmocr", src)
    assert len(read_annotations("mmocr", src, file="textdet_train.json")[0]) == 2
    with pytest.raises(AnnotationFormatError) as exc:
        read_annotations("mmocr", src, file="textdet_test.json")
    text_lines = pretty(bad).splitlines()
    line = max(i for i, t in enumerate(text_lines, 1) if '"instances": [' in t) + 1
    assert f"textdet_test.json, line {line}" in str(exc.value)
    assert "odd number of coordinates" in str(exc.value) and '"data_list"' in str(exc.value)


# ----------------------------------------------------------------- JSON lines


def test_jsonl_round_trip_through_write_jsonl(tmp_path: Path) -> None:
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(images / "a.png")
    samples = [
        Sample(
            "b10", None, 100, 50, [Instance(np.array([[0.1, 0.2], [5, 0], [5, 5]]), False, "x")]
        ),
        Sample(
            "a",
            str(images / "a.png"),
            64,
            48,
            [Instance(np.array([[1, 1], [9, 1], [9, 9], [1, 9]]), True, None)],
        ),
        Sample("b9", "/elsewhere/b9.jpg", 7, 8, []),
    ]
    out = write_jsonl(samples, tmp_path / "data" / "train.jsonl")
    lines = out.read_text().splitlines()
    assert json.loads(lines[1])["image"] == "images/a.png"  # relative to the .jsonl
    assert "0.1," in lines[0] and "0.10000000149" not in lines[0]
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temp left
    back, report = read_annotations("jsonl", out)
    assert [s.id for s in back] == ["a", "b9", "b10"] and report.skipped == []
    by_id = {s.id: s for s in back}
    for s in samples:
        assert by_id[s.id].instances == [Instance(i.polygon, i.ignore, i.text) for i in s.instances]
        assert (by_id[s.id].width, by_id[s.id].height) == (s.width, s.height)
    assert by_id["a"].image_path == str(images / "a.png")
    assert by_id["b9"].image_path == "/elsewhere/b9.jpg"
    # with an explicit image folder, relative paths resolve against it and must exist
    only_a = write_jsonl([by_id["a"]], tmp_path / "data" / "a.jsonl")
    (again,), _ = read_annotations("jsonl", only_a, images=tmp_path / "data")
    assert again.image_path == str(images / "a.png") and (again.width, again.height) == (64, 48)
    (again,), _ = read_annotations("jsonl", only_a, images=images)  # the images folder itself
    assert again.image_path == str(images / "a.png")
    with pytest.raises(ImageReadError, match=r"b9\.jpg"):
        read_annotations("jsonl", out, images=tmp_path / "data")


@pytest.mark.parametrize(
    "line, why",
    [
        ('{"id": "a", "instances": [{"polygon": [1, 2, 3, 4]}]}', "2 point(s)"),
        ('{"id": "a", "instances": [{"polygon": [1, 2, 3, 4, 5, "x"]}]}', "instance 0"),
        ('{"id": 5, "instances": []}', "'id'"),
        ('{"id": "a", "instances": [{"polygon": [1, 2, 3, 4, 5, 6], "ignore": "no"}]}', "'ignore'"),
        ('{"id": "a", "instances": [', "invalid JSON"),
    ],
)
def test_jsonl_malformed(tmp_path: Path, line: str, why: str) -> None:
    good = '{"id": "ok", "image": null, "width": 4, "height": 4, "instances": []}'
    for src in write_sources(tmp_path, {"d.jsonl": good + "\n\n" + line + "\n"})[:2]:
        with pytest.raises(AnnotationFormatError) as exc:
            read_annotations("jsonl", src)
        assert "d.jsonl, line 3" in str(exc.value) and why in str(exc.value)
        assert "one object per line" in str(exc.value)
        samples, report = read_annotations("jsonl", src, skip_invalid=True)
        assert [s.id for s in samples] == ["ok"]
        assert len(report.skipped) == 1
