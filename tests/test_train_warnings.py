"""Issue 16: the fine-tune route, the --init-from refusal and warnings that
are right.

- ``--init-from`` a checkpoint of another architecture than the dataset's
  recipe builds: the recipe (and architecture) come from the checkpoint.
- A load that fills less than half of the parameter values is refused in
  one line with the figures, unless ``--allow-partial-init``.
- The too-short warning: never "hmean 0" for a fine-tune; a default minimum
  for recipes without ``train_loop.min_steps``.
- ``--resume``: where it continues, how many steps were lost, no duplicate
  log rows, ``elapsed_s`` continues.
- Checkpoint files all get the mode the umask gives.
- ``train_loop.norm_eval`` keeps BatchNorm statistics frozen.

The issue's inputs are used as given (plugins/tcmbench_dbnet/weights,
msra-td500, --steps 400 --batch-size 8 --lr 0.001); where a case needs
no training step, :meth:`Trainer.begin` (build, load, warn) stands for the
run, so 400 steps are never trained here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tiny_data import TINY_RECIPE, TINY_SPEC, make_samples

from tcmbench.cli import main
from tcmbench.contract.registry import get_detector
from tcmbench.contract.spec import DetectorConfig
from tcmbench.errors import CheckpointError, TcmbenchError
from tcmbench.train.eval_sets import EvalSet
from tcmbench.train.hyper import (
    DEFAULT_MIN_STEPS,
    DEFAULT_MIN_STEPS_BATCH,
    TrainConfig,
    resolve_hyper,
)
from tcmbench.train.init_from import MIN_INIT_SHARE
from tcmbench.train.recipe_choice import (
    FROM_CHECKPOINT,
    FROM_DATASET,
    RecipeChoice,
    build_detector_config,
    choose_recipe,
    normalize_note,
)
from tcmbench.train.run import recipe_for
from tcmbench.train.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent
#: The checkpoint the issue fine-tunes: DBNet / MobileNetV3-small, synthtext-mini recipe.
SHIPPED = REPO / "plugins" / "tcmbench_dbnet" / "weights"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = int(main(args) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]


def _td500(root: Path, n: int = 2) -> Path:
    """A tiny MSRA-TD500 layout (train/IMG_*.JPG + .gt): grey photos with
    one white word each, rotated-rectangle ground truth."""
    folder = root / "train"
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.full((192, 256, 3), 60, np.uint8)
        img[60 + 10 * i : 84 + 10 * i, 40:160] = 255
        Image.fromarray(img).save(folder / f"IMG_{i:04d}.JPG")
        (folder / f"IMG_{i:04d}.gt").write_text(f"0 0 40 {60 + 10 * i} 120 24 0.0\n")
    return root


def _cli(out: Path, td500: Path, *args: str) -> list[str]:
    return [
        "train",
        "--plugin",
        "dbnet",
        *args,
        "--dataset",
        "msra-td500",
        "--data-root",
        str(td500),
        "--device",
        "cpu",
        "--workers",
        "0",
        "--no-progress",
        "--no-tensorboard",
        "--output",
        str(out),
    ]


def _trainer(cfg: TrainConfig, tmp_path: Path) -> tuple[Trainer, list[str]]:
    """The Trainer run_training builds for ``cfg`` (recipe choice included),
    on two synthetic images (``begin`` reads none)."""
    spec = get_detector(cfg.plugin)
    choice = choose_recipe(cfg, spec)
    config = build_detector_config(cfg, choice.recipe)
    trainer = Trainer(
        spec,
        config,
        recipe_for(choice.recipe, config),
        cfg,
        make_samples(tmp_path / "data", n=2),
    )
    trainer.recipe_record = choice.record()
    said: list[str] = []
    trainer.announce = said.append
    return trainer, said


def _issue_cfg(tmp_path: Path, **kw: Any) -> TrainConfig:
    """`train --plugin dbnet --dataset msra-td500 --steps 400 --batch-size 8`
    plus ``kw`` (no download: the tests never ask for ImageNet weights)."""
    base: dict[str, Any] = {
        "plugin": "dbnet",
        "datasets": ["msra-td500"],
        "steps": 400,
        "batch_size": 8,
        "device": "cpu",
        "workers": 0,
        "progress": False,
        "tensorboard": False,
        "output": str(tmp_path / "run"),
    }
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------ --init-from refusal


def test_the_issues_partial_load_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The issue: the shipped MobileNetV3 weights into the msra-td500
    recipe's ResNet-50 (--no-pretrained-backbone) loaded 6 of 356 keys and
    trained from scratch with a warning. Now: exit 2, one line, figures."""
    td500 = _td500(tmp_path / "td500")
    args = _cli(
        tmp_path / "run",
        td500,
        "--recipe",
        "msra-td500",
        "--init-from",
        str(SHIPPED),
        "--no-pretrained-backbone",
        "--steps",
        "400",
        "--batch-size",
        "8",
        "--lr",
        "0.001",
    )
    code, _, err = _run(args, capsys)
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"Error: --init-from {SHIPPED}: this tcmbench checkpoint")
    assert "(dbnet / mobilenetv3_small)" in line and "of dbnet / resnet50" in line
    assert re.search(
        r"loads 6 of 356 keys \(2 of 25,\d{3},\d{3} parameter values, 0\.0+\d+%\)", line
    )
    assert "would train from random initialisation" in line and "at least 50%" in line
    assert "--allow-partial-init" in line
    assert not (tmp_path / "run" / "final").exists()
    # Nothing else reaches stderr: no mismatch warning logged before the refusal.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_allow_partial_init_runs_it_as_a_run_from_scratch(tmp_path: Path) -> None:
    """The same load with --allow-partial-init goes ahead; it is no
    fine-tune, so the too-short check applies as from scratch (the
    msra-td500 recipe sets no minimum: the default one)."""
    cfg = _issue_cfg(
        tmp_path,
        recipe="msra-td500",
        init_from=str(SHIPPED),
        pretrained_backbone=False,
        lr=0.001,
        allow_partial_init=True,
    )
    trainer, said = _trainer(cfg, tmp_path)
    short = trainer.begin()
    report = trainer.init_report
    assert len(report.loaded) == 6 and report.share_filled < MIN_INIT_SHARE
    assert not trainer.fine_tune
    assert short is not None and short["min_steps_from"] == "default"
    assert any("too short to learn" in s and "hmean 0" in s for s in said)
    # The table says the share too.
    assert "loads 6 of 356 keys" in report.table()

    refused = _issue_cfg(
        tmp_path, recipe="msra-td500", init_from=str(SHIPPED), pretrained_backbone=False
    )
    trainer, _ = _trainer(refused, tmp_path)
    with pytest.raises(CheckpointError, match="loads 6 of 356 keys"):
        trainer.begin()


# ------------------------------------------------------------ the fine-tune route


def test_the_docs_fine_tune_route_takes_the_recipe_from_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train --init-from plugins/tcmbench_dbnet/weights --dataset msra-td500`
    without --recipe: the dataset's recipe would build a ResNet-50 (and
    download ImageNet weights); the checkpoint's architecture and recipe are
    taken instead, every key loads, no too-short prediction. A resumed run
    keeps that recipe although the source checkpoint is gone."""
    src = Path(shutil.copytree(SHIPPED, tmp_path / "src"))
    source = load_file(str(src / "model.safetensors"))
    td500 = _td500(tmp_path / "td500")
    run = tmp_path / "run"
    args = _cli(run, td500, "--init-from", str(src), "--steps", "2", "--batch-size", "2")
    code, out, err = _run([*args, "--save-every", "1", "--log-every", "1"], capsys)
    assert code == 0, err
    assert (
        f"recipe 'synthtext-mini' from the --init-from checkpoint {src} (its config.json), "
        "with its architecture dbnet / mobilenetv3_small: the dataset's recipe 'msra-td500' "
        "builds dbnet / resnet50"
    ) in out
    assert f"| loaded | {len(source)} | " in out and "| missing (kept as built) | 0 |" in out
    assert "too short" not in out and "hmean 0" not in out
    final = json.loads((run / "final" / "config.json").read_text())
    assert final["architecture"]["backbone"] == "mobilenetv3_small"
    assert final["architecture"]["pretrained_backbone"] is False
    assert (
        final["architecture"]["options"]
        == json.loads((src / "config.json").read_text())["architecture"]["options"]
    )
    assert final["recipe_choice"]["origin"] == FROM_CHECKPOINT
    shipped_recipe = json.loads((src / "config.json").read_text())["recipe"]
    for key in ("test", "postprocess", "normalize", "train"):
        assert final["recipe"][key] == shipped_recipe[key], key
    start = _events(run)[0]
    assert start["too_short_check"] == "skipped: fine-tune" and "too_short" not in start

    shutil.rmtree(src)  # the resumed run needs only its own checkpoint
    step1 = run / "checkpoints" / "step-0000001"
    code, out, err = _run(["train", "--resume", str(step1), "--no-progress"], capsys)
    assert code == 0, err
    assert f"as saved in the resumed checkpoint {step1}" in out
    assert "resuming from step 1 of 2" in out and "1 step(s) after the checkpoint are lost" in out
    assert json.loads((run / "final" / "config.json").read_text())["recipe"] == final["recipe"]


def test_a_checkpoint_of_the_datasets_architecture_keeps_the_datasets_recipe(
    tmp_path: Path,
) -> None:
    """The papers' route (pre-train, then fine-tune with the dataset's
    recipe) is unchanged: the shipped weights are the synthtext-mini
    recipe's architecture, so --dataset synthtext-mini keeps its recipe;
    --recipe always wins."""
    spec = get_detector("dbnet")
    same = choose_recipe(TrainConfig(datasets=["synthtext-mini"], init_from=str(SHIPPED)), spec)
    assert same.origin == FROM_DATASET and same.name == "synthtext-mini"
    assert same.recipe == spec.recipe("synthtext-mini")
    other = choose_recipe(TrainConfig(datasets=["msra-td500"], init_from=str(SHIPPED)), spec)
    assert (
        other.origin == FROM_CHECKPOINT and other.recipe["model"]["backbone"] == "mobilenetv3_small"
    )
    named = choose_recipe(
        TrainConfig(datasets=["msra-td500"], recipe="icdar2015", init_from=str(SHIPPED)), spec
    )
    assert named.origin == "--recipe" and named.recipe == spec.recipe("icdar2015")
    plain = choose_recipe(TrainConfig(datasets=["msra-td500"]), spec)
    assert plain.origin == FROM_DATASET and plain.recipe == spec.recipe("msra-td500")


def test_a_recipe_normalising_otherwise_than_the_checkpoint_is_warned() -> None:
    meta = json.loads((SHIPPED / "config.json").read_text())
    choice = RecipeChoice("x", {}, "--recipe", "recipe 'x' (--recipe)", meta)
    assert normalize_note(choice, {"normalize": meta["recipe"]["normalize"]}) is None
    clip = {"mean": [122.679, 116.669, 104.007], "std": [58.395, 57.12, 57.375]}
    note = normalize_note(choice, {"normalize": clip})
    assert note is not None and "recipe 'x' normalises inputs with mean [122.679" in note
    assert "the --init-from checkpoint was trained with mean [123.675" in note


# ------------------------------------------------------------ too short


def test_a_fine_tune_is_never_told_hmean_0(tmp_path: Path) -> None:
    """The issue's fine-tune (`--recipe synthtext-mini --init-from
    plugins/tcmbench_dbnet/weights --dataset msra-td500 --steps 400
    --batch-size 8 --lr 0.001`) scored 0.86 yet was warned "hmean 0": 400
    steps are below the recipe's from-scratch minimum (600). Now silent;
    the same run from scratch is still warned."""
    cfg = _issue_cfg(tmp_path, recipe="synthtext-mini", init_from=str(SHIPPED), lr=0.001)
    trainer, said = _trainer(cfg, tmp_path)
    assert trainer.begin() is None
    assert trainer.fine_tune and trainer.init_share == pytest.approx(1.0)
    assert not [s for s in said if "too short" in s or "hmean 0" in s], said
    start = _events(tmp_path / "run")[0]
    assert start["too_short_check"] == "skipped: fine-tune" and "too_short" not in start
    assert start["init_from"]["params"]["share_filled"] == pytest.approx(1.0)

    scratch = _issue_cfg(tmp_path, recipe="synthtext-mini", lr=0.001, output=str(tmp_path / "s"))
    trainer, said = _trainer(scratch, tmp_path)
    assert trainer.begin() is not None
    (warning,) = [s for s in said if "too short" in s]
    assert "the recipe's minimum is 600 steps x 8 = 4800" in warning and "hmean 0" in warning


def test_a_recipe_without_min_steps_gets_the_default_minimum(tmp_path: Path) -> None:
    """The issue: the warning never fired for recipes without
    train_loop.min_steps (msra-td500). `train --plugin dbnet --dataset
    msra-td500 --no-pretrained-backbone --steps 400 --batch-size 8`: 3200
    training images, below the default 600 x 8."""
    assert "min_steps" not in (get_detector("dbnet").recipe("msra-td500").get("train_loop") or {})
    cfg = _issue_cfg(tmp_path, pretrained_backbone=False)
    trainer, said = _trainer(cfg, tmp_path)
    short = trainer.begin()
    assert short is not None and short["min_steps_from"] == "default"
    (warning,) = [s for s in said if "too short" in s]
    assert warning.startswith(
        "warning: this run is too short to learn: 400 steps x 8 images = 3200"
    )
    images = DEFAULT_MIN_STEPS * DEFAULT_MIN_STEPS_BATCH
    assert "the recipe sets no train_loop.min_steps" in warning
    assert (
        f"default minimum applies: {DEFAULT_MIN_STEPS} steps x {DEFAULT_MIN_STEPS_BATCH} = {images}"
        in warning
    )
    assert f"({DEFAULT_MIN_STEPS} steps at this batch size)" in warning
    start = _events(tmp_path / "run")[0]
    assert start["too_short"] is True and start["min_steps"] == DEFAULT_MIN_STEPS
    # ... and a run long enough is not warned.
    hyper = resolve_hyper(_issue_cfg(tmp_path, steps=DEFAULT_MIN_STEPS), {}, 300, 1)
    assert hyper.min_steps_from == "default"
    from tcmbench.train.hyper import too_short

    assert too_short(hyper, 1) is None


# ------------------------------------------------------------ --resume


def test_resume_says_what_was_lost_and_the_log_has_no_duplicates(tmp_path: Path) -> None:
    """Train 6 steps with a checkpoint at 4, then resume from step 4 in the
    same folder (what a kill after step 6's log rows leaves), with a row cut
    short by the kill at the end: the rows of steps 5-6 and the cut row are
    dropped, then logged again once; elapsed_s continues."""
    samples = make_samples(tmp_path / "data", n=4)
    run = tmp_path / "run"
    kw: dict[str, Any] = {
        "datasets": ["tiny"],
        "output": str(run),
        "device": "cpu",
        "workers": 0,
        "progress": False,
        "log_every": 1,
        "tensorboard": False,
        "steps": 6,
        "batch_size": 2,
        "save_every": 4,
        "keep_checkpoints": 0,
    }
    Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, TrainConfig(**kw), samples).fit()
    with (run / "train_log.jsonl").open("a") as f:
        f.write('{"event": "train", "step": 7, "lo')
    step4 = run / "checkpoints" / "step-0000004"
    saved_elapsed = torch.load(step4 / "training_state.pt", weights_only=True)["elapsed_s"]
    assert saved_elapsed > 0

    said: list[str] = []
    resumed = Trainer(
        TINY_SPEC, DetectorConfig(), TINY_RECIPE, TrainConfig(**kw), samples, resume_dir=step4
    )
    resumed.announce = said.append
    resumed.fit()
    (msg,) = [s for s in said if s.startswith("resuming")]
    assert msg.startswith(f"resuming from step 4 of 6 ({step4}): the interrupted run had logged")
    assert "up to step 6, so 2 step(s) after the checkpoint are lost and trained again" in msg
    assert "(4 row(s) dropped from train_log.jsonl)" in msg  # train 5, 6, end 6, the cut row

    events = _events(run)
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [e["step"] for e in events if e["event"] == "end"] == [6]
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [4]
    starts = [e for e in events if e["event"] == "start"]
    assert [s["start_step"] for s in starts] == [0, 4]
    assert starts[1]["elapsed_s"] == round(saved_elapsed, 2)
    elapsed = [e["elapsed_s"] for e in events if e["event"] == "train"]
    assert elapsed == sorted(elapsed) and elapsed[4] >= round(saved_elapsed, 2)


def test_resume_with_nothing_lost_says_so(tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "data", n=4)
    kw: dict[str, Any] = {
        "datasets": ["tiny"],
        "output": str(tmp_path / "run"),
        "device": "cpu",
        "workers": 0,
        "progress": False,
        "tensorboard": False,
        "steps": 2,
        "batch_size": 2,
        "save_every": 2,
    }
    Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, TrainConfig(**kw), samples).fit()
    lines = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    # A kill right after the checkpoint: the end row was never written.
    (tmp_path / "run" / "train_log.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    said: list[str] = []
    step = tmp_path / "run" / "checkpoints" / "step-0000002"
    resumed = Trainer(
        TINY_SPEC, DetectorConfig(), TINY_RECIPE, TrainConfig(**kw), samples, resume_dir=step
    )
    resumed.announce = said.append
    resumed.fit()
    (msg,) = [s for s in said if s.startswith("resuming")]
    assert "resuming from step 2 of 2" in msg and "no step was lost" in msg


# ------------------------------------------------------------ file modes


def test_checkpoint_files_get_the_mode_the_umask_gives(tmp_path: Path) -> None:
    """model.safetensors came out 0600 (safetensors' own writer) beside
    0644 config.json / training_state.pt; every file of a run now has the
    mode a plain open() gives under the umask (0640 under 027), its folders
    mkdir's."""
    samples = make_samples(tmp_path / "data", n=4)
    run = tmp_path / "run"
    old = os.umask(0o027)
    try:
        cfg = TrainConfig(
            datasets=["tiny"],
            output=str(run),
            device="cpu",
            workers=0,
            progress=False,
            tensorboard=False,
            steps=2,
            batch_size=2,
            save_every=1,
        )
        Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples).fit()
        step1 = run / "checkpoints" / "step-0000001"
        (run / "train_log.jsonl").open("a").write('{"cut')  # a resume rewrites the log
        Trainer(TINY_SPEC, DetectorConfig(), TINY_RECIPE, cfg, samples, resume_dir=step1).fit()
    finally:
        os.umask(old)
    files = [p for p in run.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"model.safetensors", "config.json", "training_state.pt", "train_log.jsonl"} <= names
    modes = {str(p.relative_to(run)): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {"0o640"}, modes
    dirs = {oct(p.stat().st_mode & 0o777) for p in run.rglob("*") if p.is_dir()}
    assert dirs == {"0o750"}


# ------------------------------------------------------------ norm_eval


def _dbnet_small() -> tuple[Any, dict[str, Any], DetectorConfig]:
    spec = get_detector("dbnet")
    recipe = spec.recipe("synthtext-mini")
    recipe["model"] = {
        "backbone": "mobilenetv3_small",
        "pretrained_backbone": False,
        "options": {"lateral_channels": 16, "min_text_size": 2},
    }
    recipe["train"] = {"augment": TINY_RECIPE["train"]["augment"], "pad_divisor": 32}
    recipe["train_loop"] = {"workers": 0}
    recipe["test"] = {"long_side": None, "short_side": None, "pad_divisor": 32}
    cfg = TrainConfig(datasets=["tiny"])
    return spec, recipe, build_detector_config(cfg, recipe)


@pytest.mark.parametrize("norm_eval", [True, False])
def test_norm_eval_keeps_batchnorm_statistics_frozen(tmp_path: Path, norm_eval: bool) -> None:
    """With train_loop.norm_eval every BatchNorm running statistic ends as
    it started, evaluations between steps included (inference puts every
    layer back in train mode); the weights still train. Without it the
    statistics move."""
    spec, recipe, config = _dbnet_small()
    recipe["train_loop"]["norm_eval"] = norm_eval
    samples = make_samples(tmp_path / "data", n=4)
    cfg = TrainConfig(
        datasets=["tiny"],
        output=str(tmp_path / "run"),
        device="cpu",
        workers=0,
        progress=False,
        tensorboard=False,
        steps=2,
        batch_size=2,
        eval_every=1,
        seed=3,
    )
    test = EvalSet("tiny", "test", samples[:1], "icdar2015", dict(recipe))
    trainer = Trainer(spec, config, recipe, cfg, samples, [test])
    trainer.fit()
    torch.manual_seed(3)  # the trainer's initial weights
    from tcmbench.contract.registry import get_plugin_manager

    start = get_plugin_manager().hook.build_detector(spec=spec, config=config).state_dict()
    final = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    stats = [k for k in start if k.endswith(("running_mean", "running_var"))]
    assert stats
    moved = [k for k in stats if not torch.equal(start[k], final[k])]
    assert (moved == []) is norm_eval, moved[:3]
    weights = [k for k in start if k.endswith("weight")]
    assert any(not torch.equal(start[k], final[k]) for k in weights)  # it trained
    assert trainer.hyper.norm_eval is norm_eval


def test_norm_eval_is_checked_and_the_command_line_wins() -> None:
    with pytest.raises(
        TcmbenchError, match=r"train_loop\.norm_eval must be true or false, got 'yes'"
    ):
        resolve_hyper(TrainConfig(steps=1), {"train_loop": {"norm_eval": "yes"}}, 4, 1)
    on = {"train_loop": {"norm_eval": True}}
    assert resolve_hyper(TrainConfig(steps=1), on, 4, 1).norm_eval is True
    assert resolve_hyper(TrainConfig(steps=1, norm_eval=False), on, 4, 1).norm_eval is False
    assert resolve_hyper(TrainConfig(steps=1, norm_eval=True), {}, 4, 1).norm_eval is True


# ------------------------------------------------------------ the PP-OCRv3 fine-tune recipe


def _ppocrv3_standin(path: Path) -> Path:
    """A checkpoint shaped like `tcmbench import ppocr` of PP-OCRv3 (its
    architecture and recorded recipe), with seeded random weights: the
    recipe's mechanics need no ONNX file."""
    from tcmbench_dbnet.ppocr.recipe import ppocr_recipe
    from tcmbench_dbnet.recipes import PPOCRV3_MODEL

    from tcmbench.contract.registry import get_plugin_manager
    from tcmbench.hub import checkpoints as hub

    spec = get_detector("dbnet")
    config = DetectorConfig.from_dict(PPOCRV3_MODEL)
    torch.manual_seed(11)
    model = get_plugin_manager().hook.build_detector(spec=spec, config=config)
    return hub.save_checkpoint(path, model, spec, config, recipe=ppocr_recipe(dict(PPOCRV3_MODEL)))


def test_the_ppocrv3_fine_tune_recipe_is_chosen_and_trains_the_probability_map_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train --init-from <imported PP-OCRv3> --dataset msra-td500` (no
    --recipe) takes ppocrv3-finetune-msra-td500 (finetune_for); the loss is
    the probability map's alone, so the import's random threshold branch
    does not move, and BatchNorm statistics stay frozen (norm_eval). A
    smoke run: 2 steps of 2 crops."""
    from tcmbench_dbnet.ppocr.recipe import PPOCR_TEST
    from tcmbench_dbnet.recipes import PPOCRV3_FINETUNE_LOSS, PPOCRV3_MODEL

    src = _ppocrv3_standin(tmp_path / "ppocrv3")
    source = load_file(str(src / "model.safetensors"))
    td500 = _td500(tmp_path / "td500")
    run = tmp_path / "run"
    args = _cli(run, td500, "--init-from", str(src), "--steps", "2", "--batch-size", "2")
    code, out, err = _run(args, capsys)
    assert code == 0, err
    assert (
        "recipe 'ppocrv3-finetune-msra-td500': the plugin's fine-tune recipe for "
        "ppocrv3_mobilenetv3 checkpoints on msra-td500"
    ) in out
    assert "too short" not in out
    final = load_file(str(run / "final" / "model.safetensors"))
    changed = [k for k in source if not torch.equal(source[k], final[k])]
    assert any(k.startswith("backbone.") and k.endswith("weight") for k in changed)
    assert not [k for k in changed if k.startswith("head.thr_branch.")]
    assert not [k for k in changed if k.endswith(("running_mean", "running_var"))]
    config = json.loads((run / "final" / "config.json").read_text())
    assert config["recipe_choice"]["origin"] == "fine-tune recipe"
    assert config["architecture"]["backbone"] == PPOCRV3_MODEL["backbone"]
    assert config["architecture"]["options"] == {
        **PPOCRV3_MODEL["options"],
        **PPOCRV3_FINETUNE_LOSS,
    }
    assert config["recipe"]["test"] == PPOCR_TEST
    assert (
        config["recipe"]["normalize"]
        == json.loads((src / "config.json").read_text())["recipe"]["normalize"]
    )

    # The recipe is for TD500; another dataset gets the checkpoint's own recipe.
    spec = get_detector("dbnet")
    other = choose_recipe(TrainConfig(datasets=["icdar2015"], init_from=str(src)), spec)
    assert other.origin == FROM_CHECKPOINT and "steps" not in other.recipe


def test_train_only_is_checked() -> None:
    from tcmbench.train.train_only import held_parameters, parse

    for bad, why in (
        ({"prefixes": ["head."]}, r"train_only\.steps must be a positive integer"),
        ({"prefixes": [], "steps": 3}, r"train_only\.prefixes must be a non-empty list"),
        ({"prefixes": ["head."], "steps": 3, "lr": 1}, r"train_only must be"),
        ("head.", r"train_only must be"),
    ):
        with pytest.raises(TcmbenchError, match=why):
            parse(bad)
    _, _, config = _dbnet_small()
    from tcmbench.contract.registry import get_plugin_manager

    model = get_plugin_manager().hook.build_detector(spec=get_detector("dbnet"), config=config)
    setting = parse({"prefixes": ["head.thr_brnch."], "steps": 3})
    with pytest.raises(TcmbenchError, match=r"'head\.thr_brnch\.' names no parameter"):
        held_parameters(model, setting)
    held = held_parameters(model, parse({"prefixes": ["head."], "steps": 3}))
    names = {id(p): n for n, p in model.named_parameters()}
    assert held and all(not names[id(p)].startswith("head.") for p in held)


def test_weights_from_a_too_short_run_are_warned_at_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint whose training the trainer flagged too short (the tiny
    grids' cells, a 60-step run) is said so by evaluate, so its hmean 0
    is read as the run's length; the shipped weights are not flagged."""
    from tiny_data import make_ic15_folder

    from tcmbench.contract.registry import get_plugin_manager
    from tcmbench.hub import checkpoints as hub

    spec = get_detector("dbnet")
    config = DetectorConfig(backbone="mobilenetv3_small", pretrained_backbone=False)
    model = get_plugin_manager().hook.build_detector(spec=spec, config=config)
    extra = {
        "step": 4,
        "hyper": {"batch_size": 2, "min_steps": 600, "min_steps_batch": 8},
        "too_short": True,
        "min_steps": 600,
    }
    short = hub.save_checkpoint(
        tmp_path / "short", model, spec, config, recipe=spec.recipe("synthtext-mini"), extra=extra
    )
    data = make_ic15_folder(tmp_path / "ic15", n_train=0, n_test=1)
    base = ["evaluate", "--plugin", "dbnet", "--dataset", "icdar2015", "--data-root", str(data)]
    base += ["--device", "cpu", "--no-progress", "--no-cache"]
    for weights, flagged in ((short, True), (SHIPPED, False)):
        try:
            main([*base, "--weights", str(weights)])
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
        err = capsys.readouterr().err
        said = f"warning: the weights {weights} come from a run too short to learn: 4 steps x 2"
        assert (said in err) is flagged, err
        if flagged:
            assert "(the minimum: 600 steps x 8)" in err and "hmean 0" in err
