"""``experiment run``'s launcher options: ``--launcher local`` (the default:
the cells run in this process, one after another, or shared out under
torchrun) or ``--launcher slurm`` (each cell a SLURM job through submitit;
tcmbench.experiment.slurm), with the job's resources.

Kept apart from tcmbench.commands.experiment so that the run command stays
readable; :func:`launcher_options` hands the command one ``launch``
argument (a :class:`Launch`).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tcmbench.errors import TcmbenchError

_KEYS = (
    "launcher",
    "partition",
    "account",
    "time_limit",
    "mem",
    "gpus_per_cell",
    "nodes_per_cell",
    "cpus_per_task",
    "sbatch_args",
    "wait",
)
#: The option each SLURM-only keyword comes from (for the usage error).
_SLURM_ONLY = {
    "partition": "--partition",
    "account": "--account",
    "time_limit": "--time",
    "mem": "--mem",
    "gpus_per_cell": "--gpus-per-cell",
    "nodes_per_cell": "--nodes-per-cell",
    "cpus_per_task": "--cpus-per-task",
    "sbatch_args": "--sbatch-arg",
    "wait": "--wait",
}
_TIME = re.compile(r"(?:(\d{1,4})-)?(\d{1,5}):(\d{1,2})(?::(\d{1,2}))?")
#: 366 days: a larger limit is a typo, not a plan.
MAX_TIME_MIN = 366 * 24 * 60


@dataclass(frozen=True)
class Launch:
    launcher: str
    slurm: Any = None  # tcmbench.experiment.slurm.SlurmOptions with --launcher slurm
    wait: bool = False


def parse_time(text: str) -> int:
    """``--time``: minutes (``90``) or ``[D-]HH:MM[:SS]`` as sbatch takes
    it; whole minutes, rounded up."""
    text = text.strip()
    if text.isdigit():
        minutes = int(text)
    else:
        m = _TIME.fullmatch(text)
        if not m:
            raise click.BadParameter(
                f"{text!r}: expected minutes (e.g. 1440) or [D-]HH:MM[:SS] (e.g. 1-12:00:00)"
            )
        days, hours, mins, secs = (int(g) if g else 0 for g in m.groups())
        minutes = days * 1440 + hours * 60 + mins + (1 if secs else 0)
    if not 1 <= minutes <= MAX_TIME_MIN:
        raise click.BadParameter(f"{text!r}: between 1 minute and {MAX_TIME_MIN} minutes")
    return minutes


def _launch_from(values: dict[str, Any]) -> Launch:
    launcher = values["launcher"]
    if launcher == "local":
        given = [opt for key, opt in _SLURM_ONLY.items() if values[key] not in (None, False, ())]
        if given:
            raise click.UsageError(f"{', '.join(given)} only make(s) sense with --launcher slurm")
        return Launch("local")
    from tcmbench.experiment.slurm import SlurmOptions, parse_sbatch_args

    try:
        options = SlurmOptions(
            partition=values["partition"],
            account=values["account"],
            time_min=parse_time(values["time_limit"]) if values["time_limit"] else 1440,
            mem=values["mem"],
            gpus_per_cell=1 if values["gpus_per_cell"] is None else values["gpus_per_cell"],
            nodes_per_cell=values["nodes_per_cell"] or 1,
            cpus_per_task=values["cpus_per_task"],
            extra=parse_sbatch_args(values["sbatch_args"]),
        )
    except (TcmbenchError, click.BadParameter) as exc:
        raise click.UsageError(
            str(exc.message if isinstance(exc, click.BadParameter) else exc)
        ) from None
    return Launch("slurm", options, bool(values["wait"]))


def launcher_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: the launcher options, collapsed into a ``launch`` keyword."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {k: kwargs.pop(k) for k in _KEYS}
        kwargs["launch"] = _launch_from(values)
        return func(*args, **kwargs)

    slurm = "(--launcher slurm)"
    options = [
        click.option(
            "--launcher",
            type=click.Choice(["local", "slurm"]),
            default="local",
            show_default=True,
            help="local: the cells run here, one after another (under torchrun, shared out "
            "between the processes); slurm: each cell is submitted as a SLURM job (submitit; "
            "pip install 'tcmbench[slurm]'), and the command returns once they are queued.",
        ),
        click.option("--partition", default=None, help=f"SLURM partition {slurm}."),
        click.option("--account", default=None, help=f"SLURM account {slurm}."),
        click.option(
            "--time",
            "time_limit",
            default=None,
            metavar="LIMIT",
            help=f"Wall-clock limit of each job: minutes or [D-]HH:MM[:SS] (default 1440 = 24 h; "
            f"a job that reaches it is requeued and resumes) {slurm}.",
        ),
        click.option(
            "--mem", default=None, metavar="SIZE", help=f"Memory per node, e.g. 64G {slurm}."
        ),
        click.option(
            "--gpus-per-cell",
            type=click.IntRange(0, 4096),
            default=None,
            help="GPUs of each cell's job (default 1; 0 = CPU). More than one: one process per "
            f"GPU, trained with DDP {slurm}.",
        ),
        click.option(
            "--nodes-per-cell",
            type=click.IntRange(1, 1024),
            default=None,
            help=f"Nodes of each cell's job (default 1); the GPUs are spread evenly {slurm}.",
        ),
        click.option(
            "--cpus-per-task",
            type=click.IntRange(1, 4096),
            default=None,
            help=f"CPUs per process, for data loading (default: the cluster's) {slurm}.",
        ),
        click.option(
            "--sbatch-arg",
            "sbatch_args",
            multiple=True,
            metavar="KEY=VALUE",
            help=f"Any other sbatch option, without dashes (qos=high, constraint=a100, exclusive); "
            f"repeatable {slurm}.",
        ),
        click.option(
            "--wait",
            is_flag=True,
            help=f"Stay until the submitted cells have finished or failed, printing each "
            f"change {slurm}.",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def submit_and_follow(
    grid: Any,
    cells: Sequence[Any],
    out: Path,
    launch: Launch,
    device: str,
    threads: int | None,
) -> None:
    """Submit the cells as jobs; with ``--wait`` follow them to the end
    (exit status 2 when one failed)."""
    from tcmbench.experiment.slurm import submit_cells

    click.echo(f"each cell one SLURM job: {launch.slurm.describe()}")
    submitted = submit_cells(
        grid, cells, out, launch.slurm, device=device, threads=threads, echo=click.echo
    )
    follow = [s.cell for s in submitted if s.job_id is not None]
    if not launch.wait:
        click.echo(
            f"{len(follow)} cell(s) queued; follow them with: tcmbench experiment status {out}"
        )
        return
    failed = wait_for(out, follow)
    if failed:
        raise TcmbenchError(
            f"{len(failed)} cell(s) failed: {', '.join(failed)}; "
            f"see tcmbench experiment status {out}"
        )


def wait_for(out: Path, cells: Sequence[str], poll_s: float = 2.0) -> list[str]:
    """Poll ``experiment status`` until none of ``cells`` is queued,
    running or preempted; print each change. Returns the failed ones."""
    from tcmbench.experiment.status import experiment_status, unfinished

    seen: dict[str, str] = {}
    delay = poll_s
    while True:
        status = experiment_status(out)
        for row in status.cells:
            if row.cell in cells and seen.get(row.cell) != row.state:
                seen[row.cell] = row.state
                job = f" (job {row.job_id})" if row.job_id else ""
                click.echo(f"{row.cell}{job}: {row.state}")
        if not unfinished(status, cells):
            click.echo(status.summary())
            return [r.cell for r in status.cells if r.cell in cells and r.state == "failed"]
        time.sleep(delay)
        delay = min(30.0, delay * 1.5)
