"""COCO-style text-detection JSON (mmocr 0.x), and NightTime-ArT's layout.

``coco-text`` reads one file::

    {"images": [{"id": 1, "file_name": "gt_12.jpg", "height": 600, "width": 800}],
     "annotations": [{"id": 7, "image_id": 1, "category_id": 1,
                      "bbox": [x, y, w, h], "segmentation": [[x1, y1, x2, y2, ...]],
                      "iscrowd": 0, "text": "optional"}],
     "categories": [{"id": 1, "name": "text"}]}

``iscrowd = 1`` and a ``###`` text are don't care. The polygon is the first
segmentation polygon; an annotation without one (or with an RLE mask) falls
back to its ``bbox``. Sizes come from the JSON (no image needed). This is the
mmocr 0.x convention, not the COCO-Text V2 dataset's own ``COCO_Text.json``.

``nighttime-art`` finds the JSON of a split inside the authors' archive::

    Text_at_Night/{train,test}_images/<file_name>
    Text_at_Night/{train,test}_gts/gt_jsons/instances_<name>[_test].json
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from tcmbench.data.formats.common import (
    ImageFinder,
    JsonFile,
    attach_image,
    box_to_polygon,
    checked_options,
    finalize,
    id_value,
    load_json,
    make_instance,
    pick_json,
    shorten,
    size_value,
    to_polygon,
)
from tcmbench.data.ids import file_id
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport
from tcmbench.errors import DatasetNotFoundError

EXPECTED = (
    'COCO text JSON {"images": [{"id", "file_name", "height", "width"}], '
    '"annotations": [{"image_id", "segmentation": [[x1, y1, ...]] or "bbox": [x, y, w, h], '
    '"iscrowd": 0|1, "text"?}]}'
)
TEXT_KEYS = ("text", "transcription", "utf8_string")


def annotation_polygon(ann: dict[str, Any]) -> Any:
    """The first segmentation polygon, else the bbox as a rectangle."""
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        first = seg[0]
        if isinstance(first, list):
            return to_polygon(first)
        return to_polygon(seg)  # a flat polygon, as some converters write
    bbox = ann.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4:
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError, OverflowError):
            raise ValueError("'bbox' must be 4 numbers") from None
        if not w >= 0 or not h >= 0:
            raise ValueError(f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] has a negative size")
        return box_to_polygon(x, y, x + w, y + h)
    raise ValueError("neither a polygon 'segmentation' nor a 4-number 'bbox'")


def parse_coco_annotation(ann: Any) -> tuple[Any, Instance]:
    """(image_id, instance) of one annotation record."""
    if not isinstance(ann, dict):
        raise ValueError("an annotation must be an object")
    if "image_id" not in ann:
        raise ValueError("no 'image_id'")
    image_id = id_value(ann["image_id"], "image_id")
    try:
        poly = annotation_polygon(ann)
    except TypeError as exc:
        raise ValueError(f"bad coordinates: {exc}") from None
    text = next((ann[k] for k in TEXT_KEYS if isinstance(ann.get(k), str)), None)
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1, True, False):
        raise ValueError(f"iscrowd {shorten(repr(crowd))} is not 0 or 1")
    return image_id, make_instance(poly, text, ignore=bool(crowd))


def read_coco_json(
    source: AnnotationSource,
    name: str,
    images: Path | None,
    report: ParseReport,
    *,
    images_required: bool = True,
) -> list[Sample]:
    data = load_json(source, name, report, EXPECTED)
    if data is None:
        return []
    jf = JsonFile(source, name)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        report.fail(jf.location, 1, EXPECTED, "no 'images' list at the top level")
        return []
    finder = ImageFinder(images, required=images_required) if images is not None else None
    samples: dict[Any, Sample] = {}
    for i, img in enumerate(data["images"]):
        try:
            if (
                not isinstance(img, dict)
                or "id" not in img
                or not isinstance(img.get("file_name"), str)
            ):
                raise ValueError("an image needs 'id' and 'file_name'")
            id_value(img["id"], "id")
            width, height = (
                size_value(img.get("width"), "width"),
                size_value(img.get("height"), "height"),
            )
            sid = file_id(img["file_name"])
        except ValueError as exc:
            jf.fail(report, ["images", i], EXPECTED, str(exc))
            continue
        if img["id"] in samples:
            jf.fail(
                report,
                ["images", i],
                EXPECTED,
                f"image id {shorten(repr(img['id']))} appears twice",
            )
            continue
        sample = Sample(sid, None, width, height)
        if finder is not None:
            try:
                path = finder.find_file(img["file_name"])
            except ValueError as exc:  # a name that leads out of the image folder
                jf.fail(report, ["images", i], EXPECTED, str(exc))
                continue
            attach_image(sample, path, known_size=True)
        samples[img["id"]] = sample
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        report.fail(jf.location, jf.line_of("annotations"), EXPECTED, "'annotations' is not a list")
        annotations = []
    for i, ann in enumerate(annotations):
        try:
            image_id, inst = parse_coco_annotation(ann)
            if image_id not in samples:
                raise ValueError(f"image_id {shorten(repr(image_id))} is not in 'images'")
        except ValueError as exc:
            jf.fail(report, ["annotations", i], EXPECTED, str(exc))
            continue
        samples[image_id].instances.append(inst)
    return finalize(((s, jf.location) for s in samples.values()), report, EXPECTED)


@checked_options("coco-text")
def read_coco_text(
    source: AnnotationSource, images: Path | None, report: ParseReport, *, file: str | None = None
) -> list[Sample]:
    """One COCO-style JSON (``file`` picks it inside a folder or zip)."""
    return read_coco_json(source, pick_json(source, file, "COCO"), images, report)


@checked_options("nighttime-art")
def read_nighttime_art(
    source: AnnotationSource,
    images: Path | None,
    report: ParseReport,
    *,
    split: str = "test",
    name: str = "all",
) -> list[Sample]:
    """NightTime-ArT: ``split`` (``train``/``test``) and ``name`` (the
    ``<name>`` of ``instances_<name>[_test].json``) choose the JSON; the
    source is the archive, the folder holding ``Text_at_Night`` (or the
    ``Text_at_Night`` folder itself), or the JSON file. Images default to
    ``<split>_images`` beside ``<split>_gts`` when that folder exists."""
    if len(source.names()) == 1 and source.names()[0].endswith(".json"):
        json_name = source.names()[0]
    else:
        wanted = {f"instances_{name}.json", f"instances_{name}_{split}.json"}
        candidates = [
            n
            for n in source.names("instances_*.json")
            if PurePosixPath(n).name in wanted and f"{split}_gts/" in f"/{n}"
        ]
        if not candidates:
            raise DatasetNotFoundError(
                f"no NightTime-ArT annotations for split {split!r} in {source.path}: expected "
                f"Text_at_Night/{split}_gts/gt_jsons/instances_{name}[_{split}].json"
            )
        json_name = min(candidates, key=len)
    if images is None:
        local = source.local_path(json_name)
        if local is not None and source.path.is_dir():
            # Text_at_Night/<split>_gts/gt_jsons/x.json -> Text_at_Night/<split>_images
            guess = local.parent.parent.parent / f"{split}_images"
            if guess.is_dir():
                images = guess
    return read_coco_json(source, json_name, images, report)
