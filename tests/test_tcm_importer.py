"""Importing the authors' TCM checkpoints (TCM-DBNet here; the TCM-PAN and
TCM-FCENet key maps are tested with their plugins, the recipe their imports
record here).

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

from tcmbench.contract.registry import get_detector, get_plugin_manager
from tcmbench.contract.spec import DetectorConfig, TCMConfig
from tcmbench.errors import CheckpointError
from tcmbench.tcm.importer import (
    infer_tcm_config,
    map_official_keys,
    read_official_checkpoint,
)

DATA = Path(__file__).parent / "data"
KEYS_FILE = DATA / "tcm_official_keys.txt"


def official_keys(path: Path = KEYS_FILE) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in path.read_text().splitlines():
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
    from tcmbench.hub.checkpoints import read_checkpoint_meta

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
    from tcmbench.hub.checkpoints import load_checkpoint

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


# ------------------------------------------- the recipe an import records (issue 17)

#: (plugin, key list written from the official module definitions, CLIP
#: attention-pool rows if not the file's, the recipe of that official config)
OFFICIAL_RELEASES = [
    ("pan", "tcm_official_keys_pan.txt", None, "icdar2015"),  # 530 rows: input 736
    ("pan", "tcm_official_keys_pan.txt", 401, "ctw1500"),  # 20 x 20 + 1: input 640
    ("fcenet", "tcm_official_keys_fcenet.txt", None, "icdar2015"),  # 626 rows: input 800
]


def _expected_normalize(recipe: dict) -> dict:
    """What a TCM model of this recipe is fed (tcmbench.train.run.recipe_for)."""
    return (recipe.get("tcm") or {}).get("normalize") or recipe["normalize"]


def _check_official_settings(spec, resolved, recipe_name: str) -> None:
    """``resolved`` (what evaluate runs) carries the official config's recipe:
    test scale, normalisation and post-processing; for TCM-PAN the official
    pixel aggregation (distance 0.85, issue 17 row 1) and mmocr's box
    geometry (row 5), for TCM-FCENet on IC15 polygons, not quads (row 2: mmocr
    0.x ignores text_repr_type='quad'), by the plugins' key names."""
    want = spec.recipe(recipe_name)
    assert resolved.origin == "checkpoint"
    assert resolved.recipe["postprocess"] == want["postprocess"]
    assert resolved.recipe["test"] == want["test"]
    assert resolved.recipe["normalize"] == _expected_normalize(want)
    post = resolved.recipe["postprocess"]
    if spec.name == "pan":
        assert post["distance_thr"] == 0.85 and post["box_geometry"] == "mmocr"
        assert post["output"] == ("quad" if recipe_name == "icdar2015" else "poly")
    if spec.name == "fcenet":
        assert post["output"] == "poly"


@pytest.mark.parametrize(("plugin", "keys_file", "grid_rows", "recipe_name"), OFFICIAL_RELEASES)
def test_official_import_records_the_recipe_evaluate_resolves(
    plugin, keys_file, grid_rows, recipe_name
):
    """The weights of an official TCM-PAN / TCM-FCENet config (meta tensors
    with the official key list) say which config they come from; the import
    records that config's recipe, and evaluate resolves it on any dataset."""
    from tcmbench.inference.settings import resolve_test_recipe
    from tcmbench.tcm.importer import official_recipe

    state = {k: torch.empty(s, device="meta") for k, s in official_keys(DATA / keys_file).items()}
    if grid_rows:
        state["backbone.attnpool.positional_embedding"] = torch.empty(
            grid_rows, 2048, device="meta"
        )
    tcm = infer_tcm_config(state)
    spec = get_detector(plugin)
    name, recorded = official_recipe(spec, tcm)
    assert name == recipe_name
    for dataset in ("icdar2015", "ctw1500", "totaltext"):
        _check_official_settings(spec, resolve_test_recipe(spec, recorded, None, dataset), name)


def test_import_without_a_known_config_records_the_tcm_normalisation():
    """TCM-DBNet's four fine-tunes all train at 640: no recipe is recorded,
    evaluate takes the dataset's test settings, but the inputs are
    normalised as CLIP's (the weights were trained so), not as ImageNet's;
    an unknown --recipe is one line naming the known ones."""
    from tcmbench.inference.settings import resolve_test_recipe
    from tcmbench.tcm.importer import official_recipe

    spec = get_detector("dbnet")
    name, recorded = official_recipe(spec, TCMConfig(input_resolution=640))
    assert name is None and set(recorded) == {"normalize"}
    resolved = resolve_test_recipe(spec, recorded, None, "icdar2015")
    assert resolved.origin == "dataset"
    assert resolved.recipe["postprocess"] == spec.recipe("icdar2015")["postprocess"]
    assert resolved.recipe["normalize"] == spec.recipe("icdar2015")["tcm"]["normalize"]
    assert resolved.recipe["normalize"] != spec.recipe("icdar2015")["normalize"]
    named, recipe = official_recipe(spec, TCMConfig(input_resolution=640), "ctw1500")
    assert named == "ctw1500" and recipe["postprocess"] == spec.recipe("ctw1500")["postprocess"]
    with pytest.raises(CheckpointError, match=r"--recipe 'ic15'.*known: .*icdar2015"):
        official_recipe(spec, TCMConfig(), "ic15")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("plugin", "keys_file", "grid_rows", "recipe_name"), OFFICIAL_RELEASES[::2]
)
def test_official_checkpoint_round_trip_evaluate_settings(
    tmp_path, plugin, keys_file, grid_rows, recipe_name
):
    """`tcmbench import tcm-official` on a file with the official key names
    (mmcv layout, zero tensors), then the settings `evaluate` resolves for
    the folder it wrote (tcmbench.inference.loading.resolve_for_checkpoint,
    as evaluate calls it): the official config's post-processing."""
    from tcmbench.cli import main
    from tcmbench.hub.checkpoints import load_checkpoint, read_checkpoint_meta
    from tcmbench.inference.loading import resolve_for_checkpoint

    torch.set_num_threads(1)
    state = {
        name: torch.tensor(600) if name.endswith("num_batches_tracked") else torch.zeros(shape)
        for name, shape in official_keys(DATA / keys_file).items()
    }
    ckpt = tmp_path / f"tcm_{plugin}.pth"
    torch.save({"meta": {"epoch": 600}, "state_dict": state}, ckpt)
    del state
    out = tmp_path / "imported"
    main(["import", "tcm-official", str(ckpt), "--plugin", plugin, "--out", str(out)])
    meta, _ = read_checkpoint_meta(out)
    assert meta["source"]["official_tcm"]["recipe"] == recipe_name
    spec = get_detector(plugin)
    loaded = load_checkpoint(out, plugin=plugin, expect_tcm=True)
    resolved = resolve_for_checkpoint(spec, loaded, None, "icdar2015")
    _check_official_settings(spec, resolved, recipe_name)
