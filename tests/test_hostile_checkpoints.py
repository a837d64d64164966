"""Hostile checkpoints: forged ``config.json`` fields, tensors of another
dtype, NaN weights. Each input must end in one line naming the checkpoint
file and the offending key -- never a traceback, never a model that
silently predicts nothing.

The checkpoint edited here is the small DBNet shipped in the plugin
(``tcmbench_dbnet/weights``), copied to a temporary folder.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tcmbench.cli import main
from tcmbench.contract import registry as plugins
from tcmbench.contract.options import Opt, check_value, resolve_options
from tcmbench.contract.spec import TCMConfig
from tcmbench.errors import CheckpointError, PluginError
from tcmbench.hub import checkpoints as hub
from tcmbench.safety.checkpoint_schema import TCM


def _embedded() -> Path:
    folder = hub.embedded_weights(plugins.get_detector("dbnet"))
    assert folder is not None, "the DBNet plugin ships its synthtext-mini weights"
    return folder


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """A writable copy of the shipped DBNet checkpoint."""
    return Path(shutil.copytree(_embedded(), tmp_path / "ckpt"))


def _edit_config(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    meta = json.loads((path / "config.json").read_text())
    edit(meta)
    (path / "config.json").write_text(json.dumps(meta))


def _arch(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["architecture"].__setitem__(key, value)


def _option(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["architecture"]["options"].__setitem__(key, value)


def _tcm(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["architecture"].__setitem__("tcm", {**TCMConfig().to_dict(), **fields})


# (id, edit, the key the message must name, a phrase it must contain)
FORGED = [
    ("architecture-string", lambda m: m.__setitem__("architecture", "dbnet"), "architecture ",
     "must be a mapping"),
    ("architecture-missing", lambda m: m.pop("architecture"), "no architecture", ""),
    ("config-a-list", None, "not a tcmbench checkpoint config", "got a list"),
    ("plugin-number", lambda m: m.__setitem__("plugin", 3), "plugin ", "must be a string"),
    ("plugin-empty", lambda m: m.__setitem__("plugin", " "), "plugin ", "empty string"),
    ("tcm-yes", _arch("tcm", "yes"), "architecture.tcm ", "must be a mapping"),
    ("options-list", _arch("options", [1, 2]), "architecture.options ", "must be a mapping"),
    ("backbone-number", _arch("backbone", 18), "architecture.backbone ", "must be a string"),
    ("pretrained-string", _arch("pretrained_backbone", "no"), "architecture.pretrained_backbone ",
     "true or false"),
    ("channels-fraction", _option("lateral_channels", 96.5), "lateral_channels", "an integer"),
    ("channels-string", _option("lateral_channels", "96"), "lateral_channels", "an integer"),
    ("channels-absurd", _option("lateral_channels", 10**9), "lateral_channels", "<= 4096"),
    ("channels-zero", _option("smooth_channels", 0), "smooth_channels", ">= 1"),
    ("channels-bool", _option("lateral_channels", True), "lateral_channels", "an integer"),
    ("option-unknown", _option("lateral_chanels", 96), "lateral_chanels", "unknown DBNet option"),
    ("shrink-out-of-range", _option("shrink_ratio", 1.5), "shrink_ratio", "< 1"),
    ("thresholds-crossed", _option("thr_min", 0.9), "thr_min", "below thr_max"),
    ("postprocess-list", _option("postprocess", ["quad"]), "postprocess", "mapping"),
    ("postprocess-value", _option("postprocess", {"mask_thr": "high"}), "mask_thr", "a number"),
    ("tcm-context-fraction", _tcm(context_length=1.5), "architecture.tcm.context_length",
     "an integer"),
    ("tcm-tau-negative", _tcm(tau=-1), "architecture.tcm.tau", "> 0"),
    ("tcm-switch-string", _tcm(visual_generator="yes"), "architecture.tcm.visual_generator",
     "true or false"),
    ("tcm-unknown-switch", _tcm(warp_drive=True), "architecture.tcm.warp_drive",
     "not a known key"),
    ("normalize-zero-std", lambda m: m["recipe"]["normalize"].__setitem__("std", [1, 0, 1]),
     "recipe.normalize.std[1]", ">= 0.001"),
    ("normalize-short", lambda m: m["recipe"]["normalize"].__setitem__("mean", [1, 2]),
     "recipe.normalize.mean", "must hold 3 to 3 items"),
    ("format-from-the-future", lambda m: m.__setitem__("format_version", 7), "format_version",
     "newer tcmbench"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "key", "phrase"), [c[1:] for c in FORGED], ids=[c[0] for c in FORGED]
)
def test_forged_config_is_one_line_naming_file_and_key(
    ckpt: Path, edit: Callable[[dict[str, Any]], None] | None, key: str, phrase: str
) -> None:
    if edit is None:
        (ckpt / "config.json").write_text("[1, 2, 3]")
    else:
        _edit_config(ckpt, edit)
    with pytest.raises(CheckpointError) as info:
        hub.load_checkpoint(ckpt, plugin="dbnet")
    message = str(info.value)
    assert "\n" not in message
    assert str(ckpt / "config.json") in message
    assert key in message and phrase in message, message


def test_schema_declares_every_tcm_switch() -> None:
    """A new TCMConfig field must get a type in the checkpoint schema."""
    assert set(TCM) == {f.name for f in dataclasses.fields(TCMConfig)}


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), np.full((64, 96, 3), 255, np.uint8))
    return path


def _predict(capsys: pytest.CaptureFixture[str], weights: Path, tmp_path: Path) -> tuple[int, str]:
    capsys.readouterr()
    argv = ["predict", str(_image(tmp_path)), "--plugin", "dbnet", "--weights", str(weights)]
    try:
        code = int(main([*argv, "--out", str(tmp_path / "out")]) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_forged_config_through_the_cli(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_config(ckpt, _option("lateral_channels", 10**9))
    code, err = _predict(capsys, ckpt, tmp_path)
    assert code == 2 and "Traceback" not in err
    expected = (
        f"Error: {ckpt / 'config.json'}: architecture: DBNet option lateral_channels must be an "
        "integer >= 1 and <= 4096, got 1000000000"
    )
    assert err.strip().splitlines() == [expected]


def _rewrite_weights(path: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    state = load_file(str(path / "model.safetensors"))
    edit(state)
    save_file(state, str(path / "model.safetensors"))


FIRST_CONV = "backbone.stages.0.0.0.weight"


def test_tensor_of_another_dtype_is_refused(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_file(str(ckpt / "model.safetensors"))
    assert FIRST_CONV in state and state[FIRST_CONV].dtype == torch.float32

    def to_int8(s: dict[str, torch.Tensor]) -> None:
        s[FIRST_CONV] = s[FIRST_CONV].mul(100).to(torch.int8)

    _rewrite_weights(ckpt, to_int8)
    with pytest.raises(CheckpointError) as info:
        hub.load_checkpoint(ckpt, plugin="dbnet")
    message = str(info.value)
    assert str(ckpt / "model.safetensors") in message
    assert f"tensor {FIRST_CONV} is stored as int8 but the model expects float32" in message
    # Through the CLI: exit 2 and that one line, not exit 0 and no detections.
    code, err = _predict(capsys, ckpt, tmp_path)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "stored as int8" in err


def test_half_precision_weights_are_refused_too(ckpt: Path) -> None:
    _rewrite_weights(
        ckpt, lambda s: s.update({k: v.half() for k, v in s.items() if v.is_floating_point()})
    )
    with pytest.raises(CheckpointError, match=r"stored as float16 but the model expects float32"):
        hub.load_checkpoint(ckpt)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(ckpt: Path, bad: float) -> None:
    def poison(s: dict[str, torch.Tensor]) -> None:
        s[FIRST_CONV] = s[FIRST_CONV].clone()
        s[FIRST_CONV].view(-1)[:3] = bad

    _rewrite_weights(ckpt, poison)
    with pytest.raises(CheckpointError) as info:
        hub.load_checkpoint(ckpt)
    message = str(info.value)
    assert str(ckpt / "model.safetensors") in message
    assert f"tensor {FIRST_CONV} holds 3 NaN or infinite value(s)" in message


def test_the_shipped_checkpoint_still_loads() -> None:
    loaded = hub.load_checkpoint(_embedded(), plugin="dbnet")
    assert loaded.config.options["lateral_channels"] == 96


# The generic option helper every detector plugin uses --------------------


def test_check_value_types_and_ranges() -> None:
    channels = Opt(256, "int", ge=1, le=4096)
    assert check_value(96, channels) == (96, None)
    assert check_value(96.0, channels) == (96, None)  # JSON has one number type
    for bad in (96.5, "96", True, None, float("nan"), 0, 5000, [96]):
        _, problem = check_value(bad, channels)
        assert problem is not None and problem.startswith("must be an integer >= 1 and <= 4096")
    ratio = Opt(0.4, "float", gt=0, lt=1)
    assert check_value(1, Opt(0.0, "float")) == (1.0, None)
    assert check_value(float("inf"), Opt(0.0, "float"))[1] is not None
    assert check_value(0, ratio)[1] == "must be a number > 0 and < 1, got 0"
    assert check_value(None, Opt(None, "dict", nullable=True)) == (None, None)
    assert check_value("hexagon", Opt("quad", "str", choices=("quad", "poly")))[1] == (
        "must be one of 'quad', 'poly', got 'hexagon'"
    )


def test_resolve_options_fills_defaults_and_names_the_option() -> None:
    declared = {"width": Opt(64, "int", ge=1), "ratio": Opt(0.5, "float", gt=0, lt=1)}
    assert resolve_options("PANet", declared, {"width": 32}) == {"width": 32, "ratio": 0.5}
    assert resolve_options("PANet", declared, None) == {"width": 64, "ratio": 0.5}
    with pytest.raises(PluginError, match=r"^PANet option ratio must be a number > 0 and < 1"):
        resolve_options("PANet", declared, {"ratio": 2})
    with pytest.raises(PluginError, match=r"^unknown PANet option\(s\) widht; known: ratio, width"):
        resolve_options("PANet", declared, {"widht": 3})
    with pytest.raises(PluginError, match=r"^PANet options must be a mapping"):
        resolve_options("PANet", declared, [("width", 3)])


# hf:// downloads from a Hub that misbehaves -------------------------------
#
# A loopback server speaks the Hub API (tests/hub_server.py); its ``mode``
# makes it answer with malformed JSON, redirect forever, drop the connection
# or never answer. The real huggingface_hub client runs in a subprocess (it
# reads HF_ENDPOINT at import); the script times only the command itself.

TIMED_CLI = """
import sys, time
import huggingface_hub, tcmbench.hub.checkpoints  # imports are not what is timed
from tcmbench.cli import main
start = time.perf_counter()
try:
    code = int(main(sys.argv[1:]) or 0)
except SystemExit as exc:
    code = int(exc.code or 0)
print(f"ELAPSED {time.perf_counter() - start:.2f}")
sys.exit(code)
"""

#: Times load_clip alone (the train command around it does much else), then
#: runs the command so that its stderr is what a user sees.
TIMED_CLIP_THEN_CLI = """
import sys, time
import open_clip, torch  # imports are not what is timed
from tcmbench.errors import CheckpointError
from tcmbench.contract.spec import TCMConfig
from tcmbench.tcm.weights import load_clip
start = time.perf_counter()
try:
    load_clip(TCMConfig())
except CheckpointError:
    pass
print(f"ELAPSED {time.perf_counter() - start:.2f}")
from tcmbench.cli import main
try:
    code = int(main(sys.argv[1:]) or 0)
except SystemExit as exc:
    code = int(exc.code or 0)
sys.exit(code)
"""


def _timed_cli(
    args: list[str], env: dict[str, str], script: str = TIMED_CLI
) -> tuple[int, str, float]:
    """(exit code, stderr, seconds timed) of ``tcmbench ARGS`` run by ``script``."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    elapsed = float(done.stdout.split("ELAPSED")[-1].split()[0])
    return done.returncode, done.stderr, elapsed


def _hub_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    import os

    env = dict(
        os.environ,
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
        HF_ENDPOINT=endpoint,
        HF_TOKEN="hf_test",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_ETAG_TIMEOUT="1",
        HF_HUB_DOWNLOAD_TIMEOUT="1",
    )
    env.pop("HF_HUB_OFFLINE", None)
    return env


@pytest.fixture(scope="module")
def hub_server() -> Any:
    from hub_server import LoopbackHub  # tests/ is on sys.path under pytest's rootdir

    files = {name: (_embedded() / name).read_bytes() for name in hub.CHECKPOINT_FILES}
    with LoopbackHub() as server:
        server.state.commit("org/dbnet", files)
        server.state.stall_s = 30.0
        yield server


MISBEHAVING = [
    ("malformed_json", "its answer is not valid JSON"),
    ("redirect_loop", "endless redirect loop"),
    ("drop", "closed the connection without a complete answer"),
    ("stall", "no answer within 1 s (HF_HUB_ETAG_TIMEOUT)"),
]


@pytest.mark.parametrize(("mode", "reason"), MISBEHAVING, ids=[m for m, _ in MISBEHAVING])
def test_pull_from_a_misbehaving_hub_fails_fast_in_one_line(
    hub_server: Any, tmp_path: Path, mode: str, reason: str
) -> None:
    hub_server.state.mode = mode
    try:
        code, err, elapsed = _timed_cli(
            ["hub", "pull", "org/dbnet"], _hub_env(tmp_path, hub_server.endpoint)
        )
    finally:
        hub_server.state.mode = "ok"
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: could not download org/dbnet@main: ")
    assert f"cannot use the Hugging Face Hub at {hub_server.endpoint}: " in lines[0]
    assert reason in lines[0] and "not in the Hugging Face cache" in lines[0]
    # HF_HUB_ETAG_TIMEOUT=1 bounds the stall (the server would wait 30 s);
    # nothing is retried with backoff.
    assert elapsed < 10, f"{mode}: {elapsed:.1f} s"


def test_misbehaving_hub_falls_back_to_the_cache(hub_server: Any, tmp_path: Path) -> None:
    env = _hub_env(tmp_path, hub_server.endpoint)
    code, err, _ = _timed_cli(["hub", "pull", "org/dbnet", "--out", str(tmp_path / "a")], env)
    assert code == 0, err
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        _embedded() / "model.safetensors"
    ).read_bytes()
    hub_server.state.mode = "drop"
    try:
        code, err, elapsed = _timed_cli(
            ["hub", "pull", "org/dbnet", "--out", str(tmp_path / "b")], env
        )
    finally:
        hub_server.state.mode = "ok"
    assert code == 0, err
    assert "using the cached copy of org/dbnet@main" in err and "Traceback" not in err
    assert (tmp_path / "b" / "config.json").read_bytes() == (
        _embedded() / "config.json"
    ).read_bytes()
    assert elapsed < 10


def test_push_to_a_hub_that_drops_connections_is_one_line(hub_server: Any, tmp_path: Path) -> None:
    hub_server.state.mode = "drop"
    try:
        code, err, _ = _timed_cli(
            ["hub", "push", str(_embedded()), "org/pushed"], _hub_env(tmp_path, hub_server.endpoint)
        )
    finally:
        hub_server.state.mode = "ok"
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: could not push "), err
    assert "closed the connection" in lines[0]


def test_clip_download_without_network_fails_at_once(tmp_path: Path) -> None:
    """No network (HF_ENDPOINT on a closed port) and no cached CLIP: one
    line within seconds, not ~40 retry warnings over 50 s."""
    import socket

    import tiny_data

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    data = tiny_data.make_ic15_folder(tmp_path / "ic15", n_train=2, n_test=1)
    args = ["train", "--plugin", "dbnet", "--tcm", "--dataset", "icdar2015"]
    args += ["--data-root", str(data), "--steps", "1", "--output", str(tmp_path / "run")]
    code, err, elapsed = _timed_cli(args, _hub_env(tmp_path, closed), TIMED_CLIP_THEN_CLI)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: CLIP weights RN50-quickgelu/openai not available: ")
    assert f"cannot use the Hugging Face Hub at {closed}: cannot connect" in lines[0]
    assert "--clip-weights PATH" in lines[0]
    assert elapsed < 5, f"{elapsed:.1f} s"
