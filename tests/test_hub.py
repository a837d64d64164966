"""Checkpoints: folder round trip, the Hub download path against a loopback
server speaking the Hub's file API (HF_ENDPOINT), offline from the cache,
and clear errors for bad checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import LoopbackHub
from test_plugins import _tiny_parts

from tcmbench.contract import registry as plugins
from tcmbench.contract.hookspecs import hookimpl
from tcmbench.contract.spec import DetectorConfig, DetectorSpec
from tcmbench.errors import CheckpointError
from tcmbench.hub import checkpoints as hub

SPEC = DetectorSpec(name="tiny-hub-detector", build_parts=_tiny_parts, version="9.9")
OTHER = DetectorSpec(name="tiny-other-detector", build_parts=_tiny_parts, version="1.0")


class _Plugin:
    @hookimpl
    def register_detectors(self, register):
        register(SPEC)
        register(OTHER)


@pytest.fixture
def tiny_plugin():
    pm = plugins.get_plugin_manager()
    p = _Plugin()
    pm.register(p, name="tiny-hub-plugin")
    try:
        yield
    finally:
        pm.unregister(p)


@pytest.fixture
def checkpoint(tmp_path: Path, tiny_plugin: None) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = plugins.get_plugin_manager().hook.build_detector(
        spec=SPEC, config=DetectorConfig(backbone="tiny")
    )
    out = hub.save_checkpoint(
        tmp_path / "ckpt",
        model,
        SPEC,
        DetectorConfig(backbone="tiny"),
        recipe={"lr": 0.1},
        extra={"datasets": ["synthtext-mini"]},
    )
    return out, model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_folder_round_trip(checkpoint: tuple[Path, torch.nn.Module]) -> None:
    path, model = checkpoint
    assert sorted(p.name for p in path.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    meta = json.loads((path / "config.json").read_text())
    assert meta["library_name"] == "tcmbench" and meta["plugin"] == SPEC.name
    assert meta["plugin_version"] == "9.9" and meta["recipe"] == {"lr": 0.1}
    assert "library_name: tcmbench" in (path / "README.md").read_text()
    loaded = hub.load_checkpoint(path)
    assert _same_weights(loaded.model, model)
    assert loaded.config.backbone == "tiny"
    # a file path works too (config.json read beside it)
    assert _same_weights(hub.load_checkpoint(path / "model.safetensors").model, model)


def test_bad_checkpoints_give_clear_errors(
    checkpoint: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    path, _ = checkpoint
    with pytest.raises(CheckpointError, match="not found"):
        hub.load_checkpoint(tmp_path / "nope")
    with pytest.raises(
        CheckpointError, match="checkpoint of plugin 'tiny-hub-detector', not 'dbnet'"
    ):
        hub.load_checkpoint(path, plugin="dbnet")
    with pytest.raises(CheckpointError, match=r"plain .*drop --tcm"):
        hub.load_checkpoint(path, expect_tcm=True)

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    data = (path / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    (truncated / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        hub.load_checkpoint(truncated)

    no_config = tmp_path / "noconfig"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(data)
    with pytest.raises(CheckpointError, match=r"config\.json is missing"):
        hub.load_checkpoint(no_config)

    # weights of a different architecture under a config that claims this one
    other = tmp_path / "other"
    other.mkdir()
    from safetensors.torch import save_file

    save_file({"backbone.a.weight": torch.zeros(2, 2)}, str(other / "model.safetensors"))
    (other / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(
        CheckpointError,
        match=r"does not fit .*missing .*unexpected 0|does not fit .*shape mismatch",
    ):
        hub.load_checkpoint(other)

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.safetensors").write_bytes(data)
    (garbage / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        hub.load_checkpoint(garbage)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcmbench", *args],
        check=False,  # the test reads the exit status
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_push_pull_through_hub_api_then_offline_cache(
    checkpoint: tuple[Path, torch.nn.Module], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, model = checkpoint
    hf_home = tmp_path / "hf"
    env = dict(
        os.environ,
        HF_HOME=str(hf_home),
        HF_HUB_CACHE=str(hf_home / "hub"),
        HF_TOKEN="hf_test",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_ENABLE_HF_TRANSFER="0",
    )
    env.pop("HF_HUB_OFFLINE", None)
    with LoopbackHub() as server:
        env["HF_ENDPOINT"] = server.endpoint
        pushed = _cli(["hub", "push", str(path), "org/tiny"], env)
        assert pushed.returncode == 0, pushed.stderr
        assert server.state.head("org/tiny", "main") is not None
        pulled = _cli(["hub", "pull", "org/tiny", "--out", str(tmp_path / "pulled")], env)
        assert pulled.returncode == 0, pulled.stderr
        assert any(r.startswith("GET") and "/resolve/" in r for r in server.state.requests)
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (tmp_path / "pulled" / name).read_bytes() == (path / name).read_bytes()

    # Server gone: the offline cache still serves the checkpoint.
    offline = dict(env, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    again = _cli(["hub", "pull", "org/tiny"], offline)
    assert again.returncode == 0, again.stderr
    cached = Path(again.stdout.strip())
    assert str(hf_home) in str(cached)
    assert (cached / "model.safetensors").read_bytes() == (path / "model.safetensors").read_bytes()

    # In-process: hf:// through huggingface_hub in offline mode, into a model.
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    loaded = hub.load_checkpoint("hf://org/tiny")
    assert _same_weights(loaded.model, model)

    missing = _cli(["hub", "pull", "org/absent"], offline)
    assert missing.returncode == 2
    assert "not in the Hugging Face cache" in missing.stderr and "Traceback" not in missing.stderr


def test_push_refuses_a_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN="hf_test")
    done = _cli(["hub", "push", str(tmp_path), "org/x"], env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{tmp_path} holds no model.safetensors" in done.stderr


def test_hf_uri_parsing() -> None:
    assert hub.parse_hf_uri("hf://org/repo@v1") == ("org/repo", "v1")
    assert hub.parse_hf_uri("hf://org/repo") == ("org/repo", None)
    with pytest.raises(CheckpointError):
        hub.parse_hf_uri("hf://justrepo")
