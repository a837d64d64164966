"""Running an experiment grid's cells, one after another, resumably.

Each cell trains (unless ``train_fraction`` is 0) with the ordinary
trainer (:func:`tcmbench.train.run.run_training`) into
``OUT/cells/<id>/run`` and is then scored on its test sets with the same
library calls as ``tcmbench evaluate`` (:func:`tcmbench.inference.predict_samples`
and :func:`tcmbench.eval.evaluate`); the outcome is ``record.json``, written
atomically last, so its presence means "done".

Why resuming is exact: training saves resumable checkpoints often
(:func:`default_save_every`) and a killed cell continues with
``TrainConfig.resume``, which the trainer guarantees ends with the same
weights as an uninterrupted run; the logging window divides the checkpoint
interval, so the recorded losses are the same too. A killed evaluation
simply runs again.

Spreading over processes: under ``torchrun`` each process takes every
``WORLD_SIZE``-th selected cell and trains it as a single process on its
own device (``cuda:LOCAL_RANK``, else the CPU): :func:`single_process_env`
hides the torchrun variables from the trainer so that no DDP process group
is formed. No process waits for another, so no scheduler is needed.

On a cluster, ``experiment run --launcher slurm`` (tcmbench.experiment.slurm)
submits each cell as a job that calls :func:`run_cell` itself; a cell with
several GPUs then trains as one DDP process group (the process group is
joined before :func:`run_cell`, which lets rank 0 alone touch the folder
and evaluate). Every launcher records in ``cells/<id>/state.json`` what the
cell is doing (tcmbench.experiment.cellstate) and in the record how it ran
(``launch``), for ``experiment status``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcmbench.errors import TcmbenchError
from tcmbench.experiment.grid import EMBEDDED, Cell, Grid
from tcmbench.experiment.schema import with_checksum

log = logging.getLogger(__name__)

SCHEMA = 1
RECORD = "record.json"
CELL_FILE = "cell.json"
#: Variables torchrun sets; a cell's training must not see them (it would
#: join a process group with the other processes, which run other cells).
TORCHRUN_ENV = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "ROLE_NAME",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_USE_AGENT_STORE",
)


class ExperimentError(TcmbenchError):
    """An output folder that belongs to another experiment, or a cell whose
    finished record was made with other settings."""


@dataclass(frozen=True)
class Slot:
    """This process's share of the cells: rank ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def spread(self) -> bool:
        return self.world_size > 1


def torchrun_slot(env: Mapping[str, str] | None = None) -> Slot:
    """The torchrun rank of this process (rank 0 of 1 outside torchrun)."""
    env = os.environ if env is None else env
    try:
        return Slot(
            int(env.get("RANK", "0")),
            int(env.get("WORLD_SIZE", "1")),
            int(env.get("LOCAL_RANK", "0")),
        )
    except ValueError:
        raise TcmbenchError(
            "RANK / WORLD_SIZE / LOCAL_RANK are not integers (run under torchrun or unset them)"
        ) from None


@contextlib.contextmanager
def single_process_env() -> Iterator[None]:
    """Hide the torchrun variables while a cell runs (restored after), so
    the trainer and evaluation run as one process."""
    saved = {k: os.environ.pop(k) for k in TORCHRUN_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def cell_device(requested: str, slot: Slot) -> str:
    """``auto`` under torchrun = this process's GPU (``cuda:LOCAL_RANK``)
    when CUDA is there, else the CPU; an explicit device is kept."""
    if requested not in ("auto", "", None) or not slot.spread:
        return requested or "auto"
    import torch

    return f"cuda:{slot.local_rank}" if torch.cuda.is_available() else "cpu"


def my_cells(cells: Sequence[Cell], slot: Slot) -> list[Cell]:
    """The k-th selected cell goes to rank ``k % WORLD_SIZE``."""
    return [c for k, c in enumerate(cells) if k % slot.world_size == slot.rank]


def default_save_every(steps: int | None) -> int:
    """Resumable checkpoints of a cell of ``steps`` steps: every quarter of
    a short run (a kill loses little; a TCM checkpoint is ~0.8 GB, so not
    every step), at most every 1000 steps (also when the length is given in
    epochs)."""
    if steps is None:
        return 1000
    return max(1, min(1000, math.ceil(steps / 4)))


def log_every_for(save_every: int) -> int:
    """The largest logging window up to 10 steps that divides the
    checkpoint interval: a run resumed at a checkpoint then logs the same
    loss means as an uninterrupted one."""
    if save_every <= 0:
        return 10
    return max(d for d in range(1, 11) if save_every % d == 0)


# --------------------------------------------------------------------------
# The output folder


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _write_json(path: Path, doc: Any) -> None:
    from tcmbench.safety.paths import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _read_json(path: Path) -> Any:
    """A JSON file of the experiment folder, read under the size and depth
    limits of every document (tcmbench.safety.validation): a record anyone can
    edit must not hang or crash the runner."""
    from tcmbench.experiment.schema import MAX_EXPERIMENT_BYTES
    from tcmbench.safety.validation import parse_json, read_document

    return parse_json(read_document(path, max_bytes=MAX_EXPERIMENT_BYTES), str(path))


def _json_line(line: str, source: str) -> Any:
    """One line of ``train_log.jsonl``, or None when it does not parse (a
    line cut short by a kill, or an edited one)."""
    from tcmbench.safety.validation import DocumentError, parse_json

    try:
        return parse_json(line, source)
    except DocumentError:
        return None


def prepare_out(out: Path, grid: Grid, cells: Sequence[Cell]) -> None:
    """Write ``experiment.json`` and ``grid.yaml`` (every process writes the
    same content atomically); refuse a folder of another grid or of the
    other (tiny / full) form."""
    import yaml

    meta_path = out / "experiment.json"
    if meta_path.is_file():
        try:
            old = _read_json(meta_path)
        except TcmbenchError as exc:
            raise ExperimentError(f"{exc}; use another --out") from None
        if not isinstance(old, dict):
            raise ExperimentError(f"{meta_path}: not an experiment file; use another --out")
        if old.get("grid") != grid.name or bool(old.get("tiny")) != grid.tiny:
            form = "tiny" if old.get("tiny") else "full"
            raise ExperimentError(
                f"{out} holds the {form} form of grid {old.get('grid')!r}; this run is grid "
                f"{grid.name!r}{' --tiny' if grid.tiny else ''}: use another --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "schema": SCHEMA,
        "grid": grid.name,
        "title": grid.title,
        "paper": grid.paper,
        "description": grid.description,
        "tiny": grid.tiny,
        "report": grid.report,
        "grid_file": grid.source,
        "paper_values": grid.raw.get("paper_values") or [],
        "cells": [c.entry() for c in cells],
    }
    _write_json(meta_path, meta)
    from tcmbench.safety.paths import atomic_write_text

    class _Plain(yaml.SafeDumper):  # values written out: readers refuse YAML aliases
        def ignore_aliases(self, data: Any) -> bool:
            return True

    text = yaml.dump(grid.as_run(), Dumper=_Plain, sort_keys=False, allow_unicode=True)
    atomic_write_text(out / "grid.yaml", text)


def _check_same_params(path: Path, cell: Cell, what: str) -> None:
    try:
        doc = _read_json(path)
    except TcmbenchError:
        return  # unreadable: the caller redoes the cell
    old = doc.get("params") if isinstance(doc, dict) else None
    if isinstance(old, dict) and _canon(old) != _canon(cell.params):
        diff = [k for k in cell.params if _canon(old.get(k)) != _canon(cell.params[k])]
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {cell.params[k]!r}" for k in diff[:3])
        raise ExperimentError(
            f"{path}: cell {cell.id} {what} with other settings ({shown}); use another --out "
            f"or delete {path.parent}"
        )


def read_record(cell_dir: Path) -> dict[str, Any] | None:
    """A finished cell's record, or None (absent or unreadable)."""
    path = cell_dir / RECORD
    if not path.is_file():
        return None
    try:
        doc = _read_json(path)
    except TcmbenchError as exc:
        log.warning("%s; running the cell again", exc)
        return None
    if not isinstance(doc, dict) or doc.get("status") != "done":
        return None
    from tcmbench.experiment.schema import EDITED, record_integrity

    if record_integrity(doc) == EDITED:
        log.warning(
            "%s was edited after the run (its checksum does not match); `experiment report` "
            "marks it as edited (delete it to run the cell again)",
            path,
        )
    return doc


# --------------------------------------------------------------------------
# Weights


def resolve_init(ref: str | None, spec: Any) -> str | None:
    """``init_from`` as the trainer takes it: ``embedded`` = the plugin's
    shipped weights folder."""
    if ref != EMBEDDED:
        return ref
    from tcmbench.hub.checkpoints import embedded_weights

    found = embedded_weights(spec)
    if found is None:
        raise TcmbenchError(
            f"init_from: {EMBEDDED}: plugin {spec.name!r} ships no weights in its package"
        )
    return str(found)


def _detector_parts(p: Mapping[str, Any], spec: Any) -> tuple[Any, dict[str, Any], Any]:
    """(TrainConfig, training recipe, DetectorConfig) of a cell, exactly as
    the trainer would build them."""
    from tcmbench.train.hyper import TrainConfig
    from tcmbench.train.recipe_choice import build_detector_config, choose_recipe
    from tcmbench.train.run import recipe_for

    cfg = TrainConfig(
        plugin=p["plugin"],
        datasets=list(p["train_datasets"]) or list(p["test_datasets"])[:1],
        recipe=p["recipe"],
        backbone=p["backbone"],
        pretrained_backbone=p["pretrained_backbone"],
        tcm=tcm_dict(p["tcm"]),
        seed=int(p["seed"]),
        init_from=resolve_init(p["init_from"], spec),
    )
    recipe = choose_recipe(cfg, spec).recipe  # as run_training: maybe the checkpoint's
    config = build_detector_config(cfg, recipe)
    return cfg, recipe_for(recipe, config), config


def tcm_dict(value: Any) -> dict[str, Any] | None:
    """A cell's ``tcm`` as ``TrainConfig.tcm``: None (off) or the settings
    (missing ones = TCMConfig's defaults; context_length None = the recipe's)."""
    if value is False or value is None:
        return None
    out: dict[str, Any] = {"context_length": None}
    if isinstance(value, dict):
        out.update(value)
    return out


def initial_model(
    p: Mapping[str, Any], spec: Any, device: Any, announce: Any
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The weights a cell's training would start from, for a cell that does
    not train (``train_fraction: 0``): ``init_from`` loaded into the cell's
    architecture, else the freshly initialised model (seeded). Returns
    (model, recipe with its normalisation, what it is)."""
    import torch

    from tcmbench.contract.registry import get_plugin_manager

    _, recipe, config = _detector_parts(p, spec)
    torch.manual_seed(int(p["seed"]))  # as the trainer seeds before building
    model = get_plugin_manager().hook.build_detector(spec=spec, config=config)
    ref = resolve_init(p["init_from"], spec)
    what: dict[str, Any]
    if ref is None:
        what = {
            "kind": "fresh",
            "source": f"freshly initialised (seed {p['seed']}"
            + (", ImageNet backbone" if config.pretrained_backbone else "")
            + (
                ", random CLIP"
                if config.tcm is not None and config.tcm.clip_pretrained is None
                else ""
            )
            + ")",
        }
    else:
        from tcmbench.train.init_from import init_weights

        report = init_weights(model, ref, spec, config)
        announce(report.table())
        what = {
            "kind": EMBEDDED if p["init_from"] == EMBEDDED else "init_from",
            "source": ref,
            "keys": report.to_dict()["counts"],
            "loaded_by_module": report.to_dict()["loaded_by_module"],
        }
    model.to(device)
    return model, recipe, what


# --------------------------------------------------------------------------
# Training and evaluation


def train_config(
    p: Mapping[str, Any], spec: Any, run_dir: Path, device: str, progress: bool
) -> Any:
    """The TrainConfig of a training cell (no evaluation inside the trainer:
    the cell scores its final weights afterwards)."""
    from tcmbench.train.hyper import TrainConfig

    options = dict(p["train_options"] or {})
    options.setdefault("save_every", default_save_every(p["steps"]))
    options.setdefault("log_every", log_every_for(int(options["save_every"])))
    options.setdefault("keep_checkpoints", 1)
    return TrainConfig(
        plugin=p["plugin"],
        datasets=list(p["train_datasets"]),
        recipe=p["recipe"],
        output=str(run_dir),
        backbone=p["backbone"],
        pretrained_backbone=p["pretrained_backbone"],
        steps=p["steps"],
        epochs=p["epochs"],
        batch_size=p["batch_size"],
        lr=p["lr"],
        optimizer=p["optimizer"],
        train_fraction=float(p["train_fraction"]),
        seed=int(p["seed"]),
        device=device,
        tcm=tcm_dict(p["tcm"]),
        init_from=resolve_init(p["init_from"], spec),
        eval_datasets=[],
        progress=progress,
        **options,
    )


def has_checkpoint(run_dir: Path) -> bool:
    from tcmbench.train.state import TRAINING_STATE_NAME

    ck = run_dir / "checkpoints"
    return ck.is_dir() and any((d / TRAINING_STATE_NAME).is_file() for d in ck.iterdir())


def last_losses(run_dir: Path) -> dict[str, float]:
    """The loss terms of the last ``train`` event in ``train_log.jsonl``
    (the mean over the last logging window); the same for a resumed run."""
    path = run_dir / "train_log.jsonl"
    best: dict[str, Any] = {}
    if not path.is_file():
        return {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        ev = _json_line(line, str(path))  # None: a line cut short by a kill
        if (
            isinstance(ev, dict)
            and ev.get("event") == "train"
            and ev.get("step", -1) >= best.get("step", -1)
        ):
            best = ev
    return {
        k: float(v)
        for k, v in best.items()
        if k.startswith("loss") and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def train_cell(
    cell: Cell, cell_dir: Path, spec: Any, device: str, progress: bool, announce: Any
) -> dict[str, Any]:
    """Train (or continue training) a cell; its ``train`` record."""
    from tcmbench.inference.world import barrier, current_world
    from tcmbench.train.run import run_training

    run_dir = cell_dir / "run"
    cfg = train_config(cell.params, spec, run_dir, device, progress)
    resumed = has_checkpoint(run_dir)
    main = current_world().is_main  # a DDP cell: rank 0 alone changes the folder
    barrier()  # every rank has looked before rank 0 changes anything
    if resumed:
        cfg.resume = str(run_dir)
        cfg.init_from = None  # the checkpoint holds the weights
        if main:
            _drop_partial_line(run_dir / "train_log.jsonl")
            announce(f"{cell.id}: stopped before it finished; continuing from its last checkpoint")
    elif main and run_dir.exists():
        shutil.rmtree(run_dir)  # killed before its first checkpoint: start again
    barrier()
    result = run_training(cfg, announce=announce)
    start = _resume_step(run_dir)
    out_dir = cell_dir.parent.parent
    return {
        "run_dir": os.path.relpath(run_dir, out_dir),
        "steps": int(result.step),
        "seconds": round(float(result.seconds), 2),
        "resumed_from_step": start if resumed else None,
        "final": os.path.relpath(Path(result.final), out_dir) if result.final else None,
        "train_images": _train_images(run_dir),
        "losses": last_losses(run_dir),
        "init_from": cfg.init_from if not resumed else _first_init(run_dir),
        "save_every": cfg.save_every,
    }


def _drop_partial_line(path: Path) -> None:
    """Cut a line a kill left unfinished, so the resumed run's first event
    starts on a line of its own."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        from tcmbench.safety.paths import atomic_write_bytes

        atomic_write_bytes(path, data[: data.rfind(b"\n") + 1])


def _events(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    path = run_dir / "train_log.jsonl"
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            ev = _json_line(line, str(path))
            if isinstance(ev, dict) and ev.get("event") == kind:
                out.append(ev)
    return out


def _train_images(run_dir: Path) -> int | None:
    starts = _events(run_dir, "start")
    return int(starts[-1]["train_images"]) if starts and "train_images" in starts[-1] else None


def _resume_step(run_dir: Path) -> int | None:
    starts = _events(run_dir, "start")
    return int(starts[-1].get("start_step", 0)) if starts else None


def _first_init(run_dir: Path) -> Any:
    starts = _events(run_dir, "start")
    return (starts[0].get("config") or {}).get("init_from") if starts else None


def evaluate_model(
    model: Any,
    norm_recipe: Mapping[str, Any] | None,
    p: Mapping[str, Any],
    spec: Any,
    device: Any,
    progress: bool,
    announce: Callable[[str], Any] | None = None,
) -> list[dict[str, Any]]:
    """Score ``model`` on each of the cell's test sets (first ``eval_limit``
    images of ``eval_split``) with the dataset's protocol and the test
    settings ``evaluate --weights`` would resolve for it (the cell's trained
    recipe, recorded in ``norm_recipe``: tcmbench.inference.settings)."""
    from tcmbench.data.dataset import get_dataset_config, load_split
    from tcmbench.eval import evaluate
    from tcmbench.eval.mmocr_iou import papers_figure
    from tcmbench.eval.submission import submitted_predictions
    from tcmbench.eval.sweep import OFFICIAL_LABEL
    from tcmbench.inference import dataset_protocol, predict_samples
    from tcmbench.inference.settings import resolve_test_recipe

    results = []
    # train_options.data_root names the (single) training dataset's folder;
    # the same dataset is tested from there too.
    root = (p["train_options"] or {}).get("data_root")
    for name in p["test_datasets"]:
        here = root if root and list(p["train_datasets"])[:1] == [name] else None
        samples, _ = load_split(name, p["eval_split"], data_root=here, need_images=True)
        if p["eval_limit"]:
            samples = samples[: int(p["eval_limit"])]
        if not samples:
            raise TcmbenchError(f"{name}/{p['eval_split']} has no images to evaluate on")
        protocol, params = dataset_protocol(get_dataset_config(name), None)
        resolved = resolve_test_recipe(spec, norm_recipe, None, name)
        recipe = resolved.recipe
        raw = predict_samples(model, samples, recipe, device, progress=progress, announce=announce)
        preds = submitted_predictions(raw, protocol)  # the figures evaluate prints
        result = evaluate(samples, preds, protocol, **params)
        # The papers' figure: mmocr-hmean-iou on the polygons as output (evaluate --sweep).
        scored = all(d.score is not None for ds in raw.values() for d in ds)
        papers = papers_figure(samples, raw) if scored else {}
        row: dict[str, Any] = {
            "dataset": name,
            "split": p["eval_split"],
            "protocol": protocol,
            "precision": result.precision,
            "recall": result.recall,
            "hmean": result.hmean,
            "figure": OFFICIAL_LABEL,
            "images": len(samples),
            "test": resolved.summary(),
        }
        if papers.get("best_hmean") is not None:
            # The papers' figure (mmocr 0.x's best threshold), beside the official one.
            row["sweep"] = {
                k: papers.get(k)
                for k in (
                    "label",
                    "protocol",
                    "best_hmean",
                    "best_threshold",
                    "best_precision",
                    "best_recall",
                )
            }
        results.append(row)
    return results


def run_cell(
    cell: Cell,
    out: Path,
    grid: Grid,
    device: str,
    progress: bool = True,
    announce: Callable[[str], Any] = log.info,
    launch: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Run one cell (resuming what a killed run left) and write its record
    (``launch``: how it runs, tcmbench.experiment.cellstate.launch_info).

    Inside a DDP process group (a SLURM cell with several GPUs) every rank
    trains; then the group is left and rank 0 alone evaluates and writes
    the record: the other ranks return None."""
    import torch

    from tcmbench import __version__
    from tcmbench.contract.registry import get_detector
    from tcmbench.inference.world import current_world, resolve_device, shutdown

    w = current_world()
    cell_dir = out / "cells" / cell.id
    cell_file = cell_dir / CELL_FILE
    if cell_file.is_file():  # every rank checks: all refuse alike, none waits
        _check_same_params(cell_file, cell, "was started")
    if w.is_main:
        cell_dir.mkdir(parents=True, exist_ok=True)
        _write_json(cell_file, {"schema": SCHEMA, "cell": cell.id, "params": cell.params})
    started, t0 = _now(), time.monotonic()
    p = cell.params
    spec = get_detector(p["plugin"])
    dev = resolve_device(device)
    train = None
    init: dict[str, Any] | None = None
    if float(p["train_fraction"]) > 0:
        train = train_cell(cell, cell_dir, spec, device, progress, announce)
        if w.distributed:
            shutdown()  # the evaluation is one process's, on rank 0
            if not w.is_main:
                return None
        from tcmbench.inference.loading import load_for_inference

        ckpt = load_for_inference(out / str(train["final"]), spec=spec, device=str(dev))
        model, norm = ckpt.model, ckpt.meta.get("recipe")
        weights = str(train["final"])
    else:
        model, norm, init = initial_model(p, spec, dev, announce)
        weights = init["source"]
    results = evaluate_model(model, norm, p, spec, dev, progress, announce)
    for r in results:
        r["weights"] = weights
    record = {
        "schema": SCHEMA,
        "grid": grid.name,
        "cell": cell.id,
        "label": cell.label,
        "tiny": grid.tiny,
        "params": p,
        "status": "done",
        "init": init,
        "train": train,
        "results": results,
        "seconds": round(time.monotonic() - t0, 2),
        "started": started,
        "finished": _now(),
        "versions": {"tcmbench": __version__, "torch": torch.__version__},
        "device": str(dev),
        "launch": dict(launch) if launch is not None else None,
    }
    # JSON values only, with the checksum of its figures (schema 2): an
    # edit shows in `experiment report`.
    record = with_checksum(record)
    _write_json(cell_dir / RECORD, record)
    if train is not None:  # done: the resumable states are no longer needed (final/ stays)
        shutil.rmtree(cell_dir / "run" / "checkpoints", ignore_errors=True)
    return record


def run_cells(
    grid: Grid,
    cells: Sequence[Cell],
    out: Path,
    device: str = "auto",
    slot: Slot | None = None,
    progress: bool = True,
    echo: Callable[[str], Any] = log.info,
) -> list[dict[str, Any]]:
    """Run this process's share of ``cells`` in order, skipping finished
    ones; returns the records (finished earlier or now)."""
    slot = slot or Slot()
    from tcmbench.experiment.cellstate import launch_info, write_state
    from tcmbench.inference.world import resolve_device

    launch = launch_info("torchrun" if slot.spread else "local")
    mine = my_cells(cells, slot)
    dev = str(resolve_device(cell_device(device, slot)))  # a bad --device fails here
    who = f"rank {slot.rank}/{slot.world_size}: " if slot.spread else ""
    records = []
    t_all = time.monotonic()
    for i, cell in enumerate(mine, 1):
        cell_dir = out / "cells" / cell.id
        head = f"{who}[{i}/{len(mine)}] {cell.id}"
        rec = read_record(cell_dir)
        if rec is not None:
            _check_same_params(cell_dir / RECORD, cell, "was finished")
            echo(f"{head}: done earlier, skipped")
            records.append(rec)
            continue
        echo(f"{head} ({cell.label}) on {dev} ...")
        t0 = time.monotonic()
        write_state(cell_dir, cell.id, "running", launch)
        try:
            with single_process_env():
                rec = run_cell(
                    cell, out, grid, dev, progress=progress, announce=echo, launch=launch
                )
        except Exception as exc:  # recorded for `experiment status`, then raised as before
            write_state(cell_dir, cell.id, "failed", launch, error=_one_line(exc))
            raise
        assert rec is not None  # a single process writes the record
        write_state(cell_dir, cell.id, "done", launch)
        figures = ", ".join(f"{r['dataset']} hmean {r['hmean']:.4f}" for r in rec["results"])
        echo(
            f"{head}: {figures} ({time.monotonic() - t0:.0f} s; "
            f"{time.monotonic() - t_all:.0f} s elapsed)"
        )
        records.append(rec)
    return records


def _one_line(exc: BaseException) -> str:
    """An error as ``experiment status`` shows it: a TcmbenchError's own
    line, anything else with its type."""
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, TcmbenchError) else f"{type(exc).__name__}: {text}"
