"""``tcmbench predict``: PNGs and predictions.json on tiny generated images,
polygons mapped back to original pixels, batching, and the bad-input
messages (unreadable / unsupported images, --show-prompts without --tcm,
CUDA without CUDA, missing default weights)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tiny_data import THRESHOLD_SPEC

from tcmbench.cli import main
from tcmbench.contract import registry as plugins
from tcmbench.contract.hookspecs import hookimpl
from tcmbench.contract.spec import DetectorConfig
from tcmbench.data.archives import sha256_file
from tcmbench.hub import checkpoints as hub
from tcmbench.report.visualize import PRED_COLOUR

# (height, width) of the two generated test images: different sizes and
# aspect ratios, both resized (up and down) by the test scale below.
SIZES = {"wide": (120, 200), "tall": (90, 70)}
TEST_SCALE = {"long_side": 96, "short_side": 64, "pad_divisor": 32}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The real entry point in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = int(main(list(argv)) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def full_map_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real DBNet (MobileNetV3 backbone) whose probability head is set to
    a constant ~1: the whole image is one text region, so the single
    expected quad is the image border in original pixels -- whatever the
    resize the test scale applied."""
    torch.manual_seed(0)
    spec = plugins.get_detector("dbnet")
    config = DetectorConfig(backbone="mobilenetv3_small")
    model = plugins.get_plugin_manager().hook.build_detector(spec=spec, config=config)
    last = model.head.prob_branch[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(10.0)
    recipe = spec.recipe("synthtext-mini")
    recipe["test"] = dict(TEST_SCALE)
    return hub.save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "dbnet", model, spec, config, recipe=recipe
    )


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "wide.png"), np.full((*SIZES["wide"], 3), 128, np.uint8))
    cv2.imwrite(str(folder / "tall.jpg"), np.full((*SIZES["tall"], 3), 60, np.uint8))
    (folder / "notes.txt").write_text("not an image, skipped in a folder\n")
    return folder


def test_predict_writes_pngs_and_json(
    full_map_ckpt: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, _, err = run(
        capsys,
        "predict",
        str(images),
        "--plugin",
        "dbnet",
        "--weights",
        str(full_map_ckpt),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json", "tall.png", "wide.png"]
    doc = json.loads((out / "predictions.json").read_text())
    assert doc["plugin"] == "dbnet" and doc["tcm"] is False
    assert doc["checkpoint_sha256"] == sha256_file(full_map_ckpt / "model.safetensors")
    assert doc["test"]["test"] == TEST_SCALE
    records = {r["id"]: r for r in doc["images"]}
    assert sorted(records) == ["tall", "wide"]
    for sid, (h, w) in SIZES.items():
        rec = records[sid]
        assert Path(rec["file"]).parent == images
        assert (rec["height"], rec["width"]) == (h, w)
        assert len(rec["predictions"]) == 1
        pred = rec["predictions"][0]
        assert pred["score"] > 0.99
        poly = np.asarray(pred["polygon"])
        assert poly.shape == (4, 2)
        # The image border, in original pixels (clipped to the last pixel).
        assert poly[:, 0].min() == pytest.approx(0, abs=1.5) and poly[:, 0].max() == pytest.approx(
            w - 1, abs=1.5
        )
        assert poly[:, 1].min() == pytest.approx(0, abs=1.5) and poly[:, 1].max() == pytest.approx(
            h - 1, abs=1.5
        )
        drawn = cv2.cvtColor(cv2.imread(str(out / f"{sid}.png")), cv2.COLOR_BGR2RGB)
        assert drawn.shape[:2] == (h, w)
        red = np.all(np.abs(drawn.astype(int) - np.array(PRED_COLOUR)) < 40, axis=-1)
        assert red[:, :3].any() and red[:3, :].any(), "the polygon along the border is drawn in red"
    assert "2 image(s), 2 text region(s)" in err


class _ThresholdPlugin:
    @hookimpl
    def register_detectors(self, register):  # type: ignore[no-untyped-def]
        register(THRESHOLD_SPEC)


@pytest.fixture
def threshold_ckpt(tmp_path: Path) -> Iterator[Path]:
    pm = plugins.get_plugin_manager()
    p = _ThresholdPlugin()
    pm.register(p, name="tiny-predict-plugins")
    try:
        model = pm.hook.build_detector(spec=THRESHOLD_SPEC, config=DetectorConfig())
        yield hub.save_checkpoint(tmp_path / "threshold", model, THRESHOLD_SPEC, DetectorConfig())
    finally:
        pm.unregister(p)


def test_dark_boxes_found_exactly_whatever_the_batch(
    threshold_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fixed detector of dark rectangles: each drawn box comes back at its
    original-pixel position, with batch 1 and with a padded batch of two
    images of different sizes."""
    folder = tmp_path / "boxes"
    folder.mkdir()
    boxes = {
        "a": (64, 96, (10, 8, 50, 24)),
        "b": (80, 48, (4, 30, 40, 44)),
    }  # h, w, (x0, y0, x1, y1)
    for name, (h, w, (x0, y0, x1, y1)) in boxes.items():
        img = np.full((h, w, 3), 210, np.uint8)
        img[y0:y1, x0:x1] = 20
        cv2.imwrite(str(folder / f"{name}.png"), img)
    docs = []
    for batch in ("1", "2"):
        out = tmp_path / f"out{batch}"
        code, _, err = run(
            capsys,
            "predict",
            str(folder / "a.png"),
            str(folder / "b.png"),
            "--plugin",
            "tiny-threshold",
            "--weights",
            str(threshold_ckpt),
            "--out",
            str(out),
            "--batch-size",
            batch,
            "--device",
            "cpu",
            "--no-progress",
            "--no-draw",
        )
        assert code == 0, err
        assert not list(out.glob("*.png"))
        docs.append(json.loads((out / "predictions.json").read_text()))
        for rec in docs[-1]["images"]:
            h, w, (x0, y0, x1, y1) = boxes[rec["id"]]
            assert (rec["height"], rec["width"]) == (h, w)
            [pred] = rec["predictions"]
            poly = np.asarray(pred["polygon"])
            assert poly.min(axis=0) == pytest.approx([x0, y0], abs=1.0)
            assert poly.max(axis=0) == pytest.approx([x1, y1], abs=1.0)
    assert docs[0]["images"] == docs[1]["images"]


def test_unreadable_image_names_its_path(
    full_map_ckpt: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = images / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    code, _, err = run(
        capsys,
        "predict",
        str(images),
        "--weights",
        str(full_map_ckpt),
        "--out",
        str(tmp_path / "out"),
        "--device",
        "cpu",
        "--no-progress",
    )
    assert code == 2
    assert str(broken) in err and "cannot decode" in err
    assert "Traceback" not in err
    # --skip-unreadable: the others are predicted, the broken one listed.
    code, _, err = run(
        capsys,
        "predict",
        str(images),
        "--weights",
        str(full_map_ckpt),
        "--skip-unreadable",
        "--out",
        str(tmp_path / "out2"),
        "--device",
        "cpu",
        "--no-progress",
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "out2" / "predictions.json").read_text())
    assert sorted(r["id"] for r in doc["images"]) == ["tall", "wide"]
    assert [s["file"] for s in doc["skipped"]] == [str(broken)]


def test_unsupported_or_missing_inputs(
    full_map_ckpt: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    code, _, err = run(
        capsys,
        "predict",
        str(images / "notes.txt"),
        "--weights",
        str(full_map_ckpt),
        "--out",
        out,
        "--no-progress",
    )
    assert code == 2 and "notes.txt" in err and "unsupported image type" in err
    code, _, err = run(
        capsys,
        "predict",
        str(images / "nope.png"),
        "--weights",
        str(full_map_ckpt),
        "--out",
        out,
        "--no-progress",
    )
    assert code == 2 and "nope.png" in err and "not found" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "predict", str(empty), "--weights", str(full_map_ckpt), "--out", out)
    assert code == 2 and str(empty) in err and "no images" in err
    assert "Traceback" not in err


def test_show_prompts_needs_tcm(
    full_map_ckpt: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        "predict",
        str(images),
        "--weights",
        str(full_map_ckpt),
        "--show-prompts",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 2 and "--tcm" in err
    # --tcm with a plain checkpoint: refused by the checkpoint loader.
    code, _, err = run(
        capsys,
        "predict",
        str(images),
        "--weights",
        str(full_map_ckpt),
        "--tcm",
        "--show-prompts",
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    )
    assert code == 2 and "--tcm" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "predictions.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(
    full_map_ckpt: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        "predict",
        str(images),
        "--weights",
        str(full_map_ckpt),
        "--device",
        "cuda",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 2 and "CUDA" in err and "Traceback" not in err


def test_default_weights(images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --weights: the plugin's embedded checkpoint when it ships one,
    otherwise a message saying what to pass."""
    from tcmbench.hub.checkpoints import embedded_weights

    shipped = embedded_weights(plugins.get_detector("dbnet"))
    out = tmp_path / "out"
    code, _, err = run(
        capsys,
        "predict",
        str(images / "wide.png"),
        "--plugin",
        "dbnet",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    )
    if shipped is None:
        assert code == 2 and "ships no default weights" in err and "--weights" in err
    else:
        assert code == 0, err
        doc = json.loads((out / "predictions.json").read_text())
        assert doc["checkpoint_sha256"] == sha256_file(shipped / "model.safetensors")
        assert [r["id"] for r in doc["images"]] == ["wide"]


def test_output_folder_inside_input_is_not_read_back(
    threshold_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    for rel in ("x.png", "sub/y.png", "sub/x.png"):
        cv2.imwrite(str(folder / rel), np.full((32, 32, 3), 210, np.uint8))
    out = folder / "preds"
    for _ in range(2):  # the second run must not pick up the first run's PNGs
        code, _, err = run(
            capsys,
            "predict",
            str(folder),
            "--recursive",
            "--plugin",
            "tiny-threshold",
            "--weights",
            str(threshold_ckpt),
            "--out",
            str(out),
            "--no-progress",
        )
        assert code == 0, err
        doc = json.loads((out / "predictions.json").read_text())
        assert [
            (r["id"], Path(r["file"]).relative_to(folder).as_posix()) for r in doc["images"]
        ] == [("x", "sub/x.png"), ("y", "sub/y.png"), ("x_png", "x.png")]
    assert sorted(p.name for p in out.iterdir()) == [
        "predictions.json",
        "x.png",
        "x_png.png",
        "y.png",
    ]
