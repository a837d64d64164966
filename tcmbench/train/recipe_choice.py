"""Which recipe a training run uses, and where it came from.

In order:

1. ``--resume``: the recipe the resumed run chose. A run whose recipe came
   from its ``--init-from`` checkpoint continues with the recipe saved in
   the resumed checkpoint (so the source checkpoint need not exist any
   more); any other run with its ``--recipe`` or dataset recipe, as before.
2. ``--recipe NAME``: that recipe of the plugin (an unknown name is an
   error, never a fallback).
3. ``--init-from CKPT`` where CKPT is a tcmbench checkpoint of this plugin:

   a. a recipe of the plugin that declares itself the fine-tune recipe for
      the checkpoint's backbone on this dataset (``finetune_for``: the
      imported PP-OCRv3 detector on MSRA-TD500), built with the
      checkpoint's architecture;
   b. when the dataset's recipe would build *another* architecture
      (backbone or model options) than the checkpoint's, and the checkpoint
      records a recipe: that recipe, with its architecture and no ImageNet
      download (the checkpoint holds the backbone). This is the docs'
      fine-tune route for the shipped weights: ``--dataset msra-td500``
      alone would pick the ResNet-50 recipe, into which the MobileNetV3
      checkpoint loads 6 of 356 keys.
4. Otherwise the first dataset's recipe (the plugin's default when it has
   none). With ``--init-from`` a checkpoint of the same architecture, this
   is the papers' route: pre-train, then fine-tune with the dataset's
   recipe (TCM's official fine-tuning configs, DBNet's dataset recipes).

:func:`choose_recipe` returns the recipe with a one-line description that
``train`` prints; the choice is recorded in train_log.jsonl and in every
checkpoint's config.json (``recipe_choice``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``recipe_choice.origin`` values.
FROM_COMMAND_LINE = "--recipe"
FROM_DATASET = "dataset"
FROM_CHECKPOINT = "init-from checkpoint"
FROM_FINETUNE = "fine-tune recipe"
#: Origins whose recipe a resumed run takes from its own checkpoint.
FROM_INIT = (FROM_CHECKPOINT, FROM_FINETUNE)
#: config.json key of the record.
RECORD_KEY = "recipe_choice"


@dataclass
class RecipeChoice:
    """A run's recipe and its provenance."""

    #: The recipe's name: the plugin's recipe, or the name the checkpoint's
    #: run used (descriptive only when it came from a checkpoint).
    name: str
    recipe: dict[str, Any]
    #: One of FROM_COMMAND_LINE, FROM_DATASET, FROM_CHECKPOINT, FROM_FINETUNE.
    origin: str
    #: The sentence ``train`` prints.
    description: str
    #: The --init-from checkpoint's config.json, when read.
    init_meta: dict[str, Any] | None = None

    def record(self) -> dict[str, str]:
        """What train_log.jsonl and config.json keep of the choice."""
        return {"name": self.name, "origin": self.origin, "description": self.description}


def checkpoint_recipe_name(meta: Mapping[str, Any]) -> str:
    """The name of the recipe a checkpoint was trained with, as far as its
    config.json tells: its ``recipe_choice``, else ``train.recipe``, else
    its first dataset's; "" when unknown (an imported model)."""
    record = meta.get(RECORD_KEY)
    if isinstance(record, Mapping) and isinstance(record.get("name"), str):
        return str(record["name"])
    train = meta.get("train")
    if isinstance(train, Mapping) and isinstance(train.get("recipe"), str):
        return str(train["recipe"])
    datasets = meta.get("datasets")
    if isinstance(datasets, list) and datasets and isinstance(datasets[0], str):
        return datasets[0]
    return ""


def _architecture(meta: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    arch = meta.get("architecture") or {}
    return str(arch.get("backbone")), dict(arch.get("options") or {})


def _resumed_choice(resume_dir: Path) -> RecipeChoice | None:
    """The checkpoint-taken recipe a resumed run continues with, or None
    when the run chose its recipe by name (resolved as before)."""
    from tcmbench.hub.checkpoints import read_checkpoint_meta

    meta, _ = read_checkpoint_meta(resume_dir)
    record = meta.get(RECORD_KEY)
    if not isinstance(record, Mapping) or record.get("origin") not in FROM_INIT:
        return None
    recipe = meta.get("recipe")
    if not isinstance(recipe, dict) or not recipe:
        return None
    name = str(record.get("name") or "")
    return RecipeChoice(
        name,
        copy.deepcopy(recipe),
        str(record["origin"]),
        f"recipe {name!r} as saved in the resumed checkpoint {resume_dir} "
        "(the run chose it for its --init-from checkpoint)",
    )


def choose_recipe(cfg: Any, spec: Any, resume_dir: Path | None = None) -> RecipeChoice:
    """The recipe for ``cfg`` (a TrainConfig) and ``spec``'s plugin; see
    the module docstring for the order."""
    if resume_dir is not None:
        resumed = _resumed_choice(resume_dir)
        if resumed is not None:
            return resumed
    if cfg.recipe:
        spec.require_recipe(cfg.recipe)
        return RecipeChoice(
            cfg.recipe,
            spec.recipe(cfg.recipe),
            FROM_COMMAND_LINE,
            f"recipe {cfg.recipe!r} (--recipe)",
        )
    dataset = cfg.datasets[0]
    dataset_recipe = spec.recipe(dataset)
    named = dataset if dataset in spec.recipes else spec.default_recipe
    own = (
        f"recipe {named!r} (the dataset's)"
        if named == dataset
        else f"recipe {named!r} (the plugin's default: no recipe named {dataset!r})"
    )
    meta = None
    if cfg.init_from and resume_dir is None:
        from tcmbench.train.init_from import checkpoint_meta

        meta = checkpoint_meta(cfg.init_from)
    taken = _finetune_recipe(cfg, spec, meta) or _from_checkpoint(
        cfg, spec, meta, dataset_recipe, named
    )
    if taken is not None:
        return taken
    return RecipeChoice(named, dataset_recipe, FROM_DATASET, own, meta)


def finetune_target(name: str, recipe: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """(backbone, datasets) of a recipe's ``finetune_for``, None when it
    has none; a malformed one is an error naming the recipe."""
    from tcmbench.errors import TcmbenchError

    value = recipe.get("finetune_for")
    if value is None:
        return None
    backbone = value.get("backbone") if isinstance(value, Mapping) else None
    datasets = value.get("datasets") if isinstance(value, Mapping) else None
    if (
        not isinstance(backbone, str)
        or not isinstance(datasets, list)
        or not all(isinstance(d, str) for d in datasets)
    ):
        raise TcmbenchError(
            f"recipe {name!r}: finetune_for must be a mapping "
            f'{{"backbone": NAME, "datasets": [NAME, ...]}}, got {value!r}'
        )
    return backbone, list(datasets)


def _with_architecture(
    recipe: Mapping[str, Any], meta: Mapping[str, Any], recipe_options_win: bool = False
) -> dict[str, Any]:
    """``recipe`` building the checkpoint's architecture; the checkpoint
    holds the backbone, so no ImageNet download. With
    ``recipe_options_win`` (a fine-tune recipe written for this backbone)
    the recipe's model options, its loss settings among them, are laid over
    the checkpoint's; otherwise the checkpoint's options alone (a dataset's
    recipe written for another backbone must not change its widths)."""
    backbone, options = _architecture(meta)
    out = copy.deepcopy(dict(recipe))
    model = dict(out.get("model") or {})
    if recipe_options_win:
        options = {**options, **dict(model.get("options") or {})}
    model.update(backbone=backbone, options=options, pretrained_backbone=False)
    out["model"] = model
    return out


def _finetune_recipe(cfg: Any, spec: Any, meta: dict[str, Any] | None) -> RecipeChoice | None:
    """The plugin's recipe declared (``finetune_for``) for the checkpoint's
    backbone on the first dataset (rule 3a); else None."""
    from tcmbench.train.init_from import describe_architecture

    if meta is None or meta.get("plugin") != spec.name:
        return None
    backbone, _ = _architecture(meta)
    dataset = cfg.datasets[0]
    for name in spec.recipes:
        recipe = spec.recipe(name)
        target = finetune_target(name, recipe)
        if target is None or target[0] != backbone or dataset not in target[1]:
            continue
        theirs = describe_architecture(spec.name, meta.get("architecture") or {})
        description = (
            f"recipe {name!r}: the plugin's fine-tune recipe for {backbone} checkpoints on "
            f"{dataset}, with the --init-from checkpoint's architecture {theirs}; "
            "--recipe NAME picks another"
        )
        return RecipeChoice(
            name,
            _with_architecture(recipe, meta, recipe_options_win=True),
            FROM_FINETUNE,
            description,
            meta,
        )
    return None


def _from_checkpoint(
    cfg: Any,
    spec: Any,
    meta: dict[str, Any] | None,
    dataset_recipe: Mapping[str, Any],
    named: str,
) -> RecipeChoice | None:
    """The checkpoint's recipe when the dataset's would build another
    architecture than the checkpoint's (rule 3); else None."""
    from tcmbench.train.init_from import describe_architecture

    if meta is None or meta.get("plugin") != spec.name:
        return None
    recipe = meta.get("recipe")
    if not isinstance(recipe, dict) or not recipe:
        return None
    backbone, options = _architecture(meta)
    built = build_detector_config(cfg, dataset_recipe)
    if (built.backbone, dict(built.options or {})) == (backbone, options):
        return None
    out = _with_architecture(recipe, meta)
    name = checkpoint_recipe_name(meta) or "(unnamed)"
    theirs = describe_architecture(spec.name, meta.get("architecture") or {})
    ours = describe_architecture(spec.name, built.to_dict())
    description = (
        f"recipe {name!r} from the --init-from checkpoint {cfg.init_from} (its config.json), "
        f"with its architecture {theirs}: the dataset's recipe {named!r} builds {ours}; "
        "--recipe NAME picks another"
    )
    return RecipeChoice(name, out, FROM_CHECKPOINT, description, meta)


def normalize_note(choice: RecipeChoice, recipe: Mapping[str, Any]) -> str | None:
    """A warning when the run normalises inputs otherwise than its
    --init-from checkpoint was trained: its features would see shifted
    inputs from the first step. None when they agree or one is unknown."""
    meta = choice.init_meta
    if meta is None:
        return None
    theirs = (meta.get("recipe") or {}).get("normalize")
    ours = recipe.get("normalize")
    if not isinstance(theirs, Mapping) or not isinstance(ours, Mapping):
        return None
    if _close(theirs.get("mean"), ours.get("mean")) and _close(theirs.get("std"), ours.get("std")):
        return None
    return (
        f"recipe {choice.name!r} normalises inputs with mean {ours.get('mean')} / "
        f"std {ours.get('std')}, the --init-from checkpoint was trained with mean "
        f"{theirs.get('mean')} / std {theirs.get('std')}: its weights will see shifted inputs "
        "from the first step (use a recipe with the checkpoint's normalize section)"
    )


def _close(a: Any, b: Any) -> bool:
    try:
        return len(a) == len(b) and all(abs(float(x) - float(y)) < 1e-6 for x, y in zip(a, b))
    except (TypeError, ValueError):
        return False


def build_detector_config(cfg: Any, recipe: Mapping[str, Any]) -> Any:
    """The architecture: ``--backbone`` / ``--tcm`` over the recipe's
    ``model`` section (backbone, pretrained_backbone, options) and its
    ``tcm.context_length`` / ``tcm.input_resolution`` /
    ``tcm.aux_loss_batching``."""
    from tcmbench.contract.spec import DEFAULT_AUX_LOSS_BATCHING, DetectorConfig, TCMConfig

    model = dict(recipe.get("model") or {})
    tcm = None
    if cfg.tcm is not None:
        tcm_dict = dict(cfg.tcm)
        recipe_tcm = recipe.get("tcm") or {}
        if tcm_dict.get("context_length") is None:
            tcm_dict["context_length"] = int(recipe_tcm.get("context_length", 4))
        if tcm_dict.get("input_resolution") is None and recipe_tcm.get("input_resolution"):
            tcm_dict["input_resolution"] = int(recipe_tcm["input_resolution"])
        if tcm_dict.get("aux_loss_batching") is None:
            # The authors' per-batch broadcast unless the recipe opts out (docs/tcm.md).
            tcm_dict["aux_loss_batching"] = (
                recipe_tcm.get("aux_loss_batching") or DEFAULT_AUX_LOSS_BATCHING
            )
        tcm = TCMConfig.from_dict(tcm_dict)
    pretrained = cfg.pretrained_backbone
    if pretrained is None:
        # TCM swaps the backbone for CLIP's image encoder: ImageNet weights
        # for the replaced backbone would be downloaded for nothing.
        pretrained = bool(model.get("pretrained_backbone", False)) and tcm is None
    return DetectorConfig(
        backbone=cfg.backbone or model.get("backbone", "resnet18"),
        pretrained_backbone=bool(pretrained),
        tcm=tcm,
        options=dict(model.get("options") or {}),
    )
