"""``tcmbench train --init-from``: weights only, by key name, with a table.

A fine-tuned run must start from exactly the source's tensors (parameters
and BatchNorm statistics), print what it loaded, and refuse in one line when
nothing fits. Sources: checkpoint / run folders, .safetensors files, hf://
(the real huggingface_hub client against a loopback Hub) and official TCM
checkpoints (renamed by the importer's rules).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_data import make_ic15_folder, make_samples

from tcmbench.cli import main
from tcmbench.contract.registry import get_detector, get_plugin_manager
from tcmbench.contract.spec import DetectorConfig, TCMConfig
from tcmbench.errors import CheckpointError
from tcmbench.hub import checkpoints as hub
from tcmbench.train.hyper import TrainConfig
from tcmbench.train.init_from import (
    COUNTER_SUFFIX,
    MIN_INIT_SHARE,
    InitReport,
    check_coverage,
    init_weights,
    read_source,
)
from tcmbench.train.recipe_choice import build_detector_config
from tcmbench.train.trainer import Trainer


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _build(plugin: str, config: DetectorConfig, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return get_plugin_manager().hook.build_detector(spec=get_detector(plugin), config=config)


def _save(path: Path, plugin: str, config: DetectorConfig, seed: int = 0) -> Path:
    """A checkpoint folder of a freshly built (seeded) model."""
    model = _build(plugin, config, seed)
    return hub.save_checkpoint(path, model, get_detector(plugin), config)


def _embedded_copy(tmp_path: Path, name: str = "src") -> Path:
    """A copy of the DBNet checkpoint shipped in the plugin
    (mobilenetv3_small, the synthtext-mini recipe's architecture): trained
    weights and BatchNorm statistics."""
    folder = hub.embedded_weights(get_detector("dbnet"))
    assert folder is not None
    return Path(shutil.copytree(folder, tmp_path / name))


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = int(main(args) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _train_args(ic15: Path, out: Path, init_from: str, *extra: str) -> list[str]:
    """`tcmbench train` of DBNet (synthtext-mini recipe: mobilenetv3_small,
    224 px crops) for one step on a tiny ICDAR 2015-layout folder."""
    return [
        "train",
        "--plugin",
        "dbnet",
        "--dataset",
        "icdar2015",
        "--data-root",
        str(ic15),
        "--recipe",
        "synthtext-mini",
        "--init-from",
        init_from,
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--no-progress",
        "--no-tensorboard",
        "--output",
        str(out),
        *extra,
    ]


def _categories(report: InitReport) -> list[str]:
    keys = report.loaded + report.missing + report.skipped + [k for k, _, _ in report.mismatched]
    return keys


# ------------------------------------------------------------ fine-tuning


def test_cli_fine_tune_starts_from_the_checkpoint_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One Adam step moves every parameter by at most lr (|m/sqrt(v)| <= 1
    on the first step): so after one step at lr 1e-4 every parameter is
    within 1e-4 of the source -- training started from it, not from the
    run's own initialisation, which is far away."""
    src = _embedded_copy(tmp_path)
    source = load_file(str(src / "model.safetensors"))
    ic15 = make_ic15_folder(tmp_path / "ic15", n_train=4, n_test=2)
    lr = 1e-4
    args = _train_args(ic15, tmp_path / "run", str(src), "--lr", str(lr), "--optimizer", "adam")
    code, out, err = _run(args, capsys)
    assert code == 0, err
    # The key table, printed by the CLI: everything of a same-architecture checkpoint loads.
    assert f"--init-from {src}: tcmbench checkpoint" in out
    assert f"| loaded | {len(source)} | backbone.* " in out
    assert "| missing (kept as built) | 0 |" in out and "| unexpected (ignored) | 0 |" in out
    assert "| shape mismatch (checkpoint vs model; not loaded) | 0 |" in out
    assert "trained 1 steps" in out
    # ... and recorded in the run's log.
    start = json.loads((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()[0])
    assert start["event"] == "start" and start["init_from"]["counts"]["loaded"] == len(source)

    final = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    assert final.keys() == source.keys()
    model = _build(
        "dbnet",
        DetectorConfig.from_dict(json.loads((src / "config.json").read_text())["architecture"]),
    )
    params = {name for name, _ in model.named_parameters()}
    drift = {k: float((final[k] - source[k]).abs().max()) for k in params}
    assert max(drift.values()) <= lr * 1.01 + 1e-6, max(drift.items(), key=lambda kv: kv[1])
    assert max(drift.values()) > 0  # and it did train
    fresh = model.state_dict()  # what the run would have started from without --init-from
    assert max(float((fresh[k] - source[k]).abs().max()) for k in params) > 100 * lr


@pytest.mark.parametrize("plugin", ["dbnet", "pan", "fcenet"])
def test_loaded_weights_equal_the_source_before_the_first_step(tmp_path: Path, plugin: str) -> None:
    """Trainer._build with init_from = a run folder: every tensor of the
    model (parameters and buffers) equals the source's final/ checkpoint;
    no optimizer state, step 0; the table goes to the announce callback.
    The same for each built-in plugin: fine-tuning is how every paper run
    starts."""
    spec = get_detector(plugin)
    recipe = spec.recipe("synthtext-mini")
    cfg = TrainConfig(
        plugin=plugin,
        datasets=["tiny"],
        backbone="resnet18",
        output=str(tmp_path / "out"),
        device="cpu",
        workers=0,
        progress=False,
        steps=1,
        batch_size=2,
        init_from=str(tmp_path / "src-run"),
    )
    config = build_detector_config(cfg, recipe)
    _save(tmp_path / "src-run" / "final", plugin, config, seed=7)
    source = load_file(str(tmp_path / "src-run" / "final" / "model.safetensors"))
    own_init = _build(plugin, config, seed=cfg.seed).state_dict()
    assert any(not torch.equal(own_init[k], source[k]) for k in source)  # the test can fail

    trainer = Trainer(spec, config, recipe, cfg, make_samples(tmp_path / "data", n=2))
    said: list[str] = []
    trainer.announce = said.append
    trainer._build()
    state = trainer.model.state_dict()
    assert state.keys() == source.keys()
    assert [k for k in state if not torch.equal(state[k], source[k])] == []
    assert any(k.endswith("running_var") for k in state)  # buffers are compared too
    assert trainer.start_step == 0 and len(trainer.optimizer.state) == 0
    report = trainer.init_report
    assert sorted(report.loaded) == sorted(source) and report.missing == report.unexpected == []
    assert len(said) == 1 and said[0] == report.table()
    assert f"| loaded | {len(source)} | backbone.* " in said[0]
    json.dumps(report.to_dict())  # JSON-ready for train_log.jsonl


@pytest.mark.parametrize("layout", ["run", "final", "file", "steps-only", "training-state"])
def test_source_layouts_resolve_to_the_weights_file(tmp_path: Path, layout: str) -> None:
    src = _embedded_copy(tmp_path)
    run = tmp_path / "run"
    if layout == "steps-only":  # an interrupted run: no final/, the latest step wins
        for n in (2, 5):
            shutil.copytree(src, run / "checkpoints" / f"step-{n:07d}")
        ref, expected = run, run / "checkpoints" / "step-0000005" / "model.safetensors"
    elif layout == "training-state":
        step = Path(shutil.copytree(src, run / "checkpoints" / "step-0000003"))
        (step / "training_state.pt").write_bytes(b"not read")
        ref, expected = step / "training_state.pt", step / "model.safetensors"
    else:
        shutil.copytree(src, run / "final")
        ref = {"run": run, "final": run / "final", "file": run / "final" / "model.safetensors"}[
            layout
        ]
        expected = run / "final" / "model.safetensors"
    source = read_source(str(ref), get_detector("dbnet"))
    assert source.weights_file == expected and source.kind == "tcmbench checkpoint"
    assert source.meta is not None and source.meta["plugin"] == "dbnet" and source.tcm is False
    assert source.state.keys() == load_file(str(src / "model.safetensors")).keys()


def test_a_bare_safetensors_file_loads_without_config(tmp_path: Path) -> None:
    config = DetectorConfig(backbone="resnet18")
    state = _build("dbnet", config, seed=3).state_dict()
    bare = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(bare))
    model = _build("dbnet", config)
    report = init_weights(model, str(bare), get_detector("dbnet"), config)
    assert report.kind == "safetensors file" and report.checkpoint == ""
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in state)


# ------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("plugin", "why"),
    [
        ("pan", "no key name matches"),
        ("fcenet", "key name(s) match but every weight differs in shape"),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plugin: str, why: str
) -> None:
    """PANet-R18 into DBNet-MobileNetV3: no name in common. FCENet-R18 into
    it: three neck names in common, all of other shapes."""
    src = _save(tmp_path / "src", plugin, DetectorConfig(backbone="resnet18"))
    ic15 = make_ic15_folder(tmp_path / "ic15", n_train=2, n_test=1)
    code, _, err = _run(_train_args(ic15, tmp_path / "run", str(src)), capsys)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"Error: --init-from {src}: nothing to load into dbnet")
    assert why in line
    assert f"the checkpoint is a {plugin} / resnet18 model; this run builds dbnet" in line
    assert "checkpoint keys e.g. backbone." in line and "model keys e.g. backbone." in line
    assert not (tmp_path / "run" / "final").exists()


def _poison(src: Path, edit: Any) -> None:
    state = load_file(str(src / "model.safetensors"))
    edit(state)
    save_file(state, str(src / "model.safetensors"))


FIRST_CONV = "backbone.stages.0.0.0.weight"


def _nan(s: dict[str, torch.Tensor]) -> None:
    s[FIRST_CONV] = s[FIRST_CONV].clone()
    s[FIRST_CONV].view(-1)[0] = float("nan")


def _int8(s: dict[str, torch.Tensor]) -> None:
    s[FIRST_CONV] = s[FIRST_CONV].mul(100).to(torch.int8)


def test_hostile_checkpoints_are_refused_as_with_weights(tmp_path: Path) -> None:
    """The --weights checks apply: config.json schema, truncated
    safetensors, tensors of another dtype, NaN weights, pickles."""
    config = DetectorConfig(backbone="mobilenetv3_small", options={"lateral_channels": 96})
    model = _build("dbnet", config)
    spec = get_detector("dbnet")
    cases: list[tuple[str, str]] = []
    for name, edit, phrase in (
        ("nan", _nan, f"tensor {FIRST_CONV} holds 1 NaN or infinite value(s)"),
        ("int8", _int8, f"tensor {FIRST_CONV} is stored as int8 but the model expects float32"),
    ):
        src = _embedded_copy(tmp_path, name)
        _poison(src, edit)
        cases.append((str(src), phrase))
    forged = _embedded_copy(tmp_path, "forged")
    meta = json.loads((forged / "config.json").read_text())
    meta["architecture"]["tcm"] = "yes"
    (forged / "config.json").write_text(json.dumps(meta))
    cases.append((str(forged), "architecture.tcm must be a mapping"))
    truncated = _embedded_copy(tmp_path, "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    cases.append((str(truncated), "truncated or not a safetensors file"))

    class Payload:
        def __reduce__(self) -> Any:
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"contexts": torch.zeros(1)}, "meta": Payload()}, evil)
    cases.append((str(evil), "refused to unpickle (weights_only=True)"))
    cases.append((str(tmp_path / "absent"), "checkpoint not found"))

    before = {k: v.clone() for k, v in model.state_dict().items()}
    for ref, phrase in cases:
        with pytest.raises(CheckpointError) as info:
            init_weights(model, ref, spec, config)
        assert phrase in str(info.value) and "\n" not in str(info.value), (ref, str(info.value))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing half-loaded


# ------------------------------------------------------------ TCM <-> plain


@pytest.fixture(scope="module")
def tcm_model() -> tuple[Any, DetectorConfig]:
    """TCM-DBNet with random CLIP weights (no download), built once."""
    pytest.importorskip("open_clip")
    config = DetectorConfig(tcm=TCMConfig(clip_pretrained=None))
    return _build("dbnet", config, seed=1), config


def _check_partition(report: InitReport, model: Any) -> None:
    """Every model key is in exactly one category."""
    keys = _categories(report)
    assert sorted(keys) == sorted(model.state_dict()) and len(set(keys)) == len(keys)


def test_tcm_from_a_plain_detector_loads_neck_and_head_only(
    tcm_model: tuple[Any, DetectorConfig], tmp_path: Path
) -> None:
    model, config = tcm_model
    plain = DetectorConfig(backbone="resnet18")
    src = _save(tmp_path / "plain", "dbnet", plain, seed=5)
    source = load_file(str(src / "model.safetensors"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_weights(model, str(src), get_detector("dbnet"), config)
    _check_partition(report, model)
    state = model.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in report.loaded)
    not_loaded = set(state) - set(report.loaded)
    assert all(torch.equal(state[k], before[k]) for k in not_loaded)
    # The matching module is TCM's own; the head and (most of) the neck come across.
    assert [k for k in state if k.startswith("feature_transform.")] == [
        k for k in report.missing if k.startswith("feature_transform.")
    ]
    assert {k for k in state if k.startswith("head.")} <= set(report.loaded)
    assert any(k.startswith("neck.") for k in report.loaded)
    # CLIP's encoder keeps its weights although ResNet names coincide.
    assert not any(k.startswith("backbone.") for k in report.loaded)
    assert report.skipped and all(k.startswith("backbone.") for k in report.skipped)
    for key, theirs, ours in report.mismatched:
        assert theirs == tuple(source[key].shape) and ours == tuple(state[key].shape)
    table = report.table()
    assert f"| loaded | {len(report.loaded)} | " in table and "head.* " in table
    assert f"| skipped (TCM vs plain backbone; not loaded) | {len(report.skipped)} |" in table
    assert "the checkpoint is a dbnet / resnet18 model; this run builds dbnet + TCM" in table
    record = json.loads(json.dumps(report.to_dict()))
    assert record["counts"]["missing"] == len(report.missing)
    assert record["loaded_by_module"]["head"] == len([k for k in state if k.startswith("head.")])
    # Coverage: with random CLIP encoders the neck and head are a small share,
    # which `train` refuses without --allow-partial-init ...
    assert report.params_pretrained == 0 and report.share_filled < MIN_INIT_SHARE
    with pytest.raises(CheckpointError, match="would train from random initialisation"):
        check_coverage(report)
    # ... built with CLIP's weights (the documented route) the encoders count as trained.
    clip = DetectorConfig(tcm=TCMConfig(clip_pretrained="openai"))
    again = init_weights(model, str(src), get_detector("dbnet"), clip)
    assert again.pretrained_by == "CLIP's pretrained encoders"
    assert again.share_filled >= MIN_INIT_SHARE
    assert again.params_loaded == report.params_loaded
    check_coverage(again)


def test_plain_detector_from_a_tcm_checkpoint(
    tcm_model: tuple[Any, DetectorConfig], tmp_path: Path
) -> None:
    tcm, tcm_config = tcm_model
    src = hub.save_checkpoint(tmp_path / "tcm", tcm, get_detector("dbnet"), tcm_config)
    source = load_file(str(src / "model.safetensors"))
    plain = DetectorConfig(backbone="resnet18")
    model = _build("dbnet", plain)
    report = init_weights(model, str(src), get_detector("dbnet"), plain)
    _check_partition(report, model)
    state = model.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in report.loaded)
    assert {k for k in source if k.startswith("feature_transform.")} <= set(report.unexpected)
    assert not any(k.startswith("backbone.") for k in report.loaded)
    assert {k for k in state if k.startswith("head.")} <= set(report.loaded)
    assert "dbnet + TCM (CLIP RN50-quickgelu)" in report.table()


# ------------------------------------------------------------ official TCM checkpoints


def _official_file(path: Path, own_text_rows: int) -> dict[str, torch.Tensor]:
    """A small mmcv-style official TCM-DBNet checkpoint: the official names
    and shapes (tests/data/tcm_official_keys.txt) of everything but the two
    CLIP encoders, two CLIP keys, a text positional embedding longer than
    ours (the importer truncates it) and a key with no tcmbench name."""
    from test_tcm_importer import official_keys, synthetic_state

    keys = {
        k: s
        for k, s in official_keys().items()
        if not k.startswith(("backbone.", "text_encoder."))
        or k in ("backbone.conv1.weight", "backbone.attnpool.positional_embedding")
    }
    keys["text_encoder.positional_embedding"] = (own_text_rows + 12, 512)
    state = synthetic_state(keys)
    state["logit_scale"] = torch.tensor(4.6)
    torch.save({"meta": {"epoch": 1200}, "state_dict": state}, path)
    return state


def test_official_tcm_checkpoint_through_the_importer_rules(
    tcm_model: tuple[Any, DetectorConfig], tmp_path: Path
) -> None:
    from tcmbench.tcm.importer import map_official_keys

    model, config = tcm_model
    text_key = "feature_transform.text_encoder.positional_embedding"
    rows = int(model.state_dict()[text_key].shape[0])
    official = _official_file(tmp_path / "tcm_db_ic15.pth", rows)
    mapping, unmapped = map_official_keys(list(official), "dbnet")
    assert unmapped == ["logit_scale"]
    report = init_weights(model, str(tmp_path / "tcm_db_ic15.pth"), get_detector("dbnet"), config)
    _check_partition(report, model)
    assert report.kind == "official TCM checkpoint"
    assert sorted(report.loaded) == sorted(mapping.values())
    assert report.unexpected == ["logit_scale"] and report.mismatched == []
    state = model.state_dict()
    for name, ours in mapping.items():
        expected = official[name][:rows] if ours == text_key else official[name]
        assert torch.equal(state[ours], expected), name
    assert "1 official key(s) have no tcmbench name (logit_scale)" in report.table()

    # Into a plain DBNet-R50: the head loads; CLIP's keys do not.
    plain = DetectorConfig(backbone="resnet50")
    r50 = _build("dbnet", plain)
    report = init_weights(r50, str(tmp_path / "tcm_db_ic15.pth"), get_detector("dbnet"), plain)
    _check_partition(report, r50)
    assert {k for k in r50.state_dict() if k.startswith("head.")} <= set(report.loaded)
    assert not any(k.startswith("backbone.") for k in report.loaded)
    lateral = [m for m in report.mismatched if m[0].startswith("neck.")]
    assert lateral and all(theirs[1] == ours[1] + 1 for _, theirs, ours in lateral)  # score map


# ------------------------------------------------------------ hf://


def test_hf_reference_through_a_loopback_hub(tmp_path: Path) -> None:
    """`tcmbench train --init-from hf://org/repo@rev`, the real
    huggingface_hub client (a subprocess: it reads HF_ENDPOINT at import)
    against tests/hub_server.py. At lr 0 the run's final parameters are the
    Hub checkpoint's, to the bit."""
    from hub_server import LoopbackHub

    src = _embedded_copy(tmp_path)
    source = load_file(str(src / "model.safetensors"))
    ic15 = make_ic15_folder(tmp_path / "ic15", n_train=2, n_test=1)
    env = dict(
        os.environ,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
        HF_TOKEN="hf_test",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        OMP_NUM_THREADS="1",
    )
    env.pop("HF_HUB_OFFLINE", None)
    with LoopbackHub() as server:
        files = {name: (src / name).read_bytes() for name in hub.CHECKPOINT_FILES}
        sha = server.state.commit("org/dbnet-mini", files)
        env["HF_ENDPOINT"] = server.endpoint
        ref = f"hf://org/dbnet-mini@{sha}"
        args = _train_args(ic15, tmp_path / "run", ref, "--lr", "0", "--threads", "1")
        done = subprocess.run(
            [sys.executable, "-m", "tcmbench", *args],
            check=False,  # the test reads the exit status
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert any("/resolve/" in r for r in server.state.requests)
    assert f"--init-from {ref}: tcmbench checkpoint " in done.stdout
    assert str(tmp_path / "hf") in done.stdout  # read from the Hub cache
    assert f"| loaded | {len(source)} | " in done.stdout
    final = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    weights = [k for k in source if not k.endswith(("running_mean", "running_var", COUNTER_SUFFIX))]
    assert [k for k in weights if not torch.equal(final[k], source[k])] == []
