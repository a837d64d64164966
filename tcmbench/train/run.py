"""A training run from the command line: resume rules, output folder,
recipe notes, and :func:`run_training`, which builds the
:class:`~tcmbench.train.trainer.Trainer` and runs it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tcmbench.train.eval_sets import load_eval_sets, load_train_splits, validation_sets
from tcmbench.train.hyper import RESUME_OVERRIDABLE, TrainConfig
from tcmbench.train.recipe_choice import build_detector_config
from tcmbench.train.trainer import Trainer, TrainResult

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# From the command line


def default_output(cfg: TrainConfig) -> str:
    return str(Path("runs") / f"{cfg.plugin}-{'+'.join(cfg.datasets)}{'-tcm' if cfg.tcm else ''}")


def prepare_config(cfg: TrainConfig) -> tuple[TrainConfig, Path | None]:
    """Apply ``--resume``: the saved run configuration wins except for
    :data:`RESUME_OVERRIDABLE` settings. Returns (config, checkpoint dir)."""
    if not cfg.resume:
        if cfg.output is None:
            cfg.output = default_output(cfg)
        return cfg, None
    from tcmbench.train.state import find_resume_dir, load_training_state

    step_dir = find_resume_dir(cfg.resume)
    saved = TrainConfig.from_dict(load_training_state(step_dir)["train_config"])
    for key in RESUME_OVERRIDABLE:
        value = getattr(cfg, key)
        if value is not None and key != "output":
            setattr(saved, key, value)
    # Continue in the run folder the checkpoint belongs to unless told otherwise.
    saved.output = cfg.output or str(
        step_dir.parent.parent if step_dir.parent.name == "checkpoints" else step_dir.parent
    )
    return saved, step_dir


def recipe_for(recipe: Mapping[str, Any], detector_config: Any) -> dict[str, Any]:
    """The recipe as this model uses it: a TCM model normalises inputs as
    CLIP does (``tcm.normalize``). Saved in checkpoints, so inference
    normalises the way training did."""
    out = dict(recipe)
    tcm_norm = (recipe.get("tcm") or {}).get("normalize")
    if detector_config.tcm is not None and tcm_norm:
        out["normalize"] = dict(tcm_norm)
    return out


def run_training(cfg: TrainConfig, announce: Any = None) -> TrainResult:
    """Resolve the plugin, recipe and data of ``cfg`` and train."""
    from tcmbench.contract.registry import get_detector
    from tcmbench.inference.world import resolve_device
    from tcmbench.train.recipe_choice import FROM_DATASET, choose_recipe, normalize_note

    resolve_device(cfg.device)  # a bad --device fails before any data is read
    cfg, resume_dir = prepare_config(cfg)
    spec = get_detector(cfg.plugin)
    choice = choose_recipe(cfg, spec, resume_dir)
    recipe_name = choice.name
    detector_config = build_detector_config(cfg, choice.recipe)
    recipe = recipe_for(choice.recipe, detector_config)
    train_samples, held = load_train_splits(
        cfg.datasets, cfg.data_root, cfg.train_fraction, cfg.seed, cfg.val_fraction
    )
    eval_names = cfg.eval_datasets if cfg.eval_datasets is not None else cfg.datasets[:1]
    hyper_eval = (
        cfg.eval_every
        if cfg.eval_every is not None
        else int((recipe.get("train_loop") or {}).get("eval_every", 0))
    )
    # A named recipe, or one chosen for the checkpoint, tests with its own
    # settings, not with the dataset recipe's (another architecture's).
    run_recipe = None if choice.origin == FROM_DATASET else choice.recipe
    # Validation first: it chooses best/; the eval split follows.
    eval_sets = validation_sets(held, cfg.val_fraction, cfg.seed, spec, cfg.recipe, run_recipe)
    if eval_names and (hyper_eval or cfg.eval_datasets):
        root = cfg.data_root if len(eval_names) == 1 and eval_names[0] in cfg.datasets[:1] else None
        eval_sets += load_eval_sets(
            eval_names, cfg.eval_split, root, cfg.eval_limit, spec, cfg.recipe, run_recipe
        )
    for es in eval_sets:  # test-time settings of the eval set, normalisation of training
        es.recipe["normalize"] = recipe.get("normalize", es.recipe.get("normalize"))
    trainer = Trainer(spec, detector_config, recipe, cfg, train_samples, eval_sets, resume_dir)
    if announce is not None:
        trainer.announce = announce
    trainer.recipe_record = choice.record()
    if trainer.world.is_main:
        trainer.announce(choice.description)
    left_out = recipe_data_left_out(recipe_name, recipe, cfg.datasets)
    if left_out and resume_dir is None:
        trainer.warn(left_out)
    differs = normalize_note(choice, recipe)
    if differs:
        trainer.warn(differs)
    return trainer.fit()


def recipe_data_left_out(
    recipe_name: str, recipe: Mapping[str, Any], datasets: Sequence[str]
) -> str | None:
    """A note when the recipe was published with more training data than
    this run uses (``extra_train_datasets``: TD500 with HUST-TR400, TCM
    pre-training on SynthText + real sets): its figures are not comparable
    with the paper's, so say so and give the command line that follows it."""
    extra = [d for d in recipe.get("extra_train_datasets") or [] if d not in datasets]
    if not extra:
        return None
    full = ",".join([*datasets, *extra])
    return (
        f"recipe {recipe_name!r} trains on {' + '.join([*datasets, *extra])}; this run leaves out "
        f"{', '.join(extra)}, so its figures are not the recipe's: --dataset {full} follows it"
    )
