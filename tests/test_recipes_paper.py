"""The recipes that follow the papers (issue 9): every named recipe of the
three detector plugins resolves the way `tcmbench train` / `evaluate` use
it, the values equal what each recipe's `source` and the generated tables
in docs/ say, and the post-processing parameters the paper recipes rely on
change DBNet's output in the expected direction on hand-made maps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import REPO
from tcmbench_dbnet.ppocr import is_ppocr_backbone

from tcmbench import docgen
from tcmbench.contract.registry import get_detector
from tcmbench.data.dataset import get_dataset_config
from tcmbench.data.transforms import InferenceTransform, TrainTransform
from tcmbench.inference.settings import resolve_test_recipe
from tcmbench.models.backbones import parse_backbone_name
from tcmbench.train.hyper import TrainConfig, resolve_hyper
from tcmbench.train.recipe_choice import build_detector_config

PLUGINS = ("dbnet", "pan", "fcenet")
NO_DECAY_KINDS = {"norm", "bias", "embedding", "prompt"}


def _all_recipes() -> Iterator[tuple[str, str]]:
    for plugin in PLUGINS:
        for name in get_detector(plugin).recipes:
            yield plugin, name


ALL = list(_all_recipes())
PAPER = [(p, n) for p, n in ALL if "-paper-" in n or n.startswith("tcm-pretrain")]


def _postprocessor(plugin: str, params: dict[str, Any]) -> Any:
    """The plugin's postprocessor with a recipe's parameters (as inference
    applies them), without building the network."""
    if plugin == "dbnet":
        from tcmbench_dbnet.model import build_postprocessor

        return build_postprocessor(params)
    if plugin == "pan":
        from tcmbench_pan.postprocess import PANPostprocessor

        return PANPostprocessor().with_params(**params)
    from tcmbench_fcenet.postprocess import FCEPostprocessor

    return FCEPostprocessor().with_params(**params)


def _doc_row(plugin: str, name: str) -> list[str]:
    """The cells of recipe ``name``'s row in the committed docs/PLUGIN.md
    table (the generated block, not a fresh rendering)."""
    text = (REPO / "docs" / f"{plugin}.md").read_text()
    block = next(m["body"] for m in docgen.BLOCK.finditer(text) if m["spec"] == f"recipes {plugin}")
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].split(" ")[0] == f"`{name}`":
            return cells
    raise AssertionError(f"docs/{plugin}.md has no row for recipe {name!r}")


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"source does not state {pattern!r}: {text}"
    return float(m.group(1))


# ------------------------------------------------------------ every recipe


@pytest.mark.parametrize(("plugin", "name"), ALL, ids=[f"{p}:{n}" for p, n in ALL])
def test_named_recipe_resolves_for_train_and_evaluate(plugin: str, name: str) -> None:
    spec = get_detector(plugin)
    recipe = spec.recipe(name)
    # `--recipe NAME` gets this recipe, not the silent fallback to default.
    assert recipe == spec.recipes[name]
    assert recipe["source"], f"{plugin}:{name} cites no source"
    cfg = TrainConfig(plugin=plugin, datasets=["synthtext-mini"], recipe=name)
    hyper = resolve_hyper(cfg, recipe, num_samples=1000, world_size=1)
    opt = recipe["optimizer"]
    assert (hyper.optimizer, hyper.lr) == (opt["name"], opt["lr"])
    assert hyper.weight_decay == opt.get("weight_decay", 0.0)
    assert hyper.no_decay == opt["no_decay"]
    assert hyper.batch_size == recipe["batch_size"] and hyper.total_steps >= 1
    assert hyper.lr_by == recipe["schedule"]["by"]
    if recipe.get("steps"):
        assert hyper.total_steps == recipe["steps"]
    else:
        assert hyper.total_steps == int(np.ceil(recipe["epochs"] * 1000 / recipe["batch_size"]))
    assert build_detector_config(cfg, recipe).backbone == recipe["model"]["backbone"]
    backbone = recipe["model"]["backbone"]
    if not (plugin == "dbnet" and is_ppocr_backbone(backbone)):  # the plugin's own parts
        parse_backbone_name(backbone)  # a backbone tcmbench builds
    # The test side: what `tcmbench evaluate --recipe NAME` uses.
    test = resolve_test_recipe(spec, None, name, "synthtext-mini").recipe
    assert test["test"] == recipe["test"] and test["postprocess"] == recipe["postprocess"]
    transform = InferenceTransform.from_recipe(test)
    image = np.zeros((300, 500, 3), np.uint8)
    x, (sx, sy) = transform(image)
    assert x.shape[1] % 32 == 0 and x.shape[2] % 32 == 0 and sx > 0 and sy > 0
    short = recipe["test"].get("short_side")
    if short is not None and recipe["test"].get("long_side") is None:
        assert round(300 * sy) == short  # landscape image: the short side is the height
    _postprocessor(plugin, recipe["postprocess"])
    TrainTransform.from_recipe(recipe)  # every augmentation and parameter is known


@pytest.mark.parametrize(("plugin", "name"), ALL, ids=[f"{p}:{n}" for p, n in ALL])
def test_recipe_declares_its_weight_decay_exemptions(plugin: str, name: str) -> None:
    recipe = get_detector(plugin).recipes[name]
    kinds = recipe["optimizer"]["no_decay"]
    assert isinstance(kinds, list) and set(kinds) <= NO_DECAY_KINDS, kinds
    source = recipe["source"]
    if name == "synthtext-mini":
        assert kinds == ["norm", "bias"] and "shipped weights" in source
    elif kinds == ["norm"]:
        # The official TCM configs' paramwise_cfg: 'norm' decay_mult 0.
        assert "'norm'" in source or "TCM.md" in source, source
    else:
        assert kinds == [] and "no_decay []" in source, source


@pytest.mark.parametrize(("plugin", "name"), ALL, ids=[f"{p}:{n}" for p, n in ALL])
def test_referenced_recipes_and_datasets_exist(plugin: str, name: str) -> None:
    spec = get_detector(plugin)
    recipe = spec.recipes[name]
    pretrain = recipe.get("pretrain_recipe")
    if pretrain is not None:
        assert pretrain in spec.recipes and pretrain != name
        assert "pretrain" in pretrain  # fine-tuning starts from a pre-training recipe
    for dataset in recipe.get("extra_train_datasets") or []:
        assert get_dataset_config(dataset).name == dataset


def test_synthtext_mini_minimum_length_is_stated_and_below_the_recipe() -> None:
    for plugin in PLUGINS:
        recipe = get_detector(plugin).recipes["synthtext-mini"]
        # The shipped weights' training: augment on uint8, normalise last.
        assert recipe["train"]["normalize_at"] == "end"
        min_steps = recipe["train_loop"]["min_steps"]
        # The recipe's own run must not warn that it is too short.
        assert 0 < min_steps <= recipe["steps"], plugin
        source = recipe["source"]
        assert f"min_steps {min_steps}" in source, source
        assert ("measured" in source) != ("estimate" in source), source
        assert f"learns from {min_steps} steps" in _doc_row(plugin, "synthtext-mini")[3]


# --------------------------------------------- values = sources = docs tables


@pytest.mark.parametrize(("plugin", "name"), PAPER, ids=[f"{p}:{n}" for p, n in PAPER])
def test_paper_recipe_row_in_the_docs_shows_its_values(plugin: str, name: str) -> None:
    recipe = get_detector(plugin).recipes[name]
    cells = _doc_row(plugin, name)
    model, optimizer, training, test = cells[1], cells[2], cells[3], cells[4]
    assert model.startswith(recipe["model"]["backbone"] + " ")
    assert f"lr {recipe['optimizer']['lr']:g}" in optimizer
    assert f"no_decay [{', '.join(recipe['optimizer']['no_decay'])}]" in optimizer
    length = f"{recipe['steps']} steps" if recipe.get("steps") else f"{recipe['epochs']} epochs"
    assert training.startswith(f"{length}, batch {recipe['batch_size']}")
    short = recipe["test"]["short_side"]
    assert f"short {short}" in test
    if recipe.get("pretrain_recipe"):
        assert f"fine-tunes `{recipe['pretrain_recipe']}`" in training
    assert cells[7] == docgen._value(recipe["source"])


DB_PAPER = [n for p, n in PAPER if p == "dbnet" and n.startswith("dbnet-paper-")]


@pytest.mark.parametrize("name", DB_PAPER)
def test_dbnet_paper_values_are_what_the_source_says(name: str) -> None:
    r = get_detector("dbnet").recipes[name]
    src = r["source"]
    opt, post = r["optimizer"], r["postprocess"]
    # DBNet paper s. 4.2, as the source quotes it.
    assert opt["name"] == "sgd" and "SGD lr 0.007" in src
    assert opt["lr"] == _number(r"SGD lr ([\d.]+)", src)
    assert opt["momentum"] == _number(r"momentum ([\d.]+)", src)
    assert opt["weight_decay"] == _number(r"wd ([\d.e-]+)", src)
    assert r["schedule"]["power"] == _number(r"poly power ([\d.]+)", src)
    assert r["batch_size"] == _number(r"batch (\d+)", src)
    assert r["model"]["backbone"] == "resnet50-dcn" and "(resnet50-dcn)" in src
    assert r["train"]["crop_size"] == _number(r"(\d+) x \d+ crops", src)
    if r.get("steps"):
        assert r["steps"] == 1000 * _number(r"(\d+)k iterations", src)
    else:
        assert r["epochs"] == _number(r"(\d+) epochs of fine-tuning", src)
        assert r["test"]["short_side"] == _number(r"at height (\d+)", src)
        assert post["min_score"] == _number(r"box_thresh ([\d.]+)", src)
    assert post["max_candidates"] == _number(r"at most (\d+)", src)
    assert post["unclip_ratio"] == _number(r"unclip ([\d.]+)", src)
    assert post["all_contours"] and "every contour" in src
    if post["output"] == "poly":
        assert post["epsilon_ratio"] == _number(r"approxPolyDP ([\d.]+)", src)
        assert post["min_points"] == _number(r">= (\d+) points", src)
        assert post["min_size"] == 0 and "no size test before unclipping" in src
    else:
        assert post["score_mode"] == "fast" and "box_score_fast" in src
    # The paper's augmentations; the authors' code has no colour jitter and
    # normalises after them.
    names = [a["name"] for a in r["train"]["augment"]]
    assert names == ["hflip", "rotate", "random_scale", "random_crop"]
    assert "no colour jitter" in src
    assert r["train"]["normalize_at"] == "end" and "normalize_at end" in src


def test_dbnet_paper_test_scales() -> None:
    """The issue's list: IC15 736 and 1152, TD500 736, Total-Text 800,
    CTW1500 1024, read from the generated table in docs/dbnet.md."""
    found = {n: _doc_row("dbnet", n)[4] for n in DB_PAPER}
    assert found == {
        "dbnet-paper-synthtext-pretrain": "short 736",
        "dbnet-paper-icdar2015-736": "short 736",
        "dbnet-paper-icdar2015-1152": "short 1152",
        "dbnet-paper-msra-td500": "short 736",
        "dbnet-paper-totaltext": "short 800",
        "dbnet-paper-ctw1500": "short 1024",
    }


PAN_PAPER = [n for p, n in PAPER if p == "pan" and n.startswith("pan-paper-")]


@pytest.mark.parametrize("name", PAN_PAPER)
def test_pan_paper_values_are_what_the_source_says(name: str) -> None:
    r = get_detector("pan").recipes[name]
    src = r["source"]
    post = r["postprocess"]
    short = _number(r"short side (\d+),", src)
    assert r["test"]["short_side"] == short == r["train"]["crop_size"]
    assert r["tcm"]["input_resolution"] == short
    assert r["model"]["options"]["shrink_ratio"] == _number(r"kernel ([\d.]+)", src)
    assert post["output"] == ("quad" if re.search(r"\brect\b", src) else "poly")
    if name != "pan-paper-synthtext-pretrain":
        assert post["min_score"] == _number(r"min_score ([\d.]+)", src)
        assert r["epochs"] == _number(r"(\d+) epochs", src)
    else:
        assert r["epochs"] == _number(r"(\d+) epoch of SynthText", src)
    assert r["optimizer"]["name"] == "adam" and "Adam lr 1e-3" in src
    assert r["optimizer"]["weight_decay"] == 0.0 and "no weight decay" in src
    assert r["batch_size"] == _number(r"batch (\d+)", src)
    assert r["schedule"]["by"] == "step" and "per iteration" in src
    # The authors count 16 input pixels on the label map resized to the
    # input: one pixel of the 1/4 map.
    assert post["min_area"] * 16 == _number(r"min_area (\d+) input pixels", src)
    jitter = next(a for a in r["train"]["augment"] if a["name"] == "pan_scale_jitter")
    assert jitter["long_side"] is None and "no long-side cap" in src
    # The authors' order: geometry on uint8, colour jitter on the crop.
    names = [a["name"] for a in r["train"]["augment"]]
    assert names[-2:] == ["pan_crop_instances", "color_jitter"]
    assert r["train"]["normalize_at"] == "end" and "normalize_at end" in src


FCE_PAPER = [n for p, n in PAPER if p == "fcenet" and n.startswith("fce-paper-")]


@pytest.mark.parametrize("name", FCE_PAPER)
def test_fcenet_paper_values_are_what_the_source_says(name: str) -> None:
    r = get_detector("fcenet").recipes[name]
    src = r["source"]
    opt, post = r["optimizer"], r["postprocess"]
    assert opt["name"] == "sgd"
    assert opt["lr"] == _number(r"SGD lr ([\d.e-]+),", src)
    assert opt["momentum"] == _number(r"momentum ([\d.]+)", src)
    assert opt["weight_decay"] == _number(r"wd ([\d.e-]+)", src)
    assert r["epochs"] == _number(r"(\d+) epochs", src)
    assert r["batch_size"] == _number(r"batch (\d+)", src)
    long_side, short_side = (
        _number(r"test \((\d+), \d+\)", src),
        _number(r"test \(\d+, (\d+)\)", src),
    )
    assert (r["test"]["long_side"], r["test"]["short_side"]) == (long_side, short_side)
    assert post["output"] in src.split("FCEPostprocessor ")[1][:5]
    assert post["alpha"] == _number(r"alpha ([\d.]+)", src)
    assert post["beta"] == _number(r"beta ([\d.]+)", src)
    assert post["score_thr"] == _number(r"score ([\d.]+)", src)
    assert post["nms_thr"] == _number(r"NMS ([\d.]+)", src)
    assert ("resnet50-dcn-g2" in src) == (r["model"]["backbone"] == "resnet50-dcn-g2")
    assert "pretrain_recipe" not in r  # FCENet: ImageNet weights, no SynthText


TCM_PRETRAIN = [(p, n) for p, n in PAPER if n.startswith("tcm-pretrain")]


@pytest.mark.parametrize(
    ("plugin", "name"), TCM_PRETRAIN, ids=[f"{p}:{n}" for p, n in TCM_PRETRAIN]
)
def test_tcm_pretrain_values_are_what_the_source_says(plugin: str, name: str) -> None:
    r = get_detector(plugin).recipes[name]
    src = r["source"]
    assert r["epochs"] == 20 and "20 epochs" in src
    assert r["batch_size"] == _number(r"(\d+) images per GPU", src)
    assert (r["optimizer"]["name"], r["optimizer"]["lr"]) == ("ranger", 1e-3)
    assert re.search(r"Ranger (lr )?1e-3", src) and r["optimizer"]["weight_decay"] == 0.0
    assert r["optimizer"]["no_decay"] == ["norm"] and "only 'norm' exempt" in src
    assert r["schedule"] == {**r["schedule"], "by": "epoch", "power": 0.9, "min_lr": 1e-7}
    assert r["tcm"]["context_length"] == _number(r"(\d+) learnable context tokens", src)
    # SynthText (or Synth150k) + the three real training sets.
    assert r["extra_train_datasets"] == ["icdar2015", "ctw1500", "totaltext"]
    assert "IC15, CTW1500 and Total-Text training sets" in src
    for official in ("pretrain", "official TCM"):
        assert official in src


# ------------------------------------- DBNet post-processing parameters


def _l_map() -> np.ndarray:
    """An L-shaped text region (probability 0.9) on a 0.0 background: its
    minimum-area rectangle is half background."""
    prob = np.zeros((120, 120), np.float32)
    prob[20:100, 20:45] = 0.9
    prob[75:100, 20:100] = 0.9
    return prob


def _db(**params: Any) -> Any:
    from tcmbench_dbnet.model import build_postprocessor

    return build_postprocessor(params)


def _scores(post: Any, prob: np.ndarray) -> list[float]:
    return [p.score for p in post.process_map(prob, {})]


def test_polygon_score_sees_the_l_where_the_rectangle_score_sees_background() -> None:
    prob = _l_map()
    (poly,) = _scores(_db(output="quad", min_score=0.0), prob)
    (rect,) = _scores(_db(output="quad", min_score=0.0, score_mode="fast"), prob)
    assert poly == pytest.approx(0.9, abs=0.01)
    assert rect < 0.7 * poly  # the rectangle averages in the empty corner
    # So a threshold between them keeps the L only when scored on its polygon.
    assert len(_scores(_db(output="quad", min_score=0.8), prob)) == 1
    assert _scores(_db(output="quad", min_score=0.8, score_mode="fast"), prob) == []


def test_epsilon_ratio_simplifies_curved_contours() -> None:
    prob = np.zeros((200, 200), np.float32)
    cv2.ellipse(prob, (100, 100), (80, 40), 20, 200, 340, 0.9, thickness=18)
    counts = []
    for eps in (0.0, 0.002, 0.01, 0.05):
        (pred,) = _db(output="poly", epsilon_ratio=eps, min_score=0.0).process_map(prob, {})
        counts.append(len(pred.polygon))
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1], counts


def test_min_points_drops_triangles() -> None:
    prob = np.zeros((100, 100), np.float32)
    cv2.fillPoly(prob, [np.array([[10, 10], [80, 10], [10, 80]], dtype=np.int32)], 0.9)
    keep = _db(output="poly", epsilon_ratio=0.02, min_points=3)
    assert len(keep.process_map(prob, {})) == 1
    assert _db(output="poly", epsilon_ratio=0.02, min_points=4).process_map(prob, {}) == []


def test_min_size_drops_small_boxes_and_keeps_large_ones() -> None:
    prob = np.zeros((100, 100), np.float32)
    prob[10:15, 10:15] = 0.9  # 5 x 5 pixels: a contour 4 pixels wide
    prob[40:80, 20:90] = 0.9
    assert len(_db(min_size=3).process_map(prob, {})) == 2
    (big,) = _db(min_size=6).process_map(prob, {})
    assert np.ptp(big.polygon[:, 0]) > 60


def test_min_size_unclipped_tests_the_grown_box_only() -> None:
    prob = np.zeros((100, 100), np.float32)
    prob[10:12, 10:60] = 0.9  # a 2-pixel line: thinner than min_size 3 before unclipping
    prob[40:80, 20:90] = 0.9
    # Default: min_size 3 before unclipping drops the line.
    assert len(_db().process_map(prob, {})) == 1
    # mmocr's min_text_width semantics: no test before, one after unclipping.
    assert len(_db(min_size=0, min_size_unclipped=2).process_map(prob, {})) == 2
    assert len(_db(min_size=0, min_size_unclipped=30).process_map(prob, {})) == 1
    # None keeps the DBNet code's min_size + 2.
    assert _db(min_size=4).unclipped_size == 6.0
    with pytest.raises(Exception, match="min_size_unclipped"):
        _db(min_size_unclipped=-1)
    with pytest.raises(Exception, match="min_points"):
        _db(min_points=2)


def test_all_contours_adds_the_outline_of_a_hole() -> None:
    prob = np.zeros((120, 120), np.float32)
    prob[10:110, 10:110] = 0.9
    prob[40:80, 40:80] = 0.0
    outer = _db(min_score=0.0).process_map(prob, {})
    every = _db(min_score=0.0, all_contours=True).process_map(prob, {})
    assert len(outer) == 1 and len(every) == 2


def test_pan_paper_min_area_counts_input_pixels() -> None:
    """pan_pp's min_area 16 counts pixels of the label map resized to the
    input: a 2 x 2 word on the 1/4 map (64 input pixels) survives the paper
    recipe and falls under mmocr's 16 map pixels."""
    from tcmbench_pan.postprocess import PANPostprocessor

    text = np.full((1, 1, 32, 32), -10.0, np.float32)
    text[0, 0, 10:12, 10:12] = 10.0
    outputs = {
        "text_logits": text,
        "kernel_logits": text.copy(),
        "embedding": np.zeros((1, 4, 32, 32), np.float32),
    }
    meta = [{"orig_size": (128, 128)}]
    spec = get_detector("pan")
    paper = PANPostprocessor().with_params(**spec.recipes["pan-paper-icdar2015"]["postprocess"])
    mmocr = PANPostprocessor().with_params(**spec.recipes["icdar2015"]["postprocess"])
    assert len(paper(outputs, meta)[0]) == 1
    assert mmocr(outputs, meta)[0] == []


def test_recipes_module_docstrings_name_every_family() -> None:
    """docs and the recipe modules describe the same families."""
    for plugin, prefix in (("dbnet", "dbnet-paper"), ("pan", "pan-paper"), ("fcenet", "fce-paper")):
        doc = (REPO / "docs" / f"{plugin}.md").read_text()
        assert f"`{prefix}-" in doc and "`tcm-pretrain`" in doc
        module = Path(REPO / "plugins" / f"tcmbench_{plugin}" / "recipes.py").read_text()
        assert f"``{prefix}-*``" in module and "``tcm-pretrain``" in module
