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
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
    one (checkpoint folders, generated datasets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, _default_mode(directory=True))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
