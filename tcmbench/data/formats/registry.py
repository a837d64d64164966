"""The built-in annotation formats, registered through the
``register_dataset_formats`` hook like a plugin's (the plugin manager loads
this module; readers import on first use)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcmbench.contract.hookspecs import hookimpl
from tcmbench.data.formats import BUILTIN_FORMATS


def _lazy(target: str) -> Callable[..., Any]:
    """A reader that imports its module on first call (keeps CLI start fast)."""
    modname, func = target.split(":")

    def reader(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(modname), func)(*args, **kwargs)

    reader.__name__ = func
    reader.__qualname__ = func
    reader.__doc__ = f"Lazy proxy for {target}."
    return reader


@hookimpl
def register_dataset_formats(register: Callable[[Any], None]) -> None:
    from tcmbench.contract.registry import DatasetFormat

    for name, target, summary, pattern in BUILTIN_FORMATS:
        register(DatasetFormat(name=name, reader=_lazy(target), summary=summary, pattern=pattern))
