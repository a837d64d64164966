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

from tcmbench.data.formats.common import parse_lines_fast
from tcmbench.data.formats.ctw1500 import ctw_tokens, parse_ctw_line
from tcmbench.data.formats.icdar import ic15_tokens, parse_ic15_line
from tcmbench.data.formats.totaltext import comma_tokens, parse_comma_line
from tcmbench.data.schema import Instance, Prediction, limit, polygon_array, polygon_rows
from tcmbench.data.source import AnnotationSource, ParseReport
from tcmbench.errors import AnnotationFormatError, ArchiveError, ProtocolError
from tcmbench.eval.api import evaluate
from tcmbench.eval.io import _rrc_file_fast, _rrc_line
from tcmbench.run_limits import clear_limit_cache

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
