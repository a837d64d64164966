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

pytestmark = pytest.mark.slow


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
    result = json.loads(out.read_text())
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
