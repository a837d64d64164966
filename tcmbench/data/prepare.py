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
import json
import logging
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tcmbench.data.archives import (
    ChecksumError,
    PrepareError,
    UnpackLimits,
    _unpack,
    is_archive,
    sha256_file,
)
from tcmbench.data.config import DatasetConfig, SourceConfig
from tcmbench.data.dataset import (
    IMAGE_SUFFIXES,
    MANIFEST_NAME,
    default_dest,
    is_generated,
)
from tcmbench.errors import DatasetNotFoundError
from tcmbench.safety.paths import atomic_dir, check_destination

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


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
