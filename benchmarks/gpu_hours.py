"""GPU-hours per TCM paper table: cells x recipe steps x seconds per step.

    python benchmarks/gpu_hours.py --out docs/benchmarks/gpu-hours.md \
        --update docs/experiments.md                       # CPU-measured, scaled
    python benchmarks/gpu_hours.py --step-times gpu-check.json --out ...   # GPU times

For every shipped grid (``tcmbench/experiment/grids/*.yaml``, the full
form, not ``--tiny``) each cell is resolved exactly as ``experiment run``
would train it: the plugin's recipe for its first training dataset, the
cell's overrides, and the optimizer steps that recipe gives
(:func:`tcmbench.train.hyper.resolve_hyper`: epochs x training images /
batch, one process) with the training images the dataset YAMLs expect
(``datasets_cfg/*.yaml``, ``expected.images``; few-shot fractions as
``few_shot_subset`` rounds them). A cell with ``train_fraction: 0``
trains nothing.

Seconds per step come from one of two places:

- **measured here** (default): each model the grids train (DBNet
  ResNet-50, DBNet ResNet-50 + DCN, TCM-DBNet, FCENet) runs a few
  optimizer steps of the real trainer (:class:`tcmbench.train.trainer.Trainer`,
  the recipe's augmentations on synthtext-mini images, fp32, random
  weights) on this CPU at a scaled-down size (``--batch`` images of
  ``--crop`` px); the median step after a warm-up step is scaled linearly
  to the recipe's batch and crop area (batch x crop^2), then divided by
  F, the CPU -> one H100 (AMP) speed-up. Without a GPU time F is an
  **assumption**: an assumed H100 training rate on DBNet-ResNet-50
  (``--gpu-tflops``, 30 TFLOP/s) over the rate this CPU reached on the
  same model in the same run (so the machine's load cancels out), or
  ``--speedup`` F itself; the table says which, with the numbers;
- **``--step-times FILE``**: the JSON of ``benchmarks/gpu_check.sh`` run on
  a GPU (its ``step_times``, measured at each plugin's ``icdar2015`` recipe
  with AMP), scaled to each cell's batch and crop the same way; models it
  did not train (DBNet + DCN) keep the CPU-measured time, scaled by F
  measured as DBNet-ResNet-50's CPU / GPU step ratio, marked.

Evaluation time is not counted (minutes per cell). A cell's GPU-hours do not
change much with DDP: N GPUs train N x the images per step, so epochs take
N x fewer steps of about the same time each.

Output: a markdown section (``--out``), and with ``--update PAGE`` the text
between ``<!-- gpu_hours.py begin -->`` and ``<!-- gpu_hours.py end -->``
in PAGE replaced by it. The JSON of every figure goes to ``--json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BEGIN = "<!-- gpu_hours.py begin -->"
END = "<!-- gpu_hours.py end -->"
#: The model whose CPU rate F is derived from (the grids' most common plain model).
REFERENCE = "dbnet resnet50"
REFERENCE_NAME = "DBNet-ResNet-50"
#: Assumed training rate of one H100 with AMP on the reference model, in
#: TFLOP/s (forward + backward = 3 x forward): half of NVIDIA's tuned
#: ResNet-50 on one A100 with AMP. An assumption until gpu_check.sh has run
#: on a GPU (--step-times).
DEFAULT_GPU_TFLOPS = 30.0
#: Order of the tables in the output: as the paper numbers them.
GRID_ORDER = (
    "domain-transfer",
    "ablations",
    "lr-factors",
    "nighttime-art",
    "backbones",
    "few-shot",
)


@dataclass
class CellPlan:
    """What one grid cell trains."""

    grid: str
    cell: str
    kind: str  # the model, e.g. "dbnet resnet50", "dbnet + TCM"
    plugin: str
    backbone: str
    tcm: bool
    recipe: str
    batch_size: int
    crop: int
    steps: int
    train_images: int


@dataclass
class StepTime:
    """Seconds per optimizer step of one model at a given batch and crop."""

    kind: str
    seconds: float  # per step at (batch, crop), on the device it was measured
    batch: int
    crop: int
    source: str  # "cpu" or "gpu"
    speedup: float  # divide by this for one H100 (1 for GPU-measured times)
    device: str
    details: dict[str, Any] = field(default_factory=dict)

    def per_step(self, batch: int, crop: int) -> float:
        """Estimated H100 seconds per step at ``batch`` images of ``crop`` px."""
        scale = (batch / self.batch) * (crop / self.crop) ** 2
        return self.seconds * scale / self.speedup


# --------------------------------------------------------------------------
# What the grids train


def kind_of(plugin: str, backbone: str, tcm: bool) -> str:
    return f"{plugin} + TCM" if tcm else f"{plugin} {backbone}"


def train_images(datasets: list[str], fraction: float) -> int:
    """Training images of ``datasets`` (their YAMLs' expected counts), with
    the few-shot fraction rounded as :func:`few_shot_subset` does."""
    from tcmbench.data.dataset import get_dataset_config

    total = 0
    for name in datasets:
        cfg = get_dataset_config(name)
        n = cfg.split("train").expected.images
        if n is None:
            raise SystemExit(f"gpu_hours: dataset {name}: its YAML gives no expected train images")
        total += n if fraction >= 1.0 else max(1, round(fraction * n))
    return total


def crop_of(recipe: Mapping[str, Any]) -> int:
    return int((recipe.get("train") or {}).get("crop_size", 640))


def plan_grids() -> list[CellPlan]:
    """Every trained cell of every shipped grid (full form)."""
    from tcmbench.contract.registry import get_detector
    from tcmbench.experiment import grid as G
    from tcmbench.experiment.runner import tcm_dict
    from tcmbench.train.hyper import TrainConfig, resolve_hyper
    from tcmbench.train.recipe_choice import build_detector_config, choose_recipe

    plans = []
    for name in G.shipped_grids():
        g = G.load_grid(name)
        # Checkpoint variables (few-shot's pre-trained weights) only decide
        # where training starts, not how long a step takes.
        g = G.with_sets(g, dict.fromkeys(g.variables, "pretrained")) if g.variables else g
        for cell in G.expand(g, strict=False):
            p = cell.params
            if float(p["train_fraction"]) <= 0.0:
                continue
            spec = get_detector(p["plugin"])
            cfg = TrainConfig(
                plugin=p["plugin"],
                datasets=list(p["train_datasets"]),
                recipe=p["recipe"],
                backbone=p["backbone"],
                steps=p["steps"],
                epochs=p["epochs"],
                batch_size=p["batch_size"],
                train_fraction=float(p["train_fraction"]),
                tcm=tcm_dict(p["tcm"]),
            )
            choice = choose_recipe(cfg, spec)
            config = build_detector_config(cfg, choice.recipe)
            n = train_images(cfg.datasets, cfg.train_fraction)
            hyper = resolve_hyper(cfg, choice.recipe, n, 1)
            tcm = cfg.tcm is not None
            plans.append(
                CellPlan(
                    grid=name,
                    cell=cell.id,
                    kind=kind_of(p["plugin"], config.backbone, tcm),
                    plugin=p["plugin"],
                    backbone="CLIP RN50" if tcm else config.backbone,
                    tcm=tcm,
                    recipe=choice.name,
                    batch_size=hyper.batch_size,
                    crop=crop_of(choice.recipe),
                    steps=hyper.total_steps,
                    train_images=n,
                )
            )
    return plans


# --------------------------------------------------------------------------
# Measuring a step on this CPU


def scaled_recipe(recipe: Mapping[str, Any], crop: int) -> dict[str, Any]:
    """``recipe`` with its training crop (``train.crop_size`` and every
    augmentation's ``size``: the crop, or FCENet's square resize) set to
    ``crop`` px. PAN's scale jitter (short side 736) is left: its crop
    then cuts ``crop`` px out of the larger image, as training does."""
    import copy

    out = copy.deepcopy(dict(recipe))
    train = out.setdefault("train", {})
    train["crop_size"] = crop
    for aug in train.get("augment") or []:
        if isinstance(aug.get("size"), list):
            aug["size"] = [crop, crop]
        elif isinstance(aug.get("size"), int):  # FCENet's scaling and square resize
            aug["size"] = crop
    return out


def measure_kind(plan: CellPlan, batch: int, crop: int, steps: int, work: Path) -> StepTime:
    """Seconds per optimizer step of ``plan``'s model on this CPU: the real
    trainer for ``steps`` steps on synthtext-mini images at ``batch`` x
    ``crop`` px (fp32, random weights, no checkpoint but the final one);
    the median over the steps after the first."""
    import torch

    from tcmbench.contract.registry import get_detector
    from tcmbench.data.synthetic import load_synthtext_mini
    from tcmbench.inference.profiling import measure_flops
    from tcmbench.train.hyper import TrainConfig
    from tcmbench.train.recipe_choice import build_detector_config, choose_recipe
    from tcmbench.train.run import recipe_for
    from tcmbench.train.trainer import Trainer

    spec = get_detector(plan.plugin)
    out = work / plan.kind.replace(" ", "_").replace("+", "")
    cfg = TrainConfig(
        plugin=plan.plugin,
        datasets=["synthtext-mini"],
        recipe=plan.recipe,
        output=str(out),
        backbone=None if plan.tcm else plan.backbone,
        pretrained_backbone=False,
        steps=steps,
        batch_size=batch,
        device="cpu",
        workers=0,
        tcm={"context_length": None, "clip_pretrained": None} if plan.tcm else None,
        amp=False,
        log_every=1,
        save_every=0,
        progress=False,
        tensorboard=False,
    )
    choice = choose_recipe(cfg, spec)
    config = build_detector_config(cfg, choice.recipe)
    recipe = scaled_recipe(recipe_for(choice.recipe, config), crop)
    samples = load_synthtext_mini("train", num_images=max(8, batch * steps))
    torch.manual_seed(0)
    trainer = Trainer(spec, config, recipe, cfg, samples)
    trainer.announce = lambda *_: None
    trainer.warn = lambda *_: None  # type: ignore[method-assign]  # "too short to learn"
    t0 = time.monotonic()
    trainer.fit()
    wall = time.monotonic() - t0
    rows = [
        json.loads(line)
        for line in (out / "train_log.jsonl").read_text().splitlines()
        if '"event": "train"' in line
    ]
    deltas = [b["elapsed_s"] - a["elapsed_s"] for a, b in itertools.pairwise(rows)]
    seconds = statistics.median(deltas) if deltas else rows[-1]["elapsed_s"]
    fwd = measure_flops(trainer.model, crop, crop)
    params = sum(p.numel() for p in trainer.model.parameters())
    return StepTime(
        kind=plan.kind,
        seconds=seconds,
        batch=batch,
        crop=crop,
        source="cpu",
        speedup=1.0,
        device="cpu",
        details={
            "recipe": plan.recipe,
            "timed_steps": len(deltas),
            "step_seconds": [round(d, 3) for d in deltas],
            "wall_s": round(wall, 1),
            "forward_gflops_per_image": round(fwd / 1e9, 2),
            "params_m": round(params / 1e6, 2),
            # forward + backward ~ 3 x forward
            "train_gflop_per_s": round(3 * fwd * batch / seconds / 1e9, 1),
        },
    )


def gpu_step_times(path: Path, plans: list[CellPlan]) -> tuple[dict[str, StepTime], str]:
    """Step times from a gpu_check.sh JSON (its ``step_times``), by kind."""
    from tcmbench.contract.registry import get_detector

    doc = json.loads(path.read_text())
    gpu = (doc.get("environment") or {}).get("gpu") or "unknown GPU"
    found: dict[str, StepTime] = {}
    for entry in (doc.get("step_times") or {}).values():
        if not str(entry.get("device", "")).startswith("cuda"):
            continue
        recipe = get_detector(entry["plugin"]).recipe(entry["recipe"])
        backbone = (recipe.get("model") or {}).get("backbone", "")
        kind = kind_of(entry["plugin"], backbone, bool(entry["tcm"]))
        if any(p.kind == kind for p in plans):
            found[kind] = StepTime(
                kind=kind,
                seconds=float(entry["s_per_step"]),
                batch=int(entry["batch_size"]),
                crop=crop_of(recipe),
                source="gpu",
                speedup=1.0,
                device=gpu,
                details={"recipe": entry["recipe"], "amp": entry.get("amp")},
            )
    return found, gpu


# --------------------------------------------------------------------------
# The tables


def hours(plans: list[CellPlan], times: Mapping[str, StepTime]) -> float:
    return sum(p.steps * times[p.kind].per_step(p.batch_size, p.crop) for p in plans) / 3600


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def fmt_hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 10 else f"{h:.1f}"


def steps_text(plans: list[CellPlan]) -> str:
    values = sorted({p.steps for p in plans})
    if len(values) == 1:
        return fmt_int(values[0])
    if len(values) <= 3:
        return " / ".join(fmt_int(v) for v in values)
    return f"{fmt_int(values[0])}-{fmt_int(values[-1])}"


def grid_table(plans: list[CellPlan], times: Mapping[str, StepTime]) -> list[str]:
    from tcmbench.experiment import grid as G

    by_grid: dict[str, list[CellPlan]] = {}
    for p in plans:
        by_grid.setdefault(p.grid, []).append(p)
    lines = [
        "| grid (table) | cells (trained) | steps per cell | s/step on one GPU | GPU-hours |",
        "|---|---|---|---|---|",
    ]
    total = 0.0
    names = [n for n in GRID_ORDER if n in by_grid] + sorted(set(by_grid) - set(GRID_ORDER))
    for name in names:
        ps = by_grid[name]
        g = G.load_grid(name)
        cells = len(
            G.expand(
                g if not g.variables else G.with_sets(g, dict.fromkeys(g.variables, "x")),
                strict=False,
            )
        )
        kinds: dict[str, list[float]] = {}
        for p in ps:
            kinds.setdefault(p.kind, []).append(times[p.kind].per_step(p.batch_size, p.crop))
        per = ", ".join(f"{_per_text(v)} ({k}{_mark(times[k])})" for k, v in sorted(kinds.items()))
        h = hours(ps, times)
        total += h
        lines.append(
            f"| `{name}` ({g.paper.replace('TCM paper, ', '')}) | {cells} ({len(ps)}) | "
            f"{steps_text(ps)} | {per} | {fmt_hours(h)} |"
        )
    lines.append(f"| **all six** | | | | **{fmt_hours(total)}** |")
    return lines


def _per_text(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if abs(hi - lo) < 0.005 else f"{lo:.2f}-{hi:.2f}"


def _mark(t: StepTime) -> str:
    return "" if t.source == "gpu" else "*"


def kind_table(plans: list[CellPlan], times: Mapping[str, StepTime]) -> list[str]:
    lines = [
        (
            "| model | recipe batch x crop | measured on | at batch x crop | s/step measured "
            "| forward GFLOPs/img at that crop | F | s/step on one GPU at the recipe's size |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in sorted({p.kind for p in plans}):
        t = times[kind]
        sizes = sorted({(p.batch_size, p.crop) for p in plans if p.kind == kind})
        recipe_sizes = ", ".join(f"{b} x {c}" for b, c in sizes)
        est = ", ".join(f"{t.per_step(b, c):.2f}" for b, c in sizes)
        where = "this CPU (fp32)" if t.source == "cpu" else f"{t.device} (AMP)"
        gf = t.details.get("forward_gflops_per_image")
        lines.append(
            f"| {kind} | {recipe_sizes} | {where} | {t.batch} x {t.crop} | {t.seconds:.2f} | "
            f"{gf if gf is not None else '-'} | {t.speedup:g} | {est} |"
        )
    return lines


def render(
    plans: list[CellPlan],
    times: Mapping[str, StepTime],
    meta: Mapping[str, Any],
) -> str:
    cpu = [t for t in times.values() if t.source == "cpu"]
    gpu = [t for t in times.values() if t.source == "gpu"]
    rates = [t.details["train_gflop_per_s"] for t in cpu if "train_gflop_per_s" in t.details]
    out = [
        (
            f"> **Written by** `{meta['command']}` · **machine** {meta['machine']} · "
            f"**date** {meta['date']} · **noise** {meta['noise']}"
        ),
        "",
    ]
    if cpu:
        speedup = cpu[0].speedup
        rate = _span(rates, 1.0, "GFLOP/s") if rates else "an uncounted rate"
        out += [
            (
                "Times marked * are **CPU-measured, scaled by F = "
                f"{speedup:g}**: the real trainer ran each model for a few optimizer steps "
                "on this CPU at a small size, the step time was scaled linearly to the "
                f"recipe's batch and crop area, then divided by F. {meta['speedup_note']} "
                f"On this CPU the models trained at {rate} (forward + backward counted as "
                "3 x the forward FLOPs); each keeps its cost relative to DBNet-ResNet-50 as "
                "measured here, which may not hold on a GPU (torchvision's CPU "
                '`deform_conv2d` is especially slow: docs/benchmarks.md, "Deformable '
                'convolution backbones"). Read the hours as an order of magnitude. '
                "`bash benchmarks/gpu_check.sh` on a GPU measures real step times; "
                "`benchmarks/gpu_hours.py --step-times` turns them into this table."
            ),
            "",
        ]
    if gpu:
        out += [
            (
                f"Times without * were measured on {gpu[0].device} by `benchmarks/gpu_check.sh` "
                "(AMP, the plugins' icdar2015 recipes) and scaled to each recipe's batch and crop."
            ),
            "",
        ]
    out += grid_table(plans, times)
    out += [
        "",
        (
            "Steps per cell: the recipe's epochs x the training images the dataset YAMLs "
            "expect / the batch (one process), or its fixed steps (SynthText: 100,000); "
            "few-shot cells at 0 % train nothing and need the two SynthText pre-trainings of "
            "`domain-transfer` (not counted again). Evaluation time is not included."
        ),
        "",
    ]
    out += kind_table(plans, times)
    return "\n".join(out) + "\n"


def note_assumed(reference_rate: float, gpu_tflops: float) -> str:
    """How F was set when no GPU time is known: an assumed GPU rate over
    the CPU's measured rate on the reference model."""
    return (
        "**F is an assumption**, not a measurement: no GPU has been lent to this project "
        f"yet. F = the training rate assumed for one H100 with AMP on {REFERENCE_NAME}, "
        f"{gpu_tflops:g} TFLOP/s, divided by the rate this CPU reached on the same model in "
        f"this run, {reference_rate:g} GFLOP/s (so the machine's load cancels out). "
        f"{gpu_tflops:g} TFLOP/s is half of what NVIDIA's tuned ResNet-50 reaches on one "
        "A100 with AMP (2,470 img/s x ~24.6 GFLOP per image = ~61 TFLOP/s; NVIDIA "
        "DeepLearningExamples, ResNet50 v1.5 for PyTorch): detector training adds "
        "CPU-side augmentation of large crops and full-resolution heads and losses."
    )


def note_given(speedup: float) -> str:
    return f"**F is an assumption**, given on the command line (`--speedup {speedup:g}`)."


def note_measured(gpu: str) -> str:
    return (
        f"F was measured: {REFERENCE_NAME}'s step on {gpu} (gpu_check.sh) against the same "
        "model's step on this CPU in this run, both scaled to its recipe's batch and crop."
    )


def _span(values: list[float], factor: float, unit: str) -> str:
    lo, hi = round(min(values) * factor), round(max(values) * factor)
    return f"{lo} {unit}" if lo == hi else f"{lo}-{hi} {unit}"


def update_page(page: Path, text: str) -> None:
    """Replace the text between the markers in ``page`` (atomically)."""
    body = page.read_text(encoding="utf-8")
    if BEGIN not in body or END not in body:
        raise SystemExit(f"gpu_hours: {page} has no {BEGIN} ... {END} markers")
    head, rest = body.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{text}{END}{tail}"
    tmp = page.with_name(f".{page.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, page)


def choose_speedup(
    given: float | None,
    gpu_tflops: float,
    cpu_times: Mapping[str, StepTime],
    gpu_times: Mapping[str, StepTime],
    gpu_name: str | None,
    plans: list[CellPlan],
) -> tuple[float, str]:
    """F and the sentence saying where it comes from: given, measured (the
    reference model timed on the GPU and here), or assumed (an assumed GPU
    rate over the CPU's measured rate on the reference model)."""
    if given is not None:
        return given, note_given(given)
    ref = cpu_times.get(REFERENCE)
    if ref is None:
        return 1.0, ""  # nothing CPU-measured is used
    if REFERENCE in gpu_times:
        p = next(p for p in plans if p.kind == REFERENCE)
        ratio = ref.per_step(p.batch_size, p.crop) / gpu_times[REFERENCE].per_step(
            p.batch_size, p.crop
        )
        return float(round(ratio)), note_measured(gpu_name or "the GPU")
    rate = float(ref.details["train_gflop_per_s"])
    return float(round(gpu_tflops * 1000 / rate)), note_assumed(rate, gpu_tflops)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {cpu}, no GPU"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="markdown file to write")
    ap.add_argument("--json", type=Path, default=None, help="every figure as JSON")
    ap.add_argument("--update", type=Path, default=None, help="replace the marked section of PAGE")
    ap.add_argument(
        "--step-times",
        type=Path,
        default=None,
        help="gpu_check.sh's JSON from a GPU: use its measured seconds per step",
    )
    ap.add_argument(
        "--gpu-tflops",
        type=float,
        default=DEFAULT_GPU_TFLOPS,
        help=(
            f"assumed training rate (TFLOP/s) of one H100 with AMP on {REFERENCE_NAME} "
            f"(default {DEFAULT_GPU_TFLOPS:g}); F = this / the CPU's measured rate on it"
        ),
    )
    ap.add_argument(
        "--speedup",
        type=float,
        default=None,
        help="F itself (CPU -> one GPU speed-up of a step) instead of deriving it",
    )
    ap.add_argument("--batch", type=int, default=1, help="images per measured step")
    ap.add_argument("--crop", type=int, default=320, help="crop (px) of the measured steps")
    ap.add_argument("--steps", type=int, default=4, help="measured steps (the first is warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    t0 = time.monotonic()
    plans = plan_grids()
    times: dict[str, StepTime] = {}
    gpu_name = None
    if args.step_times is not None:
        times, gpu_name = gpu_step_times(args.step_times, plans)
    to_measure = sorted({p.kind for p in plans} - set(times))
    # F comes from the reference model's CPU time: measure it even when the
    # GPU timed it (then F itself is measured).
    if to_measure and REFERENCE not in to_measure and args.speedup is None:
        to_measure.append(REFERENCE)
    cpu_times: dict[str, StepTime] = {}
    with tempfile.TemporaryDirectory(prefix="gpu-hours-") as tmp:
        for kind in to_measure:
            first = next(p for p in plans if p.kind == kind)
            t = measure_kind(first, args.batch, args.crop, args.steps, Path(tmp))
            cpu_times[kind] = t
            print(
                f"{kind}: {t.seconds:.2f} s/step at {t.batch} x {t.crop} px on the CPU "
                f"({t.details['forward_gflops_per_image']} GFLOPs forward, "
                f"{t.details['train_gflop_per_s']} GFLOP/s)",
                file=sys.stderr,
                flush=True,
            )
    speedup, note = choose_speedup(args.speedup, args.gpu_tflops, cpu_times, times, gpu_name, plans)
    for kind, t in cpu_times.items():
        if kind not in times:
            t.speedup = speedup
            times[kind] = t
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    cmd = "python benchmarks/gpu_hours.py" + (
        f" --step-times {args.step_times}" if args.step_times else ""
    )
    spread = [
        f"{t.kind} {min(t.details['step_seconds']):.2f}-{max(t.details['step_seconds']):.2f} s"
        for t in times.values()
        if t.source == "cpu" and t.details.get("step_seconds")
    ]
    meta = {
        "command": cmd,
        "machine": machine() + (f"; GPU times: {gpu_name}" if gpu_name else ""),
        "date": datetime.now(timezone.utc).date().isoformat(),
        "noise": (
            f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
            if load_before and load_after
            else "load not known"
        )
        + (f"; measured steps: {'; '.join(spread)}" if spread else "")
        + ("; the hours inherit F's uncertainty" if cpu_times else ""),
        "speedup": speedup,
        "speedup_note": note,
        "torch": torch.__version__,
        "seconds": round(time.monotonic() - t0, 1),
    }
    text = render(plans, times, meta)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if args.update:
        update_page(args.update, text)
    if args.json:
        doc = {
            "meta": meta,
            "step_times": {k: vars(t) for k, t in times.items()},
            "cells": [vars(p) for p in plans],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
