"""``tcmbench experiment``: the papers' experiments as grids of cells.

``experiment run GRID --out DIR`` trains and scores each cell of a grid
(a YAML file or a shipped grid's name, ``experiment list``) into DIR,
resumably; ``experiment report DIR`` (its own module) turns the records
into the paper-shaped tables and plots. Under ``torchrun`` the cells are
shared out between the processes; ``--launcher slurm`` submits each cell as
a SLURM job (tcmbench.commands.experiment_launch), and ``experiment status
DIR`` (its own module) says where each cell stands. Format and shipped
grids: docs/experiments.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tcmbench.commands._options import OneLineError, device_option
from tcmbench.commands.experiment_launch import Launch, launcher_options, submit_and_follow
from tcmbench.commands.experiment_status import status as _status
from tcmbench.errors import TcmbenchError


@click.group()
def experiment() -> None:
    """Run the papers' experiments (few-shot, domain transfer, ablations, LR
    factors, backbones, NightTime-ArT) as grids of train/evaluate cells, and
    report them as tables and plots."""


def _split_only(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def select_cells(cells: list[Any], only: list[str], source: str) -> list[Any]:
    """``--only``: cell ids, or their number (``3`` / ``003``)."""
    from tcmbench.experiment.grid import GridError

    if not only:
        return cells
    chosen: list[Any] = []
    for want in only:
        found = [c for c in cells if c.id == want or (want.isdigit() and int(want) == c.index)]
        if not found:
            raise GridError(
                f"--only {want}: no such cell in {source}; cells: " + ", ".join(c.id for c in cells)
            )
        chosen.extend(c for c in found if c not in chosen)
    return sorted(chosen, key=lambda c: c.index)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def dry_run_table(grid: Any, cells: list[Any], all_cells: list[Any]) -> str:
    """The expanded cells as markdown: the keys every cell of the grid
    shares above, then one row per (selected) cell with the keys that differ."""
    from tcmbench.experiment.grid import CELL_KEYS, DEFAULTS

    keys = [k for k in CELL_KEYS if k != "label"]
    varying = [
        k for k in keys if len({json.dumps(c.params[k], sort_keys=True) for c in all_cells}) > 1
    ]
    shared = [
        f"{k}={_fmt(all_cells[0].params[k])}"
        for k in keys
        if k not in varying and all_cells[0].params[k] != DEFAULTS[k]
    ]
    lines = [
        f"grid {grid.name}{' (tiny)' if grid.tiny else ''}: {grid.title}"
        + (f" [{grid.paper}]" if grid.paper else ""),
        f"{len(cells)} of {len(all_cells)} cells; every cell: {', '.join(shared) or '(defaults)'}",
        "",
        "| id | label | params |",
        "|---|---|---|",
    ]
    for c in cells:
        params = ", ".join(f"{k}={_fmt(c.params[k])}" for k in varying) or "-"
        lines.append(f"| {c.id} | {c.label} | {params.replace('|', '/')} |")
    return "\n".join(lines)


@experiment.command("run")
@click.argument("grid_ref", metavar="GRID")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Experiment folder (cells/<id>/record.json, the runs); required unless --dry-run.",
)
@click.option(
    "--tiny",
    is_flag=True,
    help="The grid's tiny form: synthtext-mini, a few steps, a few test images (a CPU "
    "machinery check, not the paper's numbers).",
)
@device_option
@click.option(
    "--only",
    multiple=True,
    metavar="CELL",
    help="Run only these cells (id or number; repeat or comma-separate).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Give a grid variable a value (e.g. the pretrained checkpoint to fine-tune from).",
)
@click.option("--dry-run", is_flag=True, help="Print the expanded cells and exit.")
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    default=None,
    help="CPU threads for torch (default: torch's choice).",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
@launcher_options
def run(
    grid_ref: str,
    out: Path | None,
    tiny: bool,
    device: str,
    only: tuple[str, ...],
    sets: tuple[str, ...],
    dry_run: bool,
    threads: int | None,
    progress: bool,
    launch: Launch,
) -> None:
    """Run the cells of GRID (a YAML file or a shipped grid's name, see
    `tcmbench experiment list`) one after another into --out. A finished
    cell (record.json) is skipped; a killed one resumes from its last
    checkpoint. Under torchrun each process takes every N-th cell on its
    own GPU (training stays single-process). With --launcher slurm each
    cell becomes a SLURM job (DDP over its GPUs, requeued and resumed on
    preemption); `tcmbench experiment status DIR` follows them.

    \b
    Examples:
      tcmbench experiment run few-shot --tiny --out runs/fewshot-tiny
      tcmbench experiment run few-shot --out runs/fewshot --set dbnet_pretrained=runs/st/final \\
          --set tcm_dbnet_pretrained=runs/st-tcm/final
      torchrun --nproc_per_node 8 -m tcmbench experiment run ablations --out runs/ablations
      tcmbench experiment run ablations --out runs/ablations --launcher slurm \\
          --partition gpu --gpus-per-cell 4 --time 2-00:00:00
    """
    try:
        _run(grid_ref, out, tiny, device, only, sets, dry_run, threads, progress, launch)
    except TcmbenchError as exc:
        raise OneLineError(str(exc)) from None


def _run(
    grid_ref: str,
    out: Path | None,
    tiny: bool,
    device: str,
    only: tuple[str, ...],
    sets: tuple[str, ...],
    dry_run: bool,
    threads: int | None,
    progress: bool,
    launch: Launch | None = None,
) -> None:
    from tcmbench.experiment.grid import (
        apply_tiny,
        check_names,
        expand,
        load_grid,
        parse_sets,
        with_sets,
    )
    from tcmbench.experiment.runner import prepare_out, run_cells, torchrun_slot

    slot = torchrun_slot()
    launch = launch or Launch("local")
    if launch.launcher != "local" and slot.spread:
        raise click.UsageError("--launcher slurm submits jobs: run it once, not under torchrun")
    grid = load_grid(grid_ref)
    if tiny:
        grid = apply_tiny(grid)
    grid = with_sets(grid, parse_sets(sets, grid))
    if dry_run:
        every = expand(grid, strict=False)
        cells = select_cells(every, _split_only(only), grid.source)
        if slot.rank == 0:
            click.echo(dry_run_table(grid, cells, every))
            if launch.slurm is not None:
                click.echo(f"\neach cell one SLURM job: {launch.slurm.describe()}")
        return
    if out is None:
        raise click.UsageError("give --out DIR (the experiment folder), or --dry-run")
    from tcmbench.safety.paths import check_destination

    check_destination(out, "--out")  # a file, device, FIFO or link: one line, no work
    if launch.slurm is not None:
        from tcmbench.experiment.slurm import require_submitit

        require_submitit()  # before anything is written
    all_cells = expand(grid)
    check_names(all_cells, grid.source)
    cells = select_cells(all_cells, _split_only(only), grid.source)
    if threads:
        import torch

        torch.set_num_threads(threads)
    prepare_out(out, grid, all_cells)
    if launch.slurm is not None:
        click.echo(
            f"grid {grid.name}{' (tiny)' if grid.tiny else ''}: {len(cells)} of "
            f"{len(all_cells)} cells into {out}"
        )
        submit_and_follow(grid, cells, out, launch, device, threads)
        return
    share = (
        f"; this process (rank {slot.rank} of {slot.world_size}) takes every {slot.world_size}-th"
        if slot.spread
        else ""
    )
    click.echo(
        f"grid {grid.name}{' (tiny)' if grid.tiny else ''}: {len(cells)} of {len(all_cells)} "
        f"cells into {out}{share}"
    )
    import time

    t0 = time.monotonic()
    records = run_cells(
        grid, cells, out, device=device, slot=slot, progress=progress, echo=click.echo
    )
    click.echo(
        f"{'rank ' + str(slot.rank) + ': ' if slot.spread else ''}{len(records)} cells done in "
        f"{time.monotonic() - t0:.0f} s; report: tcmbench experiment report {out}"
    )


@experiment.command("list")
def list_grids() -> None:
    """The shipped grids: name, what they reproduce, whether they have a
    --tiny form."""
    from tcmbench.experiment.grid import load_grid, shipped_grids

    try:
        click.echo("| grid | reproduces | title | --tiny |")
        click.echo("|---|---|---|---|")
        for name in shipped_grids():
            g = load_grid(name)
            click.echo(f"| {name} | {g.paper} | {g.title} | {'yes' if g.has_tiny else 'no'} |")
    except TcmbenchError as exc:
        raise OneLineError(str(exc)) from None


try:  # `experiment report` lives in its own module (another part of issue 9)
    from tcmbench.commands.experiment_report import report as _report
except ImportError:  # pragma: no cover - before that module exists
    pass
else:
    experiment.add_command(_report, "report")

experiment.add_command(_status, "status")


def main() -> None:
    """``python -m tcmbench.commands.experiment`` (what ``tcmbench
    experiment`` runs), e.g. under torchrun before the command is registered."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    experiment(prog_name="tcmbench experiment")


if __name__ == "__main__":
    main()
