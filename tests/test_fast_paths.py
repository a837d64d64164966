"""The fast paths of scoring give what the exact paths give.

`tcmbench score` reads a file's lines into one array, checks the polygon
rules for many polygons at once, inflates small zip members itself and
measures the pair limits of many images in one pass. Each has an exact,
line-by-line (member-by-member, image-by-image) counterpart that names
problems; on seeded random input, well formed or not, both must give the
same instances, the same errors and the same verdicts.
"""

from __future__ import annotations

import io
import os
import random
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tcmbench.data.formats.common import is_number, parse_lines_fast
from tcmbench.data.formats.ctw1500 import ctw_tokens, parse_ctw_line
from tcmbench.data.formats.icdar import ic15_tokens, parse_ic15_line
from tcmbench.data.formats.lines import LineFile, LineFormat, parse_files_fast
from tcmbench.data.formats.numbers import float_fields
from tcmbench.data.formats.totaltext import comma_tokens, parse_comma_line
from tcmbench.data.schema import Instance, Prediction, limit, polygon_array, polygon_rows
from tcmbench.data.source import AnnotationSource, ParseReport, numbered_lines
from tcmbench.errors import AnnotationFormatError, ArchiveError, ProtocolError
from tcmbench.eval.api import evaluate
from tcmbench.eval.bounds import _Flat, _small_crossings, crossings
from tcmbench.eval.io import _ltrb_line, _parse_text_file, _rrc_line, read_ground_truth
from tcmbench.eval.overlaps import geos_polygons
from tcmbench.eval.prediction_lines import polygon_files_fast, rrc_files_fast
from tcmbench.eval.prediction_lines import rrc_file_fast as _rrc_file_fast
from tcmbench.safety.run_limits import clear_limit_cache

FIELDS = ["12", "-3", "0", "7.5", " 40 ", "1e3", "nan", "inf", "-inf", "1e39", "", "abc", "1_0"]
WORDS = ["###", "CARE", "word", "1996", '"quoted"', "####tag", "a b", "#", "nan", "$5"]


def random_line(rng: random.Random) -> str:
    coords = [rng.choice(FIELDS) if rng.random() < 0.2 else str(rng.randint(-50, 500))]
    coords += [
        rng.choice(FIELDS) if rng.random() < 0.1 else str(rng.randint(-50, 500))
        for _ in range(rng.choice([1, 3, 5, 6, 7, 8, 9, 13, 27]))
    ]
    words = [rng.choice(WORDS) for _ in range(rng.choice([0, 1, 1, 1, 2]))]
    return ",".join(coords + words)


def exact(
    lines: Sequence[tuple[int, str]], report: ParseReport, parse_line: Callable[[str], Any]
) -> list[Instance]:
    """What ``parse_lines`` does: the exact parser, line by line."""
    out = []
    for line_no, line in lines:
        try:
            out.append(parse_line(line))
        except ValueError as exc:
            report.fail("f.txt", line_no, "expected", str(exc))
    return out


def outcome(
    call: Callable[..., list[Instance]], *args: Any
) -> tuple[list[Instance] | None, str | None]:
    try:
        return call(*args), None
    except AnnotationFormatError as exc:
        return None, str(exc)


@pytest.mark.parametrize(
    ("tokenize", "parse_line"),
    [
        (ic15_tokens, parse_ic15_line),
        (comma_tokens, parse_comma_line),
        (ctw_tokens, parse_ctw_line),
    ],
    ids=["icdar2015", "totaltext", "ctw1500"],
)
@pytest.mark.parametrize("skip_invalid", [False, True])
def test_batched_lines_equal_the_exact_parser(
    tokenize: Callable[[str], Any], parse_line: Callable[[str], Any], skip_invalid: bool
) -> None:
    rng = random.Random(7)
    accepted = 0
    for _ in range(300):
        lines = [(i + 1, random_line(rng)) for i in range(rng.randint(1, 8))]
        fast_report = ParseReport(skip_invalid=skip_invalid)
        exact_report = ParseReport(skip_invalid=skip_invalid)
        fast = outcome(
            parse_lines_fast, lines, "f.txt", fast_report, "expected", parse_line, tokenize
        )
        want = outcome(exact, lines, exact_report, parse_line)
        assert fast == want, lines
        assert [str(e) for e in fast_report.skipped] == [str(e) for e in exact_report.skipped]
        if fast[0] is not None:
            accepted += len(fast[0])
            assert all(i.polygon.dtype == np.float32 for i in fast[0])
    assert accepted > (100 if skip_invalid else 20)  # the generator makes valid lines too


def test_polygon_rows_equal_polygon_array() -> None:
    rng = np.random.default_rng(3)
    specials = [np.nan, np.inf, -np.inf, 1e39, -3.5e38, 3.4e38, 0.5]
    for _ in range(200):
        counts = rng.choice([0, 2, 5, 6, 8, 9, 28, 2 * limit("MAX_POLYGON_POINTS") + 2], size=5)
        values = rng.uniform(-1000, 1000, int(counts.sum()))
        hit = rng.random(values.size) < 0.02
        values[hit] = rng.choice(specials, int(hit.sum()))
        for keep in (False, True):
            ok, flat = polygon_rows(values.tolist(), counts.tolist(), keep_float64=keep)
            pos = 0
            for k, c in enumerate(counts.tolist()):
                row = values[pos : pos + c]
                try:
                    want = polygon_array(row, keep_float64=keep)
                except ValueError:
                    assert not ok[k], row
                else:
                    assert ok[k], row
                    got = flat[pos : pos + c].reshape(-1, 2)
                    assert got.dtype == want.dtype and np.array_equal(got, want)
                pos += c


def test_rrc_files_in_one_array_equal_line_by_line() -> None:
    rng = random.Random(11)
    fields = [*(str(v) for v in range(-20, 400, 37)), " 8", "8 ", "1.5", "x", "", "0.7"]
    for _ in range(300):
        confidences = rng.random() < 0.3
        n = rng.randint(1, 6)
        lines = []
        for _ in range(n):
            count = rng.choice([8, 8, 8, 8, 9, 7])
            values = [rng.choice(fields) if rng.random() < 0.05 else str(rng.randint(0, 900))]
            values += [str(rng.randint(-5, 900)) for _ in range(count - 1)]
            if confidences and count == 8:
                values.append(rng.choice(["0.9", "1", "0.25", "0x1", "2"]))
            lines.append(",".join(values))
        text = "\n".join(lines) + "\n"
        fast = _rrc_file_fast(text, confidences)
        try:
            want = [_rrc_line(line, confidences) for line in lines]
        except ValueError:
            assert fast is None, text
            continue
        assert fast is not None, text
        preds, numbers = fast
        assert numbers == list(range(1, n + 1))
        for got, ref in zip(preds, want):
            assert got.score == ref.score
            assert got.polygon.dtype == np.float64 and np.array_equal(got.polygon, ref.polygon)


# --------------------------------------------------------------------------- zips


def _zip(members: dict[str, bytes], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    "method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_zip_members_read_as_zipfile_reads_them(tmp_path: Path, method: int) -> None:
    members = {f"gt_img_{i}.txt": b"1,2,3,4,5,6,7,8,w\n" * i for i in range(6)}
    path = tmp_path / "a.zip"
    path.write_bytes(_zip(members, method))
    with AnnotationSource(path) as source:
        assert {n: source.read_bytes(n) for n in source.names()} == members


def test_damaged_members_are_archive_errors(tmp_path: Path) -> None:
    data = b"12,13,14,15,16,17,18,19,word\n" * 50
    raw = bytearray(_zip({"gt_img_1.txt": data}, zipfile.ZIP_DEFLATED))
    start = 30 + len("gt_img_1.txt")
    # a flipped byte in the deflated data (bad stream or bad CRC), then a
    # local header that names another member
    for at, value in ((start + 5, raw[start + 5] ^ 0x55), (30, ord("X"))):
        bad = bytearray(raw)
        bad[at] = value
        path = tmp_path / "bad.zip"
        path.write_bytes(bytes(bad))
        with AnnotationSource(path) as source, pytest.raises(ArchiveError, match=r"gt_img_1\.txt"):
            source.read_bytes("gt_img_1.txt")


# --------------------------------------------------------------------------- image limits


class Lazy(Mapping[str, list[Any]]):
    """A mapping that is not in memory: its images are measured one by one."""

    def __init__(self, items: dict[str, list[Any]]) -> None:
        self.items = items

    def __getitem__(self, key: str) -> list[Any]:
        return self.items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _box(x: float, y: float, w: float = 30, h: float = 10) -> np.ndarray:
    return np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])


def _scene(n: int, heavy: int) -> tuple[dict[str, list[Instance]], dict[str, list[Prediction]]]:
    """``n`` images of two separate words each; image ``heavy`` has a
    stack of 4 x 4 overlapping boxes."""
    gt, preds = {}, {}
    for i in range(n):
        if i == heavy:
            gt[f"img_{i}"] = [Instance(_box(k, k)) for k in range(4)]
            preds[f"img_{i}"] = [Prediction(_box(k + 0.5, k)) for k in range(4)]
        else:
            gt[f"img_{i}"] = [Instance(_box(0, 0)), Instance(_box(100, 100))]
            preds[f"img_{i}"] = [Prediction(_box(1, 0)), Prediction(_box(101, 100))]
    return gt, preds


@pytest.mark.parametrize("protocol", ["icdar2015", "ctw1500-iou", "totaltext-deteval"])
def test_limits_measured_ahead_name_what_one_by_one_names(
    protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_OVERLAPS", "10")
    gt, preds = _scene(300, heavy=217)
    params = {} if protocol == "totaltext-deteval" else {"validate": False}
    messages = []
    for wrap in (dict, Lazy):
        with pytest.raises(ProtocolError, match="MAX_IMAGE_OVERLAPS") as err:
            evaluate(wrap(gt), wrap(preds), protocol=protocol, **params)
        messages.append((str(err.value), err.value.index))  # type: ignore[attr-defined]
    assert messages[0] == messages[1]
    assert "sample img_217, detection" in messages[0][0]


def test_images_the_count_bound_cannot_clear_are_measured_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """4 x 4 boxes could make 16 overlapping pairs (over a limit of 10), but
    these lie apart: no pair overlaps, so the image is within the limit."""
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_OVERLAPS", "10")
    gt, preds = _scene(20, heavy=-1)
    gt["img_7"] = [Instance(_box(100 * k, 0)) for k in range(4)]
    preds["img_7"] = [Prediction(_box(100 * k, 500)) for k in range(4)]
    for wrap in (dict, Lazy):
        result = evaluate(wrap(gt), wrap(preds), protocol="icdar2015", validate=False)
        assert result.extra["num_gt"] == 42


def test_ground_truth_over_the_work_limit_alone_is_named_ahead_too() -> None:
    rng = np.random.default_rng(0)
    gt, preds = _scene(50, heavy=-1)
    gt["img_33"] = [Instance(rng.uniform(0, 300, (1000, 2)).astype(np.float32))]
    for wrap in (dict, Lazy):
        with pytest.raises(ProtocolError, match=r"sample img_33: one image needs"):
            evaluate(wrap(gt), wrap(preds), protocol="msra-td500")


def test_a_polygon_without_points_is_no_crash() -> None:
    """A JSON prediction may hold an empty point list: the pair measures
    once failed on it with numpy's "zero-size array" ValueError."""
    gt = {"img_1": [Instance(_box(0, 0))]}
    preds = {"img_1": [Prediction(np.zeros((0, 2))), Prediction(_box(0, 0))]}
    for protocol in ("icdar2015", "ctw1500-iou", "totaltext-deteval"):
        try:
            result = evaluate(gt, preds, protocol=protocol)
        except ProtocolError:
            continue  # refused with one line (the RRC rules want 4 points)
        assert 0.0 <= result.hmean <= 1.0


def test_limits_are_read_once_per_process() -> None:
    name = "TCMBENCH_MAX_IMAGE_OVERLAPS"
    saved = os.environ.pop(name, None)
    try:
        clear_limit_cache()
        first = limit("MAX_IMAGE_OVERLAPS")
        os.environ[name] = str(first + 1)
        assert limit("MAX_IMAGE_OVERLAPS") == first  # not read again
        clear_limit_cache()
        assert limit("MAX_IMAGE_OVERLAPS") == first + 1
    finally:
        os.environ.pop(name, None)
        if saved is not None:
            os.environ[name] = saved
        clear_limit_cache()


# --------------------------------------------------------------------------- numbers, many files


NUMBER_ATOMS = [
    "0", "7", "-3", "-0", "-05", "1.5", ".5", "5.", "-.5", "1.2.3", "-", "", "  ", "1 2", " 4",
    "4 ", "- 4", "1e3", "nan", "+1", "99999999999999999999", "9007199254740993", "0.1000000000000000055511151231257827",
    "3.4e38", "abc", "1_0", "\t5", "\u0663",
]  # fmt: skip


def test_float_fields_equal_float_per_field() -> None:
    rng = random.Random(5)
    taken = 0
    for _ in range(20_000):
        n = rng.randint(1, 6)
        fields = [
            rng.choice(NUMBER_ATOMS) if rng.random() < 0.3 else str(rng.randint(-999, 9999))
            for _ in range(n)
        ]
        text = ",".join(fields)
        got = float_fields(text, n)
        if got is None:
            continue  # not certain: the caller goes field by field
        want = [float(f) for f in text.split(",")]  # a field float() refuses must give None
        assert got.dtype == np.float64 and got.tolist() == want, text
        assert np.array_equal(np.signbit(got), np.signbit(want)), text  # -0.0 stays -0.0
        taken += 1
    assert taken > 5_000  # the usual text is taken


def _random_file(rng: random.Random) -> str:
    lines = [random_line(rng) for _ in range(rng.randint(0, 5))]
    if rng.random() < 0.2:
        lines.insert(rng.randint(0, len(lines)), "")  # a blank line
    return "\n".join(lines) + ("\n" if rng.random() < 0.5 else "")


@pytest.mark.parametrize(
    ("tokenize", "parse_line"),
    [
        (ic15_tokens, parse_ic15_line),
        (comma_tokens, parse_comma_line),
        (ctw_tokens, parse_ctw_line),
    ],
    ids=["icdar2015", "totaltext", "ctw1500"],
)
@pytest.mark.parametrize("skip_invalid", [False, True])
def test_many_files_at_once_equal_one_by_one(
    tokenize: Callable[[str], Any], parse_line: Callable[[str], Any], skip_invalid: bool
) -> None:
    """Files parsed together (LineBatch) give the instances and the errors,
    in file order, that parsing each file alone gives."""
    rng = random.Random(9)
    fmt = LineFormat("expected", parse_line, tokenize)
    for _ in range(150):
        files = [
            LineFile(f"f{k}.txt", numbered_lines(_random_file(rng)))
            for k in range(rng.randint(1, 6))
        ]
        if rng.random() < 0.5:  # mostly clean batches too
            files = [
                LineFile(f.location, [(n, line) for n, line in f.lines if tokenize(line)])
                for f in files
            ]
        together, alone = ParseReport(skip_invalid), ParseReport(skip_invalid)
        got = outcome(parse_files_fast, files, together, fmt)
        want = outcome(_one_by_one, files, alone, fmt)
        assert got == want
        assert [str(e) for e in together.skipped] == [str(e) for e in alone.skipped]


def _one_by_one(files: list[LineFile], report: ParseReport, fmt: LineFormat) -> list[Any]:
    return [
        parse_lines_fast(f.lines, f.location, report, fmt.expected, fmt.parse_line, fmt.tokenize)
        for f in files
    ]


def test_zip_errors_come_in_file_order(tmp_path: Path) -> None:
    """A malformed line in an early file is reported before a damaged
    member later in the zip, as when files were read one at a time."""
    members = {f"gt_img_{i}.txt": b"1,2,3,4,5,6,7,8,w\n" for i in range(1, 6)}
    members["gt_img_2.txt"] = b"1,2,3,x,5,6,7,8,w\n"
    raw = bytearray(_zip(members, zipfile.ZIP_DEFLATED))
    name = b"gt_img_4.txt"
    at = raw.index(name) + len(name) + 3  # inside gt_img_4's deflated data
    raw[at] ^= 0x55
    path = tmp_path / "gt.zip"
    path.write_bytes(bytes(raw))
    with pytest.raises(AnnotationFormatError, match=r"gt_img_2\.txt, line 1"):
        read_ground_truth(path, "icdar2015")
    report = read_ground_truth_or_error(path)
    assert "gt_img_4.txt" in report


def read_ground_truth_or_error(path: Path) -> str:
    try:
        read_ground_truth(path, "icdar2015", skip_invalid=True)
    except ArchiveError as exc:
        return str(exc)
    return ""


def _result_file(rng: random.Random, style: str) -> str:
    lines = []
    for _ in range(rng.randint(0, 5)):
        n = rng.choice([8, 8, 8, 7, 9]) if style == "rrc" else rng.choice([2, 6, 8, 9, 13])
        values = [rng.choice(NUMBER_ATOMS) if rng.random() < 0.05 else str(rng.randint(-5, 900))]
        values += [str(rng.randint(-5, 900)) for _ in range(n - 1)]
        sep = ", " if rng.random() < 0.3 else ","
        lines.append(sep.join(values))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("style", ["rrc", "polygon", "polygon-yx"])
def test_result_files_at_once_equal_line_by_line(style: str) -> None:
    rng = random.Random(13)
    taken = 0
    for _ in range(200):
        texts = [_result_file(rng, style) for _ in range(rng.randint(1, 5))]
        if style == "rrc":
            fast = rrc_files_fast(texts)
        else:
            fast = polygon_files_fast(texts, yx=style == "polygon-yx")
        for text, result in zip(texts, fast):
            if result is None:
                continue  # handed to the line parser
            taken += 1
            report = ParseReport(skip_invalid=True)
            want, lines = _parse_text_file(text, "f.txt", style, False, report)
            assert not report.skipped, text  # no malformed line is taken
            assert result[1] == lines
            for got, ref in zip(result[0], want, strict=True):
                assert got.score == ref.score
                assert got.polygon.dtype == np.float64
                assert np.array_equal(got.polygon, ref.polygon)
    assert taken > 100


# --------------------------------------------------------------------------- geometry shortcuts


def test_numpy_areas_are_geos_areas_bit_for_bit() -> None:
    """DetEval divides by GEOS's raw areas: computed without GEOS, they
    must be its bits (random contours, self-intersecting ones included)."""
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(1)
    polygons = [np.array([[0, 0], [1, 0], [0, 0]], float)]  # a 3-point closed ring
    for _ in range(3000):
        n = int(rng.integers(3, 30))
        p = rng.uniform(-1e3, 1e3, (n, 2)) * rng.choice([1, 1e-3, 1e5])
        kind = rng.integers(0, 4)
        if kind == 1:
            p = np.round(p)
        elif kind == 2:
            p = np.vstack([p, p[:1]])  # closed already
        elif kind == 3:
            p = np.round(rng.uniform(0, 5, (n, 2)))  # repeated points
        polygons.append(p)
    got = geos_polygons(polygons)
    want = shapely.area(got.geoms)
    assert np.array_equal(got.area, want)  # exact, not approximate


def test_small_contours_count_their_crossings_as_one_by_one() -> None:
    rng = np.random.default_rng(0)
    polys = [rng.uniform(0, 100, (int(rng.integers(5, 25)), 2)) for _ in range(400)]
    polys += [np.round(rng.uniform(0, 5, (int(rng.integers(5, 25)), 2))) for _ in range(200)]
    flat = _Flat(polys)
    idx = np.arange(len(polys))
    assert _small_crossings(flat, idx).tolist() == [crossings(p) for p in polys]


def test_is_number_is_float_succeeding() -> None:
    def reads(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    words = [
        "NaN",
        "INF",
        "Infinity",
        "infinit",
        "CARE",
        "###",
        "#1",
        " 12 ",
        "1_0",
        "\u0663\u0662",
    ]
    for text in words + [chr(c) * k for c in range(0x3000) for k in (1, 3)]:
        assert is_number(text) == reads(text), repr(text)


def test_an_infinite_confidence_is_a_malformed_line() -> None:
    """``float("1" * 400)`` is infinity: found by the fuzz suite on
    rrc-ltrb lines, a score no comparison can use."""
    huge = "1" * 400
    assert _rrc_file_fast(f"0,0,10,0,10,10,0,10,{huge}\n", confidences=True) is None
    with pytest.raises(ValueError, match="not a finite number"):
        _rrc_line(f"0,0,10,0,10,10,0,10,{huge}", confidences=True)
    with pytest.raises(ValueError, match="not a finite number"):
        _ltrb_line(f"0,0,10,10,{huge}", confidences=True)
