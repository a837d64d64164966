"""Built-in readers for the official annotation formats.

Each reader lives in its own module; this module registers them through the
same ``register_dataset_formats`` hook a third-party plugin uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcmbench.hookspecs import hookimpl

# (format name, "module:function", summary, default file pattern)
BUILTIN_FORMATS: list[tuple[str, str, str, str]] = [
    (
        "icdar2015",
        "tcmbench.data.formats.icdar:read_icdar2015",
        "ICDAR 2015 gt_img_N.txt: x1,y1,...,x4,y4,transcription (### = don't care)",
        "gt_*.txt",
    ),
    (
        "icdar2013",
        "tcmbench.data.formats.icdar:read_icdar2013",
        'ICDAR 2013 gt_img_N.txt: left,top,right,bottom,"word" (comma or space separated)',
        "gt_*.txt",
    ),
    (
        "mlt17",
        "tcmbench.data.formats.icdar:read_mlt17",
        "ICDAR 2017 MLT gt_img_N.txt: x1,y1,...,x4,y4,script,transcription",
        "gt_*.txt",
    ),
    (
        "totaltext",
        "tcmbench.data.formats.totaltext:read_totaltext",
        "Total-Text poly_gt_imgN.txt (comma polygons or legacy x:/y: records) or .mat",
        "*gt_*.txt",
    ),
    (
        "ctw1500",
        "tcmbench.data.formats.ctw1500:read_ctw1500",
        "SCUT-CTW1500 NNNN.txt (32-int offsets, 28 ints + ####text, polygon + CARE/###) or XML",
        "*.txt",
    ),
    (
        "msra-td500",
        "tcmbench.data.formats.msra:read_msra_td500",
        "MSRA-TD500 IMG_xxxx.gt: index difficult x y w h theta (rotated rectangles)",
        "*.gt",
    ),
    (
        "hust-tr400",
        "tcmbench.data.formats.msra:read_msra_td500",
        "HUST-TR400 .gt files, same rotated-rectangle format as MSRA-TD500",
        "*.gt",
    ),
    (
        "art",
        "tcmbench.data.formats.art:read_art",
        "ICDAR 2019 ArT JSON {gt_N: [{points, transcription, language, illegibility}]}",
        "*.json",
    ),
    (
        "coco-text",
        "tcmbench.data.formats.coco:read_coco_text",
        "COCO-style text JSON (mmocr 0.x): images, annotations with segmentation/bbox, iscrowd",
        "*.json",
    ),
    (
        "nighttime-art",
        "tcmbench.data.formats.coco:read_nighttime_art",
        "NightTime-ArT Text_at_Night/{split}_gts/gt_jsons/instances_<name>*.json (COCO-style)",
        "instances_*.json",
    ),
    (
        "synthtext",
        "tcmbench.data.formats.synthtext:read_synthtext",
        "SynthText gt.mat (imnames, wordBB, txt)",
        "gt.mat",
    ),
    (
        "mmocr",
        "tcmbench.data.formats.mmocr:read_mmocr",
        "mmocr 1.x textdet JSON (metainfo, data_list with instances)",
        "*.json",
    ),
    (
        "jsonl",
        "tcmbench.data.formats.jsonl:read_jsonl",
        "tcmbench JSON lines: {id, image, width, height, instances: [{polygon, ignore, text}]}",
        "*.jsonl",
    ),
    (
        "synthtext-mini",
        "tcmbench.data.synthetic.generate:read_synthtext_mini",
        "generated synthtext-mini cache folder: <split>/<split>.jsonl + images/ (option: split)",
        "*.jsonl",
    ),
]


def _lazy(target: str) -> Callable[..., Any]:
    """A reader that imports its module on first call (keeps CLI start fast)."""
    modname, func = target.split(":")

    def reader(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(modname), func)(*args, **kwargs)

    reader.__name__ = func
    reader.__qualname__ = func
    reader.__doc__ = f"Lazy proxy for {target}."
    return reader


@hookimpl
def register_dataset_formats(register: Callable[[Any], None]) -> None:
    from tcmbench.plugins import DatasetFormat

    for name, target, summary, pattern in BUILTIN_FORMATS:
        register(DatasetFormat(name=name, reader=_lazy(target), summary=summary, pattern=pattern))
