"""Bounds on the size of a run: legal values past which a command would
run for days or allocate until it is killed.

``train --steps 10^20`` ran forever, ``bench --runs 10^9`` and
``--batch-size 10^8`` ran until killed, ``bench --resolution 32x2000000``
allocated until it failed. Each bound is far above what a real run uses
(the longest published recipe here is 1,200 epochs of DBNet on ICDAR 2015,
about 75,000 steps; reference batches are 16 or less; benchmarks use sides
of 640 to 2,048) and is raised with the environment variable
``TCMBENCH_<NAME>``; the command-line error says so. Torch-free and tiny, so
option declarations and grid validation can both use it.
"""

from __future__ import annotations

import os

from tcmbench.errors import TcmbenchError

#: name -> (default, what it bounds). See the module doc.
RUN_BOUNDS: dict[str, tuple[int, str]] = {
    "MAX_STEPS": (10_000_000, "optimizer steps (and step intervals) of one training run"),
    "MAX_EPOCHS": (100_000, "epochs of one training run"),
    "MAX_BATCH_SIZE": (1_024, "images per batch"),
    "MAX_BENCH_RUNS": (1_000, "timed or warm-up runs per resolution of `bench`"),
    "MAX_BENCH_SIDE": (4_096, "pixels of one side of a `bench` input"),
}


#: (variable, default) -> value, filled on first use: a limit is read from
#: the environment once per process. The readers and protocols ask for
#: limits per file and per image; reading ``os.environ`` each time cost
#: 20,000 lookups for one ICDAR 2015 submission.
_CACHE: dict[tuple[str, int], int] = {}


def env_positive_int(name: str, default: int) -> int:
    """The positive integer in environment variable ``name`` (``1_000``
    allowed), else ``default``; anything else is a one-line error (raised
    at every call, never cached). Read once per process: a process that
    changes the variable later (a test's ``monkeypatch.setenv``) calls
    :func:`clear_limit_cache`. Every raisable limit of tcmbench is read
    through this one function."""
    key = (name, default)
    value = _CACHE.get(key)
    if value is not None:
        return value
    raw = os.environ.get(name, "").strip()
    if not raw:
        value = default
    else:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise TcmbenchError(f"{name}={raw[:40]!r} is not a positive integer")
    _CACHE[key] = value
    return value


def clear_limit_cache() -> None:
    """Forget every limit read so far: the next use reads the environment
    again (for tests and for a process that changes ``TCMBENCH_*``)."""
    _CACHE.clear()


def run_bound(name: str) -> int:
    """Bound ``name`` (``MAX_STEPS``, ...): ``TCMBENCH_<name>`` when set to a
    positive integer, else the default."""
    return env_positive_int(f"TCMBENCH_{name}", RUN_BOUNDS[name][0])


def bound_hint(name: str) -> str:
    """``the bound N on <what> (set TCMBENCH_<name> to raise it)``."""
    return (
        f"the bound {run_bound(name):,} on {RUN_BOUNDS[name][1]} (set TCMBENCH_{name} to raise it)"
    )
