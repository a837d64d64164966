"""The pixel limit: an image's declared size is checked before it is decoded.

A decoder allocates the whole pixel buffer from the size the header
declares, before it reads a byte of pixel data. A 631-byte JPEG whose frame
header says 30000 x 30000 therefore made OpenCV allocate 2.7 GB (and
``predict`` reach 5.7 GB); a small PNG, TIFF or 16-bit PNG does the same.
OpenCV's own limit is 2^30 pixels, far above any photograph. So
:func:`checked_image_size` reads the size from the header with Pillow (which
parses headers only, never pixels, when it opens a file) and refuses an
image above :data:`DEFAULT_MAX_IMAGE_PIXELS` before the decoder sees it;
:func:`tcmbench.data.torch_data.load_image`, the one function that decodes
images (training, evaluate, predict, visualisations, reports, the ONNX
runtime's input), calls it.

The default, 50 megapixels, is 20x the largest photograph of the reference
benchmarks (MSRA-TD500, 1920 x 1280) and holds a 48-megapixel phone photo;
``TCMBENCH_MAX_IMAGE_PIXELS`` raises (or lowers) it.
"""

from __future__ import annotations

import io
import threading
import warnings
from typing import TYPE_CHECKING

from tcmbench.errors import ImageReadError
from tcmbench.safety.run_limits import env_positive_int

if TYPE_CHECKING:
    from PIL.ImageFile import ImageFile

#: Pixels (width x height) an image may declare. See the module doc.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
MAX_IMAGE_PIXELS_ENV = "TCMBENCH_MAX_IMAGE_PIXELS"
#: Bytes per allowed pixel a file may hold, plus :data:`FILE_SLACK_BYTES`
#: for metadata: an uncompressed 16-bit RGBA TIFF needs 8. A larger file is
#: refused before it is read into memory.
FILE_BYTES_PER_PIXEL = 8
FILE_SLACK_BYTES = 64 << 20

#: Pixels of one side OpenCV decodes (its ``OPENCV_IO_MAX_IMAGE_WIDTH`` /
#: ``_HEIGHT``, 2^20): a longer side is refused here, in one line, rather
#: than by OpenCV's assertion. A strip 1 x 2,000,000 is under the pixel
#: limit but not under this.
MAX_IMAGE_SIDE = 1 << 20

#: What Pillow calls the formats OpenCV decodes here (the suffixes of
#: ``SUPPORTED_IMAGE_SUFFIXES``; MPO is how Pillow names some camera JPEGs).
#: A file Pillow reads as anything else is refused: its header was not the
#: one OpenCV would decode.
DECODED_FORMATS = frozenset(
    {"JPEG", "MPO", "PNG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM", "PBM", "PGM", "PNM"}
)

_pil_lock = threading.Lock()


def max_image_pixels() -> int:
    """The pixel limit: ``TCMBENCH_MAX_IMAGE_PIXELS`` when set (a positive
    integer), else :data:`DEFAULT_MAX_IMAGE_PIXELS`. Read once per process
    (:func:`tcmbench.safety.run_limits.clear_limit_cache` forgets it)."""
    return env_positive_int(MAX_IMAGE_PIXELS_ENV, DEFAULT_MAX_IMAGE_PIXELS)


def max_image_file_bytes() -> int:
    """Largest image file read into memory (follows the pixel limit)."""
    return FILE_BYTES_PER_PIXEL * max_image_pixels() + FILE_SLACK_BYTES


def _over(where: str, size: str, limit: int) -> ImageReadError:
    return ImageReadError(
        f"{where}: image declares {size}, over the limit of {limit:,} pixels "
        f"(set {MAX_IMAGE_PIXELS_ENV} to raise it)"
    )


def check_file_size(where: str, nbytes: int) -> None:
    """Refuse a file too large to be an image under the pixel limit, before
    it is read (``where`` names it in the error)."""
    cap = max_image_file_bytes()
    if nbytes > cap:
        raise ImageReadError(
            f"{where}: {nbytes:,} bytes is too large for an image of at most "
            f"{max_image_pixels():,} pixels (file limit {cap:,} bytes; set "
            f"{MAX_IMAGE_PIXELS_ENV} to raise both)"
        )


def checked_image_size(data: bytes, where: str) -> tuple[int, int]:
    """(width, height) declared by the header of the encoded image ``data``,
    refused with one :class:`ImageReadError` naming ``where`` when it is over
    the pixel limit, not a format OpenCV decodes here, or not readable.
    Parses the header only: the cost does not depend on the declared size."""
    from PIL import Image, UnidentifiedImageError

    limit = max_image_pixels()
    try:
        try:
            with warnings.catch_warnings():
                # Pillow warns past its own limit (89 M pixels) and about
                # damaged metadata: ours decides, in one line.
                warnings.simplefilter("ignore")
                im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            # Past Pillow's error threshold (2x its limit): open the header
            # again without it, for the exact size (and for a limit of ours
            # raised past Pillow's). Still no pixel is decoded.
            im = _open_without_pillow_limit(data)
        with im:
            width, height = (int(v) for v in im.size)
            fmt = str(im.format or "")
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{where}: cannot decode image (empty, corrupt, or a format or sample type not "
            "supported here)"
        ) from None
    except Exception as exc:  # noqa: BLE001  (Pillow raises many types for bad headers)
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ImageReadError(f"{where}: cannot decode image (bad header: {reason})") from None
    if fmt not in DECODED_FORMATS:
        raise ImageReadError(
            f"{where}: a {fmt or 'unknown'} image, not a format decoded here "
            f"({', '.join(sorted(DECODED_FORMATS))})"
        )
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{where}: image declares an empty size {width}x{height}")
    if width * height > limit:
        raise _over(where, f"{width}x{height} = {width * height:,} pixels", limit)
    if max(width, height) > MAX_IMAGE_SIDE:
        raise ImageReadError(
            f"{where}: image declares {width}x{height}, a side over {MAX_IMAGE_SIDE:,} "
            "pixels (what OpenCV decodes)"
        )
    return width, height


def _open_without_pillow_limit(data: bytes) -> ImageFile:
    """``Image.open`` with Pillow's own bomb check off, for a header past
    its threshold. Pillow keeps the threshold in a module global, hence the
    lock; it is restored at once (only the header is parsed meanwhile)."""
    from PIL import Image

    with _pil_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = saved
