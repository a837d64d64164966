"""``tcmbench bench`` and :mod:`tcmbench.inference.profiling`: JSON keys and sane
values on tiny resolutions, the params-only path, FLOPs checked against
hand counts (attention on CPU included), interleaved timing, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tcmbench.cli import main
from tcmbench.contract import registry as plugins
from tcmbench.contract.spec import DetectorConfig
from tcmbench.inference import profiling

SMALL = "mobilenetv3_small"


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """``--threads`` sets torch's process-wide thread count: give the
    rest of the session its own back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The real entry point in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = int(main(list(argv)) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _numel(backbone: str) -> int:
    model = plugins.get_plugin_manager().hook.build_detector(
        spec=plugins.get_detector("dbnet"), config=DetectorConfig(backbone=backbone)
    )
    return sum(p.numel() for p in model.parameters())


def test_bench_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code, stdout, err = run(
        capsys,
        "bench",
        "--plugin",
        "dbnet",
        "--backbone",
        SMALL,
        "--resolution",
        "64,128",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--json",
        str(out),
        "--no-progress",
        "--threads",
        "1",
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["environment"]["threads"] == 1
    assert doc["params"] == _numel(SMALL)
    assert "params_without_text_encoder" not in doc  # only for TCM models
    assert doc["random_weights"] is True and doc["environment"]["device"] == "cpu"
    assert [r["resolution"] for r in doc["results"]] == ["64x64", "128x128"]
    small, big = doc["results"]
    for r in (small, big):
        assert r["gflops"] > 0 and r["gmacs"] == pytest.approx(r["gflops"] / 2)
        assert (
            len(r["latency_runs_ms"]) == 2 and min(r["latency_runs_ms"]) == r["latency_ms_min"] > 0
        )
        assert r["latency_ms_min"] <= r["latency_ms"] <= max(r["latency_runs_ms"])
        assert r["images_per_s"] == pytest.approx(1000.0 / r["latency_ms"])
        assert r["postprocess_ms"] >= 0 and r["detections_per_image"] >= 0
    # A fully convolutional network: 4x the pixels, ~4x the FLOPs.
    assert 3.5 < big["gflops"] / small["gflops"] < 4.5
    assert f"| dbnet-{SMALL} | 64x64 |" in stdout and f"| dbnet-{SMALL} | 128x128 |" in stdout


def test_params_only_and_flops_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.json"
    code, stdout, err = run(
        capsys, "bench", "--backbone", "resnet18", "--params-only", "--json", str(out)
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert (
        doc["params"] == _numel("resnet18") and doc["params_only"] is True and doc["results"] == []
    )
    assert f"| dbnet-resnet18 | {doc['params'] / 1e6:.2f}M |" in stdout
    assert "latency" not in stdout
    # --runs 0: FLOPs at a non-square WIDTHxHEIGHT, no timing.
    code, _, err = run(
        capsys,
        "bench",
        "--backbone",
        SMALL,
        "--resolution",
        "96x64",
        "--runs",
        "0",
        "--json",
        str(out),
        "--device",
        "cpu",
    )
    assert code == 0, err
    [r] = json.loads(out.read_text())["results"]
    assert (r["width"], r["height"]) == (96, 64) and r["gflops"] > 0 and "latency_ms" not in r


@pytest.mark.parametrize("bad", ["63", "64x", "abc", "16"])
def test_bad_resolution(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "bench", "--resolution", bad, "--params-only")
    assert code == 2 and "--resolution" in err and "Traceback" not in err


def test_option_conflicts(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "bench", "--tcm", "--backbone", "resnet18", "--params-only")
    assert code == 2 and "--compare-tcm" in err
    code, _, err = run(capsys, "bench", "--weights", "x", "--compare-tcm")
    assert code == 2 and "--weights" in err
    code, _, err = run(capsys, "bench", "--backbone", "resnet9000", "--params-only")
    assert code == 2 and "resnet9000" in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "bench", "--device", "cuda", "--params-only")
    assert code == 2 and "CUDA" in err and "--device cpu" in err and "Traceback" not in err


def test_flops_match_hand_counts() -> None:
    """Convolutions and (CPU) attention counted as 2 FLOPs per multiply-add."""
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert profiling.measure_flops(conv, 16, 24) == 2 * 8 * 3 * 9 * 16 * 24

    class Attention(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, c, h, w = x.shape
            q = x.flatten(2).transpose(1, 2).reshape(b, 1, h * w, c)  # one head, hw tokens, dim c
            return F.scaled_dot_product_attention(q, q, q)

    tokens, dim = 12 * 10, 3
    # QK^T and AV: two (tokens x dim x tokens) matmuls.
    assert profiling.measure_flops(Attention(), 12, 10) == 2 * (2 * tokens * dim * tokens)

    # Per module: the parts of a sequential model add up to its total.
    seq = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(8, 2, 1, bias=False))
    parts = profiling.flops_by_module(seq, 16, 24)
    assert parts["0"] == 2 * 8 * 3 * 9 * 16 * 24 and parts["2"] == 2 * 2 * 8 * 16 * 24
    assert parts[""] == parts["0"] + parts["2"]


def test_compare_latency_interleaves() -> None:
    """Models alternate run by run (A B, B A, ...) so neither always runs
    first; every model gets its own batch."""
    calls: list[tuple[str, int]] = []

    class Probe(nn.Module):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            calls.append((self.name, x.shape[-1]))
            return {"prob": x}

    batches = {n: (torch.zeros(2, 3, 4, w), [{}, {}]) for n, w in (("a", 4), ("b", 8))}
    res = profiling.compare_latency(
        {"a": Probe("a"), "b": Probe("b")},
        batches,
        warmup=1,
        runs=3,
        postprocessors={"a": lambda o, m: [[1], []], "b": lambda o, m: [[], []]},
    )
    assert calls == [("a", 4), ("b", 8), ("b", 8), ("a", 4), ("a", 4), ("b", 8), ("b", 8), ("a", 4)]
    assert len(res["a"]["latency_runs_ms"]) == 3
    assert res["a"]["detections_per_image"] == 0.5 and res["b"]["detections_per_image"] == 0.0


def test_parse_resolutions() -> None:
    sizes = profiling.parse_resolutions("640, 1024,1280x800,640")
    assert [(s.width, s.height, s.label) for s in sizes] == [
        (640, 640, "640x640"),
        (1024, 1024, "1024x1024"),
        (1280, 800, "1280x800"),
    ]


@pytest.mark.slow
def test_compare_tcm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DBNet-R50 and TCM-DBNet (random CLIP weights, nothing downloaded)
    measured in one run: both entries and a ratio per resolution."""
    out = tmp_path / "cmp.json"
    code, stdout, err = run(
        capsys,
        "bench",
        "--compare-tcm",
        "--resolution",
        "64",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--no-flops",
        "--device",
        "cpu",
        "--json",
        str(out),
        "--no-progress",
        "--threads",
        "1",
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    plain, tcm = doc["models"]
    assert plain["tcm"] is False and plain["architecture"]["backbone"] == "resnet50"
    assert tcm["tcm"] is True and tcm["architecture"]["tcm"]["clip_pretrained"] is None
    assert tcm["params_without_text_encoder"] < tcm["params"]
    ratio = doc["tcm_latency_ratio"]["64x64"]
    assert ratio == pytest.approx(
        tcm["results"][0]["latency_ms"] / plain["results"][0]["latency_ms"]
    )
    fastest = doc["tcm_latency_ratio_min"]["64x64"]
    assert fastest == pytest.approx(
        tcm["results"][0]["latency_ms_min"] / plain["results"][0]["latency_ms_min"]
    )
    assert "TCM / plain" in stdout


def test_plugin_without_a_backbone_is_labelled_by_its_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A plugin whose recipe names no backbone (it builds its own) must not
    be labelled with DetectorConfig's default backbone ("NAME-resnet18")."""
    from tiny_data import TINY_SPEC

    from tcmbench.contract.hookspecs import hookimpl

    assert "backbone" not in (TINY_SPEC.recipe(None).get("model") or {})

    class OwnBackbone:
        @hookimpl
        def register_detectors(self, register: Callable[[object], None]) -> None:
            register(TINY_SPEC)

    pm = plugins.get_plugin_manager()
    plugin = OwnBackbone()
    pm.register(plugin, name="own-backbone-plugin")
    try:
        code, stdout, err = run(capsys, "bench", "--plugin", TINY_SPEC.name, "--params-only")
        assert code == 0, err
        assert f"| {TINY_SPEC.name} |" in stdout
        assert "resnet18" not in stdout
        # A backbone the user names is the label's, as for DBNet.
        code, stdout, err = run(
            capsys, "bench", "--plugin", TINY_SPEC.name, "--backbone", "x", "--params-only"
        )
        assert code == 0, err
        assert f"| {TINY_SPEC.name}-x |" in stdout
    finally:
        pm.unregister(plugin)


@pytest.mark.slow
def test_compare_tcm_for_several_plugins_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--plugin A,B --compare-tcm: every plugin and its TCM variant timed in
    one interleaved run, one ratio per plugin and resolution."""
    from tcmbench.contract.registry import detectors

    names = [n for n in ("dbnet", "pan", "fcenet") if n in detectors()]
    assert len(names) >= 2
    out = tmp_path / "cmp.json"
    code, stdout, err = run(
        capsys,
        "bench",
        "--plugin",
        ",".join(names),
        "--compare-tcm",
        "--resolution",
        "64",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--no-flops",
        "--device",
        "cpu",
        "--json",
        str(out),
        "--no-progress",
        "--threads",
        "1",
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["plugin"] == names
    assert len(doc["models"]) == 2 * len(names)
    by_label = {m["model"]: m for m in doc["models"]}
    for name in names:
        plain = next(m for m in doc["models"] if not m["tcm"] and m["model"].startswith(name))
        tcm = by_label[f"TCM-{name} (CLIP RN50-quickgelu)"]
        ratio = doc["tcm_latency_ratio_by_plugin"][name]["64x64"]
        assert ratio == pytest.approx(
            tcm["results"][0]["latency_ms"] / plain["results"][0]["latency_ms"]
        )
        assert f"| {name} | 64x64 |" in stdout


def test_several_plugins_need_compare_tcm(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "bench", "--plugin", "dbnet,pan", "--params-only")
    assert code == 2 and "--compare-tcm" in err
