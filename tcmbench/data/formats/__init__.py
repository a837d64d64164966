"""Built-in readers for the official annotation formats.

Each reader lives in its own module; :mod:`tcmbench.data.formats.registry`
registers them through the same ``register_dataset_formats`` hook a
third-party plugin uses. This package itself stays light (no pluggy):
``tcmbench score`` reads a built-in format without the plugin machinery.
"""

from __future__ import annotations

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
