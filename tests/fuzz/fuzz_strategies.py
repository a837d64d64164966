"""Hypothesis strategies for hostile annotation and prediction files.

Inputs start from the shape of each official format (so they reach the deep
parsing code, not only the first check) and are then made hostile: numbers
that are non-finite, overflow float32, are thousands of digits long or
written in hex; separators and line breaks that ``str.splitlines`` would
honour; control characters; other encodings and raw bytes; huge point
counts; truncated or corrupt zips; JSON with wrong types, big integers and
deep nesting.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

HOSTILE_NUMBERS = [
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "-Infinity",
    "1e39",
    "-1e39",
    "3.5e38",
    "1e999",
    "-1e999",
    "1e-400",
    "0x1",
    "0X1F",
    "1_000",
    "+5",
    "-0",
    "0.",
    ".5",
    "1e",
    "--1",
    "\u0663",
    "\uff11",
    "9" * 400,
    "1" * 5000,
    "",
]
HOSTILE_WORDS = [
    "###",
    "text",
    "\u4e2d\u6587",
    "\x00",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\r",
    '"',
    "'",
    "\\",
    "]",
    "[",
    "u'c'",
    ",",
    "#",
    "\udcff"[:0],
]
LINE_BREAKS = ["\n", "\r\n", "\r"]

numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(HOSTILE_NUMBERS),
    st.integers(1, 40_000).map(lambda n: "7" * n),
)
small_coords = st.integers(-50, 2000).map(str)
words = st.one_of(
    st.sampled_from(HOSTILE_WORDS),
    st.text(max_size=12),
)

#: One line per format with {n} (a coordinate) and {w} (a transcription).
TEMPLATES: dict[str, list[str]] = {
    "icdar2015": ["{n},{n},{n},{n},{n},{n},{n},{n},{w}"],
    "mlt17": ["{n},{n},{n},{n},{n},{n},{n},{n},Latin,{w}"],
    "icdar2013": ['{n} {n} {n} {n} "{w}"', '{n}, {n}, {n}, {n}, "{w}"'],
    "totaltext": [
        "x: [[{n} {n} {n} {n}]], y: [[{n} {n} {n} {n}]], ornt: [u'c'], transcriptions: [u'{w}']",
        "x: [[{n} {n} {n}]], y: [[{n} {n} {n}]], ornt: [u'#'], transcriptions: [u'#']",
    ],
    "ctw1500": [",".join(["{n}"] * 28) + ",####{w}", ",".join(["{n}"] * 32)],
    "msra-td500": ["{n} {n} {n} {n} {n} {n} {n}"],
    "hust-tr400": ["{n} {n} {n} {n} {n} {n} {n}"],
}
FILE_NAMES = {
    "icdar2015": "gt_img_1.txt",
    "mlt17": "gt_img_1.txt",
    "icdar2013": "gt_img_1.txt",
    "totaltext": "poly_gt_img1.txt",
    "ctw1500": "1001.txt",
    "msra-td500": "IMG_0059.gt",
    "hust-tr400": "IMG_0059.gt",
}


@st.composite
def template_line(draw: st.DrawFn, template: str, hostile: bool = True) -> str:
    """The template with its fields filled, some of them hostile."""
    parts = template.split("{")
    out = [parts[0]]
    for part in parts[1:]:
        field, _, rest = part.partition("}")
        if field == "n":
            out.append(draw(numbers if hostile and draw(st.booleans()) else small_coords))
        else:
            out.append(draw(words))
        out.append(rest)
    line = "".join(out)
    if hostile and draw(st.integers(0, 4)) == 0:
        # A raw edit: insert, delete or cut at a random position.
        pos = draw(st.integers(0, len(line)))
        kind = draw(st.sampled_from(["insert", "cut", "delete"]))
        if kind == "insert":
            line = line[:pos] + draw(st.sampled_from(HOSTILE_WORDS + HOSTILE_NUMBERS)) + line[pos:]
        elif kind == "cut":
            line = line[:pos]
        else:
            line = line[:pos] + line[pos + 1 :]
    return line


@st.composite
def huge_polygon_line(draw: st.DrawFn) -> str:
    """A comma separated polygon with far more points than any real one."""
    n = draw(st.sampled_from([3, 50, 1_000, 5_000, 30_000]))
    return ",".join(str(i % 997) for i in range(2 * n))


@st.composite
def text_file(draw: st.DrawFn, fmt: str) -> bytes:
    """A whole annotation file of ``fmt``, encoded in some way."""
    templates = TEMPLATES[fmt]
    n_lines = draw(st.integers(0, 6))
    lines = [draw(template_line(draw(st.sampled_from(templates)))) for _ in range(n_lines)]
    if draw(st.integers(0, 9)) == 0:
        lines.append(draw(huge_polygon_line()))
    text = draw(st.sampled_from(LINE_BREAKS)).join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "cp1252", "raw"]))
    if encoding == "raw":
        return text.encode("utf-8", "surrogatepass") + draw(st.binary(max_size=64))
    return text.encode(encoding, "replace")


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@st.composite
def container(draw: st.DrawFn, files: dict[str, bytes]) -> tuple[str, Any]:
    """How the files are handed over: a folder, a zip, or a damaged zip."""
    kind = draw(st.sampled_from(["folder", "zip", "nested-zip", "truncated-zip", "flipped-zip"]))
    if kind == "folder":
        return kind, files
    if kind == "nested-zip":
        return "zip", _zip({f"sub/{k}": v for k, v in files.items()})
    data = _zip(files)
    if kind == "truncated-zip":
        return "zip", data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if kind == "flipped-zip" and data:
        pos = draw(st.integers(0, len(data) - 1))
        flipped = bytearray(data)
        flipped[pos] ^= 1 << draw(st.integers(0, 7))
        return "zip", bytes(flipped)
    return "zip", data


def materialise(root: Path, handed: tuple[str, Any], stem: str = "gt") -> Path:
    """Write a container from :func:`container` under ``root``."""
    kind, payload = handed
    if kind == "folder":
        folder = root / stem
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in payload.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return folder
    path = root / f"{stem}.zip"
    path.write_bytes(payload)
    return path


# ----------------------------------------------------------------- JSON

HOSTILE_JSON = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e39",
    "1e999",
    "-1e400",
    "1" * 5000,
    "-" + "9" * 4301,
    "null",
    "true",
    "[]",
    "{}",
    '"x"',
    '""',
    "[[]]",
    '{"a": 1}',
    "-1",
    "0",
    "3.5",
    "[" * 3000 + "]" * 3000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    '"' + "\\u0000" * 10 + '"',
    '"' + "7" * 5000 + '"',
]

#: Valid seed documents (file name -> JSON value) per JSON format.
JSON_SEEDS: dict[str, tuple[str, Any]] = {
    "art": (
        "train_labels.json",
        {
            "gt_1": [
                {
                    "points": [[1, 1], [9, 1], [9, 9]],
                    "transcription": "a",
                    "language": "Latin",
                    "illegibility": False,
                }
            ],
            "gt_2": [],
        },
    ),
    "nighttime-art": (
        "instances_all_test.json",
        {
            "images": [{"id": 1, "file_name": "a.jpg", "height": 20, "width": 30}],
            "annotations": [
                {
                    "id": 1,
                    "image_id": 1,
                    "category_id": 1,
                    "bbox": [1, 2, 10, 5],
                    "segmentation": [[1, 2, 11, 2, 11, 7, 1, 7]],
                    "iscrowd": 0,
                    "area": 50,
                }
            ],
            "categories": [{"id": 1, "name": "text"}],
        },
    ),
    "mmocr": (
        "textdet_test.json",
        {
            "metainfo": {"dataset_type": "TextDetDataset", "task_name": "textdet"},
            "data_list": [
                {
                    "img_path": "a.jpg",
                    "height": 20,
                    "width": 30,
                    "instances": [
                        {"polygon": [1, 2, 11, 2, 11, 7, 1, 7], "bbox_label": 0, "ignore": False}
                    ],
                }
            ],
        },
    ),
}
JSON_SEEDS["coco-text"] = ("cocotext.json", JSON_SEEDS["nighttime-art"][1])
JSONL_SEED = {
    "id": "a",
    "image": "a.jpg",
    "height": 20,
    "width": 30,
    "instances": [{"polygon": [1, 2, 11, 2, 11, 7, 1, 7], "ignore": False, "text": "hi"}],
}
PLACEHOLDER = "__HOSTILE__"


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


@st.composite
def hostile_json_text(draw: st.DrawFn, seed: Any) -> str:
    """``seed`` with up to three values replaced by hostile JSON (raw text,
    so big integers and NaN reach the parser as written), sometimes wrapped
    in deep nesting or cut short."""
    doc = seed
    raw: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        choice = draw(
            st.one_of(
                st.sampled_from(HOSTILE_JSON),
                st.integers(-(10**12), 10**12).map(str),
                st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
                st.text(max_size=8).map(json.dumps),
            )
        )
        raw.append(choice)
        doc = _replace(doc, path, f"{PLACEHOLDER}{len(raw) - 1}")
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    for i, choice in enumerate(raw):
        text = text.replace(json.dumps(f"{PLACEHOLDER}{i}"), choice)
    shape = draw(st.sampled_from(["as-is", "as-is", "deep", "cut"]))
    if shape == "deep":
        depth = draw(st.sampled_from([50, 2_000, 100_000]))
        text = "[" * depth + text + "]" * depth
    elif shape == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    return text


# ----------------------------------------------------------------- predictions

PREDICTION_TEMPLATES: dict[str, tuple[str, list[str]]] = {
    "rrc": (
        "res_img_1.txt",
        ["{n},{n},{n},{n},{n},{n},{n},{n}", "{n},{n},{n},{n},{n},{n},{n},{n},{n}"],
    ),
    "rrc-ltrb": ("res_img_1.txt", ["{n},{n},{n},{n}", "{n},{n},{n},{n},{n}"]),
    "polygon": ("1001.txt", [",".join(["{n}"] * 8), ",".join(["{n}"] * 29)]),
    "polygon-yx": ("img1.txt", [",".join(["{n}"] * 10), ",".join(["{n}"] * 9)]),
}


@st.composite
def prediction_file(draw: st.DrawFn, style: str) -> bytes:
    _name, templates = PREDICTION_TEMPLATES[style]
    lines = [
        draw(template_line(draw(st.sampled_from(templates))))
        for _ in range(draw(st.integers(0, 6)))
    ]
    if draw(st.integers(0, 9)) == 0:
        lines.append(draw(huge_polygon_line()))
    if draw(st.integers(0, 19)) == 0:
        lines += ["1,1,5,1,5,5,1,5"] * draw(st.sampled_from([500, 2_500]))
    text = draw(st.sampled_from(LINE_BREAKS)).join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "raw"]))
    if encoding == "raw":
        return text.encode("utf-8", "surrogatepass") + draw(st.binary(max_size=64))
    return text.encode(encoding, "replace")


PREDICTIONS_JSON_SEED = {
    "img_1": [{"polygon": [1, 2, 11, 2, 11, 7, 1, 7], "score": 0.9}, [1, 1, 4, 1, 4, 4]],
    "img_2": [],
}


# ----------------------------------------------------------------- geometry

coordinate = st.one_of(
    st.floats(-50, 400, allow_nan=False, width=32),
    st.sampled_from([0.0, 1.0, 1e-6, 3e38, -3e38, 1e6, 65535.0]),
)


@st.composite
def polygon(draw: st.DrawFn) -> Any:
    """Rectangles, rotated quads, random (often self-intersecting) point
    lists, degenerate ones (collinear, repeated points, zero area) and long
    curved contours."""
    import numpy as np

    kind = draw(st.sampled_from(["rect", "rect", "random", "degenerate", "curve", "huge"]))
    if kind == "rect":
        x, y = draw(coordinate), draw(coordinate)
        w, h = draw(st.floats(0, 200, width=32)), draw(st.floats(0, 60, width=32))
        pts = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    elif kind == "random":
        n = draw(st.integers(3, 24))
        pts = [[draw(coordinate), draw(coordinate)] for _ in range(n)]
    elif kind == "degenerate":
        x, y = draw(coordinate), draw(coordinate)
        pts = draw(
            st.sampled_from(
                [[[x, y]] * 4, [[x, y], [x + 1, y], [x + 2, y]], [[x, y], [x, y], [x + 5, y + 5]]]
            )
        )
    elif kind == "curve":
        n = draw(st.sampled_from([7, 14, 50, 300]))
        cx, cy, r = draw(coordinate), draw(coordinate), draw(st.floats(1, 300, width=32))
        t = np.linspace(0, np.pi, n)
        outer = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
        inner = np.stack([cx + 0.7 * r * np.cos(t[::-1]), cy + 0.7 * r * np.sin(t[::-1])], 1)
        pts = np.concatenate([outer, inner]).tolist()
    else:
        n = draw(st.sampled_from([200, 1000]))
        pts = (
            draw(st.integers(0, 2**31)) % 9973 + np.random.default_rng(n).random((n, 2)) * 300
        ).tolist()
    arr = np.asarray(pts, dtype=np.float32)
    return arr if np.isfinite(arr).all() else np.zeros((3, 2), np.float32)
