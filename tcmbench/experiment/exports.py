"""The experiment report's machine-readable outputs: ``results.csv`` and ``results.json``.

One row per (cell, test set) with the records' own values (fractions), the
published figure it is compared with and the run's facts; a pending cell is
one row with its status. The CSV is safe to open in a spreadsheet (a text
cell that would run as a formula is quoted).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from tcmbench.experiment import schema
from tcmbench.experiment.results import SCHEMA, Experiment
from tcmbench.experiment.shaping import dataset_infos, paper_value_for, run_facts

CSV_FIELDS = (
    "grid",
    "paper",
    "tiny",
    "cell",
    "label",
    "status",
    "integrity",
    "dataset",
    "split",
    "protocol",
    "official_protocol",
    "precision",
    "recall",
    "hmean",
    "images",
    "figure",
    "sweep_best_hmean",
    "sweep_best_threshold",
    "sweep_label",
    "steps",
    "train_images",
    "seconds",
    "paper_precision",
    "paper_recall",
    "paper_hmean",
    "paper_source",
    "params",
)


def result_rows(exp: Experiment) -> list[dict[str, Any]]:
    """One row per (cell, test set); a pending cell is one row with its
    status and no figures. Values are the records' own (fractions)."""
    infos = {info.column: info for info in dataset_infos(exp)}
    rows = []
    for cell in exp.cells:
        base = {
            "grid": exp.name,
            "paper": exp.paper,
            "tiny": exp.tiny,
            "cell": cell.id,
            "label": cell.label,
            "status": cell.status,
            "integrity": cell.integrity or None,
            "steps": cell.steps,
            "train_images": cell.train_images,
            "seconds": cell.seconds,
            "params": cell.params,
        }
        columns = [r.column for r in cell.results] or list(infos) or [""]
        for column in columns:
            res = cell.result(column)
            info = infos.get(column)
            pv = paper_value_for(exp, cell, column) if column else None
            rows.append(
                {
                    **base,
                    "dataset": res.dataset if res else (info.dataset if info else ""),
                    "split": res.split if res else (info.split if info else ""),
                    "protocol": res.protocol if res else "",
                    "official_protocol": info.official if info else None,
                    "precision": res.precision if res else None,
                    "recall": res.recall if res else None,
                    "hmean": res.hmean if res else None,
                    "images": res.images if res else None,
                    "figure": res.figure_label if res else None,
                    "sweep_best_hmean": res.best_hmean if res else None,
                    "sweep_best_threshold": res.best_threshold if res else None,
                    "sweep_label": res.best_label if res else None,
                    "test_settings": res.raw.get("test") if res else None,
                    "paper_precision": pv.values.get("precision") if pv else None,
                    "paper_recall": pv.values.get("recall") if pv else None,
                    "paper_hmean": pv.values.get("hmean") if pv else None,
                    "paper_source": pv.source if pv else None,
                }
            )
    return rows


#: First characters that make a spreadsheet read a cell as a formula (OWASP
#: "CSV injection"): such a text cell is written with a leading quote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell: None as empty, text that a spreadsheet would run as a
    formula (``=HYPERLINK(...)`` from a label) prefixed with ``'``; numbers
    stay numbers (-0.5 is a number, not a formula)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def render_csv(exp: Experiment) -> str:
    buf = io.StringIO()
    # Text quoted, numbers bare: a carriage return inside a label (which
    # minimal quoting leaves bare with "\n" line ends) cannot split a row.
    writer = csv.DictWriter(
        buf, fieldnames=CSV_FIELDS, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC
    )
    writer.writeheader()
    for row in result_rows(exp):
        out = {k: row.get(k) for k in CSV_FIELDS}
        out["params"] = json.dumps(row["params"], sort_keys=True)
        out["tiny"] = "true" if row["tiny"] else "false"
        writer.writerow({k: csv_cell(v) for k, v in out.items()})
    return buf.getvalue()


def render_json(exp: Experiment, metric: str, figures: Sequence[str] = ()) -> dict[str, Any]:
    facts = run_facts(exp)
    return {
        "schema": SCHEMA,
        "grid": exp.name,
        "title": exp.title,
        "paper": exp.paper,
        "tiny": exp.tiny,
        "run": facts["run"],
        "report": {**exp.spec, "metric": metric},
        "datasets": [
            {
                "column": i.column,
                "dataset": i.dataset,
                "split": i.split,
                "protocols": list(i.protocols),
                "official_protocol": i.official,
                "unofficial_protocols": list(i.unofficial),
                "images": list(i.images),
            }
            for i in dataset_infos(exp)
        ],
        "steps": facts["steps"],
        "versions": facts["versions"],
        "devices": facts["devices"],
        "status_counts": facts["status_counts"],
        "pending": [c.id for c in exp.cells if not c.done],
        "edited": [c.id for c in exp.cells if c.edited],
        "unverified": [c.id for c in exp.cells if c.integrity == schema.UNVERIFIED],
        "rows": result_rows(exp),
        "paper_values": [
            {"match": dict(pv.match), "dataset": pv.dataset, **pv.values, "source": pv.source}
            for pv in exp.paper_values
        ],
        "figures": list(figures),
    }
