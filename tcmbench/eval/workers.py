"""One scoring run on more than one core: parts of it in forked processes.

The official scripts use one core. ``tcmbench score`` may use more: a
protocol engine splits its images into contiguous parts (:func:`ranges`)
and :func:`run_parts` scores the first part in this process and each other
part in a forked child, whose result comes back pickled through a pipe.
The results are merged in part order, so the figures are the ones one
process gives (tests/test_eval_workers.py compares them bit for bit).

Forking is only used where it is safe and pays:

- only when asked for (:func:`use`; ``tcmbench score --workers``; a plain
  :func:`tcmbench.eval.evaluate` call runs in one process);
- on Linux only (fork is cheap there and shares the inputs copy-on-write;
  macOS frameworks are not fork-safe);
- only in a process without other Python threads (a lock another thread
  holds would stay held in the child forever; tqdm's monitor thread is
  the one exception, see :func:`can_fork`);
- only for parts of at least ``min_weight`` polygons (a fork and a pickled
  result cost about a millisecond; a small run stays in one process).

Anything unusual makes a part run again in this process, so that what the
user sees is exactly what one process shows: a part that raises (the error,
with its traceback, then comes from this process, and the first part in
order raises first, as a single process would), a child that dies (killed,
out of memory) or a result that cannot be pickled. Errors are the slow path
only: a run without one never scores a part twice.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import pickle
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Polygons (ground truth + detections) a part must hold before the
#: engines split the images over processes: below that a fork and a
#: pickled result cost more than they save.
MIN_PART_POLYGONS = 1_000

#: Worker processes :func:`ranges` may plan for (set by :func:`use`).
_state = {"workers": 1}


@contextmanager
def use(workers: int) -> Iterator[None]:
    """Let the protocol engines split the work over up to ``workers``
    processes while the block runs (1: one process)."""
    old = _state["workers"]
    _state["workers"] = max(1, int(workers))
    try:
        yield
    finally:
        _state["workers"] = old


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where there is one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def auto_workers() -> int:
    """What ``--workers auto`` means: the CPUs this process may use, at
    most 4 (beyond that the per-part start-up outweighs what is left)."""
    return max(1, min(available_cpus(), 4))


def can_fork() -> bool:
    """Whether forking this process is safe here (see the module doc)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and _no_other_threads()


def _no_other_threads() -> bool:
    """No thread but this one, tqdm's progress-bar monitor aside: it only
    sleeps and takes tqdm's own lock, which a child never does (children
    show no progress bar)."""
    main = threading.current_thread()
    return all(
        t is main or (type(t).__name__ == "TMonitor" and type(t).__module__.startswith("tqdm"))
        for t in threading.enumerate()
    )


def wanted() -> bool:
    """Whether splitting is on and possible here (an engine then weighs
    its images for :func:`ranges`; otherwise it need not look at them)."""
    return _state["workers"] > 1 and can_fork()


def ranges(weights: Sequence[int], min_weight: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` ranges over ``weights`` (one per image,
    e.g. its polygons) of about equal total weight: as many as the workers
    in use allow, each of at least ``min_weight``; one range covering
    everything when splitting is off, unsafe or not worth it."""
    n = len(weights)
    total = int(sum(weights))
    parts = min(_state["workers"], n, total // max(1, min_weight))
    if parts <= 1 or not can_fork():
        return [(0, n)]
    out: list[tuple[int, int]] = []
    start = 0
    acc = 0
    for i, w in enumerate(weights):
        acc += int(w)
        if acc * parts >= total * (len(out) + 1) and len(out) < parts - 1 and i + 1 < n:
            out.append((start, i + 1))
            start = i + 1
    out.append((start, n))
    return out


def map_images(
    ids: Sequence[str],
    gt: Mapping[str, Sequence[Any]],
    predictions: Mapping[str, Sequence[Any]],
    score_part: Callable[[list[str], bool], T],
    *,
    split: bool = True,
) -> list[T]:
    """``score_part(part_ids, first)`` over contiguous parts of the images
    ``ids`` (in order; ``first`` for the part this process scores), split by
    their polygons, ground truth and detections, where :func:`wanted` and
    ``split`` allow (else one part: all of them). Each part's geometry
    limits look ahead only within the part (``gt.restrict``, the
    :class:`~tcmbench.eval.bounds.Bounded` view's). The engines merge the
    results in order."""
    parts = [(0, len(ids))]
    if split and wanted():
        size = getattr(gt, "size", None) or (lambda sid: len(gt[sid]))
        dsize = getattr(predictions, "size", None) or (lambda sid: len(predictions[sid]))
        weights = [size(sid) + (dsize(sid) if sid in predictions else 0) for sid in ids]
        parts = ranges(weights, MIN_PART_POLYGONS)
    restrict = getattr(gt, "restrict", None) if len(parts) > 1 else None

    def run(lo: int, hi: int) -> T:
        part_ids = list(ids[lo:hi])
        if restrict is not None:
            restrict(part_ids)
        return score_part(part_ids, lo == 0)

    return run_parts(parts, run)


class Child:
    """A forked child computing one part; its pickled result is read from
    ``fd``."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        self.done = False

    def result(self) -> tuple[bool, Any]:
        """``(True, value)``, or ``(False, None)`` when the child raised,
        died or sent something that cannot be read."""
        chunks: list[bytes] = []
        try:
            while True:
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            self.close(kill=False)
        data = b"".join(chunks)
        if not data:
            return False, None
        try:
            ok, value = pickle.loads(data)
        except Exception:  # noqa: BLE001 - a truncated or foreign payload: rerun the part
            return False, None
        return bool(ok), value

    def close(self, kill: bool = True) -> None:
        """Stop the child when ``kill`` (this process no longer wants its
        result) and reap it; idempotent. A child that has sent its result
        may still be tearing its memory down: it is reaped later
        (:func:`_reap`) rather than waited for."""
        if self.done:
            return
        self.done = True
        with suppress(OSError):
            os.close(self.fd)
        if kill:
            with suppress(ProcessLookupError):
                os.kill(self.pid, 9)
        _unreaped.append(self.pid)
        _reap(block=kill)


#: Children that sent their result but had not exited when last looked at.
_unreaped: list[int] = []


def _reap(block: bool = False) -> None:
    """Collect the exit status of finished children (all of them, waiting,
    when ``block``; at interpreter exit too): no zombie outlives a run for
    long."""
    for pid in list(_unreaped):
        try:
            done, _status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _unreaped.remove(pid)


atexit.register(_reap, True)


#: Pipe capacity asked for (Linux's ``F_SETPIPE_SZ``; an unprivileged
#: process gets at most ``/proc/sys/fs/pipe-max-size``, 1 MiB by default):
#: a child can then write a result of that size and exit without waiting
#: for this process to read it 64 KiB at a time.
PIPE_BYTES = 1 << 20


def _widen(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:  # over the system's maximum, or not Linux: the default size
        pass


def start(fn: Callable[[], Any]) -> Child | None:
    """Fork a child that runs ``fn`` and writes ``pickle((ok, value))`` to a
    pipe; None when the fork itself fails (the part then runs here)."""
    _reap()
    read_fd, write_fd = os.pipe()
    _widen(write_fd)
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        log.debug("fork failed (%s): the part runs in this process", exc)
        return None
    if pid == 0:  # the child: never returns
        code = 0
        _state["workers"] = 1  # a worker never forks workers of its own
        try:
            os.close(read_fd)
            try:
                payload = pickle.dumps((True, fn()), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:  # noqa: BLE001 - reported as a failed part, rerun in the parent
                payload = pickle.dumps((False, None))
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view) :]
            os.close(write_fd)  # the parent reads on now, not after this process is torn down
        except BaseException:  # noqa: BLE001 - the parent sees no result and reruns the part
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    return Child(pid, read_fd)


def run_parts(parts: Sequence[tuple[int, int]], fn: Callable[[int, int], T]) -> list[T]:
    """``[fn(lo, hi) for lo, hi in parts]``, the parts after the first in
    forked children while this process computes the first (see the module
    doc for what runs again here)."""
    if len(parts) <= 1:
        return [fn(lo, hi) for lo, hi in parts]
    log.debug("images split over %d processes: %s", len(parts), list(parts))
    children: list[Child | None] = []
    try:
        for lo, hi in parts[1:]:
            children.append(start(functools.partial(fn, lo, hi)))
        out = [fn(*parts[0])]
        for child, (lo, hi) in zip(children, parts[1:]):
            ok, value = child.result() if child is not None else (False, None)
            if ok:
                out.append(cast(T, value))
            else:
                log.debug("part %d-%d runs again in this process", lo, hi)
                out.append(fn(lo, hi))
        return out
    finally:
        for child in children:
            if child is not None:
                child.close()
