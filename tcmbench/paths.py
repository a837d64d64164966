"""Where tcmbench keeps things, and atomic writes.

``TCMBENCH_CACHE`` (default ``~/.cache/tcmbench``) holds generated data
(synthtext-mini), prediction caches and prepared datasets
(``<cache>/datasets/<name>``). Writes that matter -- checkpoints, caches --
go through :func:`atomic_write_bytes` / :func:`atomic_dir` so an interrupted
run never leaves a half-written file that a later run would trust.

Reports the user names on the command line (``--json PATH``) go through
:func:`write_report`: ``-`` is stdout, and a target that is not a regular
file (``/dev/stdout``, a FIFO, a device, a link to one) is written in place,
since replacing it with a file would break the pipe or, as root, the device.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: temp folders are then cleaned by age only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# A temporary folder with no lock file (left by an older tcmbench, or by a
# process killed between creating it and locking it) counts as abandoned
# once it is this old. Folders with a lock are judged by the lock alone.
STALE_TEMP_HOURS = 6.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(directory: bool = False) -> int:
    """The mode a plain open()/mkdir() would give (mkstemp/mkdtemp use 0600/0700)."""
    return (0o777 if directory else 0o666) & ~_umask()


def cache_dir() -> Path:
    return Path(os.environ.get("TCMBENCH_CACHE", Path.home() / ".cache" / "tcmbench"))


def datasets_cache_dir() -> Path:
    return cache_dir() / "datasets"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; on success it replaces
    ``path`` atomically (for libraries that insist on writing to a path,
    e.g. ``safetensors.torch.save_file``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` (a folder)
    with a rename, so readers see either the old folder or the complete new
    one (checkpoint folders, generated datasets, prepared datasets).

    The temporary folder ``.NAME.XXXX.tmp`` is paired with a lock file
    ``.NAME.XXXX.tmp.lock`` held (``flock``) while this process works: the
    kernel drops the lock when the process dies, even by SIGKILL, so
    :func:`clean_stale_temps` (run here first) can tell a folder left by a
    killed run from one a live run is still writing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    lock = _hold_lock(tmp.with_name(tmp.name + ".lock"))
    try:
        yield tmp
        os.chmod(tmp, _default_mode(directory=True))
        if path.exists():
            old = tmp.with_name(tmp.name + ".old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _release_lock(tmp.with_name(tmp.name + ".lock"), lock)


def _hold_lock(lock: Path) -> int | None:
    """Create ``lock`` and hold an exclusive flock on it (None without fcntl)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        log.debug("no lock file %s (%s); stale-folder cleanup falls back to age", lock, exc)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a file system without locks: cleanup falls back to age
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(lock)
        return None
    return fd


def _release_lock(lock: Path, fd: int | None) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(lock)  # unlink while still holding it, then let go
    os.close(fd)


def _lock_state(lock: Path) -> tuple[str, int | None]:
    """``("held", None)`` when a live process holds ``lock``; ``("free",
    fd)`` when its owner is gone (``fd`` now holds it: close it when done);
    ``("missing", None)`` without a lock file (or without fcntl)."""
    if fcntl is None:
        return "missing", None
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return "missing", None
    except OSError:
        return "held", None  # cannot tell: leave it alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return "held", None
    return "free", fd


def _is_old(entry: Path, max_age_hours: float) -> bool:
    try:
        return (time.time() - entry.stat().st_mtime) / 3600 >= max_age_hours
    except OSError:
        return False


def clean_stale_temps(
    path: str | os.PathLike[str], max_age_hours: float = STALE_TEMP_HOURS
) -> list[Path]:
    """Clean up after :func:`atomic_dir` runs for ``path`` that were killed;
    returns the folders removed.

    A temporary folder whose lock a live process holds is never touched;
    one whose lock is free was left by a dead process and is removed; one
    without a lock file only when older than ``max_age_hours``. A run killed
    between its two renames leaves ``path`` missing and the previous
    version in ``.NAME.XXXX.tmp.old``: that one is put back, not deleted.
    """
    path = Path(path)
    prefix = f".{path.name}."
    try:
        entries = sorted(path.parent.iterdir())
    except OSError:
        return []
    removed = []
    for entry in entries:
        rest = entry.name[len(prefix) :] if entry.name.startswith(prefix) else ""
        if rest.endswith(".tmp.lock"):
            folder = entry.with_name(entry.name[: -len(".lock")])
            if not folder.exists() and not folder.with_name(folder.name + ".old").exists():
                state, fd = _lock_state(entry)  # a lock whose folder is gone
                if fd is not None:
                    with contextlib.suppress(OSError):
                        entry.unlink()
                    os.close(fd)
            continue
        if rest.endswith(".tmp.old"):
            lock = entry.with_name(entry.name[: -len(".old")] + ".lock")
        elif rest.endswith(".tmp") or rest.startswith("old-"):  # old-PID: before locks
            lock = entry.with_name(entry.name + ".lock")
        else:
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue
        state, fd = _lock_state(lock)
        try:
            if state == "held" or (state == "missing" and not _is_old(entry, max_age_hours)):
                continue
            if rest.endswith(".tmp.old") and not path.exists():
                os.replace(entry, path)
                log.warning("restored %s from %s, left by an interrupted run", path, entry)
                continue
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
                log.info("removed %s, left by an interrupted run", entry)
        finally:
            if fd is not None:
                if not entry.exists():
                    with contextlib.suppress(OSError):
                        lock.unlink()
                os.close(fd)
    return removed


STDOUT = "-"


def is_stdout(path: str | os.PathLike[str] | None) -> bool:
    """Whether a report option's value means standard output (``-``)."""
    return path is not None and os.fspath(path) == STDOUT


def _write_in_place(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` must be opened and written rather than replaced.

    True for existing non-regular files (FIFOs, character devices, sockets
    behind a link...) and for anything under ``/dev`` or ``/proc``:
    ``/dev/stdout`` redirected to a file resolves to that regular file, and
    replacing it would detach the shell's redirection.
    """
    absolute = os.path.abspath(os.fspath(path))
    if absolute.startswith(("/dev/", "/proc/")):
        return True
    try:
        st = os.stat(absolute)  # follows links: a link to a FIFO is a FIFO
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(st.st_mode)


def write_report(path: str | os.PathLike[str], text: str) -> None:
    """Write a report the user asked for (``--json PATH``, ``--per-image PATH``).

    ``-`` writes to stdout. A device, FIFO or a link to one is opened and
    written in place (never replaced). A regular file, or a new one, is
    written atomically; through a symlink, its target is replaced and the
    link kept.
    """
    from tcmbench.errors import TcmbenchError

    try:
        if is_stdout(path):
            sys.stdout.write(text)
            sys.stdout.flush()
        elif _write_in_place(path):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            atomic_write_text(os.path.realpath(os.fspath(path)), text)
    except OSError as exc:
        raise TcmbenchError(f"cannot write {os.fspath(path)}: {exc.strerror or exc}") from None
