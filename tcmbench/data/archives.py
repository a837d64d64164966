"""Unpacking what a user gives ``datasets prepare``: archives, safely.

An archive from the web is hostile input: member names that climb out of
the destination, links, devices, names longer than the file system allows,
methods Python cannot read and decompression bombs. Every member is checked
before a byte is written, the total and the ratio to the archive's size are
bounded (:class:`UnpackLimits`), and a damaged archive is one line naming it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import lzma
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar

from tcmbench.errors import TcmbenchError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ChecksumError(TcmbenchError):
    """A file's sha256 differs from the one the dataset YAML records."""


class PrepareError(TcmbenchError):
    """An input that ``prepare`` cannot lay out (not an archive, unsafe
    member paths, or no way to tell where its content belongs)."""


# --------------------------------------------------------------------------- limits

DEFAULT_MAX_UNPACKED = 100 << 30  # SynthText.zip, the largest source, unpacks to ~41 GB
DEFAULT_MAX_RATIO = 100.0  # GT text and JSON compress < 20x; images ~1x
RATIO_FLOOR = 64 << 20  # below this, any ratio is harmless
NAME_MAX = 255  # bytes in one path component on Linux/macOS file systems

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"100G"``, ``"512M"``, ``"1.5T"`` or plain bytes -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if m is None:
        raise ValueError(f"{text!r} is not a size (e.g. 100G, 512M, 4096)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@dataclass(frozen=True)
class UnpackLimits:
    """What one archive may unpack to: a total (``max_bytes``) and a ratio
    to the archive's own size (``max_ratio``, only past :data:`RATIO_FLOOR`).
    ``None`` (or 0) turns a limit off. A 300 KB zip must not fill a disk."""

    max_bytes: int | None = DEFAULT_MAX_UNPACKED
    max_ratio: float | None = DEFAULT_MAX_RATIO

    def check(self, archive: Path, archive_size: int, total: int) -> None:
        if self.max_bytes and total > self.max_bytes:
            raise PrepareError(
                f"{archive} unpacks to more than {format_size(self.max_bytes)} (the limit); "
                "if that is expected, raise it with --max-unpacked-size"
            )
        if self.max_ratio and total > RATIO_FLOOR and total > self.max_ratio * archive_size:
            raise PrepareError(
                f"{archive} ({format_size(archive_size)}) unpacks to more than "
                f"{format_size(total)}, over {self.max_ratio:g}x its size: refusing what looks "
                "like a decompression bomb; if it is expected, raise --max-ratio (0 = no limit)"
            )


def _progress(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    # disable=None: shown only when stderr is a terminal.
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        leave=False,
        disable=None if enabled else True,
    )


def sha256_file(path: Path, progress: bool = False) -> str:
    h = hashlib.sha256()
    with (
        open(path, "rb") as f,
        _progress(path.stat().st_size, f"sha256 {path.name}", progress) as bar,
    ):
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def _safe_member(name: str, archive: Path | None = None) -> PurePosixPath | None:
    """The member's relative path, None for entries to skip; raises on
    paths that would escape the destination or that no file system takes."""
    where = f"{archive}: " if archive is not None else ""
    p = PurePosixPath(name.replace("\\", "/"))
    if not p.parts or "__MACOSX" in p.parts or p.name == ".DS_Store":
        return None
    if p.is_absolute() or ".." in p.parts:
        raise PrepareError(
            f"{where}archive member {name!r} would be written outside the dataset folder; refusing"
        )
    long = next((part for part in p.parts if len(part.encode("utf-8", "replace")) > NAME_MAX), None)
    if long is not None:
        raise PrepareError(
            f"{where}archive member {name[:80]!r}...: a path component of "
            f"{len(long.encode('utf-8', 'replace'))} bytes (file systems allow {NAME_MAX})"
        )
    return p


_M = TypeVar("_M")


def _plan(
    archive: Path, entries: Iterable[tuple[str, bool, _M]]
) -> list[tuple[PurePosixPath, bool, _M]]:
    """Safe relative paths of the members to unpack, refusing clashes: the
    same file twice (which one would win is up to the unpacker: a silently
    different dataset) or a path that is both a file and a folder."""
    plan = []
    files: dict[PurePosixPath, str] = {}
    folders: dict[PurePosixPath, str] = {}
    for name, is_dir, member in entries:
        rel = _safe_member(name, archive)
        if rel is None:
            continue
        if is_dir:
            folders.setdefault(rel, name)
        else:
            if rel in files:
                raise PrepareError(
                    f"{archive}: member {str(rel)!r} appears twice ({files[rel]!r} and {name!r}); "
                    "refusing to pick one"
                )
            files[rel] = name
        for parent in list(rel.parents)[:-1]:
            folders.setdefault(parent, name)
        plan.append((rel, is_dir, member))
    both = sorted(set(files) & set(folders))
    if both:
        rel = both[0]
        raise PrepareError(
            f"{archive}: {str(rel)!r} is both a file ({files[rel]!r}) and a folder "
            f"({folders[rel]!r}); refusing"
        )
    return plan


# What a damaged archive raises while it is read: zipfile.BadZipFile (bad
# CRC, bad headers), zlib/lzma errors (bad compressed data), EOFError and
# tarfile.ReadError (truncation), OSError (gzip.BadGzipFile), and from
# zipfile NotImplementedError / RuntimeError (methods, encryption).
_READ_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)

# Compression methods Python's zipfile unpacks; others (Deflate64 = 9, PPMd,
# ...) raise NotImplementedError half-way through an unpack.
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ZIP_METHOD_NAMES = {9: "Deflate64", 93: "Zstandard", 95: "XZ", 98: "PPMd", 99: "AES"}


def _damaged(archive: Path, exc: BaseException, member: str | None = None) -> PrepareError:
    where = f"{archive}" + (f", member {member!r}" if member else "")
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return PrepareError(f"{where}: damaged or truncated archive ({detail}); download it again")


def _write_member(
    archive: Path, name: str, open_src: Callable[[], IO[bytes] | None], target: Path, size: int
) -> None:
    """Copy one member to ``target``, checking that it holds exactly the
    ``size`` bytes its header declares (the limits were checked on those).
    Read errors blame the archive, write errors the destination."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        dst = open(target, "wb")  # noqa: SIM115  (closed below)
    except OSError as exc:
        raise PrepareError(
            f"{archive}: cannot unpack member {name!r} to {target}: {exc.strerror or exc}"
        ) from None
    written = 0
    with dst:
        try:
            src = open_src()
        except _READ_ERRORS as exc:
            raise _damaged(archive, exc, name) from None
        if src is None:
            return
        with src:
            while True:
                try:
                    chunk = src.read(_CHUNK)
                except _READ_ERRORS as exc:
                    raise _damaged(archive, exc, name) from None
                if not chunk:
                    break
                written += len(chunk)
                if written > size:
                    break
                try:
                    dst.write(chunk)
                except OSError as exc:
                    raise PrepareError(
                        f"{archive}: cannot write member {name!r} to {target}: "
                        f"{exc.strerror or exc}"
                    ) from None
    if written != size:
        raise _damaged(archive, ValueError(f"{written} bytes where its header says {size}"), name)


def _extract_zip(archive: Path, out: Path, progress: bool, limits: UnpackLimits) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except _READ_ERRORS as exc:
        raise _damaged(archive, exc) from None
    with zf:
        plan = _plan(archive, ((m.filename, m.is_dir(), m) for m in zf.infolist()))
        for _, is_dir, m in plan:
            if is_dir:
                continue
            if m.flag_bits & 0x1:
                raise PrepareError(
                    f"{archive}: member {m.filename!r} is encrypted; tcmbench does not take "
                    "passwords: unpack the archive yourself and pass the folder with --from"
                )
            if m.compress_type not in _ZIP_METHODS:
                method = _ZIP_METHOD_NAMES.get(m.compress_type, f"method {m.compress_type}")
                raise PrepareError(
                    f"{archive}: member {m.filename!r} is compressed with {method}, which "
                    "Python cannot unpack: unpack it with unzip or 7-Zip and pass the folder"
                )
        total = sum(m.file_size for _, is_dir, m in plan if not is_dir)
        limits.check(archive, archive.stat().st_size, total)
        with _progress(total, f"unpack {archive.name}", progress) as bar:
            for rel, is_dir, m in plan:
                target = out.joinpath(*rel.parts)
                if is_dir:
                    _mkdir(archive, m.filename, target)
                    continue
                _write_member(
                    archive, m.filename, functools.partial(zf.open, m), target, m.file_size
                )
                bar.update(m.file_size)


def _extract_tar(archive: Path, out: Path, progress: bool, limits: UnpackLimits) -> None:
    archive_size = archive.stat().st_size
    try:
        tf = tarfile.open(archive)  # noqa: SIM115  (closed by the with below)
    except _READ_ERRORS as exc:
        raise _damaged(archive, exc) from None
    with tf:
        members = []
        total = 0
        try:
            # Member by member, so a bomb is refused before it is all inflated.
            for m in tf:
                if not (m.isfile() or m.isdir()):
                    if _safe_member(m.name, archive) is not None:
                        log.warning(
                            "%s: skipping %s (links and special files are not unpacked)",
                            archive,
                            m.name,
                        )
                    continue
                total += m.size if m.isfile() else 0
                limits.check(archive, archive_size, total)
                members.append(m)
        except _READ_ERRORS as exc:
            raise _damaged(archive, exc) from None
        plan = _plan(archive, ((m.name, m.isdir(), m) for m in members))
        with _progress(total, f"unpack {archive.name}", progress) as bar:
            for rel, is_dir, m in plan:
                target = out.joinpath(*rel.parts)
                if is_dir:
                    _mkdir(archive, m.name, target)
                    continue
                _write_member(archive, m.name, functools.partial(tf.extractfile, m), target, m.size)
                bar.update(m.size)


def _mkdir(archive: Path, name: str, target: Path) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrepareError(
            f"{archive}: cannot unpack member {name!r} to {target}: {exc.strerror or exc}"
        ) from None


def _copy_tree(src: Path, out: Path, progress: bool) -> None:
    files = [p for p in src.rglob("*") if p.is_file()]
    with _progress(sum(p.stat().st_size for p in files), f"copy {src.name}", progress) as bar:
        for p in files:
            target = out / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
            bar.update(p.stat().st_size)


def _is_zip(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except _READ_ERRORS:  # a damaged compressed stream: not something we can unpack
        return False


def is_archive(path: Path) -> bool:
    return path.is_file() and (_is_zip(path) or _is_tar(path))


def _unpack(path: Path, out: Path, progress: bool, limits: UnpackLimits) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        _copy_tree(path, out, progress)
    elif _is_zip(path):
        _extract_zip(path, out, progress, limits)
    elif _is_tar(path):
        _extract_tar(path, out, progress, limits)
    else:
        raise PrepareError(f"{path} is not a zip or tar archive nor a folder")
