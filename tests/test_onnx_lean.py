"""The onnxruntime path is lean: ``evaluate`` and ``predict`` with
``--plugin onnx`` never import torch (nor torchvision, open_clip).

Each command runs in a fresh child process, exactly as a user runs it
(``python -m tcmbench ...``); at exit the child writes the names of the
heavy modules it imported. A tiny DB-family ONNX model built here (one
1 x 1 convolution and a sigmoid: dark pixels are text) keeps the check
independent of the shared data; the real PP-OCRv3 model runs it once more
on a TD500 photo (``realdata``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import shared_file
from tiny_data import make_ic15_folder

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

HEAVY = ("torch", "torchvision", "open_clip")

#: The child: run the CLI as ``python -m tcmbench`` does and, however it
#: ends, write the heavy modules it imported to the file named first.
CHILD = f"""
import atexit, json, runpy, sys
out, args = sys.argv[1], sys.argv[2:]
heavy = {HEAVY!r}

def report():
    found = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    with open(out, "w") as f:
        json.dump(found, f)

atexit.register(report)
sys.argv = ["tcmbench", *args]
runpy.run_module("tcmbench", run_name="__main__", alter_sys=True)
"""


def _tiny_db_model(folder: Path) -> Path:
    """A DB-family ONNX detector with its config beside it: probability
    ``sigmoid(10 - gray / 10)``, so the dark words of the tiny IC15 images
    (gray 20) are text and their background (gray 210) is not."""
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [-1 / 30] * 3)
    bias = helper.make_tensor("b", TensorProto.FLOAT, [1], [10.0])
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["images", "w", "b"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["prob"]),
        ],
        "tiny-db",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.onnx"
    onnx.save(model, str(path))
    config = {
        "format": "tcmbench-onnx",
        "version": 1,
        "input": {"channel_order": "bgr", "mean": [0, 0, 0], "std": [1, 1, 1]},
        "resize": {"rule": "limit_side", "limit_side_len": 960, "limit_type": "max"},
        "postprocessor": "db",
        "postprocess": {"mask_thr": 0.5, "min_score": 0.5, "unclip_ratio": 0.5},
    }
    (folder / "tiny.tcmbench.json").write_text(json.dumps(config))
    return path


def _heavy_modules(tmp_path: Path, args: list[str]) -> tuple[list[str], str]:
    """(heavy modules imported, stderr) of ``tcmbench ARGS`` in a child."""
    report = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(report), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(report.read_text()), run.stderr


def test_evaluate_and_predict_with_an_onnx_model_import_no_torch(tmp_path: Path) -> None:
    model = _tiny_db_model(tmp_path / "model")
    data = make_ic15_folder(tmp_path / "ic15", n_train=0, n_test=2, size=96)
    result = tmp_path / "result.json"
    heavy, _ = _heavy_modules(
        tmp_path,
        [
            "evaluate",
            "--plugin",
            "onnx",
            "--weights",
            str(model),
            "--dataset",
            "icdar2015",
            "--data-root",
            str(data),
            "--no-cache",
            "--no-progress",
            "--json",
            str(result),
        ],
    )
    assert heavy == []
    doc = json.loads(result.read_text())
    assert doc["runtime"] == "onnxruntime" and doc["images"] == 2
    assert doc["hmean"] > 0.5  # the dark words are found: the run did real work
    out = tmp_path / "preds"
    heavy, _ = _heavy_modules(
        tmp_path,
        [
            "predict",
            str(data / "test_images"),
            "--plugin",
            "onnx",
            "--weights",
            str(model),
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert heavy == []
    images = json.loads((out / "predictions.json").read_text())["images"]
    assert len(images) == 2 and all(image["predictions"] for image in images)


def _tiny_dbnet_checkpoint(folder: Path) -> Path:
    """A DBNet checkpoint (MobileNetV3-small, 16-channel neck, random
    weights) whose recipe thresholds the map at 0: every image yields one
    region, so a run that post-processes nothing cannot pass for one
    that works."""
    torch = pytest.importorskip("torch")
    from tcmbench.contract.registry import get_detector, get_plugin_manager
    from tcmbench.contract.spec import DetectorConfig
    from tcmbench.hub.checkpoints import save_checkpoint

    spec = get_detector("dbnet")
    config = DetectorConfig(backbone="mobilenetv3_small", options={"lateral_channels": 16})
    torch.manual_seed(0)
    model = get_plugin_manager().hook.build_detector(spec=spec, config=config)
    recipe = spec.recipe("synthtext-mini")
    recipe["postprocess"] = {"mask_thr": 0.0, "min_score": 0.0}
    return save_checkpoint(folder, model, spec, config, recipe=recipe)


def test_runtime_onnxruntime_on_an_exported_checkpoint_imports_no_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--plugin dbnet --runtime onnxruntime --weights CHECKPOINT``: the
    first run exports the checkpoint (torch allowed, here in-process); once
    the export is cached, evaluate and predict in fresh processes import no
    torch, and post-process exactly as the first run did (the postprocessor
    built by the spec's torch-free ``build_postprocess``)."""
    from tcmbench.cli import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("TCMBENCH_CACHE", str(cache))  # inherited by the children
    weights = _tiny_dbnet_checkpoint(tmp_path / "ckpt")
    data = make_ic15_folder(tmp_path / "ic15", n_train=0, n_test=2, size=64)

    def evaluate(run: str) -> list[str]:
        return [
            "evaluate",
            "--plugin",
            "dbnet",
            "--runtime",
            "onnxruntime",
            "--weights",
            str(weights),
            "--dataset",
            "icdar2015",
            "--data-root",
            str(data),
            "--no-cache",
            "--no-progress",
            "--json",
            str(tmp_path / f"{run}.json"),
            "--save-predictions",
            str(tmp_path / run),
        ]

    assert not cache.exists()
    try:
        main(evaluate("first"))
    except SystemExit as exc:  # click's standalone mode
        assert not exc.code, exc.code
    assert len(list((cache / "onnx").glob("*/model.onnx"))) == 1  # exported, cached
    heavy, _ = _heavy_modules(tmp_path, evaluate("second"))
    assert heavy == []
    first, second = (json.loads((tmp_path / f"{r}.json").read_text()) for r in ("first", "second"))
    assert second["runtime"] == "onnxruntime" and second["images"] == 2
    assert {k: second[k] for k in ("precision", "recall", "hmean")} == {
        k: first[k] for k in ("precision", "recall", "hmean")
    }
    found = [
        json.loads((tmp_path / r / "predictions.json").read_text())["predictions"]
        for r in ("first", "second")
    ]
    assert found[0] == found[1] and all(found[1].values())  # one region per image, same
    out = tmp_path / "preds"
    heavy, _ = _heavy_modules(
        tmp_path,
        [
            "predict",
            str(data / "test_images"),
            "--plugin",
            "dbnet",
            "--runtime",
            "onnxruntime",
            "--weights",
            str(weights),
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert heavy == []
    images = json.loads((out / "predictions.json").read_text())["images"]
    assert len(images) == 2 and all(image["predictions"] for image in images)


@pytest.mark.slow  # a PyTorch start-up in a child: about 5 s on 2 cores
def test_the_child_would_see_torch_if_it_were_imported(tmp_path: Path) -> None:
    """The check itself can fail: the PyTorch path of the same command
    reports torch."""
    pytest.importorskip("torch")
    heavy, _ = _heavy_modules(tmp_path, ["bench", "--plugin", "dbnet", "--help"])
    assert heavy == []  # --help alone stays torch-free
    data = make_ic15_folder(tmp_path / "ic15", n_train=0, n_test=1, size=64)
    heavy, _ = _heavy_modules(
        tmp_path,
        [
            "evaluate",
            "--plugin",
            "dbnet",
            "--dataset",
            "icdar2015",
            "--data-root",
            str(data),
            "--no-cache",
            "--no-progress",
            "--weights",
            str(_dbnet_weights()),
        ],
    )
    assert "torch" in heavy


def _dbnet_weights() -> Path:
    from tcmbench.contract import registry as plugins
    from tcmbench.hub.checkpoints import embedded_weights

    folder = embedded_weights(plugins.get_detector("dbnet"))
    assert folder is not None
    return folder


@pytest.mark.realdata
def test_ppocr_on_a_td500_photo_imports_no_torch(tmp_path: Path) -> None:
    model = shared_file("models/ch_PP-OCRv3_det_infer.onnx")
    photo = shared_file("msra-td500/test/IMG_0059.JPG")
    out = tmp_path / "preds"
    heavy, _ = _heavy_modules(
        tmp_path,
        ["predict", str(photo), "--plugin", "onnx", "--weights", str(model), "--out", str(out)],
    )
    assert heavy == []
    (image,) = json.loads((out / "predictions.json").read_text())["images"]
    assert len(image["predictions"]) >= 1
    assert np.isfinite(np.array([p["polygon"] for p in image["predictions"]], float)).all()


# --------------------------------------------------------------------------- one-pass input


def _separate_passes(image: np.ndarray, pre: Any, bgr_model: bool) -> np.ndarray:
    """The input as the step-by-step formula gives it: flip, cast, scale,
    subtract, divide, transpose (what pre-processing did before)."""
    x = image[..., ::-1] if bgr_model else image
    x = x.astype(np.float32)
    if pre.pixel_range == 1.0:
        x = x * np.float32(1 / 255)
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@pytest.mark.parametrize(
    "config",
    [
        {
            "channel_order": "bgr",
            "pixel_range": 1.0,
            "mean": (0.485, 0.456, 0.406),
            "std": (0.229, 0.224, 0.225),
            "rule": "limit_side",
            "limit_side_len": 64,
        },
        {
            "channel_order": "rgb",
            "pixel_range": 255.0,
            "mean": (123.675, 116.28, 103.53),
            "std": (58.395, 57.12, 57.375),
            "rule": "keep_ratio",
            "long_side": 100,
            "short_side": 70,
            "pad_divisor": 32,
        },
    ],
    ids=["ppocr-bgr", "tcmbench-rgb-padded"],
)
def test_one_pass_input_equals_the_separate_passes_bit_for_bit(
    config: dict[str, Any], tmp_path: Path
) -> None:
    import cv2

    from tcmbench.inference.preprocess import OnnxPreprocessor, Preprocess

    pre = Preprocess(**config)
    transform = OnnxPreprocessor(pre)
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (90, 131, 3), dtype=np.uint8)
    x, (sx, sy) = transform(rgb)
    nh, nw = transform.size_for(90, 131)
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    expected = _separate_passes(resized, pre, pre.channel_order == "bgr")
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert np.array_equal(x[:, :nh, :nw], expected)  # bit for bit, not within a tolerance
    assert not x[:, nh:, :].any() and not x[:, :, nw:].any()  # keep_ratio's zero padding
    assert (sx, sy) == (nw / 131, nh / 90)
    # decoded by the preprocessor itself (BGR for a BGR model): the same input
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), rgb[..., ::-1])
    image, order = transform.decode(path, "photo")
    assert order == pre.channel_order
    decoded, _ = transform(image, order=order)
    assert np.array_equal(decoded, x)


def test_an_unreadable_photo_is_one_line_with_reading_ahead(tmp_path: Path) -> None:
    """The onnxruntime path reads the next photo in a helper thread; a
    broken one still stops the run with the error naming it, in order."""
    from tcmbench.contract.registry import get_detector
    from tcmbench.data.schema import Sample
    from tcmbench.errors import ImageReadError
    from tcmbench.inference import predict_samples
    from tcmbench.inference.loading import load_for_inference

    model = _tiny_db_model(tmp_path / "model")
    data = make_ic15_folder(tmp_path / "ic15", n_train=0, n_test=3, size=64)
    broken = data / "test_images" / "img_3.png"
    broken.write_bytes(b"not a png")
    samples = [
        Sample(f"img_{i}", str(data / "test_images" / f"img_{i}.png"), 64, 64) for i in (1, 2, 3)
    ]
    ckpt = load_for_inference(str(model), spec=get_detector("onnx"))
    timings: dict[str, float] = {}
    preds = predict_samples(
        ckpt.model, samples[:2], ckpt.meta["recipe"], "cpu", progress=False, timings=timings
    )
    assert all(preds[s.id] for s in samples[:2]) and set(timings) >= {"read", "network"}
    with pytest.raises(ImageReadError, match=r"img_3\.png"):
        predict_samples(ckpt.model, samples, ckpt.meta["recipe"], "cpu", progress=False)
