"""Small image files whose headers declare huge images (issue 15, case 3):
built by hand or by patching a tiny image saved with Pillow, so a test
holds a few hundred bytes where a decoder would allocate gigabytes."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def tiny_jpeg() -> bytes:
    """A real 16 x 16 baseline JPEG."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=50)
    return buf.getvalue()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A tiny JPEG whose frame header (SOF0) declares ``width`` x
    ``height`` (each at most 65535, what the field holds); the scan data is
    still that of a 16 x 16 image."""
    data = bytearray(tiny_jpeg())
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` (colour type 2 =
    RGB, 0 = grey; ``bit_depth`` 8 or 16), followed by one small IDAT of a
    few zero rows: a decoder trusting the header allocates it all first."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    channels = 3 if color_type == 2 else 1
    row = 1 + min(width, 4096) * channels * bit_depth // 8
    idat = zlib.compress(b"\0" * row * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def tiff_declaring(width: int, height: int, bits: int = 8) -> bytes:
    """A tiny TIFF saved by Pillow, its ImageWidth / ImageLength tags
    rewritten to ``width`` x ``height`` (as LONG values). ``bits`` 16 makes
    a 16-bit greyscale TIFF."""
    if bits == 16:
        image = Image.fromarray(np.full((8, 8), 4000, dtype=np.uint16))  # mode I;16
    else:
        image = Image.fromarray(np.full((8, 8, 3), 90, dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    image.save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    assert data[:2] == b"II", "Pillow writes little-endian TIFF"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in (256, 257):
            value = width if tag == 256 else height
            struct.pack_into("<HHII", data, entry, tag, 4, 1, value)  # type 4 = LONG
    return bytes(data)


def sixteen_bit_rgb(height: int = 30, width: int = 40) -> np.ndarray:
    """A uint16 RGB (well, BGR for OpenCV) ramp over the full 16-bit range."""
    ramp = np.arange(height * width * 3, dtype=np.uint32).reshape(height, width, 3)
    return (ramp * 53 % 65536).astype(np.uint16)
