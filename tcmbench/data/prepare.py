"""``datasets prepare`` and ``datasets verify``: install and check data.

Gated datasets (ICDAR RRC, Google Drive) cannot be downloaded for the user,
so ``prepare`` takes the archive or folder the user already has, checks its
sha256 when the dataset YAML knows it, and lays its content out where
:func:`tcmbench.data.dataset.locate_split` looks. The new root is assembled
next to the old one (existing files hard-linked) and swapped in with a
rename, so an interrupted prepare never leaves a half-unpacked dataset that
a later run would trust.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar

from tcmbench.data.config import DatasetConfig, SourceConfig
from tcmbench.data.dataset import (
    IMAGE_SUFFIXES,
    MANIFEST_NAME,
    default_dest,
    is_generated,
    locate_split,
    read_split_files,
    resolve_root,
    split_stats,
)
from tcmbench.errors import DatasetNotFoundError, TcmbenchError
from tcmbench.paths import atomic_dir, check_destination

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


def _archive_stem(name: str) -> str:
    lower = name.lower()
    for ext in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar"):
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def identify_source(cfg: DatasetConfig, path: Path, sha256: str | None) -> SourceConfig | None:
    """The YAML source ``path`` is: by checksum first, then by file name.

    A name match with a different known checksum is an error: the file is
    corrupt or another version, and laying it out would silently change the
    benchmark.
    """
    if sha256 is not None:
        for src in cfg.sources:
            if src.sha256 and src.sha256 == sha256:
                return src
    name = path.name.lower()
    for src in cfg.sources:
        if src.filename.lower() == name:
            if src.sha256 and sha256 is not None and src.sha256 != sha256:
                raise ChecksumError(
                    f"{path}: sha256 {sha256} does not match the known {src.filename} "
                    f"({src.sha256}); the file is corrupt or another version, download it again"
                )
            return src
    # A folder named like the archive, or the same archive repacked (a
    # tar.gz of a zip): the layout is known, the checksum cannot apply.
    stem = _archive_stem(path.name).lower()
    for src in cfg.sources:
        if src.unpack and _archive_stem(src.filename).lower() == stem:
            return src
    return None


# --------------------------------------------------------------------------- unpacking


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


# --------------------------------------------------------------------------- layout


def _layout_heads(cfg: DatasetConfig) -> set[str]:
    """First path components of every candidate path of every split."""
    heads = set()
    for sc in cfg.splits.values():
        for rel in (*sc.annotations, *sc.images):
            parts = PurePosixPath(rel).parts
            if parts and parts[0] != ".":
                heads.add(parts[0])
    for src in cfg.sources:
        if src.target:
            heads.add(PurePosixPath(src.target).parts[0])
    return heads


def _strip_wrappers(content: Path, keep: set[str]) -> Path:
    """Descend through single wrapper folders (``MSRA-TD500/``) unless the
    folder is itself part of the layout."""
    while True:
        entries = [p for p in content.iterdir() if p.name != "__MACOSX"]
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in keep:
            content = entries[0]
        else:
            return content


def _flat_target(cfg: DatasetConfig, split: str, content: Path) -> str:
    """Where a flat archive (a folder of GT files or of images) goes when the
    user names its split."""
    sc = cfg.split(split)
    files = [p for p in content.rglob("*") if p.is_file()]
    if files and all(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
        if not sc.images:
            raise PrepareError(f"{cfg.name} split {split!r} lists no image folder in its YAML")
        return next((c for c in sc.images if c != "."), sc.images[0])
    folders = [c for c in sc.annotations if not PurePosixPath(c).suffix]
    if not folders:
        raise PrepareError(
            f"{cfg.name} split {split!r} expects a single annotation file "
            f"({', '.join(sc.annotations)}); pass that file itself with --from"
        )
    return folders[0]


def _only_split(cfg: DatasetConfig) -> str | None:
    return next(iter(cfg.splits)) if len(cfg.splits) == 1 else None


# --------------------------------------------------------------------------- committing


def _merge_move(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; folders merge, files in ``src`` win."""
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge_move(child, dst / child.name)
        src.rmdir()
        return
    if dst.is_dir():
        shutil.rmtree(dst)
    elif dst.exists():
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def read_manifest(root: Path) -> list[dict[str, Any]]:
    p = root / MANIFEST_NAME
    if not p.is_file():
        return []
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s is unreadable; ignoring it", p)
        return []
    return data if isinstance(data, list) else []


@dataclass
class PreparedInput:
    """What ``prepare`` did with one ``--from`` input."""

    path: str
    placed_at: list[str]
    sha256: str | None
    source: str | None  # the YAML source it was recognised as
    checksum: str  # "verified", "no known checksum", "folder"


@dataclass
class PrepareResult:
    dataset: str
    dest: Path
    inputs: list[PreparedInput] = field(default_factory=list)


def prepare_dataset(
    cfg: DatasetConfig,
    inputs: list[str | os.PathLike[str]],
    dest: str | os.PathLike[str] | None = None,
    split: str | None = None,
    progress: bool = True,
    limits: UnpackLimits | None = None,
) -> PrepareResult:
    """Lay out ``inputs`` (archives or folders) under the dataset root.

    Each input is recognised as one of the YAML's ``sources`` (by sha256,
    then by name) and put at its ``target``; otherwise an archive or folder
    that already holds the root layout (``test/``, ``Text_at_Night/``...) is
    merged in as is, and a flat archive of GT files or images goes to the
    folder of ``split`` (required when the dataset has several splits).
    """
    if is_generated(cfg):
        raise PrepareError(
            f"{cfg.name} is generated by tcmbench on first use; there is nothing to prepare"
        )
    if not inputs:
        raise PrepareError("nothing to prepare: pass --from ARCHIVE_OR_DIR")
    if split is not None:
        cfg.split(split)  # validates the name
    dest_path = Path(dest).expanduser() if dest is not None else default_dest(cfg)
    paths = [Path(p).expanduser() for p in inputs]
    for p in paths:
        if not p.exists():
            raise DatasetNotFoundError(f"--from {p} does not exist")
        mode = p.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            # Reading a FIFO or /dev/zero would never end.
            raise PrepareError(
                f"--from {p} is not a regular file or folder (a device, FIFO or socket); "
                "pass the archive or folder itself"
            )
    # A file, device, FIFO, socket or link is refused before anything is
    # opened, renamed or deleted (a FIFO would block, a device be renamed).
    dest_path = check_destination(dest_path, "--dest")

    result = PrepareResult(dataset=cfg.name, dest=dest_path)
    manifest = read_manifest(dest_path)
    heads = _layout_heads(cfg)
    # A new root is renamed into place; an existing folder is never renamed
    # or replaced: the new content, complete, is moved into it.
    with atomic_dir(dest_path, fill_existing=True) as new_root:
        # mkdtemp makes the folder private (0700); a dataset root is not.
        umask = os.umask(0)
        os.umask(umask)
        new_root.chmod(0o777 & ~umask)
        staging_base = new_root / ".staging"
        for i, path in enumerate(paths):
            digest = sha256_file(path, progress) if path.is_file() else None
            src = identify_source(cfg, path, digest)
            staging = staging_base / str(i)
            placed = _place_input(
                cfg, path, src, split, staging, new_root, heads, progress, limits or UnpackLimits()
            )
            if path.is_dir():
                checksum = "folder (no checksum)"
            elif src is not None and src.sha256 and src.sha256 == digest:
                checksum = "verified"
            else:
                checksum = "no known checksum"
            item = PreparedInput(
                path=str(path),
                placed_at=placed,
                sha256=digest,
                source=src.filename if src is not None else None,
                checksum=checksum,
            )
            result.inputs.append(item)
            manifest.append(
                {
                    "input": path.name,
                    "sha256": digest,
                    "source": item.source,
                    "checksum": checksum,
                    "placed_at": placed,
                    "prepared_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                }
            )
        shutil.rmtree(staging_base, ignore_errors=True)
        (new_root / MANIFEST_NAME).write_text(
            json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
        )
    log.info("prepared %s at %s", cfg.name, dest_path)
    return result


def _place_input(
    cfg: DatasetConfig,
    path: Path,
    src: SourceConfig | None,
    split: str | None,
    staging: Path,
    new_root: Path,
    heads: set[str],
    progress: bool,
    limits: UnpackLimits,
) -> list[str]:
    """Unpack or copy one input into ``new_root``; returns the paths (relative
    to the root) it filled."""
    if src is not None and not src.unpack:
        if not path.is_file():
            raise PrepareError(f"{path}: expected the file {src.filename}, got a folder")
        target = src.target or src.filename
        staging.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staging / "file")
        _merge_move(staging / "file", new_root / target)
        return [target]

    if path.is_file() and not is_archive(path):
        # A single annotation file (e.g. ArT's train_labels.json) that the
        # YAML does not list: it goes where the named split expects a file.
        chosen = split or _only_split(cfg)
        files = (
            [c for c in cfg.split(chosen).annotations if PurePosixPath(c).suffix] if chosen else []
        )
        if not files:
            raise PrepareError(
                f"{path} is not a zip or tar archive and not a known {cfg.name} file; "
                f"known files: {', '.join(s.filename for s in cfg.sources) or 'none'}"
            )
        staging.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staging / "file")
        _merge_move(staging / "file", new_root / files[0])
        return [files[0]]

    content_root = staging / "content"
    _unpack(path, content_root, progress, limits)
    if src is not None and src.target:
        content = _strip_wrappers(content_root, keep=set())
        _merge_move(content, new_root / src.target)
        return [src.target]

    content = _strip_wrappers(content_root, keep=heads)
    entries = sorted(p.name for p in content.iterdir())
    if not entries:
        raise PrepareError(f"{path} is empty")
    if heads & set(entries):
        for name in entries:
            _merge_move(content / name, new_root / name)
        return entries
    chosen = split or _only_split(cfg)
    if chosen is None:
        layout = ", ".join(sorted(heads)) or "(none)"
        raise PrepareError(
            f"cannot tell where the content of {path} belongs: it is not a known {cfg.name} "
            f"archive ({', '.join(s.filename for s in cfg.sources) or 'none listed'}) and "
            f"holds none of {layout}; pass --split SPLIT to put a flat folder of GT files "
            "or images in that split"
        )
    target = _flat_target(cfg, chosen, content)
    _merge_move(content, new_root / target)
    return [target]


# --------------------------------------------------------------------------- verify


@dataclass
class Check:
    """One line of ``datasets verify``: ok / mismatch / error / absent / info."""

    what: str
    status: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("mismatch", "error")


def _checksum_checks(
    cfg: DatasetConfig, root: Path, progress: bool
) -> tuple[list[Check], SourceConfig | None]:
    """Checks of the archives present, and the source ``root`` itself is
    when it is a file (it tells which split a GT zip holds)."""
    checks: list[Check] = []
    if root.is_file():
        digest = sha256_file(root, progress)
        try:
            src = identify_source(cfg, root, digest)
        except ChecksumError as exc:
            return [Check(f"sha256 {root.name}", "mismatch", str(exc))], None
        if src is not None and src.sha256 == digest:
            checks.append(Check(f"sha256 {root.name}", "ok", f"{digest} = known {src.filename}"))
        else:
            checks.append(
                Check(f"sha256 {root.name}", "info", f"{digest} (no known checksum for this file)")
            )
        return checks, src
    for src in cfg.sources:
        if not src.sha256:
            continue
        for rel in dict.fromkeys([src.target or src.filename, src.filename]):
            p = root / rel
            if p.is_file():
                digest = sha256_file(p, progress)
                status = "ok" if digest == src.sha256 else "mismatch"
                detail = f"{digest}" + ("" if status == "ok" else f", expected {src.sha256}")
                checks.append(Check(f"sha256 {rel}", status, detail))
                break
    for entry in read_manifest(root):
        checks.append(
            Check(
                f"prepared from {entry.get('input')}",
                "info",
                f"sha256 {entry.get('sha256') or '-'} ({entry.get('checksum')}) "
                f"at {entry.get('prepared_at')}",
            )
        )
    return checks, None


def _splits_to_check(
    cfg: DatasetConfig, root: Path, requested: list[str] | None, root_source: SourceConfig | None
) -> list[str]:
    if requested:
        for s in requested:
            cfg.split(s)
        return list(requested)
    if root.is_file():
        # One GT zip covers one split: the one its source names, else "test".
        split = root_source.split if root_source is not None else None
        if split is not None and split in cfg.splits:
            return [split]
        return ["test"] if "test" in cfg.splits else [next(iter(cfg.splits))]
    return list(cfg.splits)


def _count_checks(name: str, expected: dict[str, int | None], stats: dict[str, Any]) -> list[Check]:
    checks = []
    for key, want in expected.items():
        got = stats[key]
        if want is None:
            checks.append(Check(f"split {name} {key}", "info", f"{got} (no expected count)"))
        else:
            status = "ok" if got == want else "mismatch"
            checks.append(Check(f"split {name} {key}", status, f"{got}, expected {want}"))
    return checks


def _verify_generated(
    cfg: DatasetConfig, data_root: str | os.PathLike[str] | None, splits: list[str] | None
) -> list[Check]:
    """A generated set has no archives: generate (or read the cache) and
    compare the counts, which pins the generator's output."""
    from tcmbench.data.dataset import load_split

    checks = [Check("root", "info", f"generated by {cfg.generator or 'tcmbench'}")]
    for name in splits or list(cfg.splits):
        sc = cfg.split(name)
        try:
            samples, _ = load_split(cfg.name, name, data_root=data_root)
        except TcmbenchError as exc:
            checks.append(Check(f"split {name}", "error", str(exc)))
            continue
        checks += _count_checks(name, sc.expected.as_dict(), split_stats(samples))
    return checks


def verify_dataset(
    cfg: DatasetConfig,
    data_root: str | os.PathLike[str] | None = None,
    splits: list[str] | None = None,
    progress: bool = True,
) -> list[Check]:
    """Presence, checksums of archives that are present, and per-split
    counts against the YAML's expected counts."""
    if is_generated(cfg):
        return _verify_generated(cfg, data_root, splits)
    root = resolve_root(cfg, data_root)
    checks = [Check("root", "ok", str(root))]
    sums, root_source = _checksum_checks(cfg, root, progress)
    checks += sums
    explicit = bool(splits)
    found_any = False
    for name in _splits_to_check(cfg, root, splits, root_source):
        sc = cfg.split(name)
        try:
            files = locate_split(cfg, name, root)
        except DatasetNotFoundError as exc:
            checks.append(Check(f"split {name}", "error" if explicit else "absent", str(exc)))
            continue
        found_any = True
        try:
            samples, _ = read_split_files(files, False, dict(sc.options))
        except TcmbenchError as exc:
            checks.append(Check(f"split {name}", "error", str(exc)))
            continue
        checks += _count_checks(name, sc.expected.as_dict(), split_stats(samples))
        if files.images is None:
            checks.append(
                Check(f"split {name} image files", "absent", "no image folder (annotations only)")
            )
        else:
            missing = sum(
                1 for s in samples if not s.image_path or not Path(s.image_path).is_file()
            )
            status = "ok" if missing == 0 else "mismatch"
            checks.append(
                Check(
                    f"split {name} image files",
                    status,
                    f"{len(samples) - missing} of {len(samples)} found",
                )
            )
    if not found_any:
        checks.append(Check("splits", "error", f"no split of {cfg.name} found under {root}"))
    return checks
