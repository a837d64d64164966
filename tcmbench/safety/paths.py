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

Output *folders* the user names (``--out``, ``--dest``, ``--visualize``,
``--save-predictions``, ``--report``, ``TCMBENCH_CACHE``) go through
:func:`check_destination`: an existing folder or a new path, anything else
refused with one line and left untouched. Files named after a sample id are
joined by :func:`safe_child` only, so an id can never write elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import time
from collections.abc import Iterable, Iterator
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
    """``TCMBENCH_CACHE``, else ``~/.cache/tcmbench``: checked like every
    destination (:func:`check_destination`), so a file, a device or a link
    there is one clear error instead of a traceback at the first write."""
    raw = os.environ.get("TCMBENCH_CACHE")
    if raw:
        return check_destination(raw, "TCMBENCH_CACHE")
    # The default may be a link the user made (~/.cache on another disk):
    # what counts is where it leads.
    default = Path.home() / ".cache" / "tcmbench"
    check_destination(os.path.realpath(default), "the cache folder (set TCMBENCH_CACHE)")
    return default


def datasets_cache_dir() -> Path:
    return cache_dir() / "datasets"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    import tempfile  # here, not at the top: a `score` run that writes nothing never needs it

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
    import tempfile  # here, not at the top: a `score` run that writes nothing never needs it

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
def atomic_dir(path: str | os.PathLike[str], *, fill_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` (a folder)
    with a rename, so readers see either the old folder or the complete new
    one (checkpoint folders, generated datasets, prepared datasets).

    ``path`` must be a folder or absent: anything else (a file, a device, a
    FIFO, a symbolic link, even to a folder) is refused with a
    :class:`~tcmbench.errors.TcmbenchError` before anything is created, so a
    swap never renames what is not a folder tcmbench can replace.

    ``fill_existing``: an existing ``path`` is a folder tcmbench did not
    create (``datasets prepare --dest``, an empty ``--report`` folder): it is
    never renamed or deleted; the complete new content, assembled in the
    temporary folder, is moved into it entry by entry (:func:`move_into`).

    The temporary folder ``.NAME.XXXX.tmp`` is paired with a lock file
    ``.NAME.XXXX.tmp.lock`` held (``flock``) while this process works: the
    kernel drops the lock when the process dies, even by SIGKILL, so
    :func:`clean_stale_temps` (run here first) can tell a folder left by a
    killed run from one a live run is still writing.
    """
    import shutil
    import tempfile

    path = Path(path)
    _refuse_non_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    lock = _hold_lock(tmp.with_name(tmp.name + ".lock"))
    try:
        yield tmp
        os.chmod(tmp, _default_mode(directory=True))
        _refuse_non_folder(path)  # it may have changed while we worked
        if fill_existing and path.is_dir():
            move_into(tmp, path)
            shutil.rmtree(tmp, ignore_errors=True)
        elif path.exists():
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


def _refuse_non_folder(path: Path) -> None:
    """TcmbenchError unless ``path`` is absent or a real folder (not a link)."""
    from tcmbench.errors import TcmbenchError

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise TcmbenchError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise TcmbenchError(f"{path} is {_kind(st.st_mode)}, not a folder; refusing to replace it")


def move_into(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move the entries of folder ``src`` into the existing folder ``dst``:
    a file replaces the file of the same name (``os.replace``, atomic per
    file), a folder is merged into the folder of the same name. A name that
    is a folder on one side and not on the other, or a device / FIFO /
    socket in ``dst``, is a TcmbenchError (naming it) rather than a
    deletion: no folder or special file of ``dst`` is ever removed, and
    everything without a new version stays. A link in ``dst`` to a folder
    is merged through (the user's own layout)."""
    from tcmbench.errors import TcmbenchError

    src, dst = Path(src), Path(dst)
    for child in sorted(src.iterdir()):
        target = dst / child.name
        if child.is_dir() and not child.is_symlink():
            if not target.exists() and not target.is_symlink():
                os.replace(child, target)
            elif target.is_dir():
                move_into(child, target)
            else:
                raise TcmbenchError(
                    f"{target} exists and is not a folder, but the new content has a folder "
                    "there; move it away first"
                )
        elif target.is_dir():
            raise TcmbenchError(
                f"{target} is a folder, but the new content has a file there; move it away first"
            )
        else:
            try:
                mode = os.lstat(target).st_mode
            except FileNotFoundError:
                mode = stat.S_IFREG
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                raise TcmbenchError(f"{target} is {_kind(mode)}; refusing to replace it")
            os.replace(child, target)


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
            import shutil

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


# --------------------------------------------------------------------------- names, destinations

#: Bytes in one path component that file systems take (ext4, APFS, NTFS...).
NAME_MAX = 255

_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    """What a file-system entry is, in words, from its ``st_mode``."""
    return next((words for test, words in _KINDS if test(mode)), "a special file")


def name_problem(name: str, max_bytes: int | None = NAME_MAX) -> str | None:
    """Why ``name`` cannot be used as one file name inside a folder, or None.

    A name is one path component: not empty, not ``.`` or ``..``, without
    ``/`` or ``\\`` (a separator on Windows, and in zip member names), NUL,
    and at most :data:`NAME_MAX` bytes in UTF-8. It is a lexical check: see
    :func:`safe_child` for the check after resolution.
    """
    if not isinstance(name, str) or not name:
        return "an empty name"
    if name in (".", ".."):
        return f"{name!r} names a folder, not a file"
    if "/" in name or "\\" in name:
        return "a path separator ('/' or '\\\\') in a name"
    if "\0" in name:
        return "a NUL character in a name"
    if max_bytes is not None and len(name) * 4 > max_bytes:  # UTF-8 takes <= 4 bytes a character
        size = len(name.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            return f"a name of {size} bytes (file systems take {max_bytes})"
    return None


def check_names(folder: str | os.PathLike[str], names: Iterable[str], option: str) -> None:
    """Every one of ``names`` can be written under ``folder`` (the lexical
    checks of :func:`safe_child`, fast enough for 858,750 SynthText ids):
    lets a command refuse a hostile id before it runs inference. Raises
    :class:`~tcmbench.errors.UnsafePathError` naming the first bad one."""
    from tcmbench.errors import UnsafePathError

    for name in names:
        problem = name_problem(name)
        if problem is not None:
            raise UnsafePathError(
                f"{option} {os.fspath(folder)}: cannot write {name!r:.80}: {problem}"
            )


def _inside(real_folder: str, real_path: str) -> bool:
    return os.path.commonpath([real_folder, real_path]) == real_folder


def safe_child(folder: str | os.PathLike[str], name: str, real_folder: str | None = None) -> Path:
    """``folder / name`` for an output written from a name tcmbench did not
    choose (a sample id: ``<id>.png``, ``res_<id>.txt``...).

    The one place such paths are joined, so that a hostile id can never
    write elsewhere: ``name`` must pass :func:`name_problem`, and the
    joined path, resolved (symbolic links included: an existing link named
    ``name`` that leads out of the folder is refused too), must lie inside
    the resolved ``folder``. Raises :class:`~tcmbench.errors.UnsafePathError`
    naming the folder and the name. A loop writing many names into one
    folder passes ``real_folder`` (``os.path.realpath(folder)``, resolved
    once) instead of resolving it per name.
    """
    from tcmbench.errors import UnsafePathError

    problem = name_problem(name)
    if problem is not None:
        raise UnsafePathError(f"{os.fspath(folder)}: refusing to write {name!r}: {problem}")
    if real_folder is None:
        real_folder = os.path.realpath(folder)
    joined = os.path.join(real_folder, name)
    # ``name`` is one component under a resolved folder: only a link of
    # that name can lead elsewhere (one lstat instead of a full realpath).
    target = os.path.realpath(joined) if os.path.islink(joined) else joined
    if not _inside(real_folder, target) or target == real_folder:
        raise UnsafePathError(
            f"{os.fspath(folder)}: refusing to write {name!r}: it resolves to {target}, "
            "outside the folder"
        )
    return Path(folder) / name


def resolve_inside(root: str | os.PathLike[str], relative: str) -> Path | None:
    """``root / relative`` if, resolved (links included), it lies inside the
    resolved ``root``; None when it escapes (an absolute name, ``..``, a
    link that leads out). For paths a dataset names itself (SynthText
    ``imnames``, COCO ``file_name``), which must never reach outside the
    data root."""
    if not relative or "\0" in relative:
        return None
    rel = relative.replace("\\", "/")
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):  # /abs, C:/...
        return None
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, rel))
    if not _inside(real_root, target):
        return None
    return Path(root) / rel


def _label(option: str, path: str | os.PathLike[str]) -> str:
    """``--dest /x`` for an option, ``TCMBENCH_CACHE=/x`` for a variable."""
    sep = "=" if option[:1].isalpha() and option.isupper() else " "
    return f"{option}{sep}{os.fspath(path)}"


def check_destination(path: str | os.PathLike[str], option: str) -> Path:
    """An output folder the user named (``datasets prepare --dest``,
    ``predict --out``, ``evaluate --save-predictions / --visualize /
    --report``, ``experiment run --out``, ``TCMBENCH_CACHE``): an existing
    folder or a new path; returns it (``~`` expanded).

    Refused with one line (:class:`~tcmbench.errors.TcmbenchError`): a
    regular file, a device, a FIFO, a socket, a symbolic link (even to a
    folder: a swap would rename the link, and writes through it land where
    the user did not say), and a new path below something that is not a
    folder. Only ``lstat``/``stat`` are used: nothing is opened (a FIFO
    would block), created, renamed or deleted.

    Reports written to a file (``--json``, ``--per-image``) are not
    destinations: see :func:`write_report` (``-`` and ``/dev/stdout``
    work there).
    """
    from tcmbench.errors import TcmbenchError

    p = Path(os.path.expanduser(os.fspath(path)))
    label = _label(option, p)
    if not os.fspath(p):
        raise TcmbenchError(f"{option}: an empty path; give a folder")
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        _check_new_path(p, label)
        return p
    except OSError as exc:  # ENOTDIR (below a file), EACCES, ELOOP, ENAMETOOLONG
        raise TcmbenchError(f"{label}: {exc.strerror or exc}; give a folder") from None
    if stat.S_ISLNK(st.st_mode):
        raise TcmbenchError(
            f"{label} is a symbolic link (to {os.readlink(p)}), not a folder; give the folder "
            "itself"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise TcmbenchError(
            f"{label} is {_kind(st.st_mode)}, not a folder; give an existing folder or a new path"
        )
    return p


def _check_new_path(p: Path, label: str) -> None:
    """A path that does not exist yet: its nearest existing ancestor must
    be a folder (or a link to one), so creating it cannot fail halfway."""
    from tcmbench.errors import TcmbenchError

    for parent in p.absolute().parents:
        try:
            st = os.stat(parent)
        except FileNotFoundError:
            if os.path.islink(parent):
                raise TcmbenchError(
                    f"{label}: {parent} is a link to nothing; give a folder"
                ) from None
            continue
        except OSError as exc:
            raise TcmbenchError(f"{label}: {parent}: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise TcmbenchError(f"{label}: {parent} is {_kind(st.st_mode)}, not a folder")
        return
