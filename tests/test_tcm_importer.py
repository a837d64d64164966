"""Importing the authors' TCM-DBNet checkpoints.

The official key names and shapes are fixed in tests/data/tcm_official_keys.txt
(derived from the official module definitions by
tests/data/make_tcm_official_keys.py, not from tcmbench's model). A synthetic
checkpoint with those keys and random tensors, saved the way mmcv does
(``torch.save({"meta": ..., "state_dict": ...})``), must import with zero
unmapped keys and reproduce every tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from tcmbench.errors import CheckpointError
from tcmbench.models.spec import DetectorConfig, TCMConfig
from tcmbench.plugins import get_detector, get_plugin_manager
from tcmbench.tcm.importer import (
    infer_tcm_config,
    map_official_keys,
    read_official_checkpoint,
)

KEYS_FILE = Path(__file__).parent / "data" / "tcm_official_keys.txt"


def official_keys() -> dict[str, tuple[int, ...]]:
    out = {}
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")
        out[name] = tuple(int(s) for s in shape.split(",") if s)
    return out


def synthetic_state(keys: dict[str, tuple[int, ...]]) -> dict:
    gen = torch.Generator().manual_seed(1)
    state = {}
    for name, shape in keys.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1200, dtype=torch.long)
        else:
            state[name] = torch.randn(shape, generator=gen)
    return state


def meta_model(tcm: TCMConfig):
    with torch.device("meta"):
        return get_plugin_manager().hook.build_detector(
            spec=get_detector("dbnet"), config=DetectorConfig(tcm=tcm)
        )


def test_official_keys_map_onto_the_model_one_to_one():
    keys = official_keys()
    assert len(keys) == 685
    mapping, unmapped = map_official_keys(list(keys), "dbnet")
    assert unmapped == []
    own = meta_model(TCMConfig(clip_pretrained=None)).state_dict()
    assert sorted(mapping.values()) == sorted(own)  # every parameter and buffer covered, once
    for official, ours in mapping.items():
        assert tuple(own[ours].shape) == keys[official], official


def test_config_inferred_from_the_weights():
    base = {
        "contexts": torch.zeros(1, 4, 512),
        "text_encoder.positional_embedding": torch.zeros(18, 512),
        "prompt_generator.prompt_proj.1.weight": 0,
        "visual_prompt_generator.out_proj.1.bias": 0,
        "context_decoder.out_proj.1.bias": 0,
    }
    tcm = infer_tcm_config(base)
    assert (
        tcm.context_length,
        tcm.predefined_prompt,
        tcm.language_generator,
        tcm.visual_generator,
        tcm.text_context_decoder,
    ) == (4, True, True, True, True)
    # "onlylearn_prompt18": 18 learnable tokens and an 18-row positional embedding.
    only = infer_tcm_config(
        {
            "contexts": torch.zeros(1, 18, 512),
            "text_encoder.positional_embedding": torch.zeros(18, 512),
        }
    )
    assert (only.context_length, only.predefined_prompt, only.language_generator) == (
        18,
        False,
        False,
    )
    # "nolearn_prompt": no context, text padded to 30 positions (truncated on import).
    pp = infer_tcm_config(
        {
            "contexts": torch.zeros(1, 0, 512),
            "text_encoder.positional_embedding": torch.zeros(30, 512),
        },
        text_context_decoder=False,
    )
    assert (pp.context_length, pp.predefined_prompt, pp.text_context_decoder) == (0, True, False)
    with pytest.raises(CheckpointError, match="fewer than the prompt"):
        infer_tcm_config(
            {
                "contexts": torch.zeros(1, 4, 512),
                "text_encoder.positional_embedding": torch.zeros(10, 512),
            }
        )


def test_unmapped_key_stops_the_import_with_the_list(tmp_path):
    from tcmbench.tcm.importer import import_official_checkpoint

    state = {
        "contexts": torch.zeros(1, 4, 512),
        "text_encoder.positional_embedding": torch.zeros(18, 512),
        "logit_scale": torch.zeros(()),
        "bbox_head.extra.weight": torch.zeros(1),
    }
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as err:
        import_official_checkpoint(path, "dbnet", tmp_path / "out")
    assert "2 official key(s)" in str(err.value)
    assert "logit_scale" in str(err.value) and "bbox_head.extra.weight" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_pickles_are_read_weights_only(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"contexts": torch.zeros(1)}, "meta": Payload()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        read_official_checkpoint(path)


def test_synthetic_official_checkpoint_imports_and_loads(tmp_path):
    from safetensors.torch import load_file

    from tcmbench.cli import main
    from tcmbench.hub import read_checkpoint_meta

    torch.set_num_threads(1)
    keys = official_keys()
    state = synthetic_state(keys)
    ckpt = tmp_path / "tcm_db_ic15.pth"
    # mmcv-style file; numpy scalars in meta as mmcv's hooks leave them.
    torch.save(
        {
            "meta": {"epoch": 1200, "hook_msgs": {"best_score": np.float64(0.888)}},
            "state_dict": state,
        },
        ckpt,
    )
    out = tmp_path / "imported"
    main(["import", "tcm-official", str(ckpt), "--plugin", "dbnet", "--out", str(out)])
    meta, weights = read_checkpoint_meta(out)
    assert meta["plugin"] == "dbnet"
    tcm = meta["architecture"]["tcm"]
    assert tcm["context_length"] == 4 and tcm["visual_generator"] and tcm["language_generator"]
    saved = load_file(str(weights))
    mapping, unmapped = map_official_keys(list(keys), "dbnet")
    assert unmapped == [] and len(saved) == len(state)
    for official, ours in mapping.items():
        assert torch.equal(saved[ours], state[official]), official
    # The folder is a regular tcmbench checkpoint: it rebuilds and loads (no CLIP download).
    from tcmbench.hub import load_checkpoint

    loaded = load_checkpoint(out, plugin="dbnet", expect_tcm=True)
    own = loaded.model.state_dict()
    for official in (
        "contexts",
        "vis_gamma",
        "backbone.attnpool.positional_embedding",
        "text_encoder.text_projection",
        "bbox_head.threshold.6.bias",
    ):
        assert torch.equal(own[mapping[official]], state[official]), official


def test_cli_truncated_checkpoint_is_one_line_exit_2(tmp_path):
    """A truncated .pth through the CLI: one line naming the file, no traceback."""
    import subprocess
    import sys

    path = tmp_path / "tcm_dbnet_ic15.pth"
    torch.save({"state_dict": {"contexts": torch.zeros(1, 4, 512)}}, path)
    path.write_bytes(path.read_bytes()[:100])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcmbench",
            "import",
            "tcm-official",
            str(path),
            "--plugin",
            "dbnet",
            "--out",
            str(tmp_path / "out"),
        ],
        check=False,  # the test reads the exit status
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and str(path) in done.stderr
    assert not (tmp_path / "out").exists()
