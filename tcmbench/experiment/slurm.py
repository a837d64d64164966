"""Cells as SLURM jobs, through submitit (``experiment run --launcher slurm``).

Why jobs and not one long process: the papers' tables are tens of
multi-GPU trainings each, and on a cluster only jobs the scheduler knows
about get GPUs, survive preemption and can be followed. Each selected cell
that is not done (and not already queued or running) becomes one job; the
submitting command returns once they are queued (``--wait`` follows them).

Inside the job, :class:`CellJob` runs :func:`tcmbench.experiment.runner.run_cell`:

- a cell with more than one GPU is one task per GPU: the tasks join one
  process group from SLURM's variables (torchrun's ``RANK`` /
  ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT``, set by
  submitit's ``TorchDistributedEnvironment``; NCCL on GPU, gloo on CPU) and
  the trainer runs DDP; rank 0 then evaluates and writes the record;
- the job id, its log files and the restart count go into the record
  (``launch``) and ``cells/<id>/state.json``;
- preemption and timeouts: SLURM signals the job (``USR2``, 90 s before
  its time limit, or when an operator sends it); submitit calls
  :meth:`CellJob.checkpoint`, which marks the cell ``preempted`` and hands
  back the same callable, and requeues the job. The requeued job runs the
  cell again, and the cell's own resume (the trainer's last resumable
  checkpoint, ``TrainConfig.resume``) continues it: no state is pickled.
  A job requeued without the signal (``scontrol requeue``, a node failure)
  resumes the same way.

submitit is an optional dependency (``pip install 'tcmbench[slurm]'``),
imported only here.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcmbench.errors import TcmbenchError
from tcmbench.experiment.grid import Cell, Grid

log = logging.getLogger(__name__)

try:  # optional: this module (options, parsing) imports without it
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - without the slurm extra

    class _Checkpointable:  # type: ignore[no-redef]
        """Stand-in: nothing is submitted without submitit (require_submitit)."""


#: Timeouts a cell may hit and still be requeued (submitit's countdown);
#: preemptions do not count.
MAX_TIMEOUTS = 10
#: sbatch options the launcher sets itself: ``--sbatch-arg`` may not.
OWNED_SBATCH = {
    "output": "the log files are the cell's (cells/<id>/slurm/)",
    "error": "the log files are the cell's (cells/<id>/slurm/)",
    "open-mode": "a requeued job appends to its logs",
    "job-name": "the job is named after the grid and the cell",
    "time": "use --time",
    "partition": "use --partition",
    "account": "use --account",
    "mem": "use --mem",
    "nodes": "use --nodes-per-cell",
    "ntasks-per-node": "one task per GPU: use --gpus-per-cell",
    "gpus-per-node": "use --gpus-per-cell",
    "cpus-per-task": "use --cpus-per-task",
    "signal": "submitit's preemption signal",
    "array": "one job per cell",
    "wrap": "the job runs the cell",
}
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_MEM = re.compile(r"[0-9]{1,12}[KMGT]?")
#: Scheduler states of a job that is still in the queue or running.
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
    }
)


def require_submitit() -> Any:
    """The submitit module, or one line saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise TcmbenchError(
            "--launcher slurm needs submitit: pip install 'tcmbench[slurm]' (or pip install submitit)"
        ) from None
    return submitit


def parse_sbatch_args(values: Sequence[str]) -> dict[str, Any]:
    """``--sbatch-arg KEY=VALUE`` (or a bare ``KEY`` for a flag such as
    ``exclusive``) as submitit's ``additional_parameters``. Keys are sbatch
    long options without the dashes; a value is one line (it is written
    into the job script)."""
    out: dict[str, Any] = {}
    for raw in values:
        key, eq, value = raw.partition("=")
        key = key.strip().lstrip("-")
        if not _KEY.fullmatch(key):
            raise TcmbenchError(
                f"--sbatch-arg {raw!r}: KEY must be an sbatch long option without dashes "
                "(letters, digits, - and _), e.g. --sbatch-arg qos=high or --sbatch-arg exclusive"
            )
        key = key.replace("_", "-")
        if key in OWNED_SBATCH:
            raise TcmbenchError(f"--sbatch-arg {key}: set by the launcher ({OWNED_SBATCH[key]})")
        if any(ch in value for ch in "\n\r\0") or len(value) > 4096:
            raise TcmbenchError(
                f"--sbatch-arg {key}: the value must be one line of at most 4096 characters"
            )
        out[key] = value if eq else True
    return out


@dataclass(frozen=True)
class SlurmOptions:
    """What each cell's job asks SLURM for."""

    partition: str | None = None
    account: str | None = None
    time_min: int = 1440
    mem: str | None = None
    gpus_per_cell: int = 1
    nodes_per_cell: int = 1
    cpus_per_task: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nodes_per_cell < 1:
            raise TcmbenchError("--nodes-per-cell must be at least 1")
        if self.gpus_per_cell % self.nodes_per_cell:
            raise TcmbenchError(
                f"--gpus-per-cell {self.gpus_per_cell} is not a multiple of --nodes-per-cell "
                f"{self.nodes_per_cell}: each node of a cell runs the same number of GPUs"
            )
        if self.mem is not None and not _MEM.fullmatch(self.mem):
            raise TcmbenchError(
                f"--mem {self.mem!r}: expected a number with an optional K, M, G or T (e.g. 64G)"
            )

    @property
    def gpus_per_node(self) -> int:
        return self.gpus_per_cell // self.nodes_per_cell

    @property
    def tasks_per_node(self) -> int:
        """One process per GPU (one on a CPU-only cell)."""
        return max(1, self.gpus_per_node)

    @property
    def world_size(self) -> int:
        return self.tasks_per_node * self.nodes_per_cell

    def parameters(self, job_name: str) -> dict[str, Any]:
        """submitit ``SlurmExecutor.update_parameters`` keywords."""
        params: dict[str, Any] = {
            "job_name": job_name,
            "time": int(self.time_min),
            "nodes": int(self.nodes_per_cell),
            "ntasks_per_node": self.tasks_per_node,
            # requeue on preemption even where the cluster's default is not to
            "additional_parameters": {"requeue": True, **dict(self.extra)},
        }
        if self.gpus_per_node:
            params["gpus_per_node"] = self.gpus_per_node
        for key, value in (
            ("partition", self.partition),
            ("account", self.account),
            ("mem", self.mem),
            ("cpus_per_task", self.cpus_per_task),
        ):
            if value is not None:
                params[key] = value
        return params

    def resources(self) -> dict[str, Any]:
        """What ``launch.json`` records of the request."""
        return {
            "partition": self.partition,
            "account": self.account,
            "time_min": self.time_min,
            "mem": self.mem,
            "gpus_per_cell": self.gpus_per_cell,
            "nodes_per_cell": self.nodes_per_cell,
            "tasks_per_node": self.tasks_per_node,
            "cpus_per_task": self.cpus_per_task,
            "sbatch_args": dict(self.extra),
        }

    def describe(self) -> str:
        """One line for the command's output (and --dry-run)."""
        parts = [
            f"{self.nodes_per_cell} node(s) x {self.tasks_per_node} task(s)",
            f"{self.gpus_per_cell} GPU(s)",
            f"time {self.time_min} min",
        ]
        parts += [
            f"{k} {v}"
            for k, v in (
                ("partition", self.partition),
                ("account", self.account),
                ("mem", self.mem),
                ("cpus-per-task", self.cpus_per_task),
            )
            if v is not None
        ]
        parts += [f"--{k}" + ("" if v is True else f"={v}") for k, v in self.extra.items()]
        return ", ".join(parts)


def job_name(grid: Grid, cell: Cell) -> str:
    return f"tcm-{grid.name}-{cell.id}"[:200]


# --------------------------------------------------------------------------
# Inside the job


class CellJob(_Checkpointable):
    """The callable a cell's job runs (pickled by submitit). Checkpointable:
    on preemption or timeout its :meth:`checkpoint` marks the cell
    ``preempted`` and returns the same callable for the requeued job; the
    cell's resume-from-checkpoint does the rest."""

    def __init__(
        self, grid: Grid, cell: Cell, out: str, device: str = "auto", threads: int | None = None
    ) -> None:
        self.grid = grid
        self.cell = cell
        self.out = out
        self.device = device
        self.threads = threads

    def __call__(self) -> str:
        return run_job(self.grid, self.cell, Path(self.out), self.device, self.threads)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from tcmbench.experiment.cellstate import write_state

        try:
            write_state(self._cell_dir(), self.cell.id, "preempted", _job_launch())
        except (OSError, TcmbenchError) as exc:  # the requeue matters more than the note
            log.warning("could not mark %s preempted: %s", self.cell.id, exc)
        print(
            f"{self.cell.id}: preempted; requeued, it resumes from its last checkpoint",
            flush=True,
        )
        return super().checkpoint(*args, **kwargs)

    def _cell_dir(self) -> Path:
        return Path(self.out) / "cells" / self.cell.id


def _job_launch() -> dict[str, Any]:
    """This job's ``launch`` entry (task 0's log files)."""
    import submitit
    from submitit.core.utils import JobPaths

    from tcmbench.experiment.cellstate import launch_info

    env = submitit.JobEnvironment()
    paths = JobPaths(env.paths.folder, job_id=env.job_id, task_id=0)
    return launch_info(
        "slurm",
        job_id=str(env.job_id),
        stdout=str(paths.stdout),
        stderr=str(paths.stderr),
        world_size=int(env.num_tasks),
        restarts=int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
    )


def run_job(grid: Grid, cell: Cell, out: Path, device: str, threads: int | None) -> str:
    """Run one cell as (one task of) its SLURM job; a line saying how it ended."""
    import submitit

    from tcmbench.experiment.cellstate import write_state
    from tcmbench.experiment.runner import _check_same_params, _one_line, read_record, run_cell
    from tcmbench.inference.world import init_distributed, release_world, resolve_device

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    env = submitit.JobEnvironment()
    main = env.global_rank == 0
    cell_dir = out / "cells" / cell.id
    if read_record(cell_dir) is not None:  # submitted twice, or finished by another launcher
        _check_same_params(cell_dir / "record.json", cell, "was finished")
        return f"{cell.id}: done earlier"
    if threads:
        import torch

        torch.set_num_threads(threads)
    if env.num_tasks > 1:  # DDP: torchrun's variables from SLURM's
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    launch = _job_launch()
    if main:
        write_state(cell_dir, cell.id, "running", launch)
    say: Callable[[str], Any] = (lambda text: print(text, flush=True)) if main else log.debug
    try:
        dev = resolve_device(device)  # cuda = this task's GPU (LOCAL_RANK)
        init_distributed(dev)  # before run_cell: it lets rank 0 alone touch the folder
        say(
            f"{cell.id} ({cell.label}) on {dev}, job {launch['job_id']}, "
            f"{env.num_tasks} process(es), restart {launch['restarts']}"
        )
        rec = run_cell(cell, out, grid, str(dev), progress=False, announce=say, launch=launch)
    except Exception as exc:
        if main:
            write_state(cell_dir, cell.id, "failed", launch, error=_one_line(exc))
        raise
    finally:
        release_world()
    if rec is None:
        return f"{cell.id}: rank {env.global_rank} trained"
    write_state(cell_dir, cell.id, "done", launch)
    figures = ", ".join(f"{r['dataset']} hmean {r['hmean']:.4f}" for r in rec["results"])
    say(f"{cell.id}: {figures}")
    return f"{cell.id}: {figures}"


# --------------------------------------------------------------------------
# Submitting


@dataclass(frozen=True)
class Submitted:
    cell: str
    job_id: str | None
    note: str


def submit_cells(
    grid: Grid,
    cells: Sequence[Cell],
    out: Path,
    options: SlurmOptions,
    device: str = "auto",
    threads: int | None = None,
    echo: Callable[[str], Any] = log.info,
) -> list[Submitted]:
    """Submit each of ``cells`` that is neither done nor already in the
    queue as one job; write its ``launch.json``."""
    submitit = require_submitit()
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    from tcmbench.experiment.cellstate import launch_info, read_launch, write_launch
    from tcmbench.experiment.runner import _check_same_params, read_record
    from tcmbench.experiment.status import query_slurm

    out = out.resolve()  # the job may start elsewhere
    earlier = {c.id: read_launch(out / "cells" / c.id) for c in cells}
    ids = [
        str(doc["launch"]["job_id"])
        for doc in earlier.values()
        if doc and doc["launch"].get("job_id")
    ]
    view = query_slurm(ids)
    done: list[Submitted] = []
    for i, cell in enumerate(cells, 1):
        head = f"[{i}/{len(cells)}] {cell.id}"
        cell_dir = out / "cells" / cell.id
        if read_record(cell_dir) is not None:
            _check_same_params(cell_dir / "record.json", cell, "was finished")
            echo(f"{head}: done earlier, skipped")
            done.append(Submitted(cell.id, None, "done"))
            continue
        prior = earlier.get(cell.id)
        prior_id = str(prior["launch"].get("job_id")) if prior else None
        if prior_id and view.states.get(prior_id) in ACTIVE_STATES:
            echo(f"{head}: already job {prior_id} ({view.states[prior_id].lower()}), not submitted")
            done.append(Submitted(cell.id, prior_id, "queued"))
            continue
        executor = submitit.SlurmExecutor(folder=cell_dir / "slurm", max_num_timeout=MAX_TIMEOUTS)
        executor.update_parameters(**options.parameters(job_name(grid, cell)))
        try:
            job = executor.submit(CellJob(grid, cell, str(out), device, threads))
        except (FailedJobError, FailedSubmissionError, OSError) as exc:
            # sbatch refused (partition, account, GPUs...): its message
            raise TcmbenchError(f"{cell.id}: sbatch failed: {_sbatch_message(exc)}") from None
        launch = launch_info(
            "slurm",
            job_id=str(job.job_id),
            stdout=str(job.paths.stdout),
            stderr=str(job.paths.stderr),
            world_size=options.world_size,
            restarts=0,
        )
        launch["host"] = None  # the job's host is not known yet
        write_launch(cell_dir, cell.id, launch, options.resources())
        echo(f"{head} ({cell.label}): job {job.job_id}, log {job.paths.stdout}")
        done.append(Submitted(cell.id, str(job.job_id), "submitted"))
    return done


def _sbatch_message(exc: BaseException) -> str:
    """The useful line of a failed submission (sbatch's own error)."""
    text = str(exc)
    for attr in ("stderr", "output"):
        value = getattr(exc, attr, None)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if value:
            text = str(value)
            break
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [type(exc).__name__])[-1][:500]
