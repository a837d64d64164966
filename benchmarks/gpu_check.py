"""GPU readiness check: every GPU code path tcmbench has, in one short run.

    bash benchmarks/gpu_check.sh --out gpu-check.json          # on a GPU machine
    bash benchmarks/gpu_check.sh --dry-run --out dry.json      # the same steps on CPU

Why: nothing in tcmbench has run on a GPU yet (CUDA, AMP, torchrun on a
GPU, the onnxruntime CUDA provider, GPU latency). A GPU machine is lent
to some tasks only, for minutes; this script is what to run at once when
one is, so that its figures are recorded rather than improvised. It is
sized to finish in under 8 minutes on one GPU (about 20 short processes;
each command has a time limit, and steps that would start after 450 s are
not run and count as failed).

Steps (each a ``tcmbench`` command line; on a GPU each runs in its own
process, so that a crash, a CUDA error or a hang stops that step only;
``--dry-run`` runs them in this process, which saves importing torch
twenty times, except torchrun's):

- ``data``: the dataset's train and test splits (``--dataset``, default
  synthtext-mini, generated on first use; ``--data-root`` where it lives);
- for dbnet, pan and fcenet, plain and with ``--tcm`` (a random CLIP
  encoder, ``--clip-random``: the machine needs no download):
  ``train-P-V`` (a few optimizer steps with ``--amp``, a resumable
  checkpoint half-way), ``resume-P-V`` (``train --resume`` from that
  checkpoint into a new folder; its final weights are compared with the
  uninterrupted run's), ``evaluate-P-V`` (the resumed weights on the first
  images of the test split);
- ``ddp-torchrun``: the DBNet training under ``torchrun`` (one process per
  GPU on a GPU machine, at most 2; two gloo processes in ``--dry-run``);
- ``bench-compare-tcm``: ``tcmbench bench --compare-tcm`` latency of the
  three plugins and their TCM variants at 640 and 1024;
- ``onnxruntime``: the DBNet checkpoint exported to ONNX and evaluated with
  onnxruntime on the GPU (skipped, with the reason, when this onnxruntime
  has no CUDA provider; in ``--dry-run`` the CPU provider).

On a GPU the training steps use each plugin's ``icdar2015`` recipe (the
paper's model, batch and crop size; no ImageNet weights), so their
seconds per step are the ones ``benchmarks/gpu_hours.py --step-times``
turns into GPU-hours per table. ``--dry-run`` runs the same steps on the
CPU with tiny sizes: the ``synthtext-mini`` recipe (MobileNetV3 backbone,
224-320 px crops), 3 steps of 2 images (resumed from step 2), 2 test
images, 64/96 px latency, two gloo processes under torchrun.
``--amp`` is passed in both modes; on the CPU the trainer leaves it off
(its autocast is CUDA-only), and the record says so.

The JSON (``--out``, rewritten after every step so a killed run keeps
what it did) holds, per step: status (ok / failed / skipped), seconds,
figures, the command lines, the log file (in the work folder, removed at
the end unless ``--work`` or ``--keep``) and, when it failed, the reason
and the last lines of its output; ``step_times`` (seconds per training
step of each model); and the GPU's name (``torch.cuda.get_device_name``),
versions, machine, date and sizes. The exit status is 1 when any step
failed, after every step has run (2: no GPU without ``--dry-run``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PLUGINS = ("dbnet", "pan", "fcenet")
VARIANTS = ("plain", "tcm")
#: Environment variables of an enclosing torchrun: a step must not inherit them.
TORCHRUN_ENV = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "GROUP_RANK",
    "ROLE_RANK",
    "TORCHELASTIC_RUN_ID",
)
TAIL_LINES = 25


@dataclass(frozen=True)
class Sizes:
    """How big each step is: the GPU check, or its CPU dry run."""

    mode: str
    device: str
    recipe: str  # of every plugin
    steps: int
    save_at: int  # the checkpoint the resume step starts from
    batch_size: int | None  # None: the recipe's
    workers: int
    eval_limit: int
    resolutions: str
    bench_runs: int
    bench_warmup: int
    #: seconds each command may run
    timeout_s: int
    #: seconds the whole check may take: steps that would start later are
    #: not run (and count as failed), so a hang cannot overrun a GPU lease
    budget_s: int


GPU = Sizes(
    mode="gpu",
    device="cuda",
    recipe="icdar2015",
    # 12 steps, one checkpoint at 8 (a TCM one with its optimizer state is
    # ~1.6 GB), 4 steps after resuming; 5 test images: untrained maps at the
    # recipes' test scales (FCENet: 2260 px) take the CPU post-processing
    # about 2 s per image
    steps=12,
    save_at=8,
    batch_size=None,
    workers=8,
    eval_limit=5,
    resolutions="640,1024",
    bench_runs=20,
    bench_warmup=5,
    timeout_s=240,
    budget_s=450,
)
DRY = Sizes(
    mode="dry-run",
    device="cpu",
    recipe="synthtext-mini",
    steps=3,
    save_at=2,
    batch_size=2,
    workers=0,
    eval_limit=2,
    resolutions="64,96",
    bench_runs=1,
    bench_warmup=0,
    timeout_s=600,
    budget_s=3600,
)


@dataclass
class Step:
    """One entry of the JSON's ``steps``."""

    name: str
    status: str = "ok"
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    log: str | None = None
    reason: str | None = None
    error_tail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "figures": self.figures,
            "commands": self.commands,
            "log": self.log,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.error_tail:
            out["error_tail"] = self.error_tail
        return out


class StepFailed(Exception):
    """A step's command failed or its output lacks what the step checks."""


class Check:
    """Runs the steps, keeps the results and writes the JSON."""

    def __init__(
        self,
        sizes: Sizes,
        work: Path,
        out: Path,
        in_process: bool = False,
        dataset: str = "synthtext-mini",
        data_root: Path | None = None,
    ) -> None:
        self.sizes = sizes
        self.in_process = in_process
        self.dataset = dataset
        self.data_args = ["--data-root", str(data_root)] if data_root is not None else []
        self.work = work
        self.out = out
        self.steps: list[Step] = []
        self.started = datetime.now(timezone.utc)
        self.t0 = time.monotonic()
        self.doc: dict[str, Any] = {
            "tool": "benchmarks/gpu_check.sh",
            "mode": sizes.mode,
            "started": self.started.isoformat(timespec="seconds"),
            "sizes": {k: v for k, v in vars(sizes).items() if k != "mode"},
            "environment": environment(),
            "dataset": dataset,
            "data_root": str(data_root) if data_root is not None else None,
            "work_dir": str(work),
            "commands_run": "in this process" if in_process else "one process each",
        }
        (work / "logs").mkdir(parents=True, exist_ok=True)

    # ---- running commands -------------------------------------------------
    def tcmbench(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "tcmbench", *args]

    def run(self, step: Step, argv: list[str]) -> str:
        """Run one command of ``step`` (output appended to its log); its
        output, or StepFailed with the reason."""
        step.commands.append(" ".join(shown(a) for a in argv))
        log = self.work / "logs" / f"{step.name}.log"
        step.log = str(log)
        if self.in_process and argv[:3] == self.tcmbench()[:3]:
            output, status = in_process(argv[3:])
            with log.open("a", encoding="utf-8") as f:
                f.write(f"$ {step.commands[-1]}\n{output}\n")
            if status != 0:
                raise StepFailed(f"exit status {status}", output)
            return output
        env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
        env["PYTHONUNBUFFERED"] = "1"
        code: int | None
        timeout = max(1, min(self.sizes.timeout_s, int(self.time_left()) + 1))
        try:
            proc = subprocess.run(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env=env,
                timeout=timeout,
                check=False,
            )
            output, code = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or ""
            output = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
            code = None
        with log.open("a", encoding="utf-8") as f:
            f.write(f"$ {step.commands[-1]}\n{output}\n")
        if code is None:
            raise StepFailed(f"timed out after {timeout} s", output)
        if code != 0:
            raise StepFailed(f"exit status {code}", output)
        return output

    def step(self, name: str, body: Any, *, needs: tuple[str, ...] = ()) -> Step:
        """Run ``body(step)``; any failure is recorded and the check goes on."""
        step = Step(name)
        missing = [n for n in needs if self.status(n) != "ok"]
        t0 = time.monotonic()
        if self.time_left() <= 0:
            step.status = "failed"
            step.reason = f"not run: the check's {self.sizes.budget_s} s were spent"
        elif missing:
            step.status = "skipped"
            step.reason = f"needs {', '.join(missing)}, which did not pass"
        else:
            try:
                body(step)
            except StepFailed as exc:
                step.status = "failed"
                step.reason = str(exc.args[0])
                step.error_tail = tail(exc.args[1] if len(exc.args) > 1 else "")
            except Exception as exc:  # noqa: BLE001 -- a bug in a step must not stop the check
                step.status = "failed"
                step.reason = f"{type(exc).__name__}: {exc}"
        step.seconds = time.monotonic() - t0
        self.steps.append(step)
        print(
            f"[{len(self.steps):2d}] {name}: {step.status} ({step.seconds:.1f} s)"
            + (f" -- {step.reason}" if step.reason else ""),
            flush=True,
        )
        self.write()
        return step

    def time_left(self) -> float:
        """Seconds left of the check's budget."""
        return self.sizes.budget_s - (time.monotonic() - self.t0)

    def status(self, name: str) -> str | None:
        for s in self.steps:
            if s.name == name:
                return s.status
        return None

    def write(self, final: bool = False) -> None:
        doc = dict(self.doc)
        doc["steps"] = [s.to_dict() for s in self.steps]
        doc["step_times"] = step_times(self.steps, self.sizes)
        failed = [s.name for s in self.steps if s.status == "failed"]
        doc["failed"] = failed
        doc["ok"] = not failed and all(s.status in ("ok", "skipped") for s in self.steps)
        doc["finished"] = (
            datetime.now(timezone.utc).isoformat(timespec="seconds") if final else None
        )
        doc["seconds"] = round((datetime.now(timezone.utc) - self.started).total_seconds(), 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.out)

    # ---- the steps --------------------------------------------------------
    def data(self, step: Step) -> None:
        for split in ("train", "test"):
            path = self.work / f"data-{split}.json"
            self.run(
                step,
                self.tcmbench(
                    "datasets",
                    "stats",
                    self.dataset,
                    "--split",
                    split,
                    "--json",
                    str(path),
                    *self.data_args,
                ),
            )
            stats = json.loads(path.read_text())
            step.figures[f"{split}_images"] = stats.get("images")

    def run_dir(self, plugin: str, variant: str, resumed: bool = False) -> Path:
        return self.work / "runs" / f"{plugin}-{variant}{'-resumed' if resumed else ''}"

    def train_args(self, plugin: str, tcm: bool, out: Path) -> list[str]:
        s = self.sizes
        args = [
            "train",
            "--plugin",
            plugin,
            "--dataset",
            self.dataset,
            *self.data_args,
            "--recipe",
            s.recipe,
            "--no-pretrained-backbone",
            "--steps",
            str(s.steps),
            "--save-every",
            str(s.save_at),
            "--keep",
            "0",
            "--log-every",
            "1",
            "--amp",
            "--device",
            s.device,
            "--workers",
            str(s.workers),
            "--no-progress",
            "--no-tensorboard",
            "--output",
            str(out),
        ]
        if s.batch_size is not None:
            args += ["--batch-size", str(s.batch_size)]
        if tcm:
            args += ["--tcm", "--clip-random"]
        return args

    def train(self, step: Step, plugin: str, variant: str) -> None:
        out = self.run_dir(plugin, variant)
        shutil.rmtree(out, ignore_errors=True)
        self.run(step, self.tcmbench(*self.train_args(plugin, variant == "tcm", out)))
        step.figures.update(train_figures(out, self.sizes))
        step.figures.update(
            {"plugin": plugin, "tcm": variant == "tcm", **recipe_size(plugin, self.sizes.recipe)}
        )
        if step.figures.get("steps") != self.sizes.steps:
            raise StepFailed(f"trained {step.figures.get('steps')} steps, not {self.sizes.steps}")

    def resume(self, step: Step, plugin: str, variant: str) -> None:
        first = self.run_dir(plugin, variant)
        out = self.run_dir(plugin, variant, resumed=True)
        shutil.rmtree(out, ignore_errors=True)
        ckpt = first / "checkpoints" / f"step-{self.sizes.save_at:07d}"
        self.run(
            step,
            self.tcmbench(
                "train",
                "--resume",
                str(ckpt),
                "--output",
                str(out),
                "--device",
                self.sizes.device,
                "--no-progress",
            ),
        )
        figures = train_figures(out, self.sizes)
        step.figures.update(
            {
                "resumed_from_step": figures.get("start_step"),
                "steps": figures.get("steps"),
                "s_per_step": figures.get("s_per_step"),
            }
        )
        if figures.get("start_step") != self.sizes.save_at:
            raise StepFailed(
                f"resumed at step {figures.get('start_step')}, not {self.sizes.save_at}"
            )
        if figures.get("steps") != self.sizes.steps:
            raise StepFailed(f"ended at step {figures.get('steps')}, not {self.sizes.steps}")
        step.figures.update(compare_weights(first / "final", out / "final"))
        # The resumed run's checkpoints are not needed any more: the GPU
        # machine's disk is small and a TCM checkpoint with its optimizer
        # state is about 1.6 GB.
        shutil.rmtree(first / "checkpoints", ignore_errors=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)

    def evaluate(self, step: Step, plugin: str, variant: str) -> None:
        weights = self.run_dir(plugin, variant, resumed=True) / "final"
        path = self.work / f"eval-{plugin}-{variant}.json"
        args = [
            "evaluate",
            "--plugin",
            plugin,
            "--dataset",
            self.dataset,
            *self.data_args,
            "--weights",
            str(weights),
            "--limit",
            str(self.sizes.eval_limit),
            "--device",
            self.sizes.device,
            "--no-cache",
            "--no-progress",
            "--json",
            str(path),
        ]
        if variant == "tcm":
            args.append("--tcm")
        self.run(step, self.tcmbench(*args))
        step.figures.update(eval_figures(path))
        if step.figures.get("images") != self.sizes.eval_limit:
            raise StepFailed(f"scored {step.figures.get('images')} images")

    def ddp(self, step: Step) -> None:
        nproc = ddp_processes(self.sizes)
        out = self.work / "runs" / "dbnet-ddp"
        shutil.rmtree(out, ignore_errors=True)
        args = self.train_args("dbnet", False, out)
        argv = [
            *torchrun(),
            "--standalone",
            "--nproc_per_node",
            str(nproc),
            "-m",
            "tcmbench",
            *args,
        ]
        self.run(step, argv)
        figures = train_figures(out, self.sizes)
        step.figures.update(figures)
        step.figures["processes"] = nproc
        step.figures["process_group"] = (
            ("nccl" if self.sizes.device == "cuda" else "gloo") if nproc > 1 else None
        )
        if nproc == 1:
            step.figures["note"] = (
                "one process (one GPU): torchrun's environment, no process group "
                "(tcmbench joins one only when WORLD_SIZE > 1)"
            )
        if figures.get("world_size") != nproc:
            raise StepFailed(f"world size {figures.get('world_size')} in the log, not {nproc}")
        if figures.get("steps") != self.sizes.steps:
            raise StepFailed(f"trained {figures.get('steps')} steps, not {self.sizes.steps}")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)

    def bench(self, step: Step) -> None:
        path = self.work / "bench.json"
        s = self.sizes
        self.run(
            step,
            self.tcmbench(
                "bench",
                "--plugin",
                ",".join(PLUGINS),
                "--compare-tcm",
                "--resolution",
                s.resolutions,
                "--runs",
                str(s.bench_runs),
                "--warmup",
                str(s.bench_warmup),
                "--no-flops",
                "--device",
                s.device,
                "--no-progress",
                "--json",
                str(path),
            ),
        )
        doc = json.loads(path.read_text())
        step.figures["tcm_latency_ratio"] = doc.get("tcm_latency_ratio_by_plugin")
        step.figures["latency_ms"] = {
            m["model"]: {r["resolution"]: round(r["latency_ms"], 2) for r in m["results"]}
            for m in doc.get("models", [])
        }
        step.figures["device"] = (doc.get("environment") or {}).get("device")
        want = {(p, r) for p in PLUGINS for r in resolution_keys(s.resolutions)}
        got = {
            (p, r)
            for p, by in (step.figures["tcm_latency_ratio"] or {}).items()
            for r, v in by.items()
            if isinstance(v, (int, float))
        }
        if want - got:
            raise StepFailed(f"no TCM / plain ratio for {sorted(want - got)}")

    def onnx(self, step: Step) -> None:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        step.figures["onnxruntime"] = onnxruntime.__version__
        step.figures["providers"] = providers
        if self.sizes.device == "cuda" and "CUDAExecutionProvider" not in providers:
            step.status = "skipped"
            step.reason = (
                f"this onnxruntime has no CUDA provider (available: {', '.join(providers)}); "
                "install onnxruntime-gpu to check it"
            )
            return
        weights = self.run_dir("dbnet", "plain", resumed=True) / "final"
        model = self.work / "dbnet.onnx"
        self.run(
            step,
            self.tcmbench(
                "export",
                "onnx",
                "--plugin",
                "dbnet",
                "--weights",
                str(weights),
                "--out",
                str(model),
            ),
        )
        path = self.work / "eval-onnx.json"
        self.run(
            step,
            self.tcmbench(
                "evaluate",
                "--plugin",
                "onnx",
                "--weights",
                str(model),
                "--dataset",
                self.dataset,
                *self.data_args,
                "--limit",
                str(self.sizes.eval_limit),
                "--device",
                self.sizes.device,
                "--no-cache",
                "--no-progress",
                "--json",
                str(path),
            ),
        )
        step.figures.update(eval_figures(path))
        step.figures["provider"] = (
            "CUDAExecutionProvider" if self.sizes.device == "cuda" else "CPUExecutionProvider"
        )
        torch_eval = self.work / "eval-dbnet-plain.json"
        if torch_eval.is_file():
            step.figures["torch_hmean"] = eval_figures(torch_eval).get("hmean")

    def run_all(self) -> bool:
        self.step("data", self.data)
        for plugin in PLUGINS:
            for variant in VARIANTS:
                tag = f"{plugin}-{variant}"
                self.step(
                    f"train-{tag}",
                    lambda s, p=plugin, v=variant: self.train(s, p, v),
                    needs=("data",),
                )
                self.step(
                    f"resume-{tag}",
                    lambda s, p=plugin, v=variant: self.resume(s, p, v),
                    needs=(f"train-{tag}",),
                )
                self.step(
                    f"evaluate-{tag}",
                    lambda s, p=plugin, v=variant: self.evaluate(s, p, v),
                    needs=(f"resume-{tag}",),
                )
        self.step("ddp-torchrun", self.ddp, needs=("data",))
        self.step("bench-compare-tcm", self.bench)
        self.step("onnxruntime", self.onnx, needs=("resume-dbnet-plain",))
        self.write(final=True)
        return not any(s.status == "failed" for s in self.steps)


# --------------------------------------------------------------------------
# Reading what the commands wrote


def read_log(run: Path) -> list[dict[str, Any]]:
    events = []
    path = run / "train_log.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            events.append(ev)
    return events


def train_figures(run: Path, sizes: Sizes) -> dict[str, Any]:
    """Steps, seconds per step, AMP and device of a run, from its
    train_log.jsonl (``--log-every 1``: one row per step)."""
    events = read_log(run)
    starts = [e for e in events if e.get("event") == "start"]
    trains = [e for e in events if e.get("event") == "train"]
    saves = {e.get("step") for e in events if e.get("event") == "checkpoint"}
    ends = [e for e in events if e.get("event") == "end"]
    if not starts or not ends:
        raise StepFailed(f"{run / 'train_log.jsonl'}: no start or end event")
    start = starts[-1]
    config = start.get("config") or {}
    hyper = start.get("hyper") or {}
    device = str(start.get("device"))
    # Per-step seconds from consecutive rows of this process's part of the
    # log; a row right after a checkpoint also paid for writing it, and
    # the first row paid for warming up: both left out (the median is
    # robust to the rest).
    rows = [e for e in trains if e.get("step", 0) > start.get("start_step", 0)]
    deltas = [
        b["elapsed_s"] - a["elapsed_s"]
        for a, b in itertools.pairwise(rows)
        if b["step"] == a["step"] + 1 and a["step"] not in saves
    ]
    amp = bool(config.get("amp"))
    return {
        "steps": ends[-1].get("step"),
        "start_step": start.get("start_step"),
        "world_size": start.get("world_size"),
        "device": device,
        "batch_size": hyper.get("batch_size"),
        "amp_requested": amp,
        "amp_active": amp and device.startswith("cuda"),
        **(
            {"amp_note": "skipped on CPU: the trainer's autocast is CUDA-only"}
            if amp and not device.startswith("cuda")
            else {}
        ),
        "first_step_s": rows[0]["elapsed_s"] - start.get("elapsed_s", 0.0) if rows else None,
        "s_per_step": round(statistics.median(deltas), 4) if deltas else None,
        "timed_steps": len(deltas),
        "loss": rows[-1].get("loss") if rows else None,
    }


def eval_figures(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    return {
        k: doc.get(k)
        for k in (
            "images",
            "precision",
            "recall",
            "hmean",
            "inference_seconds",
            "device",
            "runtime",
        )
    }


def recipe_size(plugin: str, recipe: str) -> dict[str, Any]:
    """The recipe's name, backbone (of the plain model; TCM's is CLIP RN50)
    and training crop: what a step time was measured at."""
    from tcmbench.contract.registry import get_detector

    r = get_detector(plugin).recipe(recipe)
    return {
        "recipe": recipe,
        "backbone": (r.get("model") or {}).get("backbone"),
        "crop_size": (r.get("train") or {}).get("crop_size"),
    }


def compare_weights(a: Path, b: Path) -> dict[str, Any]:
    """Whether the resumed run ended with the uninterrupted run's weights
    (exactly on a CPU; on a GPU cuDNN's and AMP's non-determinism may
    leave a small difference, reported, not failed)."""
    from safetensors.torch import load_file

    wa = load_file(str(a / "model.safetensors"))
    wb = load_file(str(b / "model.safetensors"))
    if set(wa) != set(wb):
        raise StepFailed(f"resumed weights have other keys than {a}")
    diff = 0.0
    for k, t in wa.items():
        if t.is_floating_point():
            diff = max(diff, float((t.float() - wb[k].float()).abs().max()) if t.numel() else 0.0)
        elif not bool((t == wb[k]).all()):
            diff = float("inf")
    return {"same_weights_as_uninterrupted": diff == 0.0, "max_abs_weight_diff": diff}


def step_times(steps: list[Step], sizes: Sizes) -> dict[str, Any]:
    """Seconds per optimizer step of each trained model, keyed as
    ``benchmarks/gpu_hours.py --step-times`` reads them."""
    out: dict[str, Any] = {}
    for s in steps:
        if s.name.startswith("train-") and s.status == "ok" and s.figures.get("s_per_step"):
            key = f"{s.figures['plugin']}{'+tcm' if s.figures['tcm'] else ''}"
            out[key] = {
                "plugin": s.figures["plugin"],
                "tcm": s.figures["tcm"],
                "recipe": s.figures["recipe"],
                "backbone": s.figures.get("backbone"),
                "crop_size": s.figures.get("crop_size"),
                "batch_size": s.figures.get("batch_size"),
                "device": s.figures.get("device"),
                "amp": s.figures.get("amp_active"),
                "s_per_step": s.figures["s_per_step"],
            }
    return out


# --------------------------------------------------------------------------
# Environment


def environment() -> dict[str, Any]:
    """The GPU's name, versions and the machine (no host name)."""
    import torch

    import tcmbench

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "tcmbench": getattr(tcmbench, "__version__", None),
        "cuda_available": torch.cuda.is_available(),
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        env["gpu_capability"] = f"{props.major}.{props.minor}"
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        env["onnxruntime"] = None
    try:
        env["commit"] = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=Path(__file__).resolve().parents[1],
                capture_output=True,
                text=True,
                check=False,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        env["commit"] = None
    if hasattr(os, "getloadavg"):
        env["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return env


def ddp_processes(sizes: Sizes) -> int:
    """Processes of the torchrun step: one per GPU, at most 2 (the check
    is about the code path, not scaling); 2 gloo processes on a CPU."""
    if sizes.device != "cuda":
        return 2
    import torch

    return max(1, min(2, torch.cuda.device_count()))


def torchrun() -> list[str]:
    """The torchrun next to this Python (the same environment), else its module."""
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def resolution_keys(text: str) -> list[str]:
    out = []
    for part in text.split(","):
        part = part.strip()
        out.append(part if "x" in part else f"{part}x{part}")
    return out


def in_process(args: list[str]) -> tuple[str, int]:
    """Run ``tcmbench ARGS`` in this process, as the ``tcmbench`` command
    does (``tcmbench.cli.main``); (its output, its exit status). Saves
    starting Python and importing torch for every command (4-10 s each on
    a busy 2-core machine), which is most of a CPU dry run. The root
    logger's handlers that the command adds (bound to the captured stream)
    are removed after it, so the next command logs into its own output."""
    import contextlib
    import gc
    import io
    import logging
    import traceback

    from tcmbench.cli import main as tcmbench_main

    root = logging.getLogger()
    handlers = list(root.handlers)
    buf = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            tcmbench_main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 -- a crash is this step's failure, with its traceback
            traceback.print_exc()
            code = 1
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    gc.collect()
    return buf.getvalue(), code


def tail(text: str, n: int = TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def shown(arg: str) -> str:
    return arg if arg and all(c not in arg for c in " '\"$") else repr(arg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="benchmarks/gpu_check.sh", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--out", type=Path, default=Path("gpu-check.json"), help="the JSON to write")
    ap.add_argument(
        "--dry-run",
        action="store_true",
        help="the same steps on the CPU with tiny sizes (checks the script itself)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder for runs and logs (default: a temporary one, removed at the end)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument(
        "--dataset",
        default="synthtext-mini",
        help="dataset to train and score on (default synthtext-mini: built in, no download)",
    )
    ap.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="where --dataset lives (the tests give a tiny ICDAR 2015-layout folder)",
    )
    ap.add_argument(
        "--in-process",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the tcmbench commands in this process (default with --dry-run: saves "
        "importing torch ~20 times) or each in its own (default on a GPU: a CUDA error or "
        "a hang stops one step only, and each has a time limit); torchrun always gets its own",
    )
    args = ap.parse_args(argv)
    sizes = DRY if args.dry_run else GPU
    # As the tcmbench command does before torch is imported (spinning
    # OpenMP threads make torch far slower on a shared CPU); and no step
    # may think it runs under an enclosing torchrun.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for name in TORCHRUN_ENV:
        os.environ.pop(name, None)
    in_proc = args.dry_run if args.in_process is None else args.in_process
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print(
                "gpu_check: no CUDA device is visible to torch; run with --dry-run to check "
                "the script on the CPU",
                file=sys.stderr,
            )
            return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="tcmbench-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    check = Check(
        sizes,
        work.resolve(),
        args.out,
        in_process=in_proc,
        dataset=args.dataset,
        data_root=args.data_root.resolve() if args.data_root else None,
    )
    env = check.doc["environment"]
    print(
        f"gpu_check ({sizes.mode}): {env.get('gpu') or 'no GPU'}, torch {env['torch']}, "
        f"work folder {work}",
        flush=True,
    )
    try:
        ok = check.run_all()
    finally:
        if args.work is None and not args.keep:
            # the logs' content is in the JSON's error tails
            shutil.rmtree(work, ignore_errors=True)
    failed = [s.name for s in check.steps if s.status == "failed"]
    print(
        f"gpu_check: {len(check.steps) - len(failed)} of {len(check.steps)} steps passed "
        f"or skipped; results in {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
