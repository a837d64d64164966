"""``tcmbench experiment status DIR``: where each cell of an experiment stands.

A sub-command of the ``experiment`` group (``tcmbench.commands.experiment``
adds it). The work is in :mod:`tcmbench.experiment.status`; this module
parses the options, prints the table (on stderr when ``--json -`` gives
stdout to the JSON) and turns a user error into one line and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from tcmbench.commands._options import OneLineError, experiment_dir_argument, json_option


@click.command("status")
@experiment_dir_argument
@click.option(
    "--scheduler/--no-scheduler",
    "ask",
    default=True,
    show_default=True,
    help="Ask SLURM (squeue, sacct) about the cells' jobs; without, the states are the "
    "records' alone.",
)
@json_option("every cell's state, times, job and log tail, and the summary")
def status(directory: Path, ask: bool, json_out: str | None) -> None:
    """Each cell of the experiment in DIR (the --out folder of `tcmbench
    experiment run`): pending, queued, running, done, failed or preempted,
    with its job, times and, for a failed cell, its error and the last lines
    of its log; then a one-line summary.

    The states come from the cell folders (record.json, state.json,
    launch.json) and, for cells run as SLURM jobs, from the scheduler
    (squeue, then sacct) when it can be reached: the summary says which.

    \b
    Examples:
      tcmbench experiment status runs/ablations
      tcmbench experiment status runs/ablations --json - | jq .summary
    """
    from tcmbench.errors import TcmbenchError
    from tcmbench.experiment.status import experiment_status, render
    from tcmbench.safety.paths import is_stdout, write_report

    try:
        result = experiment_status(directory, ask_scheduler=ask)
        if json_out is not None:
            write_report(json_out, json.dumps(result.to_dict(), indent=2) + "\n")
    except TcmbenchError as exc:
        raise OneLineError(str(exc)) from None
    click.echo(render(result), err=is_stdout(json_out))
