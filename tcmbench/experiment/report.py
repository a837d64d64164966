"""``tcmbench experiment report``: an experiment folder as paper-shaped tables.

Reads what ``tcmbench experiment run`` wrote (``OUT/experiment.json``, the
grid as run in ``OUT/grid.yaml`` and one ``OUT/cells/<id>/record.json`` per
finished cell; the contract is ``notes/experiment-schema.md``) and writes
``results.md``, ``results.csv``, ``results.json`` and the figures
(:mod:`tcmbench.experiment.plots`; PNG, and SVG and PDF for a paper) into
``OUT/report/``. Nothing written names an absolute path: paths are relative
to the report's folder.

The work is split by responsibility: :mod:`~tcmbench.experiment.results`
reads the folder, :mod:`~tcmbench.experiment.shaping` says what every
output states, :mod:`~tcmbench.experiment.tables` writes the markdown,
:mod:`~tcmbench.experiment.exports` the CSV and JSON and
:mod:`~tcmbench.experiment.plots` the figures; this module picks the
formats and writes the files.

Why it is strict about labels: a figure from a tiny machinery-check run, or
one scored with another protocol than the dataset's official one, must never
be mistaken for a reproduction of the paper, so every output carries what it
is (grid, paper figure/table, tiny or full, protocol, test images, steps,
versions). Cells that have not finished are shown as pending, never dropped,
and a malformed record stops the report with one line naming the file.

Records keep fractions (0.887); the markdown and the plots show percentages
(88.7) as the papers do; the CSV and JSON carry the records' values as they
are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tcmbench.experiment.exports import render_csv, render_json
from tcmbench.experiment.results import METRICS, Experiment, ExperimentReportError
from tcmbench.experiment.shaping import figure_stems, relative_to
from tcmbench.experiment.tables import render_markdown
from tcmbench.safety.paths import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

FORMATS = ("md", "csv", "json", "png", "svg", "pdf")
#: The formats that are plots (tcmbench.experiment.plots.PLOT_FORMATS).
PLOT_FORMATS = ("png", "svg", "pdf")


def parse_formats(text: str) -> tuple[str, ...]:
    """``md,csv,json,png,svg,pdf`` -> a tuple; unknown names are a TcmbenchError."""
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise ExperimentReportError(
            f"--format {text!r}: expected a comma-separated list of {', '.join(FORMATS)}"
        )
    return names


@dataclass
class ReportOutput:
    markdown: str
    written: list[Path]
    plots_skipped: str | None = None


def write_report(
    exp: Experiment,
    out_dir: str | Path | None = None,
    formats: Sequence[str] = FORMATS,
    metric: str | None = None,
) -> ReportOutput:
    """Write the tables and plots; return the markdown and the paths written.

    Without matplotlib the tables are still written and ``plots_skipped``
    says how to get the plots.
    """
    metric = metric or str(exp.spec.get("metric") or "hmean")
    if metric not in METRICS:
        raise ExperimentReportError(
            f"{exp.root / 'experiment.json'}: report metric {metric!r}; "
            f"expected one of {', '.join(METRICS)}"
        )
    out = Path(out_dir) if out_dir is not None else exp.root / "report"
    written: list[Path] = []
    figures: list[str] = []
    skipped = None
    plot_formats = [f for f in PLOT_FORMATS if f in formats]
    if plot_formats and figure_stems(exp):
        from tcmbench.experiment import plots

        try:
            drawn = plots.draw(exp, metric, plot_formats, out)
        except plots.MatplotlibMissing as exc:
            skipped = str(exc)
        else:
            for name, data in drawn.items():
                atomic_write_bytes(out / name, data)
                written.append(out / name)
                figures.append(name)
    markdown = render_markdown(exp, metric, figures, out)
    if "md" in formats:
        atomic_write_text(out / "results.md", markdown)
        written.append(out / "results.md")
    if "csv" in formats:
        atomic_write_text(out / "results.csv", render_csv(exp))
        written.append(out / "results.csv")
    if "json" in formats:
        text = json.dumps(render_json(exp, metric, figures), indent=2, sort_keys=False)
        atomic_write_text(out / "results.json", text + "\n")
        written.append(out / "results.json")
    log.info(
        "experiment report of %s: %s",
        relative_to(exp.root, "."),
        ", ".join(relative_to(p, ".") for p in written),
    )
    return ReportOutput(markdown=markdown, written=written, plots_skipped=skipped)
