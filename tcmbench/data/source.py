"""Uniform read access to annotation files in a folder, a zip, or one file.

The ICDAR RRC distributes ground truth as zips (``gt_img_N.txt`` entries),
researchers unpack them into folders, and some formats are one file. Readers
see all three through :class:`AnnotationSource`, so "a GT zip or a folder is
accepted wherever annotations are read" holds for every format at once.
"""

from __future__ import annotations

import fnmatch
import json
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
DEFAULT_MAX_MEMBER_BYTES = 4 << 30


def max_member_bytes() -> int:
    """Largest zip member read into memory (``TCMBENCH_MAX_MEMBER_BYTES``,
    default 4 GiB: far above any benchmark's annotation file)."""
    raw = os.environ.get("TCMBENCH_MAX_MEMBER_BYTES", "")
    try:
        return max(int(raw), 1) if raw.strip() else DEFAULT_MAX_MEMBER_BYTES
    except ValueError:
        return DEFAULT_MAX_MEMBER_BYTES


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class AnnotationSource:
    """A folder, a zip archive, or a single file, listed as relative names."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetNotFoundError(f"annotation path does not exist: {self.path}")
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_file() and zipfile.is_zipfile(self.path):
            try:
                self._zip = zipfile.ZipFile(self.path)
            except ZIP_ERRORS as exc:
                raise ArchiveError(f"{self.path}: damaged zip archive ({_reason(exc)})") from None
            self._names = sorted(
                n for n in self._zip.namelist() if not n.endswith("/") and "__MACOSX" not in n
            )
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
        return [n for n in self._names if fnmatch.fnmatch(PurePosixPath(n).name, pattern)]

    def read_bytes(self, name: str) -> bytes:
        if self._zip is not None:
            return self._read_member(self._zip, name)
        if self.path.is_dir():
            return (self.path / name).read_bytes()
        return self.path.read_bytes()

    def _read_member(self, archive: zipfile.ZipFile, name: str) -> bytes:
        """One member, read with a size cap: a damaged, encrypted or
        oversized member is an ArchiveError naming it, never a zlib /
        zipfile exception or a decompression bomb in memory."""
        cap = max_member_bytes()
        try:
            with archive.open(name) as member:
                data = member.read(cap + 1)
        except ZIP_ERRORS as exc:
            raise ArchiveError(
                f"{self.location(name)}: cannot read this zip member ({_reason(exc)}); "
                "re-create the archive or pass the unpacked folder"
            ) from None
        if len(data) > cap:
            raise ArchiveError(
                f"{self.location(name)}: unpacks to more than {cap} bytes (limit "
                f"TCMBENCH_MAX_MEMBER_BYTES); pass the unpacked folder or raise the limit"
            )
        return data

    def read_text(self, name: str) -> str:
        return decode_text(self.read_bytes(name))

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
        for i, line in enumerate(split_lines(self.read_text(name)), start=1):
            if line.strip():
                yield i, line

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
    skipped: list[AnnotationFormatError] = field(default_factory=list)

    def fail(self, location: str, line: int | None, expected: str, detail: str = "") -> None:
        err = AnnotationFormatError(location, line, expected, detail)
        if not self.skip_invalid:
            raise err
        log.warning("skipped: %s", err)
        self.skipped.append(err)

    def summary(self) -> str:
        return f"{len(self.skipped)} malformed line(s) skipped" if self.skipped else ""
