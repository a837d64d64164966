"""A checkpoint is evaluated the way it was trained.

The trap this guards: a DBNet fine-tuned on MSRA-TD500 with the
synthtext-mini recipe printed hmean 0.0000 under ``evaluate``, which applied
TD500's recipe (short side 736, mask_thr 0.08) instead of the checkpoint's,
while ``predict`` used the checkpoint's and found the text. Every command now
resolves the settings in one place (tcmbench/inference/settings.py) and says
where they came from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tiny_data import make_ic15_folder

from tcmbench.cli import main
from tcmbench.contract.registry import get_detector
from tcmbench.inference.settings import resolve_test_recipe

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "plugins" / "tcmbench_dbnet" / "weights"
# Settings no recipe of the plugin has, so their origin cannot be mistaken.
OWN_TEST = {"short_side": None, "long_side": 160, "pad_divisor": 32}
OWN_POST = {"mask_thr": 0.27, "min_score": 0.45}


def _run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def fine_tuned(tmp_path: Path) -> Path:
    """The shipped DBNet as a checkpoint that records its own test settings."""
    ckpt = tmp_path / "fine-tuned"
    shutil.copytree(SHIPPED, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config["recipe"]["test"] = dict(OWN_TEST)
    config["recipe"]["postprocess"] = {**config["recipe"]["postprocess"], **OWN_POST}
    (ckpt / "config.json").write_text(json.dumps(config))
    return ckpt


def _evaluate(
    ckpt: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str
) -> tuple[dict[str, Any], str]:
    out = tmp_path / "eval.json"
    code, out_text, err = _run(
        ["evaluate", "--plugin", "dbnet", "--weights", str(ckpt), "--dataset", "icdar2015"]
        + ["--data-root", str(data), "--json", str(out), "--no-progress", *extra],
        capsys,
    )
    assert code == 0, err
    # The table (stdout) is headed by the model that ran and where the test
    # settings came from.
    table = out_text.splitlines()
    assert table[0].startswith("model: plugin dbnet, TCM off (from the checkpoint), weights ")
    assert table[1].startswith("test settings from ") and table[2].startswith("| dataset |")
    return json.loads(out.read_text()), out_text + err


def test_evaluate_uses_the_checkpoints_settings_and_says_so(
    fine_tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=2)
    doc, err = _evaluate(fine_tuned, data, tmp_path, capsys)
    assert doc["test"]["test"] == OWN_TEST
    assert doc["test"]["postprocess"]["mask_thr"] == OWN_POST["mask_thr"]
    assert doc["test_settings_source"]["origin"] == "checkpoint"
    assert "test settings from the checkpoint's own recipe (config.json): long_side 160" in err
    # The dataset's recipe differs: the user is told how to get it.
    assert "pass --recipe icdar2015 to use them" in err

    # --recipe still overrides, with the checkpoint's normalisation.
    doc, err = _evaluate(fine_tuned, data, tmp_path, capsys, "--recipe", "icdar2015")
    ic15 = get_detector("dbnet").recipe("icdar2015")
    assert doc["test"]["test"] == ic15["test"]
    assert doc["test"]["postprocess"] == ic15["postprocess"]
    assert doc["test_settings_source"]["origin"] == "--recipe"
    assert "test settings from --recipe icdar2015" in err


def test_evaluate_and_predict_agree_on_a_checkpoints_settings(
    fine_tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=2)
    doc, _ = _evaluate(fine_tuned, data, tmp_path, capsys)
    out = tmp_path / "pred"
    code, _, err = _run(
        ["predict", str(data / "test_images"), "--plugin", "dbnet", "--weights", str(fine_tuned)]
        + ["--out", str(out), "--no-progress"],
        capsys,
    )
    assert code == 0, err
    predicted = json.loads((out / "predictions.json").read_text())
    assert predicted["test"] == doc["test"]
    assert predicted["test_settings_source"] == doc["test_settings_source"]


def test_the_dataset_recipe_applies_only_where_the_checkpoint_has_none() -> None:
    spec = get_detector("dbnet")
    trained = spec.recipe("synthtext-mini")
    own = resolve_test_recipe(spec, trained, None, "msra-td500")
    assert own.origin == "checkpoint" and own.recipe["test"] == trained["test"]
    # An old checkpoint without test settings: the dataset's recipe, with
    # the normalisation the checkpoint was trained with.
    bare = {"normalize": {"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0]}}
    theirs = resolve_test_recipe(spec, bare, None, "msra-td500")
    assert theirs.origin == "dataset"
    assert theirs.recipe["test"] == spec.recipe("msra-td500")["test"]
    assert theirs.recipe["normalize"] == bare["normalize"]
    # No dataset (predict, bench): the plugin's default recipe.
    assert resolve_test_recipe(spec, None, None).origin == "plugin-default"
