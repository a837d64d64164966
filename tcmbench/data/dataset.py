"""Datasets by name: configs, data-root resolution and split loading.

Every command that takes ``--dataset NAME`` goes through :func:`load_split`:
it finds the dataset's YAML (built-in or plugin), resolves where its files
are (``--data-root``, then ``$TCMBENCH_DATA/<name>``, then the tcmbench
cache), picks the split's annotation and image paths among the YAML's
candidates and hands them to the format's reader. Missing data is reported
with where to get it and the exact ``prepare`` command, never a traceback.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcmbench.data.config import (
    DatasetConfig,
    DatasetConfigError,
    SplitConfig,
    config_files,
    load_config_file,
)
from tcmbench.data.ids import check_sample_ids
from tcmbench.data.schema import Sample
from tcmbench.data.source import ParseReport
from tcmbench.errors import DatasetNotFoundError, ImageReadError, PluginError

log = logging.getLogger(__name__)

DATA_ENV = "TCMBENCH_DATA"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
# Suffixes of annotation files: a folder holding such files directly is
# taken as a split's annotations when it matches none of the YAML's paths.
ANNOTATION_SUFFIXES = frozenset({".txt", ".gt", ".json", ".jsonl", ".mat", ".xml", ".parquet"})
# Where the built-in synthetic set is generated when its YAML names no generator.
_DEFAULT_GENERATORS = {"synthtext-mini": "tcmbench.data.synthetic.generate:load_synthtext_mini"}
# Written by ``prepare`` into the root; never an annotation file.
MANIFEST_NAME = ".tcmbench-prepared.json"


def list_dataset_configs() -> dict[str, DatasetConfig]:
    """Every dataset config, built-in and plugin-registered, by name.

    Not cached: a plugin registered at run time (tests, notebooks) shows up
    on the next call, and parsing a dozen small YAMLs costs milliseconds.
    """
    from tcmbench.contract.registry import dataset_config_paths

    configs: dict[str, DatasetConfig] = {}
    for path in config_files(dataset_config_paths()):
        cfg = load_config_file(path)
        if cfg.name in configs:
            raise PluginError(
                f"dataset {cfg.name!r} defined twice: in {configs[cfg.name].path} and in {path}"
            )
        configs[cfg.name] = cfg
    return dict(sorted(configs.items()))


def get_dataset_config(name: str) -> DatasetConfig:
    configs = list_dataset_configs()
    if name not in configs:
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}; known: {', '.join(configs) or 'none'} "
            "(a plugin can add one through the register_datasets hook)"
        )
    return configs[name]


def is_generated(cfg: DatasetConfig) -> bool:
    """True for datasets made by code (synthtext-mini) rather than files."""
    return cfg.generator is not None or cfg.name in _DEFAULT_GENERATORS


def default_roots(cfg: DatasetConfig) -> list[Path]:
    """Where a dataset is looked for without ``--data-root``, in order."""
    from tcmbench.safety.paths import datasets_cache_dir

    roots = []
    env = os.environ.get(DATA_ENV)
    if env:
        roots.append(Path(env).expanduser() / cfg.name)
    roots.append(datasets_cache_dir() / cfg.name)
    return roots


def default_dest(cfg: DatasetConfig) -> Path:
    """Where ``prepare`` writes by default: the first default root."""
    return default_roots(cfg)[0]


def find_root(cfg: DatasetConfig, data_root: str | os.PathLike[str] | None = None) -> Path | None:
    """Like :func:`resolve_root` but None instead of an error."""
    if data_root is not None:
        p = Path(data_root).expanduser()
        return p if p.exists() else None
    for root in default_roots(cfg):
        if root.exists():
            return root
    return None


def missing_message(cfg: DatasetConfig, looked: list[str]) -> str:
    """One line: what is missing, where we looked, how to get it, the command."""
    how = cfg.how_to_get or (f"see {cfg.homepage}" if cfg.homepage else "")
    parts = [f"dataset {cfg.name!r} not found (looked in: {'; '.join(looked)})"]
    if how:
        parts.append(f"get it: {how.rstrip('.')}")
    parts.append(
        f"then run `{cfg.prepare_command()}`, or pass --data-root PATH (a folder or a GT zip)"
    )
    return "; ".join(parts)


def resolve_root(cfg: DatasetConfig, data_root: str | os.PathLike[str] | None = None) -> Path:
    """The dataset's root: ``data_root`` (a folder or a GT zip) when given,
    else ``$TCMBENCH_DATA/<name>``, else ``<cache>/datasets/<name>``.

    Raises :class:`DatasetNotFoundError` saying where to get the data and
    the exact prepare command.
    """
    if data_root is not None:
        p = Path(data_root).expanduser()
        if not p.exists():
            raise DatasetNotFoundError(missing_message(cfg, [f"--data-root {p} (does not exist)"]))
        return p
    looked = []
    env = os.environ.get(DATA_ENV)
    if not env:
        looked.append(f"${DATA_ENV}/{cfg.name} (${DATA_ENV} unset)")
    for root in default_roots(cfg):
        if root.exists():
            return root
        looked.append(str(root))
    raise DatasetNotFoundError(missing_message(cfg, looked))


@dataclass(frozen=True)
class SplitFiles:
    """Where one split's files are: annotations (folder, zip or file) and
    images (folder or None)."""

    annotations: Path
    images: Path | None
    format: str


def _format_pattern(fmt: str) -> str:
    from tcmbench.contract.registry import dataset_formats

    spec = dataset_formats().get(fmt)
    return spec.pattern if spec is not None else ""


def _holds_annotations(folder: Path, pattern: str) -> bool:
    """Does ``folder`` itself (not a sub-folder) hold annotation files?

    The format's pattern is informative (Total-Text also comes as ``.mat``),
    so any file with an annotation suffix counts too.
    """
    for p in folder.iterdir():
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() in IMAGE_SUFFIXES:
            continue
        if (
            pattern and fnmatch.fnmatch(p.name, pattern)
        ) or p.suffix.lower() in ANNOTATION_SUFFIXES:
            return True
    return False


def _holds_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file())


def _first_existing(root: Path, candidates: tuple[str, ...]) -> Path | None:
    for rel in candidates:
        p = root / rel
        if p.exists():
            return p
    return None


def locate_split(cfg: DatasetConfig, split: str, root: Path) -> SplitFiles:
    """Pick the split's annotation and image paths under ``root``.

    ``root`` may be a GT zip or a single annotation file (used as the
    annotations), a folder laid out as the YAML says (first existing
    candidate wins), or a folder that directly holds the annotation files.
    """
    sc = cfg.split(split)
    fmt = sc.format or cfg.format
    if root.is_file():
        return SplitFiles(annotations=root, images=None, format=fmt)
    ann = _first_existing(root, sc.annotations)
    if ann is not None:
        return SplitFiles(annotations=ann, images=_first_existing(root, sc.images), format=fmt)
    if _holds_annotations(root, _format_pattern(fmt)):
        return SplitFiles(
            annotations=root, images=root if _holds_images(root) else None, format=fmt
        )
    wanted = ", ".join(sc.annotations) or "(none listed)"
    raise DatasetNotFoundError(
        f"no annotations for {cfg.name} split {split!r} under {root} (looked for: {wanted}); "
        f"run `{cfg.prepare_command()}` or pass --data-root pointing at the split's "
        "GT zip or folder"
    )


def read_split_files(
    files: SplitFiles, skip_invalid: bool = False, options: dict[str, Any] | None = None
) -> tuple[list[Sample], ParseReport]:
    """Hand a split's files to its format's reader (any registered format)."""
    from tcmbench.data.formats.api import read_annotations

    return read_annotations(
        files.format,
        files.annotations,
        images=files.images,
        skip_invalid=skip_invalid,
        **(options or {}),
    )


def _load_generated(
    cfg: DatasetConfig, sc: SplitConfig, data_root: str | os.PathLike[str] | None
) -> list[Sample]:
    target = cfg.generator or _DEFAULT_GENERATORS[cfg.name]
    modname, _, funcname = target.partition(":")
    try:
        fn: Callable[..., list[Sample]] = getattr(importlib.import_module(modname), funcname)
    except (ImportError, AttributeError) as exc:
        raise DatasetConfigError(
            f"{cfg.path}: generator {target!r} cannot be imported ({exc})"
        ) from None
    kwargs = dict(sc.options)
    if data_root is not None and "cache_dir" in inspect.signature(fn).parameters:
        kwargs["cache_dir"] = Path(data_root)
    return list(fn(sc.name, **kwargs))


def check_images(samples: list[Sample]) -> None:
    """Every sample must point at an existing image file."""
    from tcmbench.data.formats.common import exists_as_file

    for s in samples:
        if not s.image_path:
            raise ImageReadError(f"sample {s.id!r} has no image (images are required here)")
        if not exists_as_file(Path(s.image_path)):
            raise ImageReadError(f"image of sample {s.id!r} not found: {s.image_path:.300}")


def split_missing(
    name: str, split: str = "test", data_root: str | os.PathLike[str] | None = None
) -> str | None:
    """What :func:`load_split` (with images) would say is missing -- the
    dataset's root, the split's annotations or its images, with the exact
    ``prepare`` command -- or None when the files are there. Reads no
    annotation, so a command can list everything missing before any work."""
    cfg = get_dataset_config(name)
    if is_generated(cfg):
        return None
    try:
        root = resolve_root(cfg, data_root)
        files = locate_split(cfg, split, root)
    except DatasetNotFoundError as exc:
        return str(exc)
    if files.images is None:
        return (
            f"images of {cfg.name} split {split!r} not found under {root}; "
            f"run `{cfg.prepare_command()}` with the image archive"
        )
    return None


def load_split(
    name: str,
    split: str = "test",
    data_root: str | os.PathLike[str] | None = None,
    skip_invalid: bool = False,
    need_images: bool = False,
) -> tuple[list[Sample], ParseReport]:
    """Load one split of a dataset by name.

    ``data_root`` may be the dataset folder, a folder that directly holds the
    split's annotation files, or a GT zip. Images are optional (evaluation
    needs none) unless ``need_images``. Malformed lines raise
    :class:`~tcmbench.errors.AnnotationFormatError` unless ``skip_invalid``,
    in which case they are counted in the returned report.
    """
    cfg = get_dataset_config(name)
    sc = cfg.split(split)
    report = ParseReport(skip_invalid=skip_invalid)
    if is_generated(cfg):
        samples = _load_generated(cfg, sc, data_root)
        check_sample_ids(samples, f"generator of {cfg.name}")
    else:
        root = resolve_root(cfg, data_root)
        files = locate_split(cfg, split, root)
        if need_images and files.images is None:
            raise DatasetNotFoundError(
                f"images of {cfg.name} split {split!r} not found under {root} "
                f"(looked for: {', '.join(sc.images) or '(none listed)'}); "
                f"run `{cfg.prepare_command()}` with the image archive"
            )
        log.info(
            "loading %s/%s: annotations %s, images %s", name, split, files.annotations, files.images
        )
        samples, report = read_split_files(files, skip_invalid, dict(sc.options))
    if need_images:
        check_images(samples)
    if report.skipped:
        log.warning("%s/%s: %s", name, split, report.summary())
    return samples, report


def split_stats(samples: list[Sample], report: ParseReport | None = None) -> dict[str, Any]:
    """Counts for ``datasets stats`` / ``verify``: images, instances,
    ignored (don't-care), a histogram of polygon point counts, and how many
    malformed lines were skipped."""
    hist: Counter[int] = Counter(len(inst.polygon) for s in samples for inst in s.instances)
    return {
        "images": len(samples),
        "instances": sum(len(s.instances) for s in samples),
        "ignored": sum(s.num_ignored for s in samples),
        "with_image": sum(1 for s in samples if s.image_path),
        "points_hist": {str(k): hist[k] for k in sorted(hist)},
        "skipped_lines": report.skipped_count if report is not None else 0,
    }
