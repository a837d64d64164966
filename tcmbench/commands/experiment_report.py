"""``tcmbench experiment report DIR``: the tables and plots of an experiment.

A sub-command of the ``experiment`` group (``tcmbench.commands.experiment``
adds it). The work is in :mod:`tcmbench.experiment.report`; this module
parses the options, prints the markdown and the paths written (relative to
the current directory: the output names no absolute path), and turns a
user error into one line and exit code 2 (as ``tcmbench.cli.main`` does for
every command, but also when the command is invoked on its own, e.g. by
click's test runner).
"""

from __future__ import annotations

from pathlib import Path

import click

from tcmbench.commands._options import OneLineError, experiment_dir_argument


@click.command("report")
@experiment_dir_argument
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the report (default DIR/report).",
)
@click.option(
    "--format",
    "formats",
    default="md,csv,json,png,svg,pdf",
    show_default=True,
    help="Comma-separated outputs: md (results.md), csv, json, and the plots as png, "
    "svg and/or pdf (vector forms for a paper).",
)
@click.option(
    "--metric",
    type=click.Choice(["hmean", "precision", "recall"]),
    default=None,
    help="Figure plotted and compared with the paper (default: the grid's, else hmean).",
)
def report(directory: Path, out_dir: Path | None, formats: str, metric: str | None) -> None:
    """Write an experiment's paper-shaped tables (results.md, results.csv,
    results.json) and plots (few-shot curve, ablation bars; PNG, SVG, PDF)
    from the cell records in DIR (the --out folder of `tcmbench experiment run`).

    Unfinished cells are shown as pending; a tiny run is labelled as a
    machinery check that is not comparable with the paper. Cells that
    differ only in their seed are shown as mean ± sample std with n (error
    bars on the plots).
    """
    from tcmbench.errors import TcmbenchError
    from tcmbench.experiment.report import parse_formats, write_report
    from tcmbench.experiment.results import load_experiment
    from tcmbench.experiment.shaping import relative_to

    try:
        exp = load_experiment(directory)
        out = write_report(exp, out_dir, parse_formats(formats), metric)
    except TcmbenchError as exc:
        raise OneLineError(str(exc)) from None
    click.echo(out.markdown, nl=False)
    if out.plots_skipped:
        click.echo(f"No plots: {out.plots_skipped}", err=True)
    click.echo("")
    for path in out.written:
        click.echo(f"wrote {relative_to(path, '.')}")
