"""Keep freed memory in the process for the next numpy temporary.

Scoring polygons is a few hundred numpy operations on arrays of up to a few
megabytes (every vertex of every polygon at once). glibc serves such blocks
from fresh pages (mmap, or heap growth it trims again when they are freed),
so each temporary pays a page fault per 4 KiB page on first touch; on this
project's virtual machine that was a third of CTW1500's ``evaluate()`` and
most of the simplicity tests' time (14 of 23 ms in packing the
detections). Blocks below :data:`MMAP_THRESHOLD` then come from the heap,
and a pad of :data:`TOP_PAD` bytes stays at its top (``M_MMAP_THRESHOLD`` /
``M_TOP_PAD``, the knobs of the ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TOP_PAD_`` environment variables), so later temporaries reuse
pages already mapped.

The cost is that up to :data:`TOP_PAD` bytes of freed memory stay with the
process. Only glibc has ``mallopt``; anywhere else this does nothing.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

#: Bytes glibc keeps at the top of its heap (and grows it by at least).
TOP_PAD = 64 << 20
#: Blocks below this come from the heap, not from fresh mappings (glibc's
#: largest accepted value on 64-bit; its dynamic threshold, which any
#: ``mallopt`` switches off, would rise to it as blocks are freed).
MMAP_THRESHOLD = 32 << 20
_M_TOP_PAD = -2  # glibc's <malloc.h> constants
_M_MMAP_THRESHOLD = -3
_state = {"done": False}


def keep_freed_pages() -> None:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TOP_PAD`` once per process;
    never fails. Settings the user chose (``MALLOC_TOP_PAD_``,
    ``MALLOC_MMAP_THRESHOLD_``) are left alone."""
    if _state["done"]:
        return
    _state["done"] = True
    if not sys.platform.startswith("linux") or _user_set():
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TOP_PAD, TOP_PAD)
    except (OSError, AttributeError) as err:  # musl, no libc.so.6: nothing to tune
        log.debug("mallopt unavailable: %s", err)


def _user_set() -> bool:
    return any(k in os.environ for k in ("MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_"))
