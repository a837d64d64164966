"""Registers the built-in evaluation protocols through the plugin hook.

Built-ins use the same ``register_protocols`` hook a plugin does. This module
is imported at CLI start-up, so it stays light: the IoU family is described
in :mod:`tcmbench.eval.catalog` (name, ``module:function``, summary, default
parameters) and its module is imported on first use. :func:`builtin_protocols`
gives the built-in specs without starting the plugin manager.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcmbench.contract.hookspecs import hookimpl
from tcmbench.eval.catalog import DETEVAL_PROTOCOLS, IOU_PROTOCOLS, BuiltinSpec, _lazy, iou_spec

__all__ = [
    "DETEVAL_PROTOCOLS",
    "IOU_PROTOCOLS",
    "BuiltinSpec",
    "builtin_protocols",
    "iou_spec",
    "register_protocols",
]


def _register_iou_family(register: Callable[[Any], None]) -> None:
    from tcmbench.contract.registry import ProtocolSpec

    for name, (target, summary, params) in IOU_PROTOCOLS.items():
        register(
            ProtocolSpec(
                name=name, evaluate=_lazy(target, name), summary=summary, params=dict(params)
            )
        )


@hookimpl
def register_protocols(register: Callable[[Any], None]) -> None:
    _register_iou_family(register)
    _register_deteval_family(register)


def builtin_protocols() -> dict[str, Any]:
    """The built-in :class:`~tcmbench.contract.registry.ProtocolSpec` objects by name."""
    found: dict[str, Any] = {}

    def register(spec: Any) -> None:
        found[spec.name] = spec

    register_protocols(register)
    return found


def _register_deteval_family(register: Callable[[Any], None]) -> None:
    from tcmbench.contract.registry import ProtocolSpec

    for name, (target, summary, params) in DETEVAL_PROTOCOLS.items():
        register(
            ProtocolSpec(
                name=name, evaluate=_lazy(target, name), summary=summary, params=dict(params)
            )
        )
