"""Image headers and archives that declare more than they hold (issue 15,
case 3), against the one image decoder and the annotation / prediction
readers. Besides the contract of conftest.py (a result or one
TcmbenchError, under the time bound), every input must stay under
:data:`MEMORY_BOUND` of resident memory: the peak is reset before each
input (Linux ``/proc/self/clear_refs``) and read after it.

The image strategy writes JPEG, PNG (8/16-bit, RGB/grey), TIFF (8/16-bit),
BMP and GIF headers declaring random sizes (up to what each field holds)
over a few bytes of pixel data, sometimes damaged further. The archive
strategy writes zips of zero runs, many short lines or random bytes, with
duplicated names, every compression method, and sizes in the headers that
lie either way.
"""

from __future__ import annotations

import io
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tcmbench.data import source
from tcmbench.data.image_limits import max_image_pixels
from tcmbench.data.torch_data import load_image
from tcmbench.eval.io import read_ground_truth, read_predictions

from .conftest import contract, fuzz_settings

T = TypeVar("T")

#: Resident memory one input may add (bytes).
MEMORY_BOUND = 1 << 30
#: The pixel limit while fuzzing: below the default so that a header just
#: under it decodes (and fails on its missing data) in milliseconds; the
#: default's worst case, 50 M pixels of 8-bit RGB, is 150 MB by construction.
FUZZ_PIXEL_LIMIT = 4_000_000


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the resident-memory peak (VmHWM); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def within_memory(target: str, call: Callable[[], T]) -> T | None:
    """:func:`contract`, and the peak resident memory of the call at most
    :data:`MEMORY_BOUND` above what the process held before it."""
    measured = _reset_peak()
    before = _status_kib("VmRSS")
    result = contract(target, call)
    if measured:
        grown = (_status_kib("VmHWM") - before) * 1024
        assert grown < MEMORY_BOUND, f"{target}: one input took {grown / 2**30:.2f} GiB"
    return result


# --------------------------------------------------------------------------- image headers

SIDES = st.one_of(
    st.integers(0, 64),
    st.integers(0, 5000),
    st.sampled_from([1, 2000, 2001, 30000, 65535, 65536, 2**31 - 1, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)


def _saved(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _small_rgb() -> Image.Image:
    pixels = np.random.default_rng(7).integers(0, 255, (8, 12, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def _png(width: int, height: int, depth: int, colour: int) -> bytes:
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width & 0x7FFFFFFF, height & 0x7FFFFFFF, depth, colour, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg(width: int, height: int) -> bytes:
    data = bytearray(_saved(_small_rgb(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    return bytes(data)


def _tiff(width: int, height: int, deep: bool) -> bytes:
    image = Image.fromarray(np.full((8, 12), 1234, dtype=np.uint16)) if deep else _small_rgb()
    data = bytearray(_saved(image, "TIFF"))
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in (256, 257):
            value = width if tag == 256 else height
            struct.pack_into("<HHII", data, entry, tag, 4, 1, value & 0xFFFFFFFF)
    return bytes(data)


def _bmp(width: int, height: int) -> bytes:
    data = bytearray(_saved(_small_rgb(), "BMP"))
    # BITMAPINFOHEADER: width, height (signed: negative = top-down) at 18, 22
    struct.pack_into("<ii", data, 18, width & 0x7FFFFFFF, -(height & 0x7FFFFFFF))
    return bytes(data)


def _gif(width: int, height: int) -> bytes:
    data = bytearray(_saved(_small_rgb().convert("P"), "GIF"))
    struct.pack_into("<HH", data, 6, width & 0xFFFF, height & 0xFFFF)  # logical screen
    frame = data.index(b"\x2c")  # image descriptor: left, top, width, height
    struct.pack_into("<HH", data, frame + 5, width & 0xFFFF, height & 0xFFFF)
    return bytes(data)


BUILDERS: dict[str, tuple[str, Callable[[int, int], bytes]]] = {
    "jpeg": (".jpg", _jpeg),
    "png": (".png", lambda w, h: _png(w, h, 8, 2)),
    "png16": (".png", lambda w, h: _png(w, h, 16, 2)),
    "png16-grey": (".png", lambda w, h: _png(w, h, 16, 0)),
    "tiff": (".tif", lambda w, h: _tiff(w, h, False)),
    "tiff16": (".tif", lambda w, h: _tiff(w, h, True)),
    "bmp": (".bmp", _bmp),
    "gif": (".gif", _gif),
}


@st.composite
def image_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes) of an image whose header declares a random size,
    sometimes damaged further: a flipped bit, cut short, junk appended."""
    kind = draw(st.sampled_from(sorted(BUILDERS)))
    suffix, build = BUILDERS[kind]
    data = bytearray(build(draw(SIDES), draw(SIDES)))
    damage = draw(st.sampled_from(["none", "none", "flip", "cut", "junk"]))
    if damage == "flip":
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] ^= 1 << draw(st.integers(0, 7))
    elif damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "junk":
        data += draw(st.binary(max_size=256))
    return suffix, bytes(data)


def _decode(path: Path) -> tuple[int, int]:
    image = load_image(path)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    height, width = image.shape[:2]
    assert height * width <= max_image_pixels(), image.shape
    return width, height


@fuzz_settings()
@given(handed=image_file())
def test_image_headers(handed: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCMBENCH_MAX_IMAGE_PIXELS", str(FUZZ_PIXEL_LIMIT))
    suffix, data = handed
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"image{suffix}"
        path.write_bytes(data)
        within_memory("image header", lambda: _decode(path))


# --------------------------------------------------------------------------- archives

NAMES = ["res_img_1.txt", "res_img_2.txt", "gt_img_1.txt", "sub/res_img_1.txt", "img_1.txt"]
METHODS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
#: Limits while fuzzing archives, so that a member past them costs
#: milliseconds to build (the checks are the same at any size).
ARCHIVE_LIMITS = {
    "TCMBENCH_MAX_PREDICTION_FILE_BYTES": str(1 << 20),
    "TCMBENCH_MAX_PREDICTION_FILE_LINES": "2000",
    "TCMBENCH_MAX_MEMBER_BYTES": str(2 << 20),
    "TCMBENCH_MAX_ARCHIVE_BYTES": str(3 << 20),
}


@st.composite
def payload(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["zeros", "lines", "blank", "random", "mixed"]))
    size = draw(st.integers(0, 3 << 20))
    if kind == "zeros":
        return bytes(size)
    if kind == "lines":
        line = draw(st.sampled_from([b"1,1,2,2,3,3,4,4\n", b"0,0,10,0,10,10,0,10,w\n", b"x\n"]))
        return line * (size // len(line))
    if kind == "blank":
        return draw(st.sampled_from([b"\n", b"\r\n", b"\r"])) * (size // 2)
    if kind == "random":
        return draw(st.binary(max_size=4096))
    return b"0,0,10,0,10,10,0,10\n" * 3 + bytes(draw(st.integers(0, 1 << 16)))


def _patch_sizes(data: bytearray, index: int, packed: int | None, unpacked: int | None) -> None:
    """Rewrite the sizes of the ``index``-th member in both of its headers
    (local ``PK\\3\\4``: compressed at 18, uncompressed at 22; central
    ``PK\\1\\2``: at 20 and 24)."""
    for signature, offset in ((b"PK\x03\x04", 18), (b"PK\x01\x02", 20)):
        pos = -1
        for _ in range(index + 1):
            pos = data.find(signature, pos + 1)
            if pos < 0:
                return
        if packed is not None:
            struct.pack_into("<I", data, pos + offset, packed)
        if unpacked is not None:
            struct.pack_into("<I", data, pos + offset + 4, unpacked)


@st.composite
def hostile_zip(draw: st.DrawFn) -> bytes:
    """A zip of one to four members (names may repeat), each of zero runs,
    short lines or random bytes, any compression method; sometimes the
    sizes in one member's headers lie."""
    members = draw(st.lists(st.tuples(st.sampled_from(NAMES), payload()), min_size=1, max_size=4))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            method = draw(st.sampled_from(METHODS))
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # duplicate names
                zf.writestr(info, data)
    raw = bytearray(buf.getvalue())
    if draw(st.booleans()):
        lie = st.one_of(st.none(), st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2**32 - 1]))
        _patch_sizes(raw, draw(st.integers(0, len(members) - 1)), draw(lie), draw(lie))
    return bytes(raw)


def _read_any(path: Path, as_gt: bool, style: str) -> int:
    if as_gt:
        samples, _ = read_ground_truth(path, "icdar2015", skip_invalid=True)
        return len(samples)
    files, _ = read_predictions(path, style=style, skip_invalid=True)
    return sum(len(v) for v in files.values())


@fuzz_settings()
@given(
    data=hostile_zip(),
    as_gt=st.booleans(),
    style=st.sampled_from(["auto", "rrc", "polygon"]),
)
def test_archives(data: bytes, as_gt: bool, style: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ARCHIVE_LIMITS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(source, "RATIO_FLOOR", 64 << 10)  # the ratio check, at fuzz sizes
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("gt.zip" if as_gt else "submit.zip")
        path.write_bytes(data)
        target = "archive ground truth" if as_gt else "archive predictions"
        within_memory(target, lambda: _read_any(path, as_gt, style))


def test_the_strategies_reach_past_the_limits(tmp_path: Path) -> None:
    """The builders make what they say: a declared size Pillow reads back,
    and a patched zip header zipfile reads back."""
    for kind, (_suffix, build) in BUILDERS.items():
        data = build(1234, 567)
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (1234, 567), kind
    raw = bytearray(_zip_of({"res_img_1.txt": b"abc"}))
    _patch_sizes(raw, 0, None, 3 << 30)
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        assert zf.getinfo("res_img_1.txt").file_size == 3 << 30


def _zip_of(files: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()
