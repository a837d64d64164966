"""``tcmbench score``: score prediction files with an official protocol.

Reads the ground truth and the predictions as the official scripts take
them (RRC zips, curved-text zips or folders, the Total-Text DetEval inputs,
tcmbench JSON), scores them with :func:`tcmbench.eval.evaluate` and prints a
markdown table. Imports stay lazy and torch-free: the whole process must be
no slower than the official script it replaces.
"""

from __future__ import annotations

from pathlib import Path

import click

from tcmbench.commands.score_run import ScoreUsage, parse_params


def _parse_params(items: tuple[str, ...]) -> dict[str, str]:
    """``--param`` values (click's BadParameter for a malformed one)."""
    try:
        return parse_params(items)
    except ScoreUsage as exc:
        raise click.BadParameter(exc.message, param_hint=exc.param) from None


def _workers(value: str) -> int:
    """``--workers``: a count of at least 1, or 0 for ``auto`` (resolved by
    the run, after it has set up numpy's threads: nothing is imported here)."""
    text = value.strip().lower()
    if text == "auto":
        return 0
    if text.isdigit() and 1 <= int(text) <= 1024:
        return int(text)
    raise click.BadParameter(
        f"{value!r}: expected auto or a whole number from 1 to 1024", param_hint="--workers"
    )


class ProtocolOption(click.Option):
    """``--protocol``, whose help lists the protocols installed when the help
    is shown (built-ins and every plugin's), not a list written beside the
    option that forgets an installed plugin's protocol."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from tcmbench.contract.registry import protocols

        names = ", ".join(sorted(protocols()))
        self.help = f"Protocol name ({names}). Default: the --dataset's."
        return super().get_help_record(ctx)


@click.command()
@click.option("--protocol", "-p", "protocol", cls=ProtocolOption, default=None)
@click.option(
    "--gt",
    "gt_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Ground truth: a zip, a folder or a file, as distributed.",
)
@click.option(
    "--pred",
    "pred_path",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Predictions: a zip or folder of result files, or a tcmbench JSON file.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result as one JSON object (- for stdout; the table then goes to stderr).",
)
@click.option(
    "--per-image",
    "per_image_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write per-image details as JSON lines (- for stdout).",
)
@click.option(
    "--sweep",
    is_flag=True,
    help="Add mmocr's best score-threshold sweep (0.3..0.9), labelled, apart from the official figure.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Protocol parameter, repeatable (e.g. confidences=true, validate=false).",
)
@click.option(
    "--pred-order",
    type=click.Choice(["xy", "yx"]),
    default=None,
    help="Point order in polygon result files (totaltext-deteval defaults to yx, as Deteval.py).",
)
@click.option(
    "--pred-format",
    type=click.Choice(["auto", "rrc", "rrc-ltrb", "polygon", "polygon-yx", "mat", "json"]),
    default=None,
    help="Prediction file style (default: the protocol's official one).",
)
@click.option(
    "--gt-format", default=None, help="Ground-truth format (default: from the protocol / dataset)."
)
@click.option(
    "--dataset",
    default=None,
    help="A dataset of datasets_cfg: its default protocol and GT format (and its GT when --gt is left out).",
)
@click.option(
    "--split",
    default="test",
    show_default=True,
    help="Split of --dataset to read when --gt is left out.",
)
@click.option(
    "--data-root", default=None, help="Where --dataset's files are (default: its usual places)."
)
@click.option(
    "--skip-invalid", is_flag=True, help="Skip malformed lines (counted) instead of stopping."
)
@click.option(
    "--workers",
    default="auto",
    show_default=True,
    metavar="N|auto",
    help=(
        "Processes for a large run (Linux): one reads the predictions while another reads the "
        "ground truth, and the images are split between them; the figures are the same. "
        "auto: this machine's CPUs, at most 4; 1: one process."
    ),
)
def score(
    protocol: str | None,
    gt_path: Path | None,
    pred_path: Path,
    json_out: Path | None,
    per_image_out: Path | None,
    sweep: bool,
    params: tuple[str, ...],
    pred_order: str | None,
    pred_format: str | None,
    gt_format: str | None,
    dataset: str | None,
    split: str,
    data_root: str | None,
    skip_invalid: bool,
    workers: str,
) -> None:
    """Score prediction files against ground truth with an official protocol.

    Prints a markdown table of the official figures (and the TIoU / AP
    figures where the protocol defines them).
    """
    from tcmbench.commands._heap import keep_freed_pages

    keep_freed_pages()  # this process is the command's: numpy temporaries reuse mapped pages
    from tcmbench.commands.score_run import run

    processes = _workers(workers)

    try:
        run(
            lambda text, err: click.echo(text, err=err),
            protocol=protocol,
            gt_path=gt_path,
            pred_path=pred_path,
            json_out=json_out,
            per_image_out=per_image_out,
            sweep=sweep,
            params=params,
            pred_order=pred_order,
            pred_format=pred_format,
            gt_format=gt_format,
            dataset=dataset,
            split=split,
            data_root=data_root,
            skip_invalid=skip_invalid,
            workers=processes,
        )
    except ScoreUsage as exc:
        if exc.param is not None:
            raise click.BadParameter(exc.message, param_hint=exc.param) from None
        raise click.UsageError(exc.message) from None
