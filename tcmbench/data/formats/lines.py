"""One-record-per-line annotation files, read many lines (and files) at once.

The exact way to read such a file is a parser per line that names a
malformed line (:func:`tcmbench.data.formats.common.parse_lines`). With
hundreds of files of a few lines each (an ICDAR 2015 or CTW1500 zip), the
Python work per line and per file was most of ``tcmbench score``'s reading
time. Here a format's *tokenizer* splits each line cheaply (coordinate
text, transcription, don't care), the coordinate text of every line of
every file is converted by one numpy call
(:func:`tcmbench.data.formats.numbers.float_fields`) and the polygon rules
are checked for all lines at once
(:func:`tcmbench.data.schema.polygon_rows`). A line the tokenizer is unsure
of, or one that breaks a rule, sends its file to the exact parser, in file
order: the instances and the errors are those of the exact parser
(tests/test_fast_paths.py compares them on random input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from tcmbench.data.formats.numbers import float_fields
from tcmbench.data.schema import Instance, polygon_rows
from tcmbench.data.source import ParseReport, numbered_lines

#: A reader's quick look at one line: (the text of its coordinates, how many
#: comma separated fields that text holds, transcription, don't care), or
#: None when the line needs the exact parser (anything unusual).
Tokens = tuple[str, int, "str | None", bool]
LineTokenizer = Callable[[str], "Tokens | None"]
LineParser = Callable[[str], "Instance | None"]


def split_numbered(text: str) -> list[tuple[int, str]]:
    """:func:`tcmbench.data.source.numbered_lines` (the non-blank lines,
    numbered, split at ``\\r\\n``, ``\\r`` or ``\\n``) with ``str.split``
    where the text allows: several times faster than the regular
    expression, for the hundreds of small files of a zip."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return numbered_lines(text)
    return [(i, line) for i, line in enumerate(text.split("\n"), start=1) if line.strip()]


def parse_lines_fast(
    lines: Sequence[tuple[int, str]],
    location: str,
    report: ParseReport,
    expected: str,
    parse_line: LineParser,
    tokenize: LineTokenizer,
) -> list[Instance]:
    """The instances of one file's numbered lines (see the module doc):
    what the exact parser, line by line, gives (``parse_line`` raises
    ValueError with the reason for a malformed line, which goes through
    ``report``)."""
    tokens: list[Tokens | None] = [tokenize(line) for _, line in lines]
    counts = [tok[1] for tok in tokens if tok is not None]
    joined = ",".join([tok[0] for tok in tokens if tok is not None])
    values: np.ndarray | list[float] | None = float_fields(joined, sum(counts))
    if values is None:
        values, counts = _fields_one_by_one(tokens)
    ok, coords = polygon_rows(values, counts)
    if counts and len(tokens) == len(counts) and all(ok) and min(counts) == max(counts):
        # every line well formed, with one size (ICDAR 2015 quads): one reshape
        rows = coords.reshape(len(counts), -1, 2)
        return [
            Instance(rows[k], tok[3], tok[2]) for k, tok in enumerate(tokens) if tok is not None
        ]
    instances: list[Instance] = []
    pos = k = 0
    for (line_no, line), tok in zip(lines, tokens):
        if tok is not None:
            n = counts[k]
            good = ok[k]
            k += 1
            pos += n
            if good:
                instances.append(Instance(coords[pos - n : pos].reshape(-1, 2), tok[3], tok[2]))
                continue
        try:
            inst = parse_line(line)
        except ValueError as exc:
            report.fail(location, line_no, expected, str(exc))
            continue
        if inst is not None:
            instances.append(inst)
    return instances


def _fields_one_by_one(tokens: list[Tokens | None]) -> tuple[list[float], list[int]]:
    """The coordinates of the tokenized lines with ``float()`` per field; a
    line with a field it refuses is handed to the exact parser (its token
    becomes None, in place)."""
    values: list[float] = []
    counts: list[int] = []
    for k, tok in enumerate(tokens):
        if tok is None:
            continue
        try:
            row = [float(f) for f in tok[0].split(",")]
        except ValueError:
            tokens[k] = None
            continue
        values.extend(row)
        counts.append(len(row))
    return values, counts


class LineFile(NamedTuple):
    """A line file whose parsing waits for its neighbours: a reader's
    ``parse_file`` may return one instead of the instances (see
    :class:`LineBatch`)."""

    location: str
    lines: list[tuple[int, str]]


class LineFormat(NamedTuple):
    """How one format reads a line: the exact parser, the tokenizer, and
    what an error message says is expected."""

    expected: str
    parse_line: LineParser
    tokenize: LineTokenizer


class LineBatch:
    """Line files queued in reading order and parsed together by
    :func:`parse_files_fast` when :meth:`flush` is called. The reader
    flushes before anything else can report an error (another kind of file,
    a read error), so errors come in file order, as when each file is parsed
    on its own."""

    #: Files parsed in one call at most (the arrays of one call stay small).
    MAX_FILES = 1024

    def __init__(self, fmt: LineFormat, report: ParseReport) -> None:
        self.fmt = fmt
        self.report = report
        self._files: list[LineFile] = []
        self._done: list[Callable[[list[Instance]], None]] = []

    def add(self, file: LineFile, done: Callable[[list[Instance]], None]) -> None:
        """Queue ``file``; ``done`` receives its instances at the flush."""
        self._files.append(file)
        self._done.append(done)
        if len(self._files) >= self.MAX_FILES:
            self.flush()

    def flush(self) -> None:
        files, done = self._files, self._done
        self._files, self._done = [], []
        if files:
            for instances, callback in zip(parse_files_fast(files, self.report, self.fmt), done):
                callback(instances)


def parse_files_fast(
    files: Sequence[LineFile], report: ParseReport, fmt: LineFormat
) -> list[list[Instance]]:
    """:func:`parse_lines_fast` of each of ``files``, the lines of all of
    them converted and checked together; a file with a line that needs the
    exact parser is parsed on its own, in order."""
    tokens = [[fmt.tokenize(line) for _, line in f.lines] for f in files]
    flat = [tok for toks in tokens for tok in toks if tok is not None]
    counts = [tok[1] for tok in flat]
    values = float_fields(",".join([tok[0] for tok in flat]), sum(counts))
    if values is None:  # some field needs float(): file by file
        return [
            parse_lines_fast(
                f.lines, f.location, report, fmt.expected, fmt.parse_line, fmt.tokenize
            )
            for f in files
        ]
    ok, coords = polygon_rows(values, counts)
    # one size for all (ICDAR 2015 quads): row k is a view of one reshape
    rows = coords.reshape(len(counts), -1, 2) if counts and min(counts) == max(counts) else None
    out: list[list[Instance]] = []
    pos = k = 0
    for f, toks in zip(files, tokens):
        n_tok = sum(tok is not None for tok in toks)
        sizes = counts[k : k + n_tok]
        if n_tok == len(toks) and all(ok[k : k + n_tok]):
            if rows is not None:
                out.append([Instance(rows[k + i], t[3], t[2]) for i, t in enumerate(toks)])  # type: ignore[index]
                pos += sum(sizes)
            else:
                instances = []
                for tok, n in zip(toks, sizes):
                    instances.append(Instance(coords[pos : pos + n].reshape(-1, 2), tok[3], tok[2]))  # type: ignore[index]
                    pos += n
                out.append(instances)
        else:
            pos += sum(sizes)
            out.append(
                parse_lines_fast(
                    f.lines, f.location, report, fmt.expected, fmt.parse_line, fmt.tokenize
                )
            )
        k += n_tok
    return out
