"""Dataset configurations (datasets_cfg/*.yaml) and data-root resolution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tcmbench.hookspecs import hookimpl


def builtin_config_dir() -> Path:
    """The folder of the built-in dataset YAMLs (repo ``datasets_cfg/``,
    installed as ``tcmbench/datasets_cfg``)."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "datasets_cfg"
    if packaged.is_dir():
        return packaged
    return here.parent / "datasets_cfg"


@hookimpl
def register_datasets(register: Callable[[Any], None]) -> None:
    register(builtin_config_dir())
