"""Which test settings a checkpoint runs with, decided in one place.

A checkpoint is evaluated the way it was trained. ``evaluate`` once applied
the dataset's recipe to every checkpoint: a DBNet fine-tuned on MSRA-TD500
with the synthtext-mini recipe (original image size, mask threshold 0.3) was
run at TD500's settings (short side 736, threshold 0.08) and printed hmean
0.0000, while ``predict`` used the checkpoint's own recipe and found the
text. Both commands (and ``bench``, ``experiment``, ``export onnx``) now ask
:func:`resolve_test_recipe`, in this order:

1. an inference-only plugin's model config (``--recipe`` does not apply);
2. ``--recipe NAME``: that recipe's test settings, with the normalisation
   the checkpoint was trained with (changing it would feed the network
   inputs it never saw);
3. the recipe recorded in the checkpoint's ``config.json`` (its ``test``
   block), when it has one;
4. the dataset's recipe (only for a checkpoint that records no test
   settings), else the plugin's default recipe.

The result says where the settings came from, so every command can print it
and write it into its JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tcmbench.errors import PluginError

#: Recipe keys that decide what inference produces.
TEST_KEYS = ("test", "normalize", "postprocess")


@dataclass(frozen=True)
class ResolvedTestSettings:
    """A recipe to run inference with, and where its test settings came from.

    ``origin`` is one of ``model-config``, ``--recipe``, ``checkpoint``,
    ``dataset``, ``plugin-default``; ``source`` says it in words.
    """

    recipe: dict[str, Any]
    origin: str
    source: str

    def summary(self) -> dict[str, Any]:
        """The settings for ``--json`` outputs and records."""
        return {
            "origin": self.origin,
            "source": self.source,
            **{k: self.recipe[k] for k in TEST_KEYS if k in self.recipe},
        }


def _with_normalize(recipe: dict[str, Any], checkpoint_recipe: Mapping[str, Any]) -> dict[str, Any]:
    if checkpoint_recipe.get("normalize"):
        recipe["normalize"] = checkpoint_recipe["normalize"]
    return recipe


def resolve_test_recipe(
    spec: Any,
    checkpoint_recipe: Mapping[str, Any] | None,
    recipe_name: str | None,
    dataset: str | None = None,
    *,
    inference_only: bool = False,
) -> ResolvedTestSettings:
    """The recipe whose test settings ``spec``'s model runs with (module
    doc: the order). ``checkpoint_recipe`` is the checkpoint's
    ``config.json`` ``recipe`` (or an inference-only model's own config with
    ``inference_only``)."""
    ck = dict(checkpoint_recipe or {})
    if inference_only:
        if recipe_name is not None:
            raise PluginError(
                f"plugin {spec.name!r} takes its test settings from the model's own config; "
                "--recipe does not apply (edit the config beside the model instead)"
            )
        return ResolvedTestSettings(ck, "model-config", "the model's own config")
    if recipe_name is not None:
        return ResolvedTestSettings(
            _with_normalize(spec.recipe(recipe_name), ck),
            "--recipe",
            f"--recipe {recipe_name}"
            + (" (with the checkpoint's normalisation)" if ck.get("normalize") else ""),
        )
    if ck.get("test"):
        # Keys an older checkpoint did not record come from the plugin's
        # default recipe, never from the dataset's.
        recipe = {**spec.recipe(None), **ck}
        return ResolvedTestSettings(
            recipe, "checkpoint", "the checkpoint's own recipe (config.json)"
        )
    if dataset is not None and dataset in spec.recipes:
        return ResolvedTestSettings(
            _with_normalize(spec.recipe(dataset), ck),
            "dataset",
            f"the {dataset} recipe (the checkpoint records no test settings)",
        )
    return ResolvedTestSettings(
        _with_normalize(spec.recipe(None), ck),
        "plugin-default",
        f"{spec.name}'s default recipe (the checkpoint records no test settings)",
    )


def differs_from_dataset(
    spec: Any, resolved: ResolvedTestSettings, dataset: str | None
) -> str | None:
    """A note when the checkpoint's own test settings differ from those of
    the dataset's recipe, naming the option that selects the dataset's (a
    user comparing with a paper's table needs to know which were used)."""
    if resolved.origin != "checkpoint" or dataset is None or dataset not in spec.recipes:
        return None
    theirs = spec.recipe(dataset)
    keys = [k for k in ("test", "postprocess") if theirs.get(k) != resolved.recipe.get(k)]
    if not keys:
        return None
    return (
        f"note: the checkpoint's own test settings are used; the {dataset} recipe's "
        f"{' and '.join(keys)} differ ({_brief(theirs, keys)}): pass --recipe {dataset} to use them"
    )


def _brief(recipe: Mapping[str, Any], keys: list[str]) -> str:
    parts = []
    for key in keys:
        block = recipe.get(key) or {}
        shown = ", ".join(f"{k} {v}" for k, v in block.items() if v is not None)
        parts.append(f"{key}: {shown or 'none'}")
    return "; ".join(parts)


def describe(resolved: ResolvedTestSettings) -> str:
    """One line for the terminal: where the settings came from and the
    ones that matter most."""
    test = resolved.recipe.get("test") or {}
    post = resolved.recipe.get("postprocess") or {}
    scale = ", ".join(f"{k} {v}" for k, v in test.items() if v is not None) or "original size"
    thresholds = ", ".join(
        f"{k} {post[k]}" for k in ("mask_thr", "min_score", "unclip_ratio") if k in post
    )
    return f"test settings from {resolved.source}: {scale}" + (
        f"; {thresholds}" if thresholds else ""
    )
