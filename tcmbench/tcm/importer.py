"""Import the authors' released TCM checkpoints (mmocr 0.4 state dicts).

An official checkpoint is a torch pickle ``{"meta": ..., "state_dict":
...}`` written by mmcv; it is read with ``torch.load(weights_only=True)``.
Every key is renamed by the rules below to the module names of a
tcmbench TCM detector; a key no rule covers stops the import with the full
list, and so does a parameter of our model that the checkpoint does not
provide: an import is all or nothing.

The official names (``backbone.*`` = CLIP's visual names,
``text_encoder.*`` = CLIP's text names, ``context_decoder.*``,
``visual_prompt_generator.*``, ``prompt_generator.prompt_proj.*``,
``contexts``, ``gamma``, ``vis_gamma``, ``neck.*``, ``bbox_head.*``) come
from the official model definition (``ocrclip/ocrclip/models.py``,
``ocrclip.py``; mmocr 0.4 ``FPNC`` and ``DBHead``); the full list with
shapes is fixed in ``tests/data/tcm_official_keys.txt``.

What cannot be read from the weights is inferred or asked for: the number
of learnable tokens (``contexts``), LP-only vs predefined prompt (the text
positional-embedding length), LG / VG (presence of their weights). The
official model always holds the text-side context decoder, even in
ablations that do not run it: ``text_context_decoder=False`` drops those
weights explicitly.

The imported checkpoint records the recipe of the official configuration
the weights come from (:func:`official_recipe`), as training records its
recipe: ``evaluate`` then runs the authors' test scale, normalisation and
post-processing by default (TCM-PAN: pixel aggregation at distance 0.85,
quads on IC15; TCM-FCENet: 50-point polygons on IC15, as mmocr 0.x outputs
them), whatever dataset it is run on.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from tcmbench.errors import CheckpointError

log = logging.getLogger(__name__)

Rule = tuple[str, str]


def _decoder_rules(official: str, ours: str) -> list[Rule]:
    """ContextDecoder: official Sequential indices -> our named modules."""
    o, d = re.escape(official), f"feature_transform.{ours}"
    return [
        (rf"^{o}\.memory_proj\.0\.(weight|bias)$", rf"{d}.memory_norm_in.\1"),
        (rf"^{o}\.memory_proj\.1\.(weight|bias)$", rf"{d}.memory_proj.\1"),
        (rf"^{o}\.memory_proj\.2\.(weight|bias)$", rf"{d}.memory_norm_out.\1"),
        (rf"^{o}\.text_proj\.0\.(weight|bias)$", rf"{d}.query_norm.\1"),
        (rf"^{o}\.text_proj\.1\.(weight|bias)$", rf"{d}.query_proj.\1"),
        (
            rf"^{o}\.decoder\.(\d+)\.(self_attn|cross_attn)\.q_proj\.weight$",
            rf"{d}.layers.\1.\2.q.weight",
        ),
        (
            rf"^{o}\.decoder\.(\d+)\.(self_attn|cross_attn)\.k_proj\.weight$",
            rf"{d}.layers.\1.\2.k.weight",
        ),
        (
            rf"^{o}\.decoder\.(\d+)\.(self_attn|cross_attn)\.v_proj\.weight$",
            rf"{d}.layers.\1.\2.v.weight",
        ),
        (
            rf"^{o}\.decoder\.(\d+)\.(self_attn|cross_attn)\.proj\.(weight|bias)$",
            rf"{d}.layers.\1.\2.out.\3",
        ),
        (rf"^{o}\.decoder\.(\d+)\.norm1\.(weight|bias)$", rf"{d}.layers.\1.self_norm.\2"),
        (rf"^{o}\.decoder\.(\d+)\.norm2\.(weight|bias)$", rf"{d}.layers.\1.cross_norm.\2"),
        (rf"^{o}\.decoder\.(\d+)\.norm3\.(weight|bias)$", rf"{d}.layers.\1.mlp_norm.\2"),
        (rf"^{o}\.decoder\.(\d+)\.mlp\.0\.(weight|bias)$", rf"{d}.layers.\1.mlp.fc1.\2"),
        (rf"^{o}\.decoder\.(\d+)\.mlp\.3\.(weight|bias)$", rf"{d}.layers.\1.mlp.fc2.\2"),
        (rf"^{o}\.out_proj\.0\.(weight|bias)$", rf"{d}.out_norm.\1"),
        (rf"^{o}\.out_proj\.1\.(weight|bias)$", rf"{d}.out_proj.\1"),
    ]


#: A BatchNorm's state-dict names (plugins use it in their official rules).
BN_KEYS = r"(weight|bias|running_mean|running_var|num_batches_tracked)"

#: The TCM part, the same for every detector.
TCM_RULES: list[Rule] = [
    # CLIP's visual names are kept by our image encoder.
    (r"^backbone\.(.+)$", r"backbone.\1"),
    # CLIP's text names are kept by our text encoder.
    (
        (
            r"^text_encoder\.(token_embedding\.weight|positional_embedding|text_projection"
            r"|ln_final\.(?:weight|bias)|transformer\.resblocks\.\d+\..+)$"
        ),
        r"feature_transform.text_encoder.\1",
    ),
    (r"^contexts$", "feature_transform.learnable_context"),
    (r"^gamma$", "feature_transform.text_gamma"),
    (r"^vis_gamma$", "feature_transform.visual_gamma"),
    (
        r"^prompt_generator\.prompt_proj\.0\.(weight|bias)$",
        r"feature_transform.language_prompt_generator.norm1.\1",
    ),
    (
        r"^prompt_generator\.prompt_proj\.1\.(weight|bias)$",
        r"feature_transform.language_prompt_generator.fc1.\1",
    ),
    (
        r"^prompt_generator\.prompt_proj\.3\.(weight|bias)$",
        r"feature_transform.language_prompt_generator.norm2.\1",
    ),
    (
        r"^prompt_generator\.prompt_proj\.4\.(weight|bias)$",
        r"feature_transform.language_prompt_generator.fc2.\1",
    ),
    *_decoder_rules("context_decoder", "text_context_decoder"),
    *_decoder_rules("visual_prompt_generator", "visual_prompt_generator"),
]


def official_rules(plugin: str) -> list[Rule]:
    """TCM rules plus the plugin's neck/head rules (its
    ``TCMSupport.official_rules``); CheckpointError for a plugin that
    declares none."""
    from tcmbench.contract.registry import detectors

    spec = detectors().get(plugin)
    declared = list(getattr(getattr(spec, "tcm", None), "official_rules", ()) or ())
    if not declared:
        known = sorted(
            name
            for name, other in detectors().items()
            if getattr(getattr(other, "tcm", None), "official_rules", ())
        )
        raise CheckpointError(
            f"no official TCM checkpoint layout known for plugin {plugin!r} "
            f"(known: {', '.join(known) or 'none'})"
        )
    return TCM_RULES + declared


def map_official_keys(keys: list[str], plugin: str) -> tuple[dict[str, str], list[str]]:
    """({official: ours}, [unmapped official keys])."""
    rules = [(re.compile(p), r) for p, r in official_rules(plugin)]
    mapping: dict[str, str] = {}
    unmapped: list[str] = []
    for key in keys:
        for pattern, repl in rules:
            if pattern.match(key):
                mapping[key] = pattern.sub(repl, key)
                break
        else:
            unmapped.append(key)
    return mapping, unmapped


def read_official_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state dict of an mmcv checkpoint, read with weights_only=True
    (numpy scalars that mmcv may leave in ``meta`` are allow-listed)."""
    import pickle

    import numpy as np
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    # Checkpoints pickled under numpy 1.x name numpy.core.*, under 2.x numpy._core.*.
    safe: list[Any] = [np.dtype, np.ndarray]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        safe += [
            (multiarray.scalar, f"{mod}.scalar"),
            (multiarray._reconstruct, f"{mod}._reconstruct"),
        ]
    safe += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    try:
        with torch.serialization.safe_globals(safe):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0][:300]
        raise CheckpointError(f"{path}: refused to unpickle (weights_only=True): {first}") from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: no 'state_dict' in this checkpoint")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def infer_tcm_config(
    state: dict[str, Any], prompt: str | None = None, text_context_decoder: bool | None = None
) -> Any:
    """The TCM switches an official state dict was trained with."""
    from tcmbench.contract.spec import TCMConfig
    from tcmbench.tcm.prompts import tokenize_prompt

    tcm = TCMConfig()
    if prompt:
        tcm.prompt = prompt
    for key in ("contexts", "text_encoder.positional_embedding"):
        if key not in state:
            raise CheckpointError(f"not an official TCM checkpoint: no {key!r} key")
    n_ctx = int(state["contexts"].shape[1])
    rows = int(state["text_encoder.positional_embedding"].shape[0])
    n_prompt = int(tokenize_prompt(tcm.prompt).numel())
    tcm.context_length = n_ctx
    if rows == n_ctx and rows != n_prompt + n_ctx:
        tcm.predefined_prompt = False  # "use_learnable_prompt_only"
    elif rows < n_prompt + n_ctx:
        raise CheckpointError(
            f"the text positional embedding has {rows} rows, fewer than the prompt ({n_prompt} "
            f"tokens) + {n_ctx} context tokens: was it trained with another prompt? (--prompt)"
        )
    pos = state.get("backbone.attnpool.positional_embedding")
    if pos is not None:
        side = round((int(pos.shape[0]) - 1) ** 0.5)
        if side * side + 1 == int(pos.shape[0]):
            # The grid it was trained with: 640 (DB), 736 / 640 (PAN), 800 (FCE).
            tcm.input_resolution = side * 32
    tcm.language_generator = any(k.startswith("prompt_generator.") for k in state)
    tcm.visual_generator = any(k.startswith("visual_prompt_generator.") for k in state)
    has_decoder = any(k.startswith("context_decoder.") for k in state)
    tcm.text_context_decoder = has_decoder if text_context_decoder is None else text_context_decoder
    if tcm.text_context_decoder and not has_decoder:
        raise CheckpointError("the checkpoint has no context_decoder weights")
    return tcm


#: The official TCM fine-tuning configs whose checkpoints a plugin imports,
#: by the CLIP input resolution the weights carry (the attention-pool grid,
#: ``infer_tcm_config``), as the name of the plugin's recipe that follows
#: that config. TCM-PAN: ``panet_clip_r50att_prompt_gen_vis_fpem_ffm_600e_
#: ft_ic15_taiji.py`` (input_resolution 736) and ``..._ft_ctw_taiji.py``
#: (640); TCM-FCENet: ``fcenet_clip_r50att_prompt_gen_vis_fpn_1500e_ft_ic15_
#: taiji.py`` (800), its only fine-tuning config. TCM-DBNet's four
#: fine-tunes all train at 640: its weights do not say which (``--recipe``).
OFFICIAL_RECIPES: dict[str, dict[int, str]] = {
    "pan": {736: "icdar2015", 640: "ctw1500"},
    "fcenet": {800: "icdar2015"},
}


def official_recipe(
    spec: Any, tcm: Any, name: str | None = None
) -> tuple[str | None, dict[str, Any]]:
    """(recipe name, recipe to record in the imported checkpoint).

    ``name`` (``--recipe``) wins; else the plugin's recipe for the official
    config the weights identify (:data:`OFFICIAL_RECIPES`). The recipe is
    recorded as training records it: a TCM model's inputs are normalised
    with the recipe's ``tcm.normalize``. Without either, only that
    normalisation of the plugin's default recipe is recorded, so that
    ``evaluate`` still takes the test settings from the dataset's recipe
    but feeds the network the inputs it was trained on."""
    if name is not None and name not in spec.recipes:
        raise CheckpointError(
            f"--recipe {name!r}: plugin {spec.name!r} has no such recipe "
            f"(known: {', '.join(sorted(spec.recipes))})"
        )
    chosen = name or OFFICIAL_RECIPES.get(spec.name, {}).get(tcm.input_resolution or 0)
    if chosen is not None and chosen not in spec.recipes:
        chosen = None  # a plugin without that recipe: nothing better to record
    recipe = spec.recipe(chosen)
    norm = (recipe.get("tcm") or {}).get("normalize")
    if chosen is None:
        return None, ({"normalize": dict(norm)} if norm else {})
    if norm:
        recipe["normalize"] = dict(norm)  # as tcmbench.train.run.recipe_for
    return chosen, recipe


def _fit_shapes(mapped: dict[str, Any], own: dict[str, Any]) -> None:
    """Shape changes that are exact or documented: the text positional
    embedding truncated (rows after EOT are never read under the causal
    mask); the attention-pool positional embedding resized to our grid."""
    from tcmbench.tcm.image_encoder import resize_positional_embedding

    key = "feature_transform.text_encoder.positional_embedding"
    if key in mapped and key in own and mapped[key].shape[0] > own[key].shape[0]:
        log.info(
            "text positional embedding truncated from %d to %d rows",
            mapped[key].shape[0],
            own[key].shape[0],
        )
        mapped[key] = mapped[key][: own[key].shape[0]]
    key = "backbone.attnpool.positional_embedding"
    if key in mapped and key in own and mapped[key].shape != own[key].shape:
        rows = own[key].shape[0] - 1
        side = round(rows**0.5)
        log.info(
            "attention-pool positional embedding resized from %d to %d rows",
            mapped[key].shape[0],
            own[key].shape[0],
        )
        mapped[key] = resize_positional_embedding(mapped[key], (side, side))


def checked_mapping(keys: list[str], plugin: str) -> dict[str, str]:
    """{official: ours}; CheckpointError listing every unmapped key."""
    mapping, unmapped = map_official_keys(keys, plugin)
    if unmapped:
        raise CheckpointError(
            f"{len(unmapped)} official key(s) have no tcmbench counterpart, import stopped: "
            + ", ".join(unmapped)
        )
    return mapping


def load_official_state(
    model: Any, state: dict[str, Any], plugin: str, drop_prefixes: tuple[str, ...] = ()
) -> dict[str, str]:
    """Map ``state`` onto ``model`` and load it (all or nothing).

    Returns the {official: ours} mapping. Keys under ``drop_prefixes`` are
    deliberately left out (e.g. an unused context decoder).
    """
    keys = [k for k in state if not k.startswith(drop_prefixes)]
    mapping = checked_mapping(keys, plugin)
    mapped = {mapping[k]: state[k] for k in keys}
    own = model.state_dict()
    _fit_shapes(mapped, own)
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    wrong = sorted(
        k for k in set(own) & set(mapped) if tuple(own[k].shape) != tuple(mapped[k].shape)
    )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"not in the checkpoint: {', '.join(missing)}")
        if unexpected:
            parts.append(f"not in the model: {', '.join(unexpected)}")
        if wrong:
            parts.append(
                "other shape: "
                + ", ".join(f"{k} {tuple(mapped[k].shape)} vs {tuple(own[k].shape)}" for k in wrong)
            )
        raise CheckpointError(
            "official checkpoint does not fit the model, import stopped; " + "; ".join(parts)
        )
    model.load_state_dict(mapped, strict=True)
    return mapping


def import_official_checkpoint(
    ckpt: str | Path,
    plugin: str,
    out_dir: str | Path,
    *,
    prompt: str | None = None,
    text_context_decoder: bool | None = None,
    recipe: str | None = None,
) -> Path:
    """Convert an official TCM checkpoint into a tcmbench checkpoint folder
    that records the recipe of its official config (:func:`official_recipe`;
    ``recipe`` names another of the plugin's recipes)."""
    from tcmbench.contract.registry import get_detector, get_plugin_manager
    from tcmbench.contract.spec import DetectorConfig
    from tcmbench.data.archives import sha256_file
    from tcmbench.hub.checkpoints import save_checkpoint

    ckpt = Path(ckpt)
    spec = get_detector(plugin)
    official_rules(plugin)  # fail early for an unknown layout
    state = read_official_checkpoint(ckpt)
    tcm = infer_tcm_config(state, prompt, text_context_decoder)
    recipe_name, recorded = official_recipe(spec, tcm, recipe)
    drop = () if tcm.text_context_decoder else ("context_decoder.", "gamma")
    checked_mapping([k for k in state if not k.startswith(drop)], plugin)  # before the costly build
    # Build without CLIP weights: every weight comes from the checkpoint.
    build_config = DetectorConfig(tcm=replace(tcm, clip_pretrained=None, clip_weights=None))
    model = get_plugin_manager().hook.build_detector(spec=spec, config=build_config)
    if drop:
        log.info("dropping the official context_decoder weights (text_context_decoder off)")
    load_official_state(model, state, plugin, drop_prefixes=drop)
    config = DetectorConfig(tcm=tcm)
    source = {
        "official_tcm": {"file": ckpt.name, "sha256": sha256_file(ckpt), "recipe": recipe_name}
    }
    if recipe_name is None:
        log.info("no official config known for these weights: evaluate uses the dataset's recipe")
    else:
        log.info("recording recipe %r (the official config of these weights)", recipe_name)
    return save_checkpoint(out_dir, model, spec, config, recipe=recorded, extra={"source": source})
