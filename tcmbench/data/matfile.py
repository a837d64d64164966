"""Load untrusted MATLAB ``.mat`` files without letting them kill the process.

scipy's MAT v5 reader is Cython that trusts the file. A crafted file can
make it dereference a NULL pointer (a data element whose type code has no
dtype: codes 8, 10, 11, 14, 15, >= 19), recurse in C until the stack
overflows (cells nested a few thousand deep: 4 KB compressed), or allocate
an object array as large as the header's dimensions claim. Those end in a
segfault (exit 139) that no ``except`` can catch, so every ``.mat`` that
tcmbench reads (Total-Text GT, DetEval predictions, SynthText's ``gt.mat``)
goes through :func:`load_mat`.

:func:`load_mat` first walks the file's structure in pure Python exactly
the way scipy will read it -- every element tag, type code, dimension,
byte count and nesting level of the variables asked for, inflating
compressed variables as a stream -- and only hands scipy a file that
passed. Anything wrong is a :class:`MatFileError` with a one-line reason.

Why not parse in a child process instead? SynthText's ``gt.mat`` is about
1 GB for 858,750 images: pickling its cell arrays back from a child costs
more than loading them, and a child per file would slow down the 1,555
small Total-Text files. The walk reads each tag once and skips numeric
payloads, so it costs a fraction of the load itself.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
import zlib
from collections.abc import Container, Iterable
from pathlib import Path
from typing import Any

# Nesting of cells/structs. scipy recurses in C: ~20,000 levels overflow an
# 8 MB stack; real files nest 2 or 3 levels.
MAX_DEPTH = 64
# Inflated bytes the walk accepts: the larger of a floor and a ratio of the
# file size (zlib reaches ~1000:1 on crafted input, real .mat files < 20:1).
MIN_INFLATE_BUDGET = 256 << 20
MAX_INFLATE_RATIO = 200
# Arrays scipy builds (cells, struct fields) are Python objects of ~100
# bytes each: at most max(this, file size / 16) of them.
MIN_ARRAY_BUDGET = 1 << 20
# Char and field-less struct arrays whose size no stored data backs (scipy
# allocates them from the dimensions alone).
MAX_UNBACKED_ELEMENTS = 1 << 20

_HEADER = 128
_CHUNK = 1 << 18

miINT8, miUINT8, miINT16, miUINT16, miINT32, miUINT32 = 1, 2, 3, 4, 5, 6
miSINGLE, miDOUBLE, miINT64, miUINT64 = 7, 9, 12, 13
miMATRIX, miCOMPRESSED, miUTF8, miUTF16, miUTF32 = 14, 15, 16, 17, 18

# Type codes scipy has a dtype for (anything else is a NULL pointer there).
_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 16: 1, 17: 2, 18: 4}
_CHAR_TYPES = {miINT8, miUINT8, miUINT16, miUTF8, miUTF16, miUTF32}
_CLASS_NAMES = {
    1: "cell",
    2: "struct",
    3: "object",
    4: "char",
    5: "sparse",
    16: "function",
    17: "opaque",
}
_NUMERIC_CLASSES = range(6, 16)  # double, single, int8 ... uint64
_CELL, _STRUCT, _CHAR = 1, 2, 4


class MatFileError(ValueError):
    """A ``.mat`` file that is damaged, crafted or uses a feature tcmbench
    does not read. The message is one line without the file name: callers
    add their location (``archive.zip:entry.mat``)."""


def load_mat(
    source: str | os.PathLike[str] | bytes,
    variable_names: Iterable[str] | None = None,
) -> dict[str, Any]:
    """``scipy.io.loadmat`` of ``source`` (a path or the file's bytes), after
    :func:`check_mat` has validated what scipy will read.

    Returns scipy's dict (only ``variable_names`` when given) plus
    ``"__variables__"``: the names of every variable in the file, so a
    caller can say what it found instead of what it wanted.
    Raises :class:`MatFileError` for any unreadable file.
    """
    import scipy.io

    wanted = None if variable_names is None else list(variable_names)
    with _open(source) as (data, stream):
        names = check_mat(data, wanted)
        try:
            mat = scipy.io.loadmat(stream, variable_names=wanted)
        except Exception as exc:  # noqa: BLE001  (scipy raises many types for bad files)
            raise MatFileError(_one_line(exc)) from None
    mat["__variables__"] = names
    return mat


class _open:
    """``(memoryview of the whole file, file-like for scipy)`` for a path
    (memory-mapped: a 1 GB gt.mat is not read into memory twice) or bytes."""

    def __init__(self, source: str | os.PathLike[str] | bytes) -> None:
        self._source = source
        self._file: Any = None
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None

    def __enter__(self) -> tuple[memoryview, Any]:
        if isinstance(self._source, (bytes, bytearray, memoryview)):
            self._view = memoryview(self._source)
            return self._view, io.BytesIO(self._source)
        try:
            self._file = open(Path(self._source), "rb")  # closed in __exit__
            size = os.fstat(self._file.fileno()).st_size
            if size == 0:
                raise MatFileError("empty file")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            self.__exit__()
            raise MatFileError(f"cannot read: {exc.strerror or exc}") from None
        except MatFileError:
            self.__exit__()
            raise
        self._view = memoryview(self._map)
        return self._view, self._file

    def __exit__(self, *exc: object) -> None:
        try:
            if self._view is not None:
                self._view.release()
            if self._map is not None:
                self._map.close()
        except BufferError:
            pass  # a traceback still holds a slice: the map closes when it is collected
        if self._file is not None:
            self._file.close()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------- MAT v5 walk


class _Budget:
    """Inflated bytes and array objects left for this file."""

    def __init__(self, file_size: int) -> None:
        self.inflate_limit = max(MIN_INFLATE_BUDGET, MAX_INFLATE_RATIO * file_size)
        self.inflate = self.inflate_limit
        self.arrays_limit = max(MIN_ARRAY_BUDGET, file_size // 16)
        self.arrays = self.arrays_limit

    def inflated(self, n: int) -> None:
        self.inflate -= n
        if self.inflate < 0:
            raise MatFileError(
                f"compressed data inflates past {self.inflate_limit >> 20} MiB "
                f"({MAX_INFLATE_RATIO}x the file size); refusing a decompression bomb"
            )

    def array(self, n: int) -> None:
        self.arrays -= n
        if self.arrays < 0:
            raise MatFileError(
                f"more than {self.arrays_limit} nested arrays for a file this size; "
                "refusing what would exhaust memory"
            )


def _inflate(src: memoryview, budget: _Budget, limit: int | None, what: str) -> bytes:
    """The inflated content of an ``miCOMPRESSED`` element: all of it, or
    its first ``limit`` bytes (enough for a variable's header)."""
    z = zlib.decompressobj()
    cap = budget.inflate + 1 if limit is None else min(limit, budget.inflate + 1)
    try:
        out = z.decompress(src, cap)
    except zlib.error as exc:
        raise MatFileError(f"{what}: corrupt compressed data ({exc})") from None
    budget.inflated(len(out))
    if limit is None and not z.eof:
        if z.unconsumed_tail:  # stopped at the cap
            budget.inflated(budget.inflate + 1)
        raise MatFileError(f"{what}: compressed data is truncated")
    return out


class _Walker:
    """Walks MAT v5 elements in ``buf[pos:end]`` the way
    ``scipy.io.matlab._mio5_utils`` reads them; positions are plain ints
    (the walk visits millions of elements in SynthText's gt.mat)."""

    def __init__(self, little: bool, budget: _Budget) -> None:
        self._ii = struct.Struct("<II" if little else ">II").unpack_from
        self._i = struct.Struct("<i" if little else ">i").unpack_from
        self._2i = struct.Struct("<2i" if little else ">2i").unpack_from
        self._6i = struct.Struct("<6I" if little else ">6I").unpack_from
        self._budget = budget
        self.buf: bytes | memoryview = b""
        self.end = 0
        self._path: list[int] = []  # element indices, for error messages
        self.what = ""

    def fail(self, detail: str) -> MatFileError:
        where = self.what + "".join(f"[{k}]" for k in self._path[:4])
        if len(self._path) > 4:
            where += f"[...] (depth {len(self._path)})"
        return MatFileError(f"{where}: {detail}")

    def need(self, pos: int, n: int, what: str) -> None:
        if n > self.end - pos:
            raise self.fail(f"truncated: {what} needs {n} bytes, {max(self.end - pos, 0)} left")

    def tag(self, pos: int, what: str) -> tuple[int, int]:
        self.need(pos, 8, what)
        return self._ii(self.buf, pos)

    def element(self, pos: int, what: str, types: Container[int]) -> tuple[int, int, int, int]:
        """One data element: ``(type code, byte count, payload offset, next
        position)``. Small data elements (type and count packed in 4 bytes,
        up to 4 payload bytes in the next 4) are accepted like scipy does;
        scipy tolerates missing padding after the last element."""
        end = self.end
        if pos + 8 > end:
            self.need(pos, 8, what)
        mdtype, n = self._ii(self.buf, pos)
        if mdtype >> 16:
            mdtype, n = mdtype & 0xFFFF, mdtype >> 16
            if n > 4:
                raise self.fail(f"{what}: small data element of {n} bytes (at most 4)")
            if mdtype not in types:
                raise self.fail(f"{what}: data type code {mdtype} is not valid here")
            return mdtype, n, pos + 4, pos + 8
        if mdtype not in types:
            raise self.fail(f"{what}: data type code {mdtype} is not valid here")
        after = pos + 8 + n
        if after > end:
            self.need(pos + 8, n, what)
        after += -n % 8
        return mdtype, n, pos + 8, min(after, end)

    def header(self, pos: int) -> tuple[int, int, list[int], bytes, int]:
        """Array flags, dimensions and name of a matrix: ``(class, flags,
        dims, name, next position)``; what scipy reads of every variable."""
        buf = self.buf
        if pos + 24 > self.end:
            self.need(pos, 24, "array header")
        mdtype, n, flags, _, dtag, dn = self._6i(buf, pos)
        if mdtype != miUINT32 or n != 8:
            raise self.fail("array flags element is not uint32 x 2")
        pos += 16
        mclass = flags & 0xFF
        dims: list[int] = []
        if mclass != 17:  # opaque arrays have a name only
            if dn == 8 and dtag in (miINT32, miUINT32) and pos + 16 <= self.end:
                dims = list(self._2i(buf, pos + 8))  # the usual 2-D case, fast
                pos += 16
            else:
                _, n, at, pos = self.element(pos, "dimensions", (miINT32, miUINT32))
                # MATLAB always writes 2 to 32 dimensions; scipy's char
                # conversion indexes the last one unchecked (0 dims: segfault).
                if n % 4 or not 8 <= n <= 128:
                    raise self.fail(
                        f"dimensions element of {n} bytes (4 per dimension, 2 to 32 of them)"
                    )
                dims = [self._i(buf, at + k)[0] for k in range(0, n, 4)]
            if dims and min(dims) < 0:
                raise self.fail(f"negative dimension in {dims}")
        _, n, at, pos = self.element(pos, "name", (miINT8, miUTF8))
        name = bytes(buf[at : at + n]) if n else b""
        if not name.isascii():
            raise self.fail("name is not ASCII")
        return mclass, flags, dims, name, pos

    def body(self, pos: int, mclass: int, flags: int, dims: list[int]) -> int:
        """The data of a matrix whose header ends at ``pos``; returns the
        position after it."""
        count = 1
        for d in dims:
            count *= d
        if mclass in _NUMERIC_CLASSES:
            for part in ("real", "imaginary")[: 2 if flags >> 11 & 1 else 1]:
                mdtype, n, _, pos = self.element(pos, f"{part} part", _ITEMSIZE)
                size = _ITEMSIZE[mdtype]
                if n % size or n // size != count:
                    raise self.fail(
                        f"{n} bytes of type {mdtype} for dimensions {dims} ({count} values)"
                    )
            return pos
        if mclass == _CHAR:
            _, n, _, pos = self.element(pos, "characters", _CHAR_TYPES)
            if n == 0 and count > MAX_UNBACKED_ELEMENTS:
                raise self.fail(f"empty char data for dimensions {dims}")
            return pos
        if mclass == _CELL:
            return self._children(pos, count)
        if mclass == _STRUCT:
            _, n, at, pos = self.element(pos, "field name length", (miINT32, miUINT32))
            if n != 4:
                raise self.fail("field name length is not one int32")
            width = self._i(self.buf, at)[0]
            if not 0 < width <= 1024:
                raise self.fail(f"field name length {width}")
            _, n, _, pos = self.element(pos, "field names", (miINT8, miUTF8))
            fields = n // width
            if fields == 0:
                if count > MAX_UNBACKED_ELEMENTS:
                    raise self.fail(f"struct without fields of dimensions {dims}")
                return pos
            return self._children(pos, count * fields)
        kind = _CLASS_NAMES.get(mclass, f"unknown class {mclass}")
        raise self.fail(f"{kind} arrays are not supported")

    def _children(self, pos: int, count: int) -> int:
        if len(self._path) >= MAX_DEPTH:
            raise self.fail(f"cells/structs nested more than {MAX_DEPTH} deep")
        if count * 8 > self.end - pos:
            many = count if count < 10**12 else f"~10^{len(str(count)) - 1}"
            raise self.fail(f"{many} elements cannot fit in the {self.end - pos} bytes left")
        self._budget.array(count)
        path = self._path
        path.append(0)
        for k in range(count):
            path[-1] = k
            pos = self.child(pos)
        path.pop()
        return pos

    def child(self, pos: int) -> int:
        """A matrix nested in a cell or struct (scipy's ``read_mi_matrix``)."""
        if pos + 8 > self.end:
            self.need(pos, 8, "matrix")
        mdtype, n = self._ii(self.buf, pos)
        if mdtype != miMATRIX:
            raise self.fail(f"expected a matrix element, got type code {mdtype}")
        pos += 8
        if n == 0:
            return pos
        if pos + n > self.end:
            self.need(pos, n, "matrix")
        mclass, flags, dims, _, after = self.header(pos)
        after = self.body(after, mclass, flags, dims)
        if after - pos != n:
            raise self.fail(f"matrix of {after - pos} bytes declared as {n}")
        return after


def _check_v5(data: memoryview, wanted: list[str] | None) -> list[str]:
    endian = bytes(data[126:128])
    if endian not in (b"IM", b"MI"):
        raise MatFileError("not a MATLAB file (no MAT header)")
    little = endian == b"IM"
    version = struct.unpack("<H" if little else ">H", data[124:126])[0] >> 8
    if version == 2:
        raise MatFileError("MATLAB v7.3 (HDF5) files are not supported; save with -v7")
    if version != 1:
        raise MatFileError(f"unknown MAT-file version {version}")
    budget = _Budget(len(data))
    walker = _Walker(little, budget)
    remaining = None if wanted is None else set(wanted)
    names: list[str] = []
    pos = _HEADER
    while pos < len(data) and (remaining is None or remaining):
        # (scipy stops once it has every variable asked for)
        walker.what = f"variable {len(names) + 1} at offset {pos}"
        walker.buf, walker.end = data, len(data)
        mdtype, n = walker.tag(pos, "variable")
        if n == 0:
            raise walker.fail("empty element")
        end = pos + 8 + n
        walker.need(pos + 8, n, "variable")
        if mdtype == miCOMPRESSED:
            # Variables skipped by scipy: inflate the header only.
            head = _inflate(data[pos + 8 : end], budget, 1 << 17, walker.what)
            walker.buf, walker.end = head, len(head)
            head = b""
            start = 8
        elif mdtype == miMATRIX:
            start = pos + 8
        else:
            raise walker.fail(f"expected a matrix element, got type code {mdtype}")
        if mdtype == miCOMPRESSED:
            inner, size = walker.tag(0, "compressed matrix")
            if inner != miMATRIX or size == 0:
                raise walker.fail("compressed element does not hold a matrix")
        else:
            size = n
        mclass, flags, dims, raw_name, after = walker.header(start)
        name = raw_name.decode("latin1") or "__function_workspace__"
        names.append(name)
        if remaining is None or name in remaining:
            walker.what = f"variable {name!r}"
            if mdtype == miCOMPRESSED:
                full = _inflate(data[pos + 8 : end], budget, None, walker.what)
                walker.buf, walker.end = full, len(full)
                if 8 + size != len(full):
                    raise walker.fail(
                        f"compressed matrix declared as {size} bytes inflates to {len(full) - 8}"
                    )
            else:
                walker.end = end
            after = walker.body(after, mclass, flags, dims)
            if after - start != size:
                raise walker.fail(f"matrix of {after - start} bytes declared as {size}")
            walker.buf = full = b""  # free the inflated copy before the next variable
            if remaining is not None:
                remaining.discard(name)
        pos = end
    return names


def _check_v4(data: memoryview) -> list[str]:
    """MAT v4: a sequence of (5 x int32 header, name, data) with no nesting;
    scipy reads it in Python, so sizes are all there is to check."""
    itemsize = {0: 8, 1: 4, 2: 4, 3: 2, 4: 2, 5: 1}
    first = struct.unpack_from("<i", data, 0)[0]
    little = 0 <= first <= 5000 if first else True
    head = struct.Struct("<5i" if little else ">5i")
    names = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < head.size:
            raise MatFileError(f"truncated MAT v4 variable header at offset {pos}")
        mopt, rows, cols, imagf, namlen = head.unpack_from(data, pos)
        pos += head.size
        order, rest = divmod(mopt, 1000)
        zero, rest = divmod(rest, 100)
        ptype, mtype = divmod(rest, 10)
        if not (0 <= mopt <= 5000 and order in (0, 1) and zero == 0 and ptype in itemsize):
            raise MatFileError(f"MAT v4 variable at offset {pos - head.size}: bad type {mopt}")
        if mtype > 2 or imagf not in (0, 1) or rows < 0 or cols < 0:
            raise MatFileError(f"MAT v4 variable at offset {pos - head.size}: bad header")
        if not 0 < namlen <= len(data) - pos:
            raise MatFileError(f"MAT v4 variable at offset {pos - head.size}: bad name length")
        names.append(bytes(data[pos : pos + namlen]).strip(b"\0").decode("latin1"))
        pos += namlen
        size = rows * cols * itemsize[ptype] * (2 if imagf and mtype == 0 else 1)
        if size > len(data) - pos:
            raise MatFileError(
                f"truncated: MAT v4 variable {names[-1]!r} needs {size} bytes, "
                f"{len(data) - pos} left"
            )
        pos += size
    return names


def check_mat(data: bytes | memoryview, variable_names: Iterable[str] | None = None) -> list[str]:
    """Validate what ``scipy.io.loadmat(..., variable_names=...)`` will read;
    returns the names of the variables in the file, raises
    :class:`MatFileError`. Variables not asked for are checked as far as
    scipy reads them (their header), not their data."""
    view = memoryview(data)
    if len(view) < 20 or not any(view[:20]):
        raise MatFileError(f"not a MATLAB file ({len(view)} bytes)")
    if 0 in view[:4]:  # scipy's test: a zero in the first 4 bytes means v4
        return _check_v4(view)
    if len(view) < _HEADER:
        raise MatFileError(f"not a MATLAB file ({len(view)} bytes, a MAT header is 128)")
    return _check_v5(view, None if variable_names is None else list(variable_names))
