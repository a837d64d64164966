"""Dataset configurations (``datasets_cfg/*.yaml``): parsing and validation.

A dataset is described by one YAML file (schema in docs/datasets.md) so that
adding a benchmark needs no code: its format, the candidate paths of each
split relative to the dataset root, the default protocol, licence, citation,
where to get it (archive names and sha256) and the counts ``verify`` checks.
The same schema serves built-ins and plugins (``register_datasets`` hook).

This module parses; :mod:`tcmbench.data.dataset` resolves roots and loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcmbench.contract.hookspecs import hookimpl
from tcmbench.errors import TcmbenchError


class DatasetConfigError(TcmbenchError):
    """A dataset YAML is malformed, or a split / key it lacks was asked for."""


def builtin_config_dir() -> Path:
    """The folder of the built-in dataset YAMLs.

    In a source checkout (editable install) they are the repo's top-level
    ``datasets_cfg/``; a wheel installs them as ``tcmbench/datasets_cfg``
    (setup.py copies them at build time). The checkout wins when both exist
    so that a stale build copy never shadows the files being edited.
    """
    package = Path(__file__).resolve().parent.parent
    checkout = package.parent / "datasets_cfg"
    if checkout.is_dir() and (package.parent / "pyproject.toml").is_file():
        return checkout
    packaged = package / "datasets_cfg"
    if packaged.is_dir():
        return packaged
    return checkout


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    register(builtin_config_dir())


@dataclass(frozen=True)
class ExpectedCounts:
    """Counts a complete, unmodified split must have (None = not known)."""

    images: int | None = None
    instances: int | None = None
    ignored: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {"images": self.images, "instances": self.instances, "ignored": self.ignored}


@dataclass(frozen=True)
class SplitConfig:
    """One split: candidate annotation / image paths relative to the root
    (the first that exists wins), reader options and expected counts."""

    name: str
    annotations: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    format: str | None = None  # overrides the dataset's format for this split
    options: Mapping[str, Any] = field(default_factory=dict)
    expected: ExpectedCounts = ExpectedCounts()
    note: str = ""


@dataclass(frozen=True)
class SourceConfig:
    """A file the dataset is distributed as.

    ``target`` is where ``prepare`` puts its content, relative to the root
    (None: the archive already holds the root layout); ``unpack`` False keeps
    the file as is (GT zips: readers read zips, and ``verify`` can re-check
    the checksum later).
    """

    filename: str
    url: str | None = None
    sha256: str | None = None
    target: str | None = None
    unpack: bool = True
    split: str | None = None
    note: str = ""


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    format: str
    title: str = ""
    protocol: str | None = None
    other_protocols: tuple[str, ...] = ()
    protocol_note: str = ""
    # Parameters for the default protocol (e.g. synthtext-mini turns the RRC
    # 4-point format check off because it has curved 14-point words).
    protocol_params: Mapping[str, Any] = field(default_factory=dict)
    splits: Mapping[str, SplitConfig] = field(default_factory=dict)
    licence: str = ""
    citation: str = ""
    homepage: str | None = None
    gated: bool = False
    how_to_get: str = ""
    sources: tuple[SourceConfig, ...] = ()
    # "module:function" called as fn(split, **split.options) -> list[Sample]
    # for datasets made by code (synthtext-mini) rather than read from disk.
    generator: str | None = None
    path: Path | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def split(self, name: str) -> SplitConfig:
        if name not in self.splits:
            known = ", ".join(self.splits) or "none"
            raise DatasetConfigError(
                f"dataset {self.name!r} has no split {name!r}; splits: {known}"
            )
        return self.splits[name]

    def prepare_command(self) -> str:
        return f"tcmbench datasets prepare {self.name} --from ARCHIVE_OR_DIR"


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise DatasetConfigError(f"{where}: expected a path or a list of paths, got {value!r}")


def _opt_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DatasetConfigError(f"{where}: expected a non-negative integer or null, got {value!r}")
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DatasetConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _parse_split(name: str, raw: Any, where: str) -> SplitConfig:
    d = _mapping(raw, f"{where}: splits.{name}")
    exp = _mapping(d.get("expected"), f"{where}: splits.{name}.expected")
    return SplitConfig(
        name=name,
        annotations=_str_tuple(d.get("annotations"), f"{where}: splits.{name}.annotations"),
        images=_str_tuple(d.get("images"), f"{where}: splits.{name}.images"),
        format=d.get("format"),
        options=dict(_mapping(d.get("options"), f"{where}: splits.{name}.options")),
        expected=ExpectedCounts(
            images=_opt_int(exp.get("images"), f"{where}: splits.{name}.expected.images"),
            instances=_opt_int(exp.get("instances"), f"{where}: splits.{name}.expected.instances"),
            ignored=_opt_int(exp.get("ignored"), f"{where}: splits.{name}.expected.ignored"),
        ),
        note=str(d.get("note") or ""),
    )


def _parse_source(raw: Any, where: str) -> SourceConfig:
    d = _mapping(raw, f"{where}: sources[]")
    if not d.get("filename"):
        raise DatasetConfigError(f"{where}: every entry of sources needs a filename")
    sha = d.get("sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
        raise DatasetConfigError(
            f"{where}: sources[{d['filename']}].sha256 must be 64 hex digits or null"
        )
    return SourceConfig(
        filename=str(d["filename"]),
        url=d.get("url"),
        sha256=sha.lower() if sha else None,
        target=d.get("target"),
        unpack=bool(d.get("unpack", True)),
        split=d.get("split"),
        note=str(d.get("note") or ""),
    )


def parse_dataset_config(data: Mapping[str, Any], path: Path | None = None) -> DatasetConfig:
    """Validate one YAML document into a :class:`DatasetConfig`.

    Unknown keys are kept in ``raw`` (forward compatible); missing required
    keys and wrong types raise :class:`DatasetConfigError` naming the file.
    """
    where = str(path) if path else "dataset config"
    if not isinstance(data, Mapping):
        raise DatasetConfigError(f"{where}: expected a mapping at the top level")
    name = data.get("name")
    if not name or not isinstance(name, str):
        raise DatasetConfigError(f"{where}: missing 'name'")
    fmt = data.get("format")
    generator = data.get("generator")
    if not fmt and not generator:
        raise DatasetConfigError(f"{where}: missing 'format' (or 'generator')")
    protocol = data.get("protocol")
    other: tuple[str, ...] = ()
    protocol_params: dict[str, Any] = {}
    if isinstance(protocol, Mapping):  # {default: x, others: [...], note: ..., params: {...}}
        other = _str_tuple(protocol.get("others"), f"{where}: protocol.others")
        note = str(protocol.get("note") or "")
        protocol_params = dict(_mapping(protocol.get("params"), f"{where}: protocol.params"))
        protocol = protocol.get("default")
    else:
        note = ""
    splits_raw = _mapping(data.get("splits"), f"{where}: splits")
    splits = {str(k): _parse_split(str(k), v, where) for k, v in splits_raw.items()}
    sources_raw = data.get("sources") or []
    if not isinstance(sources_raw, list):
        raise DatasetConfigError(f"{where}: sources must be a list")
    citation = data.get("citation") or ""
    return DatasetConfig(
        name=name,
        format=str(fmt or "generated"),
        title=str(data.get("title") or name),
        protocol=protocol,
        other_protocols=other,
        protocol_note=note,
        protocol_params=protocol_params,
        splits=splits,
        licence=str(data.get("licence") or data.get("license") or ""),
        citation=str(citation).strip(),
        homepage=data.get("homepage"),
        gated=bool(data.get("gated", False)),
        how_to_get=" ".join(str(data.get("how_to_get") or "").split()),
        sources=tuple(_parse_source(s, where) for s in sources_raw),
        generator=generator,
        path=path,
        raw=dict(data),
    )


_PARSED: dict[tuple[str, int, int], DatasetConfig] = {}


def load_config_file(path: Path) -> DatasetConfig:
    """Parse one YAML, memoised on (path, mtime, size): every ``load_split``
    looks all configs up, and an edited file is re-read."""
    try:
        st = path.stat()
    except OSError as exc:
        raise DatasetConfigError(f"{path}: cannot read ({exc.strerror})") from None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _PARSED:
        _PARSED[key] = _load_config_file(path)
    return _PARSED[key]


def _load_config_file(path: Path) -> DatasetConfig:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DatasetConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    except OSError as exc:
        raise DatasetConfigError(f"{path}: cannot read ({exc})") from None
    return parse_dataset_config(data, path)


def config_files(entries: list[Any]) -> list[Path]:
    """Expand registered paths (YAML files or folders of them) into files."""
    files: list[Path] = []
    for entry in entries:
        p = Path(entry)
        if p.is_dir():
            files.extend(sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")))
        elif p.is_file():
            files.append(p)
        else:
            raise DatasetConfigError(f"registered dataset config path does not exist: {p}")
    return files
