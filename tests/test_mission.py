"""The mission's command end to end:

    tcmbench evaluate --plugin dbnet --tcm --dataset nighttime-art --weights W

on a tiny fixture laid out like the authors' NightTime-ArT archive
(``Text_at_Night/test_images`` + ``test_gts/gt_jsons/instances_all_test.json``)
with a TCM-DBNet checkpoint of random CLIP weights written by the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "plugins" / "tcmbench_dbnet" / "weights"
MISSION = ["evaluate", "--plugin", "dbnet", "--tcm", "--dataset", "nighttime-art"]


def _write_nighttime_art(root: Path) -> int:
    """Two night images from the synthetic generator, annotated in the
    authors' mmocr 0.x COCO-style JSON; returns the number of care instances."""
    from tcmbench.data.synthetic.generate import synthesize

    images_dir = root / "Text_at_Night" / "test_images"
    gts_dir = root / "Text_at_Night" / "test_gts" / "gt_jsons"
    images_dir.mkdir(parents=True)
    gts_dir.mkdir(parents=True)
    coco: dict = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "text"}]}
    care = 0
    index = 0
    while len(coco["images"]) < 2:
        synth = synthesize(7, "test", index)
        index += 1
        if not synth.night:
            continue
        image_id = len(coco["images"]) + 1
        name = f"night_{image_id}.jpg"
        Image.fromarray(synth.pixels).save(images_dir / name, quality=95)
        h, w = synth.pixels.shape[:2]
        coco["images"].append({"id": image_id, "file_name": name, "height": h, "width": w})
        for inst in synth.instances:
            poly = inst.polygon.astype(float)
            x0, y0 = poly.min(axis=0)
            x1, y1 = poly.max(axis=0)
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "segmentation": [poly.reshape(-1).tolist()],
                    "iscrowd": int(inst.ignore),
                    "area": float((x1 - x0) * (y1 - y0)),
                }
            )
            care += not inst.ignore
    (gts_dir / "instances_all_test.json").write_text(json.dumps(coco))
    return care


@pytest.mark.slow
def test_evaluate_tcm_on_the_nighttime_art_layout(tmp_path: Path) -> None:
    import torch

    from tcmbench.contract.registry import get_detector, get_plugin_manager
    from tcmbench.contract.spec import DetectorConfig, TCMConfig
    from tcmbench.hub import checkpoints as hub

    care = _write_nighttime_art(tmp_path / "data")
    torch.manual_seed(0)
    spec = get_detector("dbnet")
    config = DetectorConfig(backbone="resnet50", tcm=TCMConfig(clip_pretrained=None))
    model = get_plugin_manager().hook.build_detector(spec=spec, config=config)
    weights = hub.save_checkpoint(
        tmp_path / "tcm-dbnet", model, spec, config, recipe=spec.recipe("default")
    )
    del model

    out = tmp_path / "result.json"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    cmd = [
        sys.executable,
        "-m",
        "tcmbench",
        "evaluate",
        "--plugin",
        "dbnet",
        "--tcm",
        "--dataset",
        "nighttime-art",
        "--weights",
        str(weights),
        "--data-root",
        str(tmp_path / "data"),
        "--json",
        str(out),
        "--no-cache",
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| nighttime-art |" in done.stdout
    # The table's header says what ran: the TCM state is the checkpoint's.
    header = done.stdout.splitlines()[0]
    assert header.startswith("model: plugin dbnet, TCM on (from the checkpoint)"), header
    assert f"weights {weights}" in header
    result = json.loads(out.read_text())
    assert result["tcm"] is True and result["plugin"] == "dbnet"
    assert result["dataset"] == "nighttime-art" and result["images"] == 2
    assert result["protocol"] == "ctw1500-iou"
    for key in ("precision", "recall", "hmean"):
        assert 0.0 <= result[key] <= 1.0
    assert result["num_gt_care"] == care

    # predict --tcm --show-prompts on the same checkpoint: drawn detections,
    # the JSON, and the [image | image embedding | visual prompt] panel.
    image = next((tmp_path / "data" / "Text_at_Night" / "test_images").glob("*.jpg"))
    pred_out = tmp_path / "pred"
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcmbench",
            "predict",
            str(image),
            "--plugin",
            "dbnet",
            "--tcm",
            "--weights",
            str(weights),
            "--out",
            str(pred_out),
            "--show-prompts",
        ],
        check=False,  # the test reads the exit status
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    panel = Image.open(pred_out / f"{image.stem}_prompts.png")
    original = Image.open(image)
    assert (
        panel.width >= 2 * original.width * panel.height // original.height
    )  # >= 2 panels side by side
    assert np.asarray(panel).std() > 0
    assert (pred_out / f"{image.stem}.png").is_file()
    listed = json.loads((pred_out / "predictions.json").read_text())
    assert json.dumps(listed).count(image.stem) >= 1

    # --tcm with a plain DBNet checkpoint is refused with a clear message
    # (the architecture comes from the checkpoint; --tcm insists on TCM).
    plain_config = DetectorConfig(backbone="mobilenetv3_small")
    plain_model = get_plugin_manager().hook.build_detector(spec=spec, config=plain_config)
    plain_weights = hub.save_checkpoint(tmp_path / "plain", plain_model, spec, plain_config)
    cmd[cmd.index(str(weights))] = str(plain_weights)
    refused = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "drop --tcm" in refused.stderr

    # ... and, the other way round, the TCM checkpoint without --tcm too.
    cmd[cmd.index(str(plain_weights))] = str(weights)
    cmd.remove("--tcm")
    refused = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "is a TCM checkpoint; add --tcm" in refused.stderr


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from tcmbench.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _empty_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No dataset anywhere: an empty cache and no $TCMBENCH_DATA."""
    monkeypatch.setenv("TCMBENCH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("TCMBENCH_DATA", raising=False)


def _says_how_to_get_tcm_weights(err: str) -> None:
    assert "tcmbench train --plugin dbnet --tcm --dataset nighttime-art" in err
    assert "tcmbench tcm convert-clip" in err and "open_clip" in err
    assert "tcmbench import tcm-official CKPT.pth --plugin dbnet --out DIR" in err
    assert "--weights hf://ORG/NAME (an example name" in err
    # The shipped weights are plain: --tcm would refuse them, so never offered.
    assert "tcmbench_dbnet/weights" not in err and str(SHIPPED) not in err


def test_the_mission_command_lists_everything_missing_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No data and no weights: one message naming the dataset with its
    prepare command and the three ways to get a TCM checkpoint, said
    before torch is imported (so before any model is built)."""
    _empty_data_env(tmp_path, monkeypatch)
    probe = (
        "import sys\n"
        "from tcmbench.cli import main\n"
        "try:\n"
        f"    main({MISSION!r})\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["exit", "2", "False"], done.stdout + done.stderr
    err = done.stderr
    assert err.count("Error:") == 1 and "Traceback" not in err
    assert "dataset 'nighttime-art' not found" in err
    assert "tcmbench datasets prepare nighttime-art --from" in err
    _says_how_to_get_tcm_weights(err)


def test_the_mission_command_with_the_shipped_plain_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--tcm with a plain checkpoint and no data: both problems in one
    message, the checkpoint's named as plain, with the ways to a TCM one."""
    _empty_data_env(tmp_path, monkeypatch)
    code, _, err = _cli([*MISSION, "--weights", str(SHIPPED)], capsys)
    assert code == 2 and err.count("Error:") == 1 and "Traceback" not in err
    assert "tcmbench datasets prepare nighttime-art" in err
    assert f"--weights {SHIPPED} is a plain (non-TCM) checkpoint" in err
    assert "tcmbench import tcm-official" in err and "hf://ORG/NAME" in err


def test_only_the_weights_missing_is_said_with_the_data_present(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the data in place only the weights are asked for (the data
    item is not listed), with the same three ways."""
    _write_nighttime_art(tmp_path / "data")
    code, _, err = _cli([*MISSION, "--data-root", str(tmp_path / "data")], capsys)
    assert code == 2 and "Traceback" not in err
    assert "the dataset:" not in err and "tcmbench datasets prepare" not in err
    _says_how_to_get_tcm_weights(err)


def test_a_tcm_checkpoint_without_tcm_is_refused_like_the_reverse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint whose TCM state differs from the flags is refused in
    both directions, each naming the flag to change, before its weights
    are read (the weights file here is empty)."""
    from tiny_data import make_ic15_folder

    from tcmbench.contract.spec import TCMConfig

    data = make_ic15_folder(tmp_path / "ic15", n_train=0, n_test=1)
    fake = tmp_path / "tcm-ckpt"
    fake.mkdir()
    meta = json.loads((SHIPPED / "config.json").read_text())
    meta["architecture"]["tcm"] = TCMConfig(clip_pretrained=None).to_dict()
    (fake / "config.json").write_text(json.dumps(meta))
    (fake / "model.safetensors").write_bytes(b"")
    base = ["evaluate", "--plugin", "dbnet", "--dataset", "icdar2015", "--data-root", str(data)]
    base += ["--device", "cpu", "--no-progress"]
    code, _, err = _cli([*base, "--weights", str(fake)], capsys)
    assert code == 2 and "Traceback" not in err
    assert "is a TCM checkpoint; add --tcm" in err
    code, _, err = _cli([*base, "--tcm", "--weights", str(SHIPPED)], capsys)
    assert code == 2 and "Traceback" not in err
    assert "is a plain (non-TCM) checkpoint; drop --tcm" in err


def test_a_plain_run_lists_a_missing_dataset_and_weights_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --tcm too: a --weights path that does not exist and the
    missing dataset come in one message, before any model is built."""
    _empty_data_env(tmp_path, monkeypatch)
    gone = tmp_path / "no-such-checkpoint"
    args = ["evaluate", "--plugin", "dbnet", "--dataset", "nighttime-art", "--weights", str(gone)]
    code, _, err = _cli(args, capsys)
    assert code == 2 and err.count("Error:") == 1 and "Traceback" not in err
    assert "1. the dataset: dataset 'nighttime-art' not found" in err
    assert f"2. the weights: --weights {gone}: not found" in err
    assert "hf://ORG/NAME" not in err  # the TCM ways are for --tcm runs


@pytest.mark.slow
def test_following_the_message_reaches_a_running_evaluate_tcm(tmp_path: Path) -> None:
    """A new user's path, taken literally: the mission command with no
    data and no weights; then the message's own commands (the tiny
    NightTime-ArT grid's TCM cell, run from the current folder), the
    prepared data, and the mission command again with the weights the
    message named: it runs as TCM and prints its table."""
    import re
    import shlex

    # Datasets the user prepares go to this test's own folder; the session
    # cache keeps only the generated synthtext-mini.
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", TCMBENCH_DATA=str(tmp_path / "data"))
    tcmbench = [sys.executable, "-m", "tcmbench"]

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*tcmbench, *args],
            check=False,  # the test reads the exit status
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=600,
        )

    first = run(MISSION)
    assert first.returncode == 2 and first.stderr.count("Error:") == 1, first.stderr
    hint = first.stderr[first.stderr.index("Or, to see the command run first") :]
    grid_cmd = re.search(r"`tcmbench (experiment run [^`]+)`", hint)
    weights = re.search(r"--weights (\S+) \(a random CLIP encoder", hint)
    prepare = re.search(
        r"`tcmbench (datasets prepare nighttime-art --from) ARCHIVE_OR_DIR`", first.stderr
    )
    assert grid_cmd and weights and prepare, first.stderr

    trained = run([*shlex.split(grid_cmd.group(1)), "--no-progress"])
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / weights.group(1) / "config.json").is_file()

    # The archive a user downloads, laid out as the authors ship it.
    _write_nighttime_art(tmp_path / "archive")
    prepared = run([*shlex.split(prepare.group(1)), str(tmp_path / "archive")])
    assert prepared.returncode == 0, prepared.stderr[-3000:]

    done = run([*MISSION, "--weights", weights.group(1), "--no-progress"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("model: plugin dbnet, TCM on (from the checkpoint)"), done.stdout
    assert "| nighttime-art | test |" in done.stdout
    assert (tmp_path / "data" / "nighttime-art").is_dir()
    # The 4-step checkpoint is said to be a pipeline check, not a detector.
    assert "come from a run too short to learn" in done.stderr, done.stderr
