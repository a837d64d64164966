"""Registers the built-in evaluation protocols through the plugin hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcmbench.hookspecs import hookimpl


@hookimpl
def register_protocols(register: Callable[[Any], None]) -> None:
    return None
