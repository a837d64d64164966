"""Comma separated numbers turned into one array by one C call.

Readers of the line formats (RRC, curved text, Total-Text) meet the
coordinates of a file as text: ``float()`` on each field cost more than
the rest of reading put together (350,000 fields for CTW1500's ground
truth and detections). :func:`float_fields` converts the coordinate text
of many lines at once, and only where the answer is certainly what
``float()`` field by field gives; otherwise it returns None and the reader
goes field by field (which also decides what is malformed).

Certainty comes from the characters: integer fields (``-?[0-9]+``, the
usual annotation and submission, spaces allowed around a field as
``float()`` allows them) are parsed as int64 by numpy's C parser (exact
below 2^53, then made float64: ``float()`` rounds nothing there); decimal
fields (digits, a point, a leading minus) by numpy's float parser, which
calls the conversion ``float()`` uses. Anything else -- tabs, exponents,
``nan``, ``1_000``, a plus sign -- is left to ``float()``. A field numpy
cannot read stops it early, which the count of values shows.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

_INTEGER_CHARS = b"0123456789,- "
_DECIMAL_CHARS = b"0123456789,-. "
#: A space inside a field (``1 2``, ``- 5``): float() refuses the field.
_SPLIT_FIELD = re.compile(rb"[0-9.\-] +[0-9.\-]")
#: Integers up to this magnitude are exact in float64.
_EXACT_INTEGER = 2**53


def float_fields(text: str, count: int) -> np.ndarray | None:
    """``[float(f) for f in text.split(",")]`` as a float64 array of
    ``count`` values, or None when that is not certain (see the module
    doc): the caller then converts field by field."""
    if count <= 0 or not text or not text.isascii():
        return None
    data = text.encode("ascii")
    integral = not data.translate(None, _INTEGER_CHARS)
    if not integral and data.translate(None, _DECIMAL_CHARS):
        return None  # a tab, an exponent, a word: float() decides
    if b" " in data:
        if _SPLIT_FIELD.search(data):
            return None
        data = data.replace(b" ", b"")
    # Integer parsing reads a lone "-" as 0 and "-0" as 0 (float: -0.0):
    # such text goes to the float parser, which refuses or keeps them.
    if integral and (b"-," in data or data.endswith(b"-") or b"-0" in data):
        integral = False
    with warnings.catch_warnings():
        # numpy warns ("could not be read to its end") where it stops early
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            values = np.fromstring(data, dtype=np.int64 if integral else np.float64, sep=",")
        except ValueError:  # the same warning, where warnings are errors
            return None
    if values.size != count:
        return None  # an empty field, a trailing comma: float() refuses it
    if integral:
        if int(values.max()) >= _EXACT_INTEGER or int(values.min()) <= -_EXACT_INTEGER:
            return None  # beyond 2^53 (or saturated at the int64 range): float() rounds
        return values.astype(np.float64)
    return values
