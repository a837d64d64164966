"""Write the report folder of one evaluation.

Layout (every reference in ``index.html`` is relative, so the folder can be
moved, zipped or opened from a file manager without a network)::

    DIR/index.html          the page (inline CSS and JS, no external asset)
    DIR/plots/*.png         precision-recall, threshold sweep, breakdowns
    DIR/thumbs/NNNN.jpg     every image, outcomes drawn (NNNN: dataset order)
    DIR/report.json         the report's numbers (curve, breakdowns, per image)
    DIR/.tcmbench-report    marks the folder as a report that may be replaced

Every image of the per-image table can be opened drawn. The page shows the
worst ones at once and loads any other only when its row is clicked (a
viewer in the page; without JavaScript the row's link opens the JPEG).
The drawings are JPEGs written here, not geometry drawn by the browser
over the dataset's own files, because:

* the report must stay readable when moved or zipped, away from the
  dataset, so the pixels have to be inside the folder anyway -- and a
  thumbnail of the original costs the same bytes drawn or not;
* a browser applies a JPEG's EXIF rotation, the annotations do not (two
  MSRA-TD500 test images would be drawn misaligned), and may not decode
  every dataset format (16-bit PNG, TIFF); the thumbnail is decoded the
  way the model saw the image (:func:`tcmbench.data.torch_data.load_image`);
* a drawn JPEG needs no script, works from ``file://`` in every browser
  and image viewer, and is the same picture as the worst-images gallery
  (:func:`tcmbench.report.drawing.draw_outcomes`, one colour scheme).

The cost, measured on the 200 MSRA-TD500 test photos (720 px, JPEG
quality :data:`THUMB_QUALITY`, PP-OCRv3's outcomes): 10.6 MB for the
whole folder and about 12 s on a loaded 2-core machine (decoding the
photos is most of it); ``evaluate`` prints the folder's size.

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
from tcmbench.report.breakdown import breakdowns, left_out_reason
from tcmbench.report.curve import has_scores, threshold_curve
from tcmbench.report.outcomes import ImageOutcome, image_outcomes

log = logging.getLogger(__name__)

MARKER = ".tcmbench-report"
DEFAULT_WORST = 12
#: JPEG quality of the drawn images: 80 keeps the coloured outlines sharp
#: at ~52 kB per drawn 720 px photo (85: ~62 kB).
THUMB_QUALITY = 80


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
    model_threshold: tuple[str, float] | None = None,
) -> Path:
    """Write the report of ``result`` (scored from ``samples`` and
    ``predictions``) into ``out_dir``; returns the path of ``index.html``.

    ``meta`` holds what the page shows about the run (dataset, split,
    plugin, weights, checkpoint sha256, test settings, ...), in order.
    ``model_threshold`` is the run's box threshold as
    :func:`tcmbench.report.curve.model_box_threshold` gives it: the
    threshold sweep starts there.
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
    preds = {s.id: list(predictions.get(s.id, ())) for s in samples}
    outcomes = image_outcomes(gt, preds, result.per_image)
    parts = breakdowns(gt, outcomes)
    left_out = {p.name: left_out_reason(p) for p in parts}
    shown = [p for p in parts if left_out[p.name] is None]
    curve = None
    if has_scores(preds):
        curve = threshold_curve(
            samples,
            preds,
            result.protocol,
            result.params,
            progress=progress,
            model_threshold=model_threshold,
        )
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
        if shown:
            (tmp / "plots" / "breakdown.png").write_bytes(plots.breakdown_png(shown))
            plot_files["breakdown"] = "plots/breakdown.png"
        drawn: dict[str, str] = {}
        size = 0
        for k, s in enumerate(
            tqdm(samples, desc="report images", unit="img", disable=not progress, leave=False)
        ):
            o = outcomes[s.id]
            image = load_image(s.image_path, s.id)
            jpeg = encode_jpeg(
                draw_outcomes(image, s.instances, o.gt, preds[s.id], o.det), THUMB_QUALITY
            )
            name = f"thumbs/{k:04d}.jpg"  # a name is never the sample id (ids are not paths)
            (tmp / name).write_bytes(jpeg)
            drawn[s.id] = name
            size += len(jpeg)
        log.info("report: %d drawn images, %.1f MB", len(drawn), size / 1e6)
        thumbs = [(o, drawn[o.sample_id]) for o in chosen]
        html = render(
            result=result,
            meta=meta,
            outcomes=outcomes,
            parts=shown,
            left_out=[r for r in left_out.values() if r is not None],
            curve=curve,
            plot_files=plot_files,
            thumbs=thumbs,
            drawn=drawn,
        )
        (tmp / "index.html").write_text(html, encoding="utf-8")
        doc = {
            "figures": result.summary(),
            "meta": dict(meta),
            "threshold_curve": None if curve is None else curve.as_dict(),
            "breakdowns": [{**p.as_dict(), "left_out": left_out[p.name]} for p in parts],
            "worst": [o.sample_id for o in chosen],
            "per_image": {
                sid: {
                    "tp": o.tp,
                    "fp": o.fp,
                    "fn": o.fn,
                    "gt": o.gt,
                    "det": o.det,
                    "image": drawn[sid],
                }
                for sid, o in outcomes.items()
            },
        }
        (tmp / "report.json").write_text(
            json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8"
        )
        (tmp / MARKER).write_text("written by tcmbench evaluate --report\n", encoding="utf-8")
    return target / "index.html"
