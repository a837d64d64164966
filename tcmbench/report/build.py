"""Write the report folder of one evaluation.

Layout (every reference in ``index.html`` is relative, so the folder can be
moved, zipped or opened from a file manager without a network)::

    DIR/index.html          the page (inline CSS and JS, no external asset)
    DIR/plots/*.png         precision-recall, threshold sweep, breakdowns
    DIR/thumbs/NNN.jpg      the worst images, outcomes drawn
    DIR/report.json         the report's numbers (curve, breakdowns, per image)
    DIR/.tcmbench-report    marks the folder as a report that may be replaced

The folder is assembled in a temporary sibling and renamed into place, so a
reader never sees half a report and a re-run leaves no stale thumbnail. A
non-empty folder that is not an earlier report is refused rather than
replaced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tcmbench.data.schema import Prediction, Sample
from tcmbench.errors import TcmbenchError
from tcmbench.eval.result import Result
from tcmbench.report.breakdown import breakdowns
from tcmbench.report.curve import has_scores, threshold_curve
from tcmbench.report.outcomes import ImageOutcome, image_outcomes

log = logging.getLogger(__name__)

MARKER = ".tcmbench-report"
DEFAULT_WORST = 12


def check_report_dir(path: str | Path) -> Path:
    """Refuse, before any work, a target that the report would clobber: an
    existing file, or a non-empty folder that no earlier report wrote."""
    from tcmbench.safety.paths import check_destination

    p = check_destination(path, "--report")  # a file, device, FIFO or link: one line
    if p.is_dir() and any(p.iterdir()) and not (p / MARKER).exists():
        raise TcmbenchError(
            f"--report {p}: the folder is not empty and holds no earlier report "
            f"(no {MARKER}); give a new or empty folder"
        )
    return p


def worst_images(outcomes: Mapping[str, ImageOutcome], count: int) -> list[ImageOutcome]:
    """The ``count`` scored images with the most errors (FP + FN), most
    first; ties by misses, then in dataset order. Images without errors are
    never 'worst'."""
    order = {sid: i for i, sid in enumerate(outcomes)}
    ranked = sorted(
        (o for o in outcomes.values() if o.scored and o.errors > 0),
        key=lambda o: (-o.errors, -o.fn, order[o.sample_id]),
    )
    return ranked[:count]


def write_evaluation_report(
    out_dir: str | Path,
    samples: Sequence[Sample],
    predictions: Mapping[str, Sequence[Prediction]],
    result: Result,
    meta: Mapping[str, Any],
    *,
    worst: int = DEFAULT_WORST,
    progress: bool = True,
) -> Path:
    """Write the report of ``result`` (scored from ``samples`` and
    ``predictions``) into ``out_dir``; returns the path of ``index.html``.

    ``meta`` holds what the page shows about the run (dataset, split,
    plugin, weights, checkpoint sha256, test settings, ...), in order.
    """
    from tqdm.auto import tqdm

    from tcmbench.data.torch_data import load_image
    from tcmbench.report import plots
    from tcmbench.report.drawing import draw_outcomes, encode_jpeg
    from tcmbench.report.html import render
    from tcmbench.safety.paths import atomic_dir

    plots.require_matplotlib()
    target = check_report_dir(out_dir)
    gt = {s.id: s.instances for s in samples}
    by_id = {s.id: s for s in samples}
    preds = {s.id: list(predictions.get(s.id, ())) for s in samples}
    outcomes = image_outcomes(gt, preds, result.per_image)
    parts = breakdowns(gt, outcomes)
    curve = None
    if has_scores(preds):
        curve = threshold_curve(samples, preds, result.protocol, result.params, progress=progress)
    else:
        log.warning("detections carry no scores: the report has no threshold curve")
    sweep_best = None
    if result.sweep and result.sweep.get("best_threshold") is not None:
        sweep_best = (
            float(result.sweep["best_precision"]),
            float(result.sweep["best_recall"]),
            float(result.sweep["best_threshold"]),
        )
    chosen = worst_images(outcomes, worst)

    # A folder an earlier report wrote is swapped whole; an empty folder the
    # user made is filled, never renamed or deleted.
    with atomic_dir(target, fill_existing=not (target / MARKER).exists()) as tmp:
        (tmp / "plots").mkdir()
        (tmp / "thumbs").mkdir()
        plot_files: dict[str, str] = {}
        if curve is not None:
            (tmp / "plots" / "pr_curve.png").write_bytes(
                plots.pr_curve_png(curve, (result.precision, result.recall), sweep_best)
            )
            (tmp / "plots" / "thresholds.png").write_bytes(plots.threshold_png(curve, sweep_best))
            plot_files["pr"] = "plots/pr_curve.png"
            plot_files["thresholds"] = "plots/thresholds.png"
        (tmp / "plots" / "breakdown.png").write_bytes(plots.breakdown_png(parts))
        plot_files["breakdown"] = "plots/breakdown.png"
        thumbs: list[tuple[ImageOutcome, str]] = []
        for k, o in enumerate(
            tqdm(chosen, desc="report thumbnails", unit="img", disable=not progress, leave=False)
        ):
            s = by_id[o.sample_id]
            image = load_image(s.image_path, s.id)
            drawn = draw_outcomes(image, s.instances, o.gt, preds[s.id], o.det)
            name = f"thumbs/{k:03d}.jpg"
            (tmp / name).write_bytes(encode_jpeg(drawn))
            thumbs.append((o, name))
        html = render(
            result=result,
            meta=meta,
            outcomes=outcomes,
            parts=parts,
            curve=curve,
            plot_files=plot_files,
            thumbs=thumbs,
        )
        (tmp / "index.html").write_text(html, encoding="utf-8")
        doc = {
            "figures": result.summary(),
            "meta": dict(meta),
            "threshold_curve": None if curve is None else curve.as_dict(),
            "breakdowns": [p.as_dict() for p in parts],
            "worst": [o.sample_id for o in chosen],
            "per_image": {
                sid: {"tp": o.tp, "fp": o.fp, "fn": o.fn, "gt": o.gt, "det": o.det}
                for sid, o in outcomes.items()
            },
        }
        (tmp / "report.json").write_text(
            json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8"
        )
        (tmp / MARKER).write_text("written by tcmbench evaluate --report\n", encoding="utf-8")
    return target / "index.html"
