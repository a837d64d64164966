"""Uniform read access to annotation files in a folder, a zip, or one file.

The ICDAR RRC distributes ground truth as zips (``gt_img_N.txt`` entries),
researchers unpack them into folders, and some formats are one file. Readers
see all three through :class:`AnnotationSource`, so "a GT zip or a folder is
accepted wherever annotations are read" holds for every format at once.
"""

from __future__ import annotations

import fnmatch
import io
import logging
import os
import re
import sys
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Self

from tcmbench.errors import AnnotationFormatError, ArchiveError, DatasetNotFoundError

log = logging.getLogger(__name__)


def decode_text(data: bytes) -> str:
    """Decode annotation bytes: UTF-8 with or without BOM, else Latin-1.

    ICDAR 2015 GT files start with a UTF-8 BOM; a few legacy files are
    Latin-1. Latin-1 never fails, so a reader never crashes on decoding.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Lines split on ``\\n``, ``\\r\\n`` and ``\\r`` only.

    ``str.splitlines()`` also splits on ``\\x0b``, ``\\x0c``, ``\\x1c``-``\\x1e``,
    ``\\x85`` and U+2028/2029 -- characters a transcription may hold, and that
    a cp1252 byte decoded as Latin-1 becomes (``\\x85``) -- which would cut a
    record in two and make every later error name the wrong line. Editors
    number lines by these three breaks only.
    """
    return _LINE_BREAK.split(text)


def base_name(name: str) -> str:
    """``PurePosixPath(name).name`` without building a path for the usual
    name (no folder): called for every member of an archive."""
    return name if "/" not in name and name != "." else PurePosixPath(name).name


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, line) of the non-blank lines of ``text``
    (lines split as :func:`split_lines` splits them)."""
    return [(i, line) for i, line in enumerate(split_lines(text), start=1) if line.strip()]


# Digits of the longest JSON integer accepted: Python refuses to convert
# longer ones (``sys.get_int_max_str_digits()``, 4300 by default).
JSON_MAX_INT_DIGITS = 4300
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


class JsonInputError(ValueError):
    """JSON text that does not parse, with the 1-based line when known."""

    def __init__(self, detail: str, line: int | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.line = line


class _HugeInt(ValueError):
    def __init__(self, digits: str) -> None:
        super().__init__(digits)
        self.digits = digits


def max_int_digits() -> int:
    """Digits ``int()`` converts here: 4300, or less where the interpreter
    was told so (``PYTHONINTMAXSTRDIGITS``)."""
    return min(JSON_MAX_INT_DIGITS, sys.get_int_max_str_digits() or JSON_MAX_INT_DIGITS)


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > max_int_digits():
        raise _HugeInt(text)
    return int(text)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, max(pos, 0)) + 1


def _deep_line(text: str, depth: int = 100) -> int | None:
    """Line where the nesting of ``text`` first exceeds ``depth`` (for the
    error of a document nested too deeply for Python's parser). Everything
    before that point was parsed by ``json`` already, so its strings are
    well formed and this scan is linear."""
    level = 0
    for m in _JSON_TOKEN.finditer(text):
        tok = m.group()
        if tok in ("[", "{"):
            level += 1
            if level > depth:
                return _line_of(text, m.start())
        elif tok in ("]", "}"):
            level -= 1
    return None


def parse_json(text: str) -> Any:
    """``json.loads`` for untrusted files: every way the text can fail
    (syntax, nesting deeper than Python's recursion limit, an integer too
    long for ``int()``) is a :class:`JsonInputError` with a short reason and
    the line, never a ``RecursionError`` or a bare ``ValueError``."""
    import json  # only JSON inputs pay for it

    try:
        return json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"invalid JSON: {exc.msg}", exc.lineno) from None
    except _HugeInt as exc:
        digits = len(exc.digits.lstrip("-"))
        raise JsonInputError(
            f"an integer of {digits} digits (at most {max_int_digits()} are accepted)",
            _line_of(text, text.find(exc.digits)),
        ) from None
    except RecursionError:
        raise JsonInputError(
            "JSON nested too deeply (annotations need a few levels)", _deep_line(text)
        ) from None


#: What reading a damaged zip raises: zipfile's own errors, zlib's,
#: truncation, encryption (RuntimeError), unsupported methods and bad seeks.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
    OverflowError,
)

# --------------------------------------------------------------------------- read limits
#
# What one source may make us read, checked from the zip's headers (or the
# file's size) before a byte is inflated: a 1 MB zip can hold a member of
# 1 GiB of zeros, and a prediction file of millions of short lines took
# 25 s and 1.7 GB to parse before its detections were counted. Each limit
# is raised with the environment variable named beside it (see
# docs/formats.md, "Limits"); the error names the file and the variable.

#: Bytes one annotation file (a zip member, or a file of a folder) may
#: unpack to: far above any benchmark's ground truth (the largest reference
#: member is 10 KB), with room for SynthText's ``gt.mat`` (hundreds of MB).
DEFAULT_MAX_MEMBER_BYTES = 4 << 30
#: Bytes all the members read from one archive may unpack to, together.
DEFAULT_MAX_ARCHIVE_BYTES = 16 << 30
#: Unpacked / packed size of one zip member, checked once it unpacks to more
#: than :data:`RATIO_FLOOR` (text compresses less than 20x, zeros ~1000x).
DEFAULT_MAX_MEMBER_RATIO = 100
RATIO_FLOOR = 64 << 20
#: Bytes one prediction file (a result file of a zip or folder, or a JSON
#: file) may hold: the reference submissions' largest is 10 KB per image.
DEFAULT_MAX_PREDICTION_FILE_BYTES = 64 << 20
#: Lines (blank ones included) one prediction text file may hold, counted
#: before any is parsed: 10x the detections one image may have
#: (``MAX_IMAGE_POLYGONS``); the reference data has at most 53.
DEFAULT_MAX_PREDICTION_FILE_LINES = 20_000
#: Archives up to this size are read into memory once, and their members
#: inflated from there (see :meth:`AnnotationSource._member_fast`).
RAW_ARCHIVE_BYTES = 64 << 20


def env_limit(name: str, default: int) -> int:
    """The positive integer in environment variable ``name``, else
    ``default`` (:func:`tcmbench.safety.run_limits.env_positive_int`)."""
    from tcmbench.safety.run_limits import env_positive_int

    return env_positive_int(name, default)


def max_member_bytes() -> int:
    """Largest annotation file read into memory (``TCMBENCH_MAX_MEMBER_BYTES``,
    default 4 GiB)."""
    return env_limit("TCMBENCH_MAX_MEMBER_BYTES", DEFAULT_MAX_MEMBER_BYTES)


def _max_ratio() -> int:
    return env_limit("TCMBENCH_MAX_MEMBER_RATIO", DEFAULT_MAX_MEMBER_RATIO)


def _max_total() -> int:
    return env_limit("TCMBENCH_MAX_ARCHIVE_BYTES", DEFAULT_MAX_ARCHIVE_BYTES)


@dataclass(frozen=True)
class ReadLimits:
    """Caps on one :class:`AnnotationSource`, read from the environment
    once when it is made: bytes per file (``file_env`` names the variable
    that raises it), lines per text file (prediction files only), the
    compression ratio of a zip member and the bytes read from one archive."""

    max_file_bytes: int
    file_env: str
    max_lines: int | None = None
    lines_env: str = ""
    max_ratio: int = DEFAULT_MAX_MEMBER_RATIO
    max_total: int = DEFAULT_MAX_ARCHIVE_BYTES

    @classmethod
    def annotations(cls) -> ReadLimits:
        """Limits for annotation (ground-truth) files."""
        return cls(
            max_member_bytes(),
            "TCMBENCH_MAX_MEMBER_BYTES",
            max_ratio=_max_ratio(),
            max_total=_max_total(),
        )

    @classmethod
    def predictions(cls) -> ReadLimits:
        """Limits for prediction files (``tcmbench score`` input)."""
        return cls(
            env_limit("TCMBENCH_MAX_PREDICTION_FILE_BYTES", DEFAULT_MAX_PREDICTION_FILE_BYTES),
            "TCMBENCH_MAX_PREDICTION_FILE_BYTES",
            env_limit("TCMBENCH_MAX_PREDICTION_FILE_LINES", DEFAULT_MAX_PREDICTION_FILE_LINES),
            "TCMBENCH_MAX_PREDICTION_FILE_LINES",
            max_ratio=_max_ratio(),
            max_total=_max_total(),
        )

    def check_size(self, where: str, nbytes: int, verb: str = "unpacks to") -> None:
        """Refuse a file whose (declared) size is over the per-file cap."""
        if nbytes > self.max_file_bytes:
            raise ArchiveError(
                f"{where}: {verb} {nbytes:,} bytes, over the limit of "
                f"{self.max_file_bytes:,} (set {self.file_env} to raise it)"
            )

    def check_member(self, where: str, info: zipfile.ZipInfo, unpacked_before: int) -> None:
        """A zip member, from its header alone: its size, its ratio (past
        :data:`RATIO_FLOOR`), and the archive's running total with it."""
        size = info.file_size
        self.check_size(where, size)
        if size > RATIO_FLOOR and size > self.max_ratio * max(info.compress_size, 1):
            raise ArchiveError(
                f"{where}: {info.compress_size:,} bytes unpack to {size:,}, over "
                f"{self.max_ratio}x (looks like a decompression bomb; set "
                "TCMBENCH_MAX_MEMBER_RATIO to raise it)"
            )
        if unpacked_before + size > self.max_total:
            raise ArchiveError(
                f"{where}: the members read from this zip unpack to more than "
                f"{self.max_total:,} bytes together (set TCMBENCH_MAX_ARCHIVE_BYTES to raise it)"
            )

    def check_lines(self, where: str, data: bytes) -> None:
        """Refuse a text file of more than ``max_lines`` lines (split as
        :func:`split_lines` does), counted in C before any is parsed; a file
        of no more bytes than that is not even counted."""
        if self.max_lines is None or len(data) <= self.max_lines:
            return
        lines = data.count(b"\n")
        if b"\r" in data:
            lines += data.count(b"\r") - data.count(b"\r\n")
        if lines > self.max_lines:
            raise ArchiveError(
                f"{where}: {lines:,} lines, over the limit of {self.max_lines:,} for one "
                f"prediction file (set {self.lines_env} to raise it)"
            )


def read_file_bytes(path: Path, limits: ReadLimits) -> bytes:
    """The bytes of one file, its size checked against ``limits`` before it
    is read; a device or FIFO is refused, not read forever. A missing file
    raises FileNotFoundError (callers word that error)."""
    import stat

    where = str(path)
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise DatasetNotFoundError(
            f"{where}: not a regular file (a device, FIFO or socket); pass a file"
        )
    limits.check_size(where, st.st_size, "holds")
    cap = limits.max_file_bytes + 1
    with open(path, "rb") as fh:
        # Ask for the size the stat gave (plus one byte, to see growth):
        # read(cap) would allocate the whole 4 GiB limit for every small
        # file, which made reading a dataset folder 4x slower.
        data = fh.read(min(st.st_size + 1, cap))
        if len(data) > st.st_size:  # grew since the stat: read on, up to the cap
            data += fh.read(cap - len(data))
    limits.check_size(where, len(data), "holds")
    return data


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class AnnotationSource:
    """A folder, a zip archive, or a single file, listed as relative names."""

    def __init__(self, path: str | os.PathLike[str], limits: ReadLimits | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetNotFoundError(f"annotation path does not exist: {self.path}")
        self.limits = limits or ReadLimits.annotations()
        self._unpacked = 0  # bytes read from the archive so far
        self._zip: zipfile.ZipFile | None = None
        self._raw: bytes | None = None  # a small archive's bytes (fast member reads)
        if self.path.is_file() and zipfile.is_zipfile(self.path):
            try:
                if self.path.stat().st_size <= RAW_ARCHIVE_BYTES:
                    self._raw = self.path.read_bytes()
                    self._zip = zipfile.ZipFile(io.BytesIO(self._raw))
                else:
                    self._zip = zipfile.ZipFile(self.path)
            except ZIP_ERRORS as exc:
                raise ArchiveError(f"{self.path}: damaged zip archive ({_reason(exc)})") from None
            self._names = sorted(
                n for n in self._zip.namelist() if not n.endswith("/") and "__MACOSX" not in n
            )
            self._refuse_duplicates()
        elif self.path.is_dir():
            self._names = sorted(
                p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
            )
        else:
            self._names = [self.path.name]

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def names(self, pattern: str | None = None) -> list[str]:
        """Relative posix names of all files; ``pattern`` is an fnmatch glob
        applied to the base name."""
        if pattern is None:
            return list(self._names)
        return [n for n in self._names if fnmatch.fnmatch(base_name(n), pattern)]

    def _refuse_duplicates(self) -> None:
        """A zip holding two members of one name: which copy a reader gets
        is up to the zip library (Python's takes the last), so ground truth
        and predictions alike are refused, with the same message."""
        seen: set[str] = set()
        for name in self._names:
            if name in seen:
                raise ArchiveError(
                    f"{self.location(name)}: the zip holds two members of this name (which "
                    "one is meant is ambiguous); re-create the archive with one copy"
                )
            seen.add(name)

    def read_bytes(self, name: str) -> bytes:
        if self._zip is not None:
            return self._read_member(self._zip, name)
        return self._read_file(self.path / name if self.path.is_dir() else self.path)

    def _read_file(self, path: Path) -> bytes:
        try:
            return read_file_bytes(path, self.limits)
        except FileNotFoundError:
            raise DatasetNotFoundError(f"annotation file not found: {path}") from None

    def _read_member(self, archive: zipfile.ZipFile, name: str) -> bytes:
        """One member, checked from its header before it is inflated (its
        size, its compression ratio, the archive's running total), then
        read with a cap in case the header lies: a damaged, encrypted or
        oversized member is an ArchiveError naming it, never a zlib /
        zipfile exception or a decompression bomb in memory."""
        where = self.location(name)
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise DatasetNotFoundError(f"{where}: no such member in the zip") from None
        self.limits.check_member(where, info, self._unpacked)
        fast = self._member_fast(info)
        if fast is not None:
            self._unpacked += len(fast)
            return fast
        try:
            with archive.open(info) as member:
                data = member.read(self.limits.max_file_bytes + 1)
        except ZIP_ERRORS as exc:
            raise ArchiveError(
                f"{where}: cannot read this zip member ({_reason(exc)}); "
                "re-create the archive or pass the unpacked folder"
            ) from None
        self.limits.check_size(where, len(data))
        self._unpacked += len(data)
        return data

    def _member_fast(self, info: zipfile.ZipInfo) -> bytes | None:
        """A stored or deflated member of a small archive inflated straight
        from the archive's bytes: zipfile's per-member machinery cost more
        than the inflating (20 us a member, 1,000 members per ``score``).
        Only the plain case is taken: the local header agrees with the
        directory, no encryption, a complete stream of the declared size
        and CRC. Anything else returns None and goes through zipfile, whose
        errors the caller reports."""
        raw = self._raw
        if raw is None or info.flag_bits & 0x61 or info.compress_type not in (0, 8):
            return None  # encrypted (bits 0, 6), patched data (bit 5), another method
        at = info.header_offset
        if raw[at : at + 4] != b"PK\x03\x04" or at + 30 > len(raw):
            return None
        flags, name_len, extra_len = (
            int.from_bytes(raw[at + 6 : at + 8], "little"),
            int.from_bytes(raw[at + 26 : at + 28], "little"),
            int.from_bytes(raw[at + 28 : at + 30], "little"),
        )
        name = raw[at + 30 : at + 30 + name_len]
        try:
            same = name.decode("utf-8" if flags & 0x800 else "cp437") == info.orig_filename
        except UnicodeDecodeError:
            return None
        start = at + 30 + name_len + extra_len
        stop = start + info.compress_size
        if not same or stop > len(raw) or info.file_size > self.limits.max_file_bytes:
            return None
        if info.compress_type == 0:
            data = raw[start:stop]
        else:
            inflate = zlib.decompressobj(-15)
            try:
                data = inflate.decompress(raw[start:stop], info.file_size + 1)
            except zlib.error:
                return None
            if not inflate.eof:
                return None
        if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
            return None
        return data

    def read_text(self, name: str) -> str:
        data = self.read_bytes(name)
        if self.limits.max_lines is not None and len(data) > self.limits.max_lines:
            self.limits.check_lines(self.location(name), data)
        return decode_text(data)

    def location(self, name: str) -> str:
        """Human-readable location for error messages."""
        if self._zip is not None:
            return f"{self.path}:{name}"
        if self.path.is_dir():
            return str(self.path / name)
        return str(self.path)

    def local_path(self, name: str) -> Path | None:
        """A filesystem path for ``name`` when it is not inside an archive
        (libraries such as scipy.io.loadmat accept file objects too)."""
        if self._zip is not None:
            return None
        return self.path / name if self.path.is_dir() else self.path

    def iter_lines(self, name: str) -> Iterator[tuple[int, str]]:
        """(1-based line number, line without newline) for non-blank lines."""
        return iter(numbered_lines(self.read_text(name)))

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ParseReport:
    """What to do with malformed input, and what was skipped.

    Strict by default: the first malformed line raises
    :class:`AnnotationFormatError`. With ``skip_invalid`` the line is logged
    as a warning, counted, and parsing goes on; the CLI prints the count in a
    summary so nothing is dropped silently.
    """

    skip_invalid: bool = False
    #: The first :data:`KEPT_SKIPS` errors (each logged as a warning) ...
    skipped: list[AnnotationFormatError] = field(default_factory=list)
    #: ... and how many lines were skipped in all. A file of a million
    #: malformed lines once logged and kept a million errors: minutes and
    #: gigabytes (found by the fuzz suite).
    skipped_count: int = 0

    def fail(self, location: str, line: int | None, expected: str, detail: str = "") -> None:
        err = AnnotationFormatError(location, line, expected, detail)
        if not self.skip_invalid:
            raise err
        self.skipped_count += 1
        if len(self.skipped) < KEPT_SKIPS:
            log.warning("skipped: %s", err)
            self.skipped.append(err)
            if len(self.skipped) == KEPT_SKIPS:
                log.warning("further malformed lines are counted, not shown")

    def absorb(self, other: ParseReport) -> None:
        """Add the skips of ``other`` (a nested reader's report) to this one."""
        self.skipped.extend(other.skipped[: max(0, KEPT_SKIPS - len(self.skipped))])
        self.skipped_count += other.skipped_count

    def summary(self) -> str:
        n = self.skipped_count
        return f"{n} malformed line(s) skipped" if n else ""


#: Malformed lines a :class:`ParseReport` logs and keeps one by one.
KEPT_SKIPS = 20
