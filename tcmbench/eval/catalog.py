"""The built-in protocols described without the plugin machinery.

``tcmbench score`` looks a built-in protocol up here, so scoring never
imports pluggy or the plugin manager; :mod:`tcmbench.eval.protocols`
registers the same entries through the ``register_protocols`` hook. The
IoU family and the DetEval family are described here (name,
``module:function``, summary, default parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Parameters every protocol of the IoU family accepts (docs/protocols.md).
_IOU_COMMON: dict[str, Any] = {
    "iou_threshold": 0.5,  # IOU_CONSTRAINT: a match needs IoU > this
    "area_precision_threshold": 0.5,  # AREA_PRECISION_CONSTRAINT: don't-care absorption
    "confidences": False,  # sort detections by score and compute AP (RRC CONFIDENCES)
    "sweep": False,  # add the labelled mmocr-style best-threshold sweep
    "details": True,  # per-image matches in Result.per_image
}

# name -> ("module:function", summary, default parameters)
IOU_PROTOCOLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "icdar2015": (
        "tcmbench.eval.iou:evaluate_icdar2015",
        (
            "ICDAR 2015 task 4.1 (RRC script.py): int32 quads, clockwise check, IoU > 0.5 greedy, "
            "don't-care absorption; AP with confidences=true"
        ),
        {**_IOU_COMMON, "validate": True, "tiou": False},
    ),
    "msra-td500": (
        "tcmbench.eval.iou:evaluate_msra_td500",
        (
            "MSRA-TD500 as DBNet scores it: icdar2015 rules on the rotated quads (GT rounded to int), "
            "difficult = don't care"
        ),
        {**_IOU_COMMON, "validate": False, "tiou": False},
    ),
    "totaltext-iou": (
        "tcmbench.eval.iou:evaluate_totaltext_iou",
        (
            "Total-Text, IoU 0.5 (TIoU-metric curved script): float32 polygons, greedy IoU > 0.5, "
            "plus the TIoU figures"
        ),
        {**_IOU_COMMON, "validate": True, "tiou": True},
    ),
    "ctw1500-iou": (
        "tcmbench.eval.iou:evaluate_ctw1500_iou",
        (
            "SCUT-CTW1500, IoU 0.5 (TIoU-metric curved script): float32 polygons, greedy IoU > 0.5, "
            "plus the TIoU figures"
        ),
        {**_IOU_COMMON, "validate": True, "tiou": True},
    ),
    "tiou": (
        "tcmbench.eval.iou:evaluate_tiou",
        (
            "Tightness-aware IoU (Liu et al. 2019) as the headline figures; rules=curved (curved "
            "script, default) or rules=icdar2015 (the ICDAR 2015 TIoU script)"
        ),
        {**_IOU_COMMON, "validate": True, "rules": "curved"},
    ),
    "mmocr-hmean-iou": (  # not official: the papers' figure (evaluate --sweep)
        "tcmbench.eval.mmocr_iou:evaluate_mmocr_hmean_iou",
        (
            "mmocr 0.x hmean-iou (not an official protocol; the papers' figure): polygons as "
            "given, shapely IoU > 0.5 greedy in input order, don't care > 0.5, score > 0.3"
        ),
        {
            "iou_threshold": 0.5,
            "area_precision_threshold": 0.5,
            "drop_degenerate_gt": True,
            "sweep": False,
            "details": True,
        },
    ),
}


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


def _lazy(target: str, name: str) -> Callable[..., Any]:
    """An evaluate function that imports its module on first call."""
    modname, func = target.split(":")

    def evaluate(gt: Any, predictions: Any, **params: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(modname), func)(gt, predictions, **params)

    evaluate.__name__ = func
    evaluate.__qualname__ = func
    evaluate.__doc__ = f"Protocol {name!r}: lazy proxy for {target}."
    return evaluate


@dataclass(frozen=True)
class BuiltinSpec:
    """A built-in protocol described without the plugin manager (same
    fields as :class:`tcmbench.contract.registry.ProtocolSpec`, which imports
    ``importlib.metadata``; ``tcmbench score`` has to start fast)."""

    name: str
    evaluate: Callable[..., Any]
    summary: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def iou_spec(name: str) -> BuiltinSpec:
    """The spec of one built-in protocol of :data:`IOU_PROTOCOLS` or
    :data:`DETEVAL_PROTOCOLS` (KeyError if not one)."""
    target, summary, params = IOU_PROTOCOLS.get(name) or DETEVAL_PROTOCOLS[name]
    return BuiltinSpec(
        name=name, evaluate=_lazy(target, name), summary=summary, params=dict(params)
    )


#: Built-in protocols that call GEOS (shapely) on every real input: the
#: curved script's validation and TIoU figures, mmocr's shapely IoU.
GEOS_PROTOCOLS = frozenset({"totaltext-iou", "ctw1500-iou", "tiou", "mmocr-hmean-iou"})


def preload(name: str) -> None:
    """Import what scoring with the built-in protocol ``name`` imports
    anyway (its engine; shapely where :data:`GEOS_PROTOCOLS` says so).
    ``tcmbench score`` calls it while a worker process still reads the
    predictions, so that the imports cost no waiting and the processes the
    images are then split over inherit them instead of each importing them
    again. Unknown names are left alone."""
    import importlib

    entry = IOU_PROTOCOLS.get(name) or DETEVAL_PROTOCOLS.get(name)
    if entry is None:
        return
    importlib.import_module(entry[0].split(":")[0])
    if name in GEOS_PROTOCOLS:
        import shapely  # noqa: F401 - imported for its side effect: loaded once, here
