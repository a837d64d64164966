"""How a plugin's components compare with the authors' code, as data.

A reproduction is trusted only when each place where it may differ from the
official code is written down: what the authors' code does (and where, so a
reader can check), what tcmbench does by default, and which recipe key picks
the other behaviour. Plugins declare these rows on their
:class:`~tcmbench.contract.spec.DetectorSpec` (``fidelity``); the core keeps the
rows of its own TCM module. ``python -m tcmbench.docgen`` writes them as the
tables of docs/pan.md, docs/fcenet.md and docs/tcm.md (block kind
``fidelity``), so the table cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FidelityRow:
    """One component of a detector, compared with the official code.

    ``row``: the number the fidelity issue gave it (tests are named after
    it). ``official``: the authors' value; ``source``: repository, file and
    line or config key where it is; ``default``: what tcmbench's paper / TCM
    recipes use (equal to ``official`` unless ``note`` says why not);
    ``plain_default``: what the plugin's own (non-paper) recipes use when it
    differs; ``recipe_key``: the recipe key (and its value names) that
    selects either behaviour.
    """

    row: int
    component: str
    official: str
    source: str
    default: str
    recipe_key: str
    plain_default: str = ""
    note: str = ""


def fidelity_markdown(rows: tuple[FidelityRow, ...]) -> str:
    """The rows as a markdown table (the docgen ``fidelity`` block)."""
    lines = [
        (
            "| # | component | official value | official source "
            "| tcmbench, paper / TCM recipes | tcmbench, plain recipes | recipe key |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r.row):
        cells = [
            str(r.row),
            r.component,
            r.official,
            r.source,
            r.default + (f" ({r.note})" if r.note else ""),
            r.plain_default or "same",
            f"`{r.recipe_key}`" if r.recipe_key else "-",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
