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

from tcmbench.eval.catalog import IOU_PROTOCOLS, BuiltinSpec, _lazy, iou_spec
from tcmbench.hookspecs import hookimpl

__all__ = ["IOU_PROTOCOLS", "BuiltinSpec", "builtin_protocols", "iou_spec", "register_protocols"]


def _register_iou_family(register: Callable[[Any], None]) -> None:
    from tcmbench.plugins import ProtocolSpec

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
    """The built-in :class:`~tcmbench.plugins.ProtocolSpec` objects by name."""
    found: dict[str, Any] = {}

    def register(spec: Any) -> None:
        found[spec.name] = spec

    register_protocols(register)
    return found


# The DetEval family (tcmbench/eval/deteval.py, tcmbench/eval/icdar2013.py);
# the defaults equal the modules' DEFAULT_PARAMS (a test checks it).
_IC13_PARAMS: dict[str, Any] = {
    "tr": 0.8,
    "tp": 0.4,
    "center_diff_thr": 1.0,
    "mtype_oo_o": 1.0,
    "mtype_om_o": 0.8,
    "mtype_om_m": 1.0,
    "sweep": False,
    "details": True,
}
DETEVAL_PROTOCOLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "totaltext-deteval": (
        "tcmbench.eval.deteval:evaluate_totaltext_deteval",
        (
            "Total-Text DetEval (official Deteval.py): tr 0.7, tp 0.6, k 2, split/merge penalty "
            "0.8, sigma/tau rounded to 2 decimals; images without a prediction file are skipped as "
            "the official script does (missing_predictions=count counts them)"
        ),
        {
            "tr": 0.7,
            "tp": 0.6,
            "k": 2,
            "penalty": 0.8,
            "missing_predictions": "official",
            "sweep": False,
            "details": True,
        },
    ),
    "icdar2013": (
        "tcmbench.eval.icdar2013:evaluate_icdar2013",
        (
            "ICDAR 2013 area rules as ported by the DBNet authors (icdar2013.py): recall 0.8, "
            "precision 0.4, centre distance < 1, one-to-many 0.8, many-to-one 1.0"
        ),
        dict(_IC13_PARAMS),
    ),
    "icdar2013-deteval": (
        "tcmbench.eval.icdar2013:evaluate_icdar2013_deteval",
        (
            "ICDAR 2013 with Wolf & Jolion DetEval single-overlap checks as ported by the DBNet "
            "authors (deteval.py): recall 0.8, precision 0.4, centre distance < 1"
        ),
        dict(_IC13_PARAMS),
    ),
}


def _register_deteval_family(register: Callable[[Any], None]) -> None:
    from tcmbench.plugins import ProtocolSpec

    for name, (target, summary, params) in DETEVAL_PROTOCOLS.items():
        register(
            ProtocolSpec(
                name=name, evaluate=_lazy(target, name), summary=summary, params=dict(params)
            )
        )
