"""Pieces every annotation reader shares.

Readers differ only in how one line or record turns into polygons; finding
files, naming samples, locating images, validating polygons and ordering the
result are the same everywhere and live here, so every format obeys the
reader contract (``tcmbench.contract.hookspecs.register_dataset_formats``) the same
way: malformed input goes through :class:`ParseReport`, images are optional,
samples come back in natural id order.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar, cast

import numpy as np

from tcmbench.data.formats.lines import (  # noqa: F401  (re-exported: the readers' API)
    LineBatch,
    LineFile,
    LineFormat,
    LineTokenizer,
    Tokens,
    parse_lines_fast,
)
from tcmbench.data.ids import id_problem
from tcmbench.data.schema import (
    Instance,
    Sample,
    limit,
    limit_hint,
    natural_key,
    polygon_array,
)
from tcmbench.data.source import (
    AnnotationSource,
    JsonInputError,
    ParseReport,
    base_name,
    parse_json,
)
from tcmbench.errors import DatasetNotFoundError, ImageReadError, TcmbenchError
from tcmbench.safety.paths import resolve_inside

log = logging.getLogger(__name__)

# Extensions tried, in this order, when an image is found by its id. Upper
# case variants matter on case-sensitive file systems (MSRA-TD500 ships
# ``IMG_0059.JPG``; ICDAR 2013 has a few ``.gif``-free but ``.JPG`` sets).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".JPG",
    ".jpeg",
    ".JPEG",
    ".png",
    ".PNG",
    ".gif",
    ".GIF",
    ".bmp",
    ".BMP",
    ".tif",
    ".tiff",
    ".TIF",
    ".webp",
)

# Transcriptions that mark a don't-care region in the RRC-style formats.
DONT_CARE = "###"

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- options


def checked_options(format_name: str) -> Callable[[F], F]:
    """Turn an unknown reader option (a typo in a dataset YAML) into a
    one-line :class:`TcmbenchError` listing the accepted ones, instead of the
    ``TypeError`` traceback Python would give."""

    def deco(func: F) -> F:
        params = inspect.signature(func).parameters
        accepted = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]

        @functools.wraps(func)
        def wrapper(
            source: AnnotationSource, images: Any, report: ParseReport, **options: Any
        ) -> Any:
            unknown = sorted(set(options) - set(accepted))
            if unknown:
                raise TcmbenchError(
                    f"dataset format {format_name!r} does not accept option(s) "
                    f"{', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}"
                )
            return func(source, None if images is None else Path(images), report, **options)

        return cast(F, wrapper)  # the same call signature, as functools.wraps says

    return deco


# --------------------------------------------------------------------------- ids, files


def stem_id(name: str, prefixes: Sequence[str] = ("gt_",)) -> str:
    """Sample id from an annotation file name: the image stem.

    ``gt_img_17.txt`` -> ``img_17``, ``poly_gt_img12.txt`` -> ``img12``
    (with prefix ``poly_gt_``), ``1001.txt`` -> ``1001``.
    """
    stem = base_name(name)
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    for prefix in prefixes:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix) :]
    return stem


def annotation_names(source: AnnotationSource, pattern: str | Sequence[str]) -> list[str]:
    """The annotation files of ``source`` matching ``pattern`` (one glob or
    several; a single-file source is read whatever its name); a source with none is a :class:`DatasetNotFoundError`, never an
    empty dataset that would evaluate to a meaningless score."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    if not source.is_zip and not source.path.is_dir():
        return source.names()  # one file named explicitly: read it whatever its name
    names: list[str] = []
    seen: set[str] = set()
    for pat in patterns:
        for n in source.names(pat):
            if n not in seen and not base_name(n).startswith("."):  # macOS ._ files
                seen.add(n)
                names.append(n)
    if not names:
        raise DatasetNotFoundError(
            f"no annotation files matching {' or '.join(patterns)} in {source.path}"
        )
    return names


# --------------------------------------------------------------------------- values


def unquote(text: str) -> str:
    """Strip surrounding double quotes and undo ``\\"`` / ``\\\\`` escapes, as
    the RRC scripts do for quoted transcriptions."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def shorten(text: str, width: int = 40) -> str:
    """``text`` cut to ``width`` characters for an error message (a hostile
    line can be megabytes long)."""
    return text if len(text) <= width else text[: width - 3] + "..."


def parse_number(field: str) -> float:
    """A finite float from one field; ValueError naming the field otherwise
    (``nan``, ``inf`` and words are malformed coordinates)."""
    try:
        value = float(field)
    except ValueError:
        raise ValueError(f"non-numeric coordinate {shorten(field.strip())!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"non-finite coordinate {shorten(field.strip())!r}")
    return value


# Largest image width or height an annotation may state (a JPEG stops at
# 65535; a larger number is a corrupt or hostile file, not a photograph).
MAX_IMAGE_SIDE = 1 << 20


def size_value(value: Any, name: str) -> int:
    """An image width or height from a JSON record: missing, null or 0 ->
    0 (unknown); else an integer (or an integral number, ``640.0``) in
    ``[0, MAX_IMAGE_SIDE]``. ValueError otherwise (``Infinity``, ``1e400``,
    ``-3``, ``[640]``), never the OverflowError / TypeError of ``int()``."""
    if value is None or value == "" or (type(value) is int and value == 0):
        return 0
    expected = f"{name!r} must be an integer in [0, {MAX_IMAGE_SIDE}]"
    if isinstance(value, bool):
        raise ValueError(f"{expected}, not {str(value).lower()}")
    raw = value
    if isinstance(value, str):
        try:
            value = int(value) if len(value) <= 20 else None
        except ValueError:
            value = None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 <= value <= MAX_IMAGE_SIDE:
        raise ValueError(f"{expected}, got {shorten(repr(raw))}")
    return value


def id_value(value: Any, name: str) -> int | str:
    """An id that records refer to each other by (COCO ``id`` /
    ``image_id``): an integer or a string. A list or an object would be
    unhashable and a float would be matched by accident."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{name!r} must be an integer or a string, not {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", float: "a number", bool: "true/false"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


#: The only words ``float()`` reads (any case).
_FLOAT_WORDS = frozenset({"nan", "inf", "infinity"})


def is_number(field: str) -> bool:
    """Whether ``float(field)`` succeeds. Transcriptions (``###``, ``CARE``,
    words) are decided without the exception: no float holds ``#``, and a
    word of letters only is a float only if it is nan / inf / infinity."""
    if "#" in field:
        return False
    if field.isalpha():
        return field.lower() in _FLOAT_WORDS
    try:
        float(field)
    except ValueError:
        return False
    return True


def _max_coordinate_fields() -> int:
    # the coordinates of MAX_POLYGON_POINTS points, plus one field (a score
    # or a numeric transcription)
    return 2 * limit("MAX_POLYGON_POINTS") + 1


def _too_many_points() -> ValueError:
    return ValueError(
        f"more than {limit('MAX_POLYGON_POINTS')} points in one polygon; "
        f"over {limit_hint('MAX_POLYGON_POINTS')}"
    )


def parse_numbers(fields: Iterable[str]) -> list[float]:
    """Finite floats from coordinate fields. More fields than a polygon may
    have is an error before any is parsed, so a megabyte of numbers costs a
    split, not a million conversions."""
    fields = list(fields)
    if len(fields) > _max_coordinate_fields():
        raise _too_many_points()
    return [parse_number(f) for f in fields]


def leading_numbers(fields: Sequence[str]) -> int:
    """How many of ``fields``, from the first, are numbers (the coordinates
    of formats whose transcription follows them); stops with the points-limit
    ValueError as soon as there are more than a polygon may have."""
    cap = _max_coordinate_fields()
    k = 0
    while k < len(fields) and is_number(fields[k]):
        k += 1
        if k > cap:
            raise _too_many_points()
    return k


def to_polygon(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Flat ``x1, y1, x2, y2, ...`` (or N x 2) -> float32 N x 2, N >= 3.

    Raises ValueError with a short reason (odd count, too few or too many
    points, a coordinate that is not finite as float32) that readers put into
    the report's detail; the checks are :func:`tcmbench.data.schema.polygon_array`'s.
    """
    return polygon_array(values)


def box_to_polygon(left: float, top: float, right: float, bottom: float) -> np.ndarray:
    """Axis-aligned box -> TL, TR, BR, BL (checked like any polygon: a NaN or
    an overflowing ``x + w`` is a malformed box, not a void one)."""
    return polygon_array([left, top, right, top, right, bottom, left, bottom])


def rotated_rect_to_polygon(x: float, y: float, w: float, h: float, theta: float) -> np.ndarray:
    """MSRA-TD500 rectangle -> TL, TR, BR, BL corners.

    ``(x, y)`` is the top-left corner of the *unrotated* box, which is
    rotated by ``theta`` radians about its centre (positive = clockwise on
    screen, since image y points down).
    """
    cx, cy = x + w / 2.0, y + h / 2.0
    c, s = math.cos(theta), math.sin(theta)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return polygon_array([[cx + dx * c - dy * s, cy + dx * s + dy * c] for dx, dy in corners])


# --------------------------------------------------------------------------- MATLAB


def mat_strings(value: Any) -> list[str]:
    """The strings inside a MATLAB char array or cell array as scipy loads it
    (nested object arrays of ``<U`` arrays); non-text raises ValueError."""
    if isinstance(value, str):
        return [value]
    arr = np.asarray(value)
    if arr.size == 0:
        return []
    if arr.dtype.kind == "U":
        return [str(s) for s in arr.ravel()]
    if arr.dtype == object:
        return [s for v in arr.ravel() for s in mat_strings(v)]
    raise ValueError(f"expected text, got an array of {arr.dtype}")


# --------------------------------------------------------------------------- images


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header; PIL does not decode pixels
    here, so this costs a file open, not a decode."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {path}") from None
    except Exception as exc:  # noqa: BLE001  (PIL raises many types for bad files)
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    return int(w), int(h)


class ImageFinder:
    """Finds the image of a sample id in one folder.

    ``required``: an explicitly given image folder must contain every image
    (a missing one is an :class:`ImageReadError` naming where we looked);
    an implicit one (images next to the annotation files) may lack some.
    """

    def __init__(self, folder: Path, *, required: bool = True) -> None:
        self.folder = Path(folder)
        self.required = required
        if required and not self.folder.is_dir():
            raise ImageReadError(f"image folder not found: {self.folder}")
        self._listing: set[str] | None = None

    def _names(self) -> set[str]:
        if self._listing is None:
            try:
                self._listing = set(os.listdir(self.folder))
            except OSError:
                self._listing = set()
        return self._listing

    def find(self, sample_id: str) -> Path | None:
        # Only names listed in the folder match: an id is a name, never a path.
        names = self._names()
        for ext in IMAGE_EXTENSIONS:
            if f"{sample_id}{ext}" in names:
                return self.folder / f"{sample_id}{ext}"
        if self.required:
            raise ImageReadError(
                f"no image for sample {sample_id!r} in {self.folder} "
                f"(looked for {sample_id}{{{','.join(IMAGE_EXTENSIONS[:5])},...}})"
            )
        return None

    def find_file(self, file_name: str) -> Path | None:
        """An image named by the annotation itself (SynthText ``imnames``,
        COCO ``file_name``, mmocr ``img_path``): as given, else its base name
        in the folder. The name must stay inside the folder once resolved
        (links included): an absolute name, a ``..`` that climbs out or a
        link that leads out is a ValueError (the reader reports it with the
        file and the entry), never a read elsewhere."""
        given = resolve_inside(self.folder, file_name)
        if given is None:
            raise ValueError(
                f"image name {shorten(file_name, 60)!r} points outside the image folder "
                f"{self.folder}"
            )
        base = resolve_inside(self.folder, PurePosixPath(file_name.replace("\\", "/")).name)
        for p in (given, base):
            if p is not None and exists_as_file(p):
                return p
        if self.required:
            raise ImageReadError(f"image {file_name!r} not found in {self.folder}")
        return None


def exists_as_file(path: Path) -> bool:
    """``path.is_file()``, False for a name no file system takes (over 255
    bytes: ENAMETOOLONG) rather than an OSError traceback."""
    try:
        return path.is_file()
    except OSError:
        return False


def attach_image(sample: Sample, path: Path | None, *, known_size: bool = False) -> None:
    """Set ``image_path`` and, from the header, width and height.

    ``known_size``: the annotation carries sizes (COCO, mmocr); the header
    still wins because it is the truth the detector will see.
    """
    if path is None:
        return
    w, h = image_size(path)
    if known_size and (sample.width, sample.height) not in ((0, 0), (w, h)):
        log.warning(
            "%s: annotation says %dx%d but the image is %dx%d; using the image",
            path,
            sample.width,
            sample.height,
            w,
            h,
        )
    sample.image_path = str(path)
    sample.width, sample.height = w, h


# --------------------------------------------------------------------------- results


def finalize(
    samples: Iterable[tuple[Sample, str]], report: ParseReport, expected: str
) -> list[Sample]:
    """Drop unusable ids (:func:`tcmbench.data.ids.id_problem`: a path, a
    control character...) and duplicate ids through the report, and sort
    naturally by id.

    ``samples`` pairs each sample with the location it came from, so a
    duplicate (two ``gt_img_1.txt`` in one zip) names both places.
    """
    seen: dict[str, str] = {}
    out: list[Sample] = []
    for sample, where in samples:
        problem = id_problem(sample.id)
        if problem is not None:  # every reader's ids obey one rule (tcmbench.data.ids)
            report.fail(where, None, expected, f"sample id {shorten(repr(sample.id))}: {problem}")
            continue
        if sample.id in seen:
            report.fail(
                where,
                None,
                expected,
                f"sample id {sample.id!r} already read from {seen[sample.id]}; ids must be unique",
            )
            continue
        seen[sample.id] = where
        out.append(sample)
    out.sort(key=lambda s: natural_key(s.id))
    return out


def make_instance(
    polygon: np.ndarray,
    text: str | None,
    *,
    ignore: bool = False,
    dont_care: Sequence[str] = (DONT_CARE,),
) -> Instance:
    """An instance whose ``ignore`` is also set by a don't-care transcription
    (the marker itself is not kept as text)."""
    if text is not None and text in dont_care:
        return Instance(polygon, ignore=True, text=None)
    return Instance(polygon, ignore=ignore, text=text)


# --------------------------------------------------------------------------- JSON


def load_json(source: AnnotationSource, name: str, report: ParseReport, expected: str) -> Any:
    """Parse a JSON file; invalid or hostile JSON (see
    :func:`tcmbench.data.source.parse_json`) is reported with its line number
    and yields None (the file is skipped under ``skip_invalid``)."""
    text = source.read_text(name)
    try:
        return parse_json(text)
    except JsonInputError as exc:
        report.fail(source.location(name), exc.line, expected, exc.detail)
        return None


def json_line_of(text: str, path: Sequence[str | int]) -> int | None:
    """1-based line where the value at ``path`` (keys / indices) starts.

    Only called when a record is malformed, so the fast C parser does the
    normal work and this slower walk (which skips sibling values with
    ``raw_decode``) runs just to name the line in the error.
    """
    import json

    dec = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")

    def skip(p: int) -> int:
        m = ws.match(text, p)
        return m.end() if m else p

    try:
        pos = skip(0)
        for key in path:
            if text[pos] == "{" and isinstance(key, str):
                pos = skip(pos + 1)
                while text[pos] != "}":
                    k, pos = dec.raw_decode(text, pos)
                    pos = skip(pos)
                    pos = skip(pos + 1)  # ':'
                    if k == key:
                        break
                    _, pos = dec.raw_decode(text, pos)
                    pos = skip(pos)
                    if text[pos] == ",":
                        pos = skip(pos + 1)
                else:
                    return None
            elif text[pos] == "[" and isinstance(key, int):
                pos = skip(pos + 1)
                i = 0
                while text[pos] != "]":
                    if i == key:
                        break
                    _, pos = dec.raw_decode(text, pos)
                    pos = skip(pos)
                    if text[pos] == ",":
                        pos = skip(pos + 1)
                    i += 1
                else:
                    return None
            else:
                return None
    except (ValueError, IndexError, RecursionError):
        return None
    return text.count("\n", 0, pos) + 1


class JsonFile:
    """A parsed JSON annotation file that can name the line of a record."""

    def __init__(self, source: AnnotationSource, name: str) -> None:
        self.source = source
        self.name = name
        self.location = source.location(name)
        self._text: str | None = None

    def line_of(self, *path: str | int) -> int | None:
        if self._text is None:
            self._text = self.source.read_text(self.name)
        return json_line_of(self._text, path)

    def fail(
        self, report: ParseReport, path: Sequence[str | int], expected: str, detail: str
    ) -> None:
        where = "".join(f"[{shorten(p)!r}]" if isinstance(p, str) else f"[{p}]" for p in path)
        report.fail(self.location, self.line_of(*path), expected, f"record {where}: {detail}")


def pick_json(source: AnnotationSource, file: str | None, what: str) -> str:
    """The JSON file to read: ``file`` when given, else the only ``*.json``
    in the source (a single file source is itself)."""
    names = (
        source.names("*.json")
        if file is None
        else [
            n
            for n in source.names()
            if n == file or n.endswith("/" + file) or PurePosixPath(n).name == file
        ]
    )
    if file is None and not names and len(source.names()) == 1:
        names = source.names()
    if not names:
        raise DatasetNotFoundError(f"no {what} JSON file {file or '*.json'} in {source.path}")
    if len(names) > 1:
        raise DatasetNotFoundError(
            f"several JSON files in {source.path} ({', '.join(names[:5])}); "
            f"choose one with the option file: NAME"
        )
    return names[0]


# --------------------------------------------------------------------------- per-image files


LineParser = Callable[[str], "Instance | None"]


def parse_lines(
    source: AnnotationSource, name: str, report: ParseReport, expected: str, parse_line: LineParser
) -> list[Instance]:
    """Instances of a one-record-per-line file. ``parse_line`` raises
    ValueError with a short reason for a malformed line; that line goes
    through the report (raise, or skip and count)."""
    instances: list[Instance] = []
    for line_no, line in source.iter_lines(name):
        try:
            inst = parse_line(line)
        except ValueError as exc:
            report.fail(source.location(name), line_no, expected, str(exc))
            continue
        if inst is not None:
            instances.append(inst)
    return instances


def label(text: str | None, dont_care: Sequence[str] = (DONT_CARE,)) -> tuple[str | None, bool]:
    """(text, ignore) as :func:`make_instance` stores a transcription."""
    if text is not None and text in dont_care:
        return None, True
    return text, False


FileParser = Callable[[AnnotationSource, str, ParseReport], "list[Instance] | LineFile | None"]


def read_per_image_files(
    source: AnnotationSource,
    images: Path | None,
    report: ParseReport,
    *,
    pattern: str | Sequence[str],
    parse_file: FileParser,
    expected: str,
    id_prefixes: Sequence[str] = ("gt_",),
    images_next_to_annotations: bool = False,
    line_format: LineFormat | None = None,
) -> list[Sample]:
    """The RRC layout: one annotation file per image, id = image stem.

    ``images_next_to_annotations``: when no image folder is given and the
    annotations are a folder, look for each image beside its annotation file
    (MSRA-TD500 ships ``IMG_0059.JPG`` next to ``IMG_0059.gt``).

    ``parse_file`` may return a :class:`LineFile` (a file of ``line_format``
    lines): such files are parsed together (:class:`LineBatch`), which
    gives what parsing each alone gives, errors in file order.
    """
    names = annotation_names(source, pattern)
    finder = ImageFinder(images) if images is not None else None
    beside: dict[Path, ImageFinder] = {}
    out: list[tuple[Sample, str] | None] = []

    def add(name: str, instances: list[Instance], slot: int) -> None:
        sample = Sample(stem_id(name, id_prefixes), None, 0, 0, instances)
        path: Path | None = None
        if finder is not None:
            path = finder.find(sample.id)
        elif images_next_to_annotations:
            local = source.local_path(name)
            if local is not None and source.path.is_dir():
                folder = local.parent
                if folder not in beside:
                    beside[folder] = ImageFinder(folder, required=False)
                path = beside[folder].find(sample.id)
        attach_image(sample, path)
        out[slot] = (sample, source.location(name))

    batch = LineBatch(line_format, report) if line_format is not None else None
    # With images to find, each file is finished before the next is read
    # (an image error comes where it came when files were parsed one by one).
    one_by_one = finder is not None or images_next_to_annotations
    try:
        for name in _progress(names, f"reading {source.path.name}"):
            instances = parse_file(source, name, report)
            if instances is None:  # the whole file was malformed and skipped
                continue
            out.append(None)
            if isinstance(instances, LineFile):
                if batch is None:
                    raise TypeError("parse_file returned a LineFile without a line_format")
                batch.add(instances, functools.partial(add, name, slot=len(out) - 1))
                if one_by_one:
                    batch.flush()
                continue
            if batch is not None:
                batch.flush()
            add(name, instances, len(out) - 1)
        if batch is not None:
            batch.flush()
    except Exception:
        if batch is not None:
            batch.flush()  # the files before this one report their errors first
        raise
    return finalize([x for x in out if x is not None], report, expected)


def _progress(items: Sequence[Any], desc: str) -> Iterable[Any]:
    """A tqdm bar on stderr for long reads (hidden when not a terminal or
    for small inputs)."""
    import sys

    if len(items) < 2000 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", leave=False)
