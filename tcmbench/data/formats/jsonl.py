"""tcmbench's own JSON-lines format for custom data (see docs/formats.md).

One sample per line, so files stream, diff and concatenate well::

    {"id": "img_1", "image": "images/img_1.jpg", "width": 1280, "height": 720,
     "instances": [{"polygon": [x1, y1, x2, y2, x3, y3, ...], "ignore": false, "text": "EXIT"}]}

It is also what tcmbench writes when it caches or exports samples
(:func:`write_jsonl`), so every reader's output can be saved and read back
to equal samples.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from tcmbench.data.formats.common import (
    attach_image,
    checked_options,
    exists_as_file,
    finalize,
    image_size,
    size_value,
    to_polygon,
)
from tcmbench.data.ids import check_id
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, JsonInputError, ParseReport, parse_json
from tcmbench.errors import DatasetNotFoundError, ImageReadError
from tcmbench.safety.paths import atomic_write_text

EXPECTED = (
    'tcmbench JSON lines: one object per line {"id": str, "image": path|null, "width": int, '
    '"height": int, "instances": [{"polygon": [x1, y1, x2, y2, x3, y3, ...], '
    '"ignore": bool, "text": str|null}]}'
)


def parse_record(obj: Any) -> tuple[Sample, str | None]:
    """(sample without image resolution, the raw ``image`` value)."""
    if not isinstance(obj, dict):
        raise ValueError("a line must hold a JSON object")
    sid = obj.get("id")
    if not isinstance(sid, str) or not sid:
        raise ValueError("'id' must be a non-empty string")
    check_id(sid)  # a name, never a path (tcmbench.data.ids)
    image = obj.get("image")
    if image is not None and not isinstance(image, str):
        raise ValueError("'image' must be a string or null")
    width, height = size_value(obj.get("width"), "width"), size_value(obj.get("height"), "height")
    raw_instances = obj.get("instances", [])
    if not isinstance(raw_instances, list):
        raise ValueError("'instances' must be a list")
    instances = []
    for j, inst in enumerate(raw_instances):
        if not isinstance(inst, dict) or "polygon" not in inst:
            raise ValueError(f"instance {j}: needs a 'polygon'")
        try:
            poly = to_polygon(inst["polygon"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"instance {j}: {exc}") from None
        ignore = inst.get("ignore", False)
        text = inst.get("text")
        if not isinstance(ignore, bool):
            raise ValueError(f"instance {j}: 'ignore' must be true/false")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"instance {j}: 'text' must be a string or null")
        instances.append(Instance(poly, ignore=ignore, text=text))
    return Sample(sid, None, width, height, instances), image


def _resolve(image: str, base: Path) -> Path:
    p = Path(image)
    return p if p.is_absolute() else base / image


def _find_image(image: str, images: Path, jsonl_dir: Path | None) -> Path | None:
    """An explicit image folder: the path relative to it, else relative to
    the ``.jsonl`` folder (files written by :func:`write_jsonl` hold
    ``images/x.jpg`` while a dataset YAML may name ``images/`` itself as the
    image folder), else the base name inside it."""
    candidates = [_resolve(image, images)]
    if jsonl_dir is not None:
        candidates.append(_resolve(image, jsonl_dir))
    candidates.append(images / PurePosixPath(image).name)
    return next((c for c in candidates if exists_as_file(c)), None)


@checked_options("jsonl")
def read_jsonl(
    source: AnnotationSource, images: Path | None, report: ParseReport, *, file: str | None = None
) -> list[Sample]:
    """A ``.jsonl`` file (or the ``*.jsonl`` files of a folder / zip, or the
    one named ``file``). Relative ``image`` paths resolve against ``images``
    when given (the image must then exist; the ``.jsonl`` folder and the base
    name are tried too), else against the folder of the ``.jsonl`` file."""
    names = (
        [n for n in source.names() if n.endswith(".jsonl")]
        if file is None
        else [n for n in source.names() if n == file or PurePosixPath(n).name == file]
    )
    if not names and file is None and len(source.names()) == 1:
        names = source.names()
    if not names:
        raise DatasetNotFoundError(f"no JSON-lines file {file or '*.jsonl'} in {source.path}")
    found: list[tuple[Sample, str]] = []
    for name in names:
        loc = source.location(name)
        local = source.local_path(name)
        for line_no, line in source.iter_lines(name):
            try:
                sample, image = parse_record(parse_json(line))
            except JsonInputError as exc:
                report.fail(loc, line_no, EXPECTED, exc.detail)
                continue
            except ValueError as exc:
                report.fail(loc, line_no, EXPECTED, str(exc))
                continue
            if image is not None:
                if images is not None:
                    found_path = _find_image(
                        image, images, local.parent if local is not None else None
                    )
                    if found_path is None:
                        raise ImageReadError(
                            f"image of sample {sample.id!r} not found: {_resolve(image, images)}"
                        )
                    attach_image(sample, found_path, known_size=True)
                elif Path(image).is_absolute() or local is not None:
                    path = _resolve(image, local.parent if local is not None else Path("."))
                    sample.image_path = str(path)
                    if (sample.width == 0 or sample.height == 0) and exists_as_file(path):
                        sample.width, sample.height = image_size(path)
            found.append((sample, loc))
    return finalize(found, report, EXPECTED)


def _compact(values: Iterable[Any]) -> list[float | int]:
    """Shortest text that reads back to the same float32 (``0.1`` rather than
    ``0.10000000149011612``); integral values as ints."""
    out: list[float | int] = []
    for v in values:
        f = float(str(v))
        out.append(int(f) if f.is_integer() else f)
    return out


def sample_record(sample: Sample, base: Path | None = None) -> dict[str, Any]:
    """The JSON-lines object of one sample; an image under ``base`` is
    written relative to it so the folder can move."""
    image = sample.image_path
    if image is not None and base is not None:
        # An image outside ``base`` keeps its own path.
        with contextlib.suppress(ValueError):
            image = PurePosixPath(
                Path(os.path.abspath(image)).relative_to(os.path.abspath(base))
            ).as_posix()
    return {
        "id": sample.id,
        "image": image,
        "width": int(sample.width),
        "height": int(sample.height),
        "instances": [
            {
                "polygon": _compact(inst.polygon.ravel()),
                "ignore": bool(inst.ignore),
                "text": inst.text,
            }
            for inst in sample.instances
        ],
    }


def write_jsonl(samples: Iterable[Sample], path: str | os.PathLike[str]) -> Path:
    """Write samples as tcmbench JSON lines, atomically (a crash leaves the
    old file or none, never half a file). Images under the file's folder
    are stored relative to it. Returns the path."""
    path = Path(path)
    base = path.parent
    lines = [json.dumps(sample_record(s, base), ensure_ascii=False) for s in samples]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path
