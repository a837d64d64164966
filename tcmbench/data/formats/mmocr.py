"""mmocr 1.x text-detection annotation JSON (``textdet_{train,test}.json``).

::

    {"metainfo": {"dataset_type": "TextDetDataset", "task_name": "textdet",
                  "category": [{"id": 0, "name": "text"}]},
     "data_list": [{"img_path": "textdet_imgs/test/img_1.jpg", "height": 720, "width": 1280,
                    "instances": [{"polygon": [x1, y1, ...], "bbox": [x1, y1, x2, y2],
                                   "bbox_label": 0, "ignore": false, "text": "optional"}]}]}

The sample id is the stem of ``img_path``; an instance without a polygon
falls back to its ``bbox`` (x1, y1, x2, y2). Sizes come from the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tcmbench.data.formats.common import (
    ImageFinder,
    JsonFile,
    attach_image,
    box_to_polygon,
    checked_options,
    finalize,
    load_json,
    make_instance,
    pick_json,
    size_value,
    to_polygon,
)
from tcmbench.data.ids import file_id
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport

EXPECTED = (
    'mmocr 1.x textdet JSON {"data_list": [{"img_path", "height", "width", '
    '"instances": [{"polygon": [x1, y1, ...] or "bbox": [x1, y1, x2, y2], "ignore": bool, '
    '"text"?}]}]}'
)


def parse_mmocr_instance(inst: Any) -> Instance:
    if not isinstance(inst, dict):
        raise ValueError("an instance must be an object")
    try:
        poly = inst.get("polygon")
        if poly:
            polygon = to_polygon(poly)
        elif isinstance(inst.get("bbox"), list) and len(inst["bbox"]) == 4:
            try:
                x1, y1, x2, y2 = (float(v) for v in inst["bbox"])
            except (ValueError, OverflowError):
                raise ValueError("'bbox' must be 4 numbers") from None
            polygon = box_to_polygon(x1, y1, x2, y2)
        else:
            raise ValueError("neither 'polygon' nor a 4-number 'bbox'")
    except TypeError as exc:
        raise ValueError(f"bad coordinates: {exc}") from None
    ignore = inst.get("ignore", False)
    if not isinstance(ignore, bool):
        raise ValueError("'ignore' is not true/false")
    text = inst.get("text")
    if text is not None and not isinstance(text, str):
        raise ValueError("'text' is not a string")
    return make_instance(polygon, text, ignore=ignore)


@checked_options("mmocr")
def read_mmocr(
    source: AnnotationSource, images: Path | None, report: ParseReport, *, file: str | None = None
) -> list[Sample]:
    """An mmocr 1.x textdet JSON; ``file`` picks it inside a folder or zip
    (e.g. ``textdet_test.json``); ``images`` is the data root that
    ``img_path`` is relative to (its base name is tried too)."""
    name = pick_json(source, file, "mmocr")
    data = load_json(source, name, report, EXPECTED)
    if data is None:
        return []
    jf = JsonFile(source, name)
    if not isinstance(data, dict) or not isinstance(data.get("data_list"), list):
        report.fail(jf.location, 1, EXPECTED, "no 'data_list' list at the top level")
        return []
    finder = ImageFinder(images) if images is not None else None
    found: list[tuple[Sample, str]] = []
    for i, entry in enumerate(data["data_list"]):
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("img_path"), str):
                raise ValueError("an entry needs 'img_path'")
            width = size_value(entry.get("width"), "width")
            height = size_value(entry.get("height"), "height")
            if not isinstance(entry.get("instances", []), list):
                raise ValueError("'instances' is not a list")
            sid = file_id(entry["img_path"])
        except (TypeError, ValueError) as exc:
            jf.fail(report, ["data_list", i], EXPECTED, str(exc))
            continue
        instances = []
        for j, inst in enumerate(entry.get("instances", [])):
            try:
                instances.append(parse_mmocr_instance(inst))
            except ValueError as exc:
                jf.fail(report, ["data_list", i, "instances", j], EXPECTED, str(exc))
        sample = Sample(sid, None, width, height, instances)
        if finder is not None:
            try:
                path = finder.find_file(entry["img_path"])
            except ValueError as exc:  # a name that leads out of the image folder
                jf.fail(report, ["data_list", i], EXPECTED, str(exc))
                continue
            attach_image(sample, path, known_size=True)
        found.append((sample, jf.location))
    return finalize(found, report, EXPECTED)
