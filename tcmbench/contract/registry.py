"""The plugin manager: core plugins plus the ``tcmbench`` entry-point group.

Built-in detector plugins are separate packages registered through the same
entry-point group a third party uses. ``TCMBENCH_LOAD_PLUGINS`` (comma
separated entry-point or distribution names; empty = none) restricts which
entry points load, e.g. to reproduce a run without a locally installed
experimental plugin.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from tcmbench.contract import hookspecs
from tcmbench.errors import PluginError

log = logging.getLogger(__name__)

PROJECT = "tcmbench"
ENTRY_POINT_GROUP = "tcmbench"
ENV_ALLOW_LIST = "TCMBENCH_LOAD_PLUGINS"

# Core modules that implement hooks. They are registered directly (they are
# part of the core, not optional), but use the same hooks as any plugin.
CORE_PLUGIN_MODULES = (
    "tcmbench.data.formats.registry",
    "tcmbench.data.config",
    "tcmbench.data.hf",
    "tcmbench.eval.protocols",
    "tcmbench.models.build",
    "tcmbench.tcm.hook",
)


@dataclass(frozen=True)
class DatasetFormat:
    """A reader for one on-disk annotation format (see the hookspec)."""

    name: str
    reader: Callable[..., Any]
    summary: str = ""
    # Default glob of annotation files inside a folder / zip (informative).
    pattern: str = ""


@dataclass(frozen=True)
class ProtocolSpec:
    """An evaluation protocol (see the hookspec)."""

    name: str
    evaluate: Callable[..., Any]
    summary: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AugmentationSpec:
    """A training augmentation (see the hookspec): ``factory(**params)``
    returns the step; a ``"module:attribute"`` string is imported lazily."""

    name: str
    factory: Callable[..., Any] | str
    summary: str = ""

    def resolve(self) -> Callable[..., Any]:
        """The factory, importing it first when given as ``"module:attr"``."""
        if not isinstance(self.factory, str):
            return self.factory
        module, _, attr = self.factory.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"augmentation {self.name!r}: cannot import {self.factory!r} ({exc})"
            ) from exc


_pm: pluggy.PluginManager | None = None


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allow = os.environ.get(ENV_ALLOW_LIST)
    allowed = None if allow is None else {s.strip() for s in allow.split(",") if s.strip()}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ""
        if allowed is not None and ep.name not in allowed and dist not in allowed:
            log.debug("plugin %s not in %s, skipped", ep.name, ENV_ALLOW_LIST)
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 (a broken third-party plugin must not kill the CLI)
            log.warning("could not load plugin %s (%s): %s", ep.name, ep.value, exc)
            continue
        try:
            pm.register(plugin, name=ep.name)
        except pluggy.PluginValidationError as exc:
            log.warning("plugin %s (%s) is invalid and was not loaded: %s", ep.name, ep.value, exc)
            continue
        _plugin_versions[ep.name] = ep.dist.version if ep.dist is not None else ""


_plugin_versions: dict[str, str] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _pm  # noqa: PLW0603 (a lazy process-wide singleton)
    if _pm is None:
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(hookspecs)
        from tcmbench import __version__

        for modname in CORE_PLUGIN_MODULES:
            pm.register(importlib.import_module(modname), name=modname)
            _plugin_versions[modname] = __version__
        _load_entry_points(pm)
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            # A hookimpl whose name matches no hookspec is almost always a
            # typo that would otherwise make the plugin silently do nothing.
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            raise PluginError(f"plugin {name!r} is invalid: {exc}") from None
        _pm = pm
    return _pm


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (tests; after installing a plugin)."""
    global _pm  # noqa: PLW0603 (a lazy process-wide singleton)
    _pm = None


def plugin_version(name: str) -> str:
    return _plugin_versions.get(name, "")


def _collect(hook_name: str, what: str) -> dict[str, Any]:
    pm = get_plugin_manager()
    found: dict[str, Any] = {}
    owners: dict[str, str] = {}
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():

        def register(spec: Any, _owner: str = impl.plugin_name) -> None:
            name = getattr(spec, "name", None)
            if not name:
                raise PluginError(f"plugin {_owner} registered a {what} without a name")
            if name in found:
                raise PluginError(
                    f"{what} {name!r} registered twice: by {owners[name]} and by {_owner}"
                )
            found[name] = spec
            owners[name] = _owner

        impl.function(register=register)
    return found


def dataset_formats() -> dict[str, DatasetFormat]:
    """All registered dataset formats by name."""
    return _collect("register_dataset_formats", "dataset format")


def protocols() -> dict[str, ProtocolSpec]:
    """All registered evaluation protocols by name."""
    return _collect("register_protocols", "protocol")


def detectors() -> dict[str, Any]:
    """All registered detector specs by name."""
    return _collect("register_detectors", "detector")


def augmentations() -> dict[str, AugmentationSpec]:
    """Augmentations contributed by plugins, by name (the built-in ones are
    in :data:`tcmbench.data.transforms.AUGMENTATIONS`)."""
    return _collect("register_augmentations", "augmentation")


def dataset_config_paths() -> list[Any]:
    """Paths of dataset YAMLs (or folders of them) contributed by plugins."""
    pm = get_plugin_manager()
    paths: list[Any] = []
    for impl in pm.hook.register_datasets.get_hookimpls():
        impl.function(register=paths.append)
    return paths


def get_dataset_format(name: str) -> DatasetFormat:
    fmts = dataset_formats()
    if name not in fmts:
        raise PluginError(f"unknown dataset format {name!r}; known: {', '.join(sorted(fmts))}")
    return fmts[name]


def get_protocol(name: str) -> ProtocolSpec:
    protos = protocols()
    if name not in protos:
        raise PluginError(f"unknown protocol {name!r}; known: {', '.join(sorted(protos))}")
    return protos[name]


def get_detector(name: str) -> Any:
    dets = detectors()
    if name not in dets:
        hint = (
            " (no detector plugin is installed or allowed; check TCMBENCH_LOAD_PLUGINS)"
            if not dets
            else ""
        )
        raise PluginError(
            f"unknown detector plugin {name!r}; known: {', '.join(sorted(dets)) or 'none'}{hint}"
        )
    return dets[name]


def describe_plugins() -> list[dict[str, Any]]:
    """Every registered plugin with its hooks and version (for ``tcmbench plugins``)."""
    pm = get_plugin_manager()
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda x: x[0]):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        out.append(
            {
                "name": name,
                "hooks": hooks,
                "version": plugin_version(name),
                "core": name in CORE_PLUGIN_MODULES,
            }
        )
    return out
