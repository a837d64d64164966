"""benchmarks/gpu_hours.py: GPU-hours per TCM paper table.

The estimate in docs/experiments.md is cells x recipe steps x seconds per
step. These tests check the parts that do not need a timed run: which
cells train and for how many steps (from the shipped grids and recipes, as
``experiment run`` would), how a measured step time is scaled, how GPU
times from gpu_check.sh replace CPU ones, and that the page's marked
section is rewritten in place. The measurement itself (a minute of
training on the CPU) is run by hand; its figures carry their provenance.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gh() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_hours", REPO / "benchmarks" / "gpu_hours.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_hours", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plans(gh: ModuleType) -> list:
    return gh.plan_grids()


def test_every_shipped_grid_is_planned_with_its_trained_cells(gh: ModuleType, plans: list) -> None:
    from tcmbench.experiment import grid as G

    by_grid: dict[str, list] = {}
    for p in plans:
        by_grid.setdefault(p.grid, []).append(p)
    assert set(by_grid) == set(G.shipped_grids())
    for name, ps in by_grid.items():
        g = G.load_grid(name)
        if g.variables:
            g = G.with_sets(g, dict.fromkeys(g.variables, "x"))
        cells = G.expand(g, strict=False)
        trained = [c for c in cells if float(c.params["train_fraction"]) > 0]
        assert sorted(p.cell for p in ps) == sorted(c.id for c in trained), name
        assert all(p.steps >= 1 and p.batch_size >= 1 and p.crop >= 32 for p in ps)
    # few-shot's 0 % cells evaluate the starting weights: nothing to train
    assert len(by_grid["few-shot"]) < len(
        G.expand(
            G.with_sets(
                G.load_grid("few-shot"), {"dbnet_pretrained": "x", "tcm_dbnet_pretrained": "x"}
            ),
            strict=False,
        )
    )


def test_steps_follow_the_recipes_and_the_training_set_sizes(gh: ModuleType, plans: list) -> None:
    from tcmbench.contract.registry import get_detector

    dbnet = get_detector("dbnet")
    # fixed-length recipe: SynthText pre-training
    synth = [p for p in plans if p.grid == "domain-transfer" and p.recipe == "synthtext"]
    assert len(synth) == 2 and {p.steps for p in synth} == {dbnet.recipe("synthtext")["steps"]}
    # epoch recipes: epochs x images / batch, rounded up
    ic15 = dbnet.recipe("icdar2015")
    full = [p for p in plans if p.grid == "ablations"]
    assert {p.steps for p in full} == {math.ceil(ic15["epochs"] * 1000 / ic15["batch_size"])}
    assert {p.train_images for p in full} == {1000}  # datasets_cfg/icdar2015.yaml expects 1000
    # few-shot: the subset's size as few_shot_subset rounds it
    few = {
        (p.kind, p.train_images): p.steps
        for p in plans
        if p.grid == "few-shot" and p.cell.endswith("train_fraction=0.01") and "icdar2015" in p.cell
    }
    assert {n for _, n in few} == {10}
    assert set(few.values()) == {math.ceil(ic15["epochs"] * 10 / ic15["batch_size"])}
    # joint training sums the sets
    night = [p for p in plans if p.grid == "nighttime-art"]
    assert {p.train_images for p in night} == {229 + 1000 + 300 + 1000 + 1255 + 7200}
    assert {p.kind for p in night} == {"fcenet resnet50", "dbnet resnet50", "dbnet + TCM"}


def test_a_step_time_scales_with_batch_and_crop_area(gh: ModuleType) -> None:
    t = gh.StepTime(
        "dbnet resnet50", 2.0, batch=1, crop=320, source="cpu", speedup=100.0, device="cpu"
    )
    assert t.per_step(1, 320) == pytest.approx(0.02)
    assert t.per_step(16, 640) == pytest.approx(2.0 * 16 * 4 / 100)


def _times(gh: ModuleType, plans: list, source: str = "cpu") -> dict:
    return {
        k: gh.StepTime(
            k,
            1.0,
            batch=1,
            crop=320,
            source=source,
            speedup=500.0,
            device="cpu",
            details={
                "forward_gflops_per_image": 20.0,
                "train_gflop_per_s": 40.0,
                "step_seconds": [0.9, 1.1],
            },
        )
        for k in {p.kind for p in plans}
    }


def test_the_table_marks_cpu_scaled_times_and_names_the_assumption(
    gh: ModuleType, plans: list
) -> None:
    meta = {
        "command": "python benchmarks/gpu_hours.py",
        "machine": "2-core test CPU, no GPU",
        "date": "2026-12-07",
        "noise": "test",
        "speedup_note": gh.note_assumed(40.0, 20.0),
    }
    text = gh.render(plans, _times(gh, plans), meta)
    assert text.startswith("> **Written by** `python benchmarks/gpu_hours.py`")
    assert "CPU-measured, scaled by F = 500" in text and "**F is an assumption**" in text
    assert "20 TFLOP/s" in text and "trained at 40 GFLOP/s" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == list(gh.GRID_ORDER)
    # each grid's hours: its cells' steps x the scaled step time
    for row in rows:
        name = row.split("`")[1]
        ps = [p for p in plans if p.grid == name]
        want = sum(p.steps * (p.batch_size * (p.crop / 320) ** 2) / 500 for p in ps) / 3600
        assert row.rstrip(" |").endswith(gh.fmt_hours(want)), row
        assert "*)" in row  # CPU-scaled times are marked


def test_f_is_given_assumed_from_the_cpu_rate_or_measured(gh: ModuleType, plans: list) -> None:
    """Without GPU times F = the assumed GPU rate / the CPU's measured rate
    on DBNet-ResNet-50 (a busier CPU gives a smaller F, so the load
    cancels); with the GPU's time of that model F is the measured ratio."""
    ref = gh.REFERENCE

    def cpu(seconds: float, rate: float) -> dict:
        return {
            ref: gh.StepTime(ref, seconds, 1, 320, "cpu", 1.0, "cpu", {"train_gflop_per_s": rate})
        }

    f, note = gh.choose_speedup(None, 30.0, cpu(1.0, 60.0), {}, None, plans)
    assert f == 500 and "**F is an assumption**" in note and "60 GFLOP/s" in note
    f_busy, _ = gh.choose_speedup(None, 30.0, cpu(2.0, 30.0), {}, None, plans)
    assert f_busy == 1000
    # a step twice as long on a busy CPU, F twice as large: the same GPU estimate
    p = next(p for p in plans if p.kind == ref)
    quiet = cpu(1.0, 60.0)[ref]
    busy = cpu(2.0, 30.0)[ref]
    quiet.speedup, busy.speedup = f, f_busy
    assert quiet.per_step(p.batch_size, p.crop) == pytest.approx(
        busy.per_step(p.batch_size, p.crop)
    )

    gpu = {ref: gh.StepTime(ref, 0.2, 16, 640, "gpu", 1.0, "H100")}
    f, note = gh.choose_speedup(None, 30.0, cpu(1.0, 60.0), gpu, "H100", plans)
    assert f == round(1.0 * 16 * 4 / 0.2) and note.startswith("F was measured")
    f, note = gh.choose_speedup(250.0, 30.0, cpu(1.0, 60.0), {}, None, plans)
    assert f == 250.0 and "--speedup 250" in note


def test_gpu_check_times_replace_the_cpu_ones(gh: ModuleType, plans: list, tmp_path: Path) -> None:
    doc = {
        "environment": {"gpu": "NVIDIA H100 80GB HBM3"},
        "step_times": {
            "dbnet": {
                "plugin": "dbnet",
                "tcm": False,
                "recipe": "icdar2015",
                "batch_size": 16,
                "device": "cuda:0",
                "amp": True,
                "s_per_step": 0.2,
            },
            "dbnet+tcm": {
                "plugin": "dbnet",
                "tcm": True,
                "recipe": "icdar2015",
                "batch_size": 16,
                "device": "cuda:0",
                "amp": True,
                "s_per_step": 0.5,
            },
            # a dry run's CPU time is never taken for a GPU one
            "fcenet": {
                "plugin": "fcenet",
                "tcm": False,
                "recipe": "synthtext-mini",
                "batch_size": 2,
                "device": "cpu",
                "amp": False,
                "s_per_step": 0.1,
            },
        },
    }
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(doc))
    found, gpu = gh.gpu_step_times(path, plans)
    assert gpu == "NVIDIA H100 80GB HBM3"
    assert set(found) == {"dbnet resnet50", "dbnet + TCM"}
    assert found["dbnet + TCM"].per_step(16, 640) == pytest.approx(0.5)
    times = {**_times(gh, plans), **found}
    meta = {
        "command": "c",
        "machine": "m",
        "date": "2026-12-07",
        "noise": "n",
        "speedup_note": "note",
    }
    text = gh.render(plans, times, meta)
    assert "measured on NVIDIA H100 80GB HBM3" in text
    lr = next(line for line in text.splitlines() if line.startswith("| `lr-factors`"))
    assert "(dbnet + TCM)" in lr and "*" not in lr  # all its cells are GPU-measured
    assert lr.rstrip(" |").endswith(gh.fmt_hours(9 * 75000 * 0.5 / 3600))


def test_update_rewrites_only_the_marked_section(gh: ModuleType, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"# T\n\nbefore\n{gh.BEGIN}\nold table\n{gh.END}\nafter\n")
    gh.update_page(page, "new table\n")
    assert page.read_text() == f"# T\n\nbefore\n{gh.BEGIN}\nnew table\n{gh.END}\nafter\n"
    bare = tmp_path / "bare.md"
    bare.write_text("# no markers\n")
    with pytest.raises(SystemExit, match=re.escape("no <!-- gpu_hours.py begin -->")):
        gh.update_page(bare, "x\n")
    assert bare.read_text() == "# no markers\n"


def test_docs_hold_the_generated_section() -> None:
    """docs/experiments.md includes the script's output between its markers,
    with the provenance line the script writes."""
    text = (REPO / "docs" / "experiments.md").read_text(encoding="utf-8")
    begin, end = "<!-- gpu_hours.py begin -->", "<!-- gpu_hours.py end -->"
    assert text.count(begin) == 1 and text.count(end) == 1
    section = text.split(begin, 1)[1].split(end, 1)[0]
    assert section.lstrip().startswith("> **Written by** `python benchmarks/gpu_hours.py")
    assert "| **all six** |" in section
