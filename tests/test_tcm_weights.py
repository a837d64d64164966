"""CLIP weights for TCM, through the real libraries and offline:

- open_clip's pretrained path ('RN50-quickgelu', 'openai') resolving to the
  Hub repo timm/resnet50_clip.openai in a Hugging Face cache that this test
  writes (HF_HUB_OFFLINE=1, HF_HUB_CACHE pointed at tmp; run in a
  subprocess because huggingface_hub reads those variables at import);
- ``--clip-weights`` with an open_clip ``.bin`` state dict;
- OpenAI's TorchScript layout: an archive built here with CLIP's state-dict
  layout, converted by ``tcmbench tcm convert-clip`` and compared.

All weights are random tensors with CLIP RN50's real shapes (fp16, like
OpenAI's release, to halve the bytes written).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")
from safetensors.torch import load_file, save_file
from torch import nn

from tcmbench.contract.spec import TCMConfig
from tcmbench.errors import CheckpointError
from tcmbench.tcm.weights import (
    convert_openai_clip,
    expected_clip_shapes,
    hub_source,
    is_torchscript_archive,
    load_clip,
)

REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def clip_state() -> dict:
    """A random CLIP RN50 state dict in open_clip's / OpenAI's layout."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in expected_clip_shapes("RN50-quickgelu").items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        else:
            state[key] = torch.randn(shape, generator=gen).half()
    return state


def _assert_model_equals(model: nn.Module, state: dict) -> None:
    own = model.state_dict()
    assert set(state) <= set(own)
    for key, value in state.items():
        assert torch.equal(own[key], value.to(own[key].dtype)), key


def test_open_clip_asks_the_hub_for_these_files():
    # Read from open_clip's own tables, not hard-coded in tcmbench.
    assert hub_source("RN50-quickgelu", "openai") == (
        "timm/resnet50_clip.openai",
        ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"],
    )


def test_pretrained_tag_loads_offline_from_the_hub_cache(clip_state, tmp_path):
    cache = tmp_path / "hub"
    repo = cache / "models--timm--resnet50_clip.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REV)
    snapshot = repo / "snapshots" / REV
    snapshot.mkdir(parents=True)
    weights = snapshot / "open_clip_model.safetensors"
    save_file(clip_state, str(weights))
    script = textwrap.dedent(
        f"""
        import sys, torch
        from safetensors.torch import load_file
        from tcmbench.errors import CheckpointError
        from tcmbench.contract.spec import TCMConfig
        from tcmbench.tcm.weights import load_clip
        torch.set_num_threads(1)
        model = load_clip(TCMConfig(clip_pretrained="openai"))
        own = model.state_dict()
        for k, v in load_file({str(weights)!r}).items():
            assert torch.equal(own[k], v.to(own[k].dtype)), k
        try:
            load_clip(TCMConfig(clip_pretrained="yfcc15m"))  # another repo, not cached
        except CheckpointError as exc:
            print("ERROR:", exc)
        print("LOADED", len(own))
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(tmp_path / "hf"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED" in proc.stdout
    error = next(line for line in proc.stdout.splitlines() if line.startswith("ERROR:"))
    assert "timm/resnet50_clip.yfcc15m" in error
    assert str(cache / "models--timm--resnet50_clip.yfcc15m") in error
    assert "HF_HUB_OFFLINE" in error and "--clip-weights" in error


def test_clip_weights_bin_state_dict(clip_state, tmp_path):
    path = tmp_path / "clip.bin"
    torch.save({"state_dict": clip_state}, path)
    model = load_clip(TCMConfig(clip_weights=str(path)))
    _assert_model_equals(model, clip_state)


def test_clip_weights_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_clip(TCMConfig(clip_weights=str(tmp_path / "missing.safetensors")))
    bad = tmp_path / "bad.safetensors"
    save_file({"visual.conv1.weight": torch.zeros(1)}, str(bad))
    with pytest.raises(CheckpointError, match="cannot load"):
        load_clip(TCMConfig(clip_weights=str(bad)))


class _Node(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchscript_archive(state: dict, path: Path) -> None:
    """A TorchScript archive whose state dict has OpenAI CLIP's layout."""
    root = _Node()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        node = root
        for name in parents:
            if not hasattr(node, name):
                node.add_module(name, _Node())
            node = getattr(node, name)
        if value.is_floating_point():
            node.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
        else:
            node.register_buffer(leaf, value.clone())
    for key, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
        root.register_buffer(key, torch.tensor(value))
    torch.jit.save(torch.jit.script(root), str(path))


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_convert_openai_torchscript_round_trip(clip_state, tmp_path):
    from tcmbench.cli import main

    src = tmp_path / "RN50.pt"
    _torchscript_archive(clip_state, src)
    assert is_torchscript_archive(src)
    out_dir = tmp_path / "converted"
    main(["tcm", "convert-clip", str(src), "--out", str(out_dir)])
    converted = load_file(str(out_dir / "open_clip_model.safetensors"))
    assert set(converted) == set(clip_state)  # non-weight entries dropped
    for key, value in clip_state.items():
        assert converted[key].dtype == value.dtype and torch.equal(converted[key], value), key
    # The folder works as --clip-weights (through open_clip's loader) ...
    model = load_clip(TCMConfig(clip_weights=str(out_dir)))
    _assert_model_equals(model, clip_state)
    # ... and so does the unconverted archive.
    model = load_clip(TCMConfig(clip_weights=str(src)))
    _assert_model_equals(model, clip_state)


def test_convert_refuses_a_non_torchscript_file(tmp_path, capsys):
    from tcmbench.cli import main

    plain = tmp_path / "state.pt"
    torch.save({"a": torch.zeros(1)}, plain)
    assert not is_torchscript_archive(plain)
    with pytest.raises(CheckpointError, match="not a TorchScript archive"):
        convert_openai_clip(plain, tmp_path / "out")
    with pytest.raises(SystemExit) as done:
        main(["tcm", "convert-clip", str(plain), "--out", str(tmp_path / "out")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Error:") and "Traceback" not in err
