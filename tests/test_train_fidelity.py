"""Training fidelity (issue 9): the weight-decay exempt set, normalise-then-
pad augmentation order, best/ chosen on a validation split only, the
progress bar, TensorBoard event files and the too-short-run warning."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_data import TINY_RECIPE, TINY_SPEC, make_ic15_folder, make_samples

from tcmbench.contract.spec import DetectorConfig
from tcmbench.data.transforms import (
    HFlip,
    RandomCrop,
    RandomScale,
    Rotate,
    TrainTransform,
    normalization,
    normalize_hwc,
)
from tcmbench.errors import TcmbenchError
from tcmbench.train.eval_sets import EvalSet, load_train_splits
from tcmbench.train.hyper import TrainConfig, resolve_hyper, resolve_no_decay
from tcmbench.train.sampler import few_shot_subset, holdout_split
from tcmbench.train.state import load_training_state
from tcmbench.train.trainer import Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "datasets": ["tiny"],
        "output": str(out),
        "device": "cpu",
        "workers": 0,
        "progress": False,
        "log_every": 1,
        "tensorboard": False,
    }
    base.update(kw)
    return TrainConfig(**base)


def _events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _eval_set(samples: list, split: str, **kw: Any) -> EvalSet:
    return EvalSet("tiny", split, samples, "icdar2015", dict(TINY_RECIPE), **kw)


# ------------------------------------------------------------ weight decay


def test_no_decay_kinds_pick_the_named_parameters_of_a_tcm_model() -> None:
    """norm / bias / embedding / prompt each exempt exactly their kind; the
    frozen text encoder (factor 0) is in no group."""
    pytest.importorskip("open_clip")
    from torch import nn

    from tcmbench.contract.registry import get_detector, get_plugin_manager
    from tcmbench.contract.spec import TCMConfig
    from tcmbench.models.detector import _NORM_TYPES

    with torch.device("meta"):
        model = get_plugin_manager().hook.build_detector(
            spec=get_detector("dbnet"), config=DetectorConfig(tcm=TCMConfig(clip_pretrained=None))
        )
    name_of = {id(p): n for n, p in model.named_parameters()}
    norm_names = {
        f"{mn}.{pn}"
        for mn, m in model.named_modules()
        if isinstance(m, _NORM_TYPES)
        for pn, _ in m.named_parameters(recurse=False)
    }
    assert any(isinstance(m, nn.LayerNorm) for m in model.modules())

    def exempt(kinds: list[str]) -> set[str]:
        groups = model.param_groups(1e-3, 1e-4, kinds)
        assert {g["weight_decay"] for g in groups} <= {0.0, 1e-4}
        return {name_of[id(p)] for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}

    trained = {name_of[id(p)] for g in model.param_groups(1e-3, 1e-4, []) for p in g["params"]}
    assert exempt([]) == set()
    assert exempt(["norm"]) == norm_names & trained
    assert exempt(["bias"]) == {n for n in trained if n.endswith(".bias")}
    assert exempt(["embedding"]) == {"backbone.attnpool.positional_embedding"}
    assert exempt(["prompt"]) == {"feature_transform.learnable_context"}
    assert not any(n.startswith("feature_transform.text_encoder.") for n in trained)
    both = exempt(["norm", "prompt"])
    assert both == (norm_names & trained) | {"feature_transform.learnable_context"}
    with pytest.raises(TcmbenchError, match="valid kinds: norm, bias, embedding, prompt"):
        model.param_groups(1e-3, 1e-4, ["norms"])


def test_no_decay_comes_from_the_command_line_the_recipe_or_the_official_default() -> None:
    recipe = {"optimizer": {"name": "adam", "no_decay": ["norm", "bias"]}, "steps": 1}
    assert resolve_no_decay(TrainConfig(), {}) == ["norm"]
    assert resolve_no_decay(TrainConfig(), recipe) == ["norm", "bias"]
    assert resolve_no_decay(TrainConfig(), {"optimizer": {"no_decay": []}}) == []
    assert resolve_no_decay(TrainConfig(no_decay=["prompt"]), recipe) == ["prompt"]
    assert resolve_no_decay(TrainConfig(no_decay=["none"]), recipe) == []
    assert resolve_hyper(TrainConfig(), recipe, 10, 1).no_decay == ["norm", "bias"]
    with pytest.raises(TcmbenchError, match=r"unknown weight-decay exempt kind 'layers'.*prompt"):
        resolve_hyper(TrainConfig(no_decay=["layers"]), recipe, 10, 1)
    with pytest.raises(TcmbenchError, match="list of parameter kinds"):
        resolve_no_decay(TrainConfig(), {"optimizer": {"no_decay": "norm"}})


def test_exempt_set_reaches_the_optimizer_and_the_checkpoint(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "data", n=3)
    recipe = {**TINY_RECIPE, "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.1}}
    cfg = _cfg(tmp_path / "run", steps=1, no_decay=["bias"])
    trainer = Trainer(TINY_SPEC, DetectorConfig(), recipe, cfg, samples)
    trainer.fit()
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            assert (group["weight_decay"] == 0.0) == names[id(p)].endswith(".bias")
    config = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert config["hyper"]["no_decay"] == ["bias"]
    assert _events(tmp_path / "run")[0]["hyper"]["no_decay"] == ["bias"]


def test_a_checkpoint_from_before_issue_9_resumes_as_it_was_trained(tmp_path: Path) -> None:
    """Saved with norm + bias exempt and normalisation last, and no record
    of either: resuming must rebuild those optimizer groups (else the
    optimizer state does not fit) and augment in that order (else the
    weights differ from the uninterrupted run)."""
    samples = make_samples(tmp_path / "data", n=3)
    old_recipe = {**TINY_RECIPE, "train": {**TINY_RECIPE["train"], "normalize_at": "end"}}
    cfg = _cfg(tmp_path / "run", steps=2, save_every=1, no_decay=["norm", "bias"])
    Trainer(TINY_SPEC, DetectorConfig(), old_recipe, cfg, samples).fit()
    step_dir = tmp_path / "run" / "checkpoints" / "step-0000001"
    state = load_training_state(step_dir)
    del state["hyper"]["no_decay"]
    del state["train_config"]["no_decay"]
    torch.save(state, step_dir / "training_state.pt")
    resumed = _cfg(tmp_path / "again", steps=2)
    t = Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, resumed, samples, resume_dir=step_dir)
    t.fit()
    assert t.hyper.no_decay == ["norm", "bias"]
    a, b = _weights(tmp_path / "run" / "final"), _weights(tmp_path / "again" / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------ augmentation order


def _find_seed(predicate) -> int:
    return next(s for s in range(1000) if predicate(np.random.default_rng(s)))


def test_fill_is_zero_after_normalising_and_content_matches_the_old_order() -> None:
    """Same geometry (same random draws) in both orders; with the official
    order everything filled in (rotation corners, crop and divisor
    padding) is exactly 0, and where no filling happened the pixels equal
    the old pipeline's up to one grey level of uint8 interpolation."""
    steps = [
        HFlip(0.5),
        Rotate(25.0),
        RandomScale((0.8, 1.2)),
        RandomCrop((80, 90), min_side_ratio=0.5),
    ]
    mean, std = normalization({})
    new = TrainTransform(steps, 32, mean, std)
    old = TrainTransform(steps, 32, mean, std, normalize_at="end")
    img = np.random.default_rng(0).integers(0, 256, (70, 100, 3), dtype=np.uint8)
    white = np.full_like(img, 255)
    # hflip draws one number, then the rotation angle: pick a clear rotation.
    # No polygons: the crop is the whole image, fitted into 80 x 90.
    seed = _find_seed(lambda r: r.random() is not None and abs(r.uniform(-25, 25)) > 10)

    def run(t: TrainTransform, image: np.ndarray) -> np.ndarray:
        return t(image, [], [], np.random.default_rng(seed)).image

    a, b = run(new, img), run(old, img)
    a_white, b_white = run(new, white), run(old, white)
    assert a.dtype == np.float32 and a.shape == b.shape == (3, 96, 96)
    lo = normalize_hwc(np.zeros((1, 1, 3), np.uint8), mean, std)[0, 0][:, None, None]
    hi = normalize_hwc(np.full((1, 1, 3), 255, np.uint8), mean, std)[0, 0][:, None, None]
    # Filled in: 0 whatever the content (white is far from 0 normalised).
    filled = (a_white == 0).all(axis=0)
    assert filled[80:].all() and filled[:, 90:].all()  # crop and divisor padding
    full_rows = filled.all(axis=1)
    assert (filled[:80, :90] & ~full_rows[:80, None]).any()  # rotated-in corners
    assert (a[:, filled] == 0).all()
    # The old order filled the same places black (normalised: far from 0);
    # uint8 interpolation rounds a trace of content at the edges to black too.
    black = (b_white == lo).all(axis=0)
    assert abs(int(black.sum()) - int(filled.sum())) < 0.1 * filled.sum()
    assert (b[:, black] == lo[:, :, 0]).all() and (lo != 0).all()
    assert np.abs(a[:, black]).max() < 0.01
    # Untouched by any fill: the same image, up to the old order's uint8
    # rounding after each of its three interpolations (rotate, scale, fit;
    # OpenCV interpolates uint8 in fixed point).
    inside = (b_white == hi).all(axis=0)
    assert inside.sum() > 0.4 * 80 * 90
    diff = np.abs(a[:, inside] - b[:, inside]) * np.asarray(std, np.float32)[:, None]
    assert diff.max() <= 2.0 and diff.mean() < 0.5


def test_photometric_steps_see_uint8_and_geometric_steps_float32() -> None:
    seen: list[tuple[str, Any]] = []

    class Probe:
        def __init__(self, name: str, photometric: bool) -> None:
            self.name, self.photometric = name, photometric

        def __call__(self, image, polys, ign, rng):
            seen.append((self.name, image.dtype))
            return image, polys, ign

    t = TrainTransform([Probe("jitter", True), Probe("flip", False), Probe("crop", False)])
    out = t(np.zeros((40, 40, 3), np.uint8), [], [], np.random.default_rng(0))
    assert seen == [("jitter", np.uint8), ("flip", np.float32), ("crop", np.float32)]
    assert out.image.shape == (3, 64, 64) and (out.image[:, 40:] == 0).all()
    seen.clear()
    TrainTransform([Probe("flip", False)], normalize_at="end")(
        np.zeros((32, 32, 3), np.uint8), [], [], np.random.default_rng(0)
    )
    assert seen == [("flip", np.uint8)]
    with pytest.raises(TcmbenchError, match="photometric step Probe comes after the geometric"):
        TrainTransform([Probe("flip", False), Probe("jitter", True)])
    TrainTransform([Probe("flip", False), Probe("jitter", True)], normalize_at="end")
    with pytest.raises(TcmbenchError, match="normalize_at must be one of"):
        TrainTransform.from_recipe({"train": {"augment": [], "normalize_at": "start"}})


@pytest.mark.parametrize("plugin", ["dbnet", "pan", "fcenet"])
def test_plugin_pipelines_run_on_normalised_pixels(plugin: str) -> None:
    """The plugins' own augmentations (PAN's scale jitter and crop, FCENet's
    scaling, crop, rotation and square pad) on float32 input: the same
    geometry as on uint8 and a float32 batch-ready image."""
    from tcmbench.contract.registry import get_detector

    recipe = get_detector(plugin).recipe("icdar2015")
    train = recipe["train"]
    new = TrainTransform.from_recipe(recipe)
    old = TrainTransform.from_recipe({**recipe, "train": {**train, "normalize_at": "end"}})
    img = np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    polys = [
        np.array([[40, 40], [160, 40], [160, 80], [40, 80]], np.float32),
        np.array([[200, 150], [350, 160], [345, 200], [195, 190]], np.float32),
    ]
    for seed in range(4):
        a = new(img, polys, [False, False], np.random.default_rng(seed))
        b = old(img, polys, [False, False], np.random.default_rng(seed))
        assert a.image.dtype == np.float32 and a.image.shape == b.image.shape
        assert a.ignores == b.ignores
        assert all(np.allclose(x, y) for x, y in zip(a.polygons, b.polygons))


# --------------------------------------------------------- validation split


def test_holdout_split_is_deterministic_disjoint_and_nested() -> None:
    items = list(range(50))
    rest, held = holdout_split(items, 0.2, seed=3)
    assert len(held) == 10 and sorted(rest + held) == items and not set(rest) & set(held)
    assert holdout_split(items, 0.2, seed=3) == (rest, held)
    assert holdout_split(items, 0.2, seed=4)[1] != held
    assert set(holdout_split(items, 0.1, seed=3)[1]) <= set(held)
    assert holdout_split(items, 0.0, seed=3) == (items, [])
    assert len(holdout_split(items, 0.001, seed=0)[1]) == 1
    with pytest.raises(ValueError, match="keep any to train on"):
        holdout_split([1], 0.5, seed=0)


def test_val_fraction_holds_out_images_before_the_few_shot_subset(tmp_path: Path) -> None:
    root = make_ic15_folder(tmp_path / "ic15", n_train=20, n_test=1)
    train, held = load_train_splits(["icdar2015"], str(root), 0.5, seed=2, val_fraction=0.25)
    val = held["icdar2015"]
    assert len(val) == 5 and len(train) == round(0.5 * 15)
    assert not {s.id for s in train} & {s.id for s in val}
    again = load_train_splits(["icdar2015"], str(root), 0.5, seed=2, val_fraction=0.25)
    assert [s.id for s in again[0]] == [s.id for s in train]
    # without a validation split the few-shot subset is what it always was
    full, none = load_train_splits(["icdar2015"], str(root), 0.5, seed=2)
    every, _ = load_train_splits(["icdar2015"], str(root), 1.0, seed=2)
    assert none == {} and [s.id for s in full] == [s.id for s in few_shot_subset(every, 0.5, 2)]
    with pytest.raises(TcmbenchError, match="val-fraction on icdar2015"):
        load_train_splits(["icdar2015"], str(root), 1.0, seed=2, val_fraction=0.99)


def test_best_is_chosen_on_validation_only_and_final_is_the_last_step(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "data", n=8)
    val = _eval_set(samples[6:], "heldout", description="tiny/train: 2 held out")
    test = _eval_set(samples[4:6], "test")
    cfg = _cfg(tmp_path / "run", steps=4, batch_size=2, eval_every=1)
    result = Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples[:6], [val, test]).fit()
    events = _events(tmp_path / "run")
    evals = [e for e in events if e["event"] == "eval"]
    assert [(e["step"], e["role"]) for e in evals] == [
        (s, r) for s in range(1, 5) for r in ("validation", "test")
    ]
    vals = [e for e in evals if e["role"] == "validation"]
    best_step = max(vals, key=lambda e: (e["hmean"], -e["step"]))["step"]
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    chosen = config["selected_on"]
    assert chosen["role"] == "validation" and chosen["step"] == best_step == config["step"]
    assert chosen["splits"][0]["split"] == "heldout"
    assert chosen["splits"][0]["description"] == "tiny/train: 2 held out"
    assert chosen["hmean"] == max(e["hmean"] for e in vals)
    assert result.best == tmp_path / "run" / "best" and result.best_selected_on == chosen
    end = events[-1]
    assert end["event"] == "end" and end["best"] == str(result.best)
    assert end["best_selected_on"] == chosen
    final = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert final["step"] == 4 and "selected_on" not in final
    assert {(r["split"], r["role"]) for r in final["results"]} == {
        ("heldout", "validation"),
        ("test", "test"),
    }


def test_test_split_evals_never_write_best(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "data", n=4)
    said: list[str] = []
    cfg = _cfg(tmp_path / "run", steps=2, eval_every=1)
    trainer = Trainer(
        TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples, [_eval_set(samples[:2], "test")]
    )
    trainer.announce = said.append
    result = trainer.fit()
    assert not (tmp_path / "run" / "best").exists() and (tmp_path / "run" / "final").is_dir()
    # (a 2-step run is also too short to learn: that warning is another test's)
    warnings = [s for s in said if s.startswith("warning: ") and "too short" not in s]
    assert len(warnings) == 1 and "--val-fraction" in warnings[0]
    assert result.best is None and result.best_selected_on is None
    assert [e["role"] for e in result.evals] == ["test", "test"]
    assert _events(tmp_path / "run")[-1]["best"] is None


def test_resume_keeps_the_best_state_and_weights(tmp_path: Path) -> None:
    """Validation evals, TensorBoard and a non-default exempt set: the run
    resumed at step 2 ends with the same weights, evals and best/ choice."""
    samples = make_samples(tmp_path / "data", n=8)
    recipe = {**TINY_RECIPE, "optimizer": {"name": "adamw", "lr": 1e-2, "weight_decay": 0.05}}

    def fit(out: str, resume: Path | None = None) -> Any:
        cfg = _cfg(
            tmp_path / out,
            steps=4,
            batch_size=2,
            eval_every=1,
            save_every=2,
            keep_checkpoints=0,
            no_decay=["bias"],
            tensorboard=True,
        )
        val = _eval_set(samples[6:], "heldout")
        return Trainer(
            TINY_SPEC, DetectorConfig(), recipe, cfg, samples[:6], [val], resume_dir=resume
        ).fit()

    straight = fit("straight")
    ckpt = tmp_path / "straight" / "checkpoints" / "step-0000002"
    assert load_training_state(ckpt)["best"]["step"] <= 2
    torch.manual_seed(77)
    resumed = fit("resumed", ckpt)
    a, b = _weights(tmp_path / "straight" / "final"), _weights(tmp_path / "resumed" / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.evals == straight.evals
    assert resumed.best_selected_on is not None and straight.best_selected_on is not None
    keys = ("step", "hmean", "role")
    assert {k: resumed.best_selected_on[k] for k in keys} == {
        k: straight.best_selected_on[k] for k in keys
    }
    # resumed in its own folder: TensorBoard drops the steps trained again
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit("straight", ckpt)
    acc = EventAccumulator(str(tmp_path / "straight" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Scalars("validation/tiny/heldout/hmean")] == [1, 2, 3, 4]


# ------------------------------------------------------------- CLI summary


class _TinyPlugin:
    from tcmbench.contract.hookspecs import hookimpl

    @hookimpl
    def register_detectors(self, register: Any) -> None:
        register(TINY_SPEC)


def test_cli_val_fraction_prints_roles_and_where_best_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tcmbench.cli import main
    from tcmbench.contract import registry as plugins

    root = make_ic15_folder(tmp_path / "ic15", n_train=8, n_test=2)
    pm = plugins.get_plugin_manager()
    plugin = _TinyPlugin()
    pm.register(plugin, name="tiny-fidelity-plugin")
    run = tmp_path / "run"
    try:
        main(
            ["train", "--plugin", "tiny-train", "--dataset", "icdar2015"]
            + ["--data-root", str(root), "--output", str(run), "--steps", "2"]
            + ["--batch-size", "2", "--eval-every", "1", "--val-fraction", "0.25"]
            + ["--device", "cpu", "--no-progress", "--no-tensorboard", "--workers", "0"]
        )
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    finally:
        pm.unregister(plugin)
    out = capsys.readouterr().out
    assert "| icdar2015 | heldout | icdar2015 | 2 |" in out and "| validation |" in out
    assert "| icdar2015 | test | icdar2015 | 2 |" in out and "| test |" in out
    assert "best checkpoint:" in out and "2 images held out (--val-fraction 0.25, seed 0)" in out
    start = _events(run)[0]
    assert start["train_images"] == 6
    assert [s["images"] for s in start["eval_sets"] if s["role"] == "validation"] == [2]


# ------------------------------------------------------------ progress bar


def test_progress_bar_shows_loss_lr_hmean_and_an_eta(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = make_samples(tmp_path / "data", n=4)
    cfg = _cfg(tmp_path / "run", steps=3, eval_every=2, progress=True)
    Trainer(
        TINY_SPEC,
        DetectorConfig(),
        TINY_RECIPE,
        cfg,
        samples,
        [_eval_set(samples[:2], "heldout")],
    ).fit()
    err = capsys.readouterr().err
    lines = [x for x in re.split(r"[\r\n]", err) if x.startswith("train:")]
    last = lines[-1]
    assert "3/3" in last and re.search(r"ETA \d+:\d\d", last), last
    assert re.search(r"loss=\d+\.\d{4}", last) and re.search(r"lr=\d\.\d\de-?\d+", last), last
    assert re.search(r"hmean=\d\.\d{4}", last), last
    # the first steps already show a loss, before any evaluation
    assert any("loss=" in x and "hmean" not in x for x in lines), lines


# ------------------------------------------------------------- TensorBoard


def test_tensorboard_events_equal_the_json_log(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    samples = make_samples(tmp_path / "data", n=6)
    cfg = _cfg(tmp_path / "run", steps=3, eval_every=2, tensorboard=True)
    val, test = _eval_set(samples[4:], "heldout"), _eval_set(samples[:2], "test")
    Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples[:4], [val, test]).fit()
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])

    def series(tag: str) -> list[tuple[int, float]]:
        return [(e.step, e.value) for e in acc.Scalars(tag)]

    events = _events(tmp_path / "run")
    train = [e for e in events if e["event"] == "train"]
    assert [s for s, _ in series("train/loss")] == [1, 2, 3]
    for key in ("loss", "loss_mse", "lr"):
        got = series(f"train/{key}")
        assert got == [(e["step"], pytest.approx(e[key], rel=1e-6)) for e in train], key
    evals = [e for e in events if e["event"] == "eval"]
    for role, split in (("validation", "heldout"), ("test", "test")):
        mine = [e for e in evals if e["role"] == role]
        assert [e["step"] for e in mine] == [2, 3]
        for metric in ("precision", "recall", "hmean"):
            tag = f"{role}/tiny/{split}/{metric}"
            assert tag in tags
            assert series(tag) == [(e["step"], pytest.approx(e[metric], abs=1e-7)) for e in mine]


def test_without_tensorboard_one_warning_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    samples = make_samples(tmp_path / "data", n=2)
    said: list[str] = []
    trainer = Trainer(
        TINY_SPEC,
        DetectorConfig(),
        TINY_RECIPE,
        _cfg(tmp_path / "run", steps=2, tensorboard=True),
        samples,
    )
    trainer.announce = said.append
    trainer.fit()
    assert [s for s in said if "tensorboard" in s] == [
        next(s for s in said if s.startswith("warning: tensorboard is not installed"))
    ]
    assert (tmp_path / "run" / "final").is_dir() and not (tmp_path / "run" / "tensorboard").exists()


# ------------------------------------------------------------- too short


def test_a_run_below_the_recipes_minimum_is_flagged(tmp_path: Path) -> None:
    """min_steps 3 at the recipe's batch 4 = 12 images: 4 steps x batch 2
    (8 images) is too short, 6 steps x batch 2 is not."""
    samples = make_samples(tmp_path / "data", n=4)
    recipe = {**TINY_RECIPE, "batch_size": 4, "train_loop": {"workers": 0, "min_steps": 3}}
    said: list[str] = []
    trainer = Trainer(
        TINY_SPEC,
        DetectorConfig(),
        recipe,
        _cfg(tmp_path / "short", steps=4, batch_size=2),
        samples,
    )
    trainer.announce = said.append
    trainer.fit()
    (warning,) = [s for s in said if s.startswith("warning: ")]
    assert "minimum is 3 steps x 4 = 12" in warning and "6 steps at this batch size" in warning
    assert "hmean 0" in warning
    start = _events(tmp_path / "short")[0]
    assert start["too_short"] is True and start["min_steps"] == 3 and start["images_seen"] == 8
    final = json.loads((tmp_path / "short" / "final" / "config.json").read_text())
    assert final["too_short"] is True and final["min_steps"] == 3

    said.clear()
    trainer = Trainer(
        TINY_SPEC, DetectorConfig(), recipe, _cfg(tmp_path / "long", steps=6, batch_size=2), samples
    )
    trainer.announce = said.append
    trainer.fit()
    assert not said and "too_short" not in _events(tmp_path / "long")[0]
    assert "too_short" not in json.loads((tmp_path / "long" / "final" / "config.json").read_text())
    with pytest.raises(TcmbenchError, match="min_steps must be a positive integer"):
        resolve_hyper(TrainConfig(steps=1), {"train_loop": {"min_steps": "many"}}, 4, 1)


# -------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, out: str, data: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    import torch.distributed as dist

    samples = make_samples(Path(data), n=6)
    recipe = {**TINY_RECIPE, "train_loop": {"workers": 0, "min_steps": 100}}
    try:
        cfg = _cfg(Path(out), steps=2, batch_size=1, eval_every=1, tensorboard=True)
        val = _eval_set(samples[4:], "heldout")
        test = _eval_set(samples[:2], "test")
        Trainer(TINY_SPEC, DetectorConfig(), recipe, cfg, samples[:4], [val, test]).fit()
    finally:
        dist.destroy_process_group()


def test_ddp_rank_zero_writes_evals_best_and_tensorboard_once(tmp_path: Path) -> None:
    import torch.multiprocessing as mp
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    make_samples(tmp_path / "data", n=6)
    mp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), str(tmp_path / "ddp"), str(tmp_path / "data")),
        nprocs=2,
        start_method="fork",
    )
    run = tmp_path / "ddp"
    events = _events(run)
    assert [e["event"] for e in events].count("start") == 1 and events[0]["too_short"] is True
    assert [(e["step"], e["role"]) for e in events if e["event"] == "eval"] == [
        (1, "validation"),
        (1, "test"),
        (2, "validation"),
        (2, "test"),
    ]
    assert json.loads((run / "best" / "config.json").read_text())["selected_on"]["role"] == (
        "validation"
    )
    assert len(list((run / "tensorboard").iterdir())) == 1
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("validation/tiny/heldout/hmean")] == [1, 2]


def test_a_run_without_the_recipes_extra_training_data_says_so() -> None:
    """The TD500 recipes train with HUST-TR400: a run on TD500 alone is
    told, with the --dataset that follows the recipe; a run with it is not."""
    from tcmbench.contract.registry import get_detector
    from tcmbench.train.run import recipe_data_left_out

    recipe = get_detector("dbnet").recipe("msra-td500")
    note = recipe_data_left_out("msra-td500", recipe, ["msra-td500"])
    assert note is not None and "--dataset msra-td500,hust-tr400" in note
    assert recipe_data_left_out("msra-td500", recipe, ["msra-td500", "hust-tr400"]) is None
    assert recipe_data_left_out("icdar2015", get_detector("dbnet").recipe("icdar2015"), []) is None
