"""benchmarks/gpu_check.sh: the GPU readiness check, run as its CPU dry run.

The script is what a session runs in its first minutes on a lent GPU, so it
must work the first time: ``--dry-run`` runs every step (train / resume /
evaluate for the three plugins, plain and --tcm; torchrun; bench
--compare-tcm; onnxruntime) on the CPU at tiny sizes, and the JSON must
hold each step with its figures. Training data: a tiny ICDAR 2015-layout
folder (``--dataset icdar2015 --data-root``), not synthtext-mini, whose
1000-image train split would take 30-90 s to generate in the test's
empty cache; the script's default is synthtext-mini.

A step that fails must not stop the others, and the exit status must say
that one failed: checked on the script's own step runner with commands
that really fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
PLUGINS = ("dbnet", "pan", "fcenet")


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)
    spec.loader.exec_module(module)
    return module


def _expected_steps() -> list[str]:
    names = ["data"]
    for plugin in PLUGINS:
        for variant in ("plain", "tcm"):
            names += [f"{k}-{plugin}-{variant}" for k in ("train", "resume", "evaluate")]
    return [*names, "ddp-torchrun", "bench-compare-tcm", "onnxruntime"]


@pytest.mark.slow
def test_dry_run_passes_every_step_and_records_its_figures(tmp_path: Path) -> None:
    from tiny_data import make_ic15_folder

    data = make_ic15_folder(tmp_path / "ic15", n_train=4, n_test=2)
    out = tmp_path / "dry.json"
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--out", str(out)]
        + ["--dataset", "icdar2015", "--data-root", str(data)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    steps = {s["name"]: s for s in doc["steps"]}
    assert [s["name"] for s in doc["steps"]] == _expected_steps()
    bad = {n: (s["status"], s.get("reason"), s.get("error_tail")) for n, s in steps.items()}
    assert all(s["status"] == "ok" for s in steps.values()), bad
    assert doc["ok"] is True and doc["failed"] == [] and doc["mode"] == "dry-run"
    assert doc["finished"] and doc["environment"]["gpu"] is None
    assert doc["environment"]["torch"] and doc["environment"]["tcmbench"]
    assert all(s["seconds"] > 0 and s["commands"] for s in steps.values())

    assert steps["data"]["figures"] == {"train_images": 4, "test_images": 2}
    for plugin in PLUGINS:
        for variant in ("plain", "tcm"):
            train = steps[f"train-{plugin}-{variant}"]["figures"]
            assert train["steps"] == 3 and train["tcm"] == (variant == "tcm")
            assert train["amp_requested"] is True and train["amp_active"] is False
            assert "CUDA-only" in train["amp_note"]
            assert train["s_per_step"] > 0 and train["device"] == "cpu"
            resume = steps[f"resume-{plugin}-{variant}"]["figures"]
            assert resume["resumed_from_step"] == 2 and resume["steps"] == 3
            # on a CPU the resumed run ends with the uninterrupted run's weights
            assert resume["same_weights_as_uninterrupted"] is True, resume
            ev = steps[f"evaluate-{plugin}-{variant}"]["figures"]
            assert ev["images"] == 2 and 0.0 <= ev["hmean"] <= 1.0
    assert set(doc["step_times"]) == {p + t for p in PLUGINS for t in ("", "+tcm")}

    ddp = steps["ddp-torchrun"]["figures"]
    assert ddp["world_size"] == 2 and ddp["process_group"] == "gloo" and ddp["steps"] == 3
    ratios = steps["bench-compare-tcm"]["figures"]["tcm_latency_ratio"]
    assert set(ratios) == set(PLUGINS)
    assert all(set(r) == {"64x64", "96x96"} and min(r.values()) > 0 for r in ratios.values())
    onnx = steps["onnxruntime"]["figures"]
    assert onnx["runtime"] == "onnxruntime" and onnx["provider"] == "CPUExecutionProvider"
    assert onnx["images"] == 2


def _check(tmp_path: Path, in_process: bool) -> Any:
    gc = _module()
    return gc.Check(gc.DRY, tmp_path / "work", tmp_path / "out.json", in_process=in_process)


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "subprocess"])
def test_a_failed_step_is_recorded_and_the_rest_still_run(tmp_path: Path, in_process: bool) -> None:
    """A real command that fails (an unknown dataset) is recorded as failed
    with its exit status and the tail of its output; a step that needs it is
    skipped with the reason; an independent step after it still runs; the
    JSON on disk says so at once and the check reports failure."""
    check = _check(tmp_path, in_process)

    def fails(step: Any) -> None:
        check.run(step, check.tcmbench("datasets", "stats", "no-such-dataset", "--split", "test"))

    ran: list[str] = []
    check.step("data", fails)
    check.step("train-dbnet-plain", lambda s: ran.append("train"), needs=("data",))
    check.step("bench-compare-tcm", lambda s: ran.append("bench"))
    check.write(final=True)

    assert ran == ["bench"]
    doc = json.loads((tmp_path / "out.json").read_text())
    status = {s["name"]: s for s in doc["steps"]}
    assert status["data"]["status"] == "failed"
    assert status["data"]["reason"] == "exit status 2"  # tcmbench's status for a bad name
    assert "no-such-dataset" in status["data"]["error_tail"]
    assert status["train-dbnet-plain"]["status"] == "skipped"
    assert "needs data" in status["train-dbnet-plain"]["reason"]
    assert status["bench-compare-tcm"]["status"] == "ok"
    assert doc["ok"] is False and doc["failed"] == ["data"]
    log = Path(status["data"]["log"]).read_text()
    assert "datasets stats no-such-dataset" in log


def test_a_crashing_step_body_does_not_stop_the_check(tmp_path: Path) -> None:
    """A bug inside a step (an exception, not a failed command) fails that
    step only, naming the exception."""
    check = _check(tmp_path, in_process=True)

    def crashes(step: Any) -> None:
        raise KeyError("hmean")

    check.step("evaluate-dbnet-plain", crashes)
    check.step("onnxruntime", lambda s: None)
    names = [(s.name, s.status) for s in check.steps]
    assert names == [("evaluate-dbnet-plain", "failed"), ("onnxruntime", "ok")]
    assert check.steps[0].reason == "KeyError: 'hmean'"


def test_the_gpu_run_refuses_to_start_without_a_gpu(tmp_path: Path) -> None:
    """Without CUDA the GPU check stops at once (status 2), pointing at
    --dry-run, instead of running every step on the CPU at GPU sizes."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: the GPU run would start")
    gc = _module()
    assert gc.main(["--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
