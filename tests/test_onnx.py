"""The onnx plugin: model configs, PaddleOCR's pre-processing rule, export
of tcmbench checkpoints with parity against PyTorch, ``--runtime
onnxruntime``, the evaluate / predict commands on real models and images,
the missing-extra message, and the warning on synthetic default weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_file
from tcmbench_onnx.config import (
    OnnxConfigError,
    builtin_document,
    locate,
    parse_config,
    read_config_file,
)
from tiny_data import make_ic15_folder

from tcmbench.cli import main
from tcmbench.contract import registry as plugins
from tcmbench.errors import PluginError
from tcmbench.hub.checkpoints import embedded_weights, load_checkpoint
from tcmbench.inference.preprocess import OnnxPreprocessor, limit_side_size

PPOCR = "models/ch_PP-OCRv3_det_infer.onnx"


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _dbnet_weights() -> Path:
    folder = embedded_weights(plugins.get_detector("dbnet"))
    assert folder is not None, "the DBNet plugin ships no default weights"
    return folder


# --------------------------------------------------------------------------- configs


def test_builtin_ppocr_config_has_paddleocrs_detector_defaults() -> None:
    cfg = parse_config(builtin_document("ppocr-det"), "built-in")
    p = cfg.preprocess
    assert (p.rule, p.limit_side_len, p.limit_type, p.divisor) == ("limit_side", 960, "max", 32)
    assert p.channel_order == "bgr" and p.pixel_range == 1.0
    assert p.mean == (0.485, 0.456, 0.406) and p.std == (0.229, 0.224, 0.225)
    post = cfg.postprocess
    assert (post["mask_thr"], post["min_score"], post["unclip_ratio"]) == (0.3, 0.6, 1.5)
    assert (post["max_candidates"], post["dilation"], post["score_mode"]) == (1000, False, "fast")
    assert post["all_contours"] is True  # DBPostProcess uses cv2.RETR_LIST
    recipe = cfg.recipe()
    assert recipe["test"]["runtime"] == "onnxruntime" and recipe["postprocess"] == post


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BASE = {
    "format": "tcmbench-onnx",
    "input": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "pixel_range": 1},
}


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"format": "paddle"}, "format", "must be 'tcmbench-onnx'"),
        ({"version": 7}, "version", "must be one of 1"),
        ({"colour": "red"}, "colour", "not a known key"),
        (
            {"resize": {"rule": "limit_side", "limit_side_len": -3}},
            "resize.limit_side_len",
            ">= 32",
        ),
        ({"resize": {"rule": "stretch"}}, "resize.rule", "one of 'limit_side', 'keep_ratio'"),
        ({"resize": {"rule": "keep_ratio", "limit_type": "max"}}, "resize.limit_type", "does not"),
        ({"resize": [960]}, "resize", "must be a mapping"),
        ({"input": {"mean": [0.5, 0.5], "std": [1, 1, 1]}}, "input.mean", "must hold 3 to 3 items"),
        ({"input": {"mean": [0, 0, 0], "std": [1, 0, 1]}}, "input.std[1]", ">= 0.001"),
        ({"input": {"std": [1, 1, 1]}}, "input.mean", "is required"),
        (
            {"input": {"mean": [0, 0, 0], "std": [1, 1, 1], "channel_order": "rbg"}},
            "input.channel_order",
            "'rgb', 'bgr'",
        ),
        ({"postprocess": {"box_thresh": 0.6}}, "postprocess.box_thresh", "not a known key"),
        ({"postprocess": {"min_score": "high"}}, "postprocess.min_score", "must be a number"),
        (
            {"postprocess": {"output": "poly", "score_mode": "fast"}},
            "postprocess.score_mode",
            "quad",
        ),
        ({"extends": "east"}, "extends", "one of 'ppocr-det'"),
    ],
)
def test_malformed_config_names_the_file_and_the_key(
    tmp_path: Path, change: dict, key: str, words: str
) -> None:
    doc = {**BASE, **change}
    if "input" in change:
        doc["input"] = change["input"]
    path = _write(tmp_path / "m.tcmbench.json", json.dumps(doc))
    with pytest.raises(OnnxConfigError) as err:
        read_config_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key} "), message
    assert words in message, message


def test_unparsable_configs_say_where(tmp_path: Path) -> None:
    bad_json = _write(tmp_path / "a.tcmbench.json", '{"format": "tcmbench-onnx",\n  "input": }')
    with pytest.raises(OnnxConfigError, match=rf"{bad_json} is not valid JSON \(.*line 2"):
        read_config_file(bad_json)
    bad_yaml = _write(tmp_path / "b.tcmbench.yaml", "format: [unclosed\n")
    with pytest.raises(OnnxConfigError, match=rf"{bad_yaml} is not a YAML document"):
        read_config_file(bad_yaml)
    not_mapping = _write(tmp_path / "c.tcmbench.yml", "- 1\n- 2\n")
    with pytest.raises(OnnxConfigError, match="must be a mapping"):
        read_config_file(not_mapping)


def test_yaml_config_extends_a_builtin(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "det.tcmbench.yaml",
        "format: tcmbench-onnx\nextends: ppocr-det\npostprocess: {min_score: 0.5}\n",
    )
    cfg = read_config_file(path)
    assert cfg.postprocess["min_score"] == 0.5  # overridden
    assert cfg.postprocess["unclip_ratio"] == 1.5 and cfg.preprocess.channel_order == "bgr"


def test_locating_the_config_of_a_model(tmp_path: Path) -> None:
    model = _write(tmp_path / "mine.onnx", "not really onnx")
    with pytest.raises(OnnxConfigError, match=r"no config beside it; write mine\.tcmbench\.json"):
        locate(model)
    # PaddleOCR's file names get the built-in config...
    ppocr = _write(tmp_path / "en_PP-OCRv4_det_infer.onnx", "x")
    assert locate(ppocr)[1].where == "built-in ppocr-det"
    # ...unless a config sits beside the model
    _write(tmp_path / "en_PP-OCRv4_det_infer.tcmbench.json", json.dumps(BASE))
    assert locate(ppocr)[1].where.endswith("en_PP-OCRv4_det_infer.tcmbench.json")
    # the config itself as --weights, its model key pointing at the file
    cfg = _write(tmp_path / "other.tcmbench.json", json.dumps({**BASE, "model": "mine.onnx"}))
    assert locate(cfg)[0] == model.resolve()
    missing = _write(tmp_path / "gone.tcmbench.json", json.dumps({**BASE, "model": "gone.onnx"}))
    with pytest.raises(OnnxConfigError, match=r"gone\.tcmbench\.json: model points at"):
        locate(missing)
    with pytest.raises(OnnxConfigError, match="ONNX model not found"):
        locate(tmp_path / "nothing.onnx")


# --------------------------------------------------------------------------- pre-processing


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1200, 1600), (704, 960)),  # 0.6: 720 x 960; 720 / 32 = 22.5 rounds to even (22)
        ((864, 1296), (640, 960)),  # 0.741: 640 x 960
        ((1000, 500), (960, 480)),  # portrait: the height is the longer side
        ((100, 3000), (32, 960)),  # 0.32: 32 x 960
        ((33, 97), (32, 96)),  # never upscaled under "max": only rounded to 32
        ((500, 20), (512, 32)),  # at least one divisor
        ((720, 1280), (544, 960)),  # IC15: 0.75 -> 540 x 960 -> 544
    ],
)
def test_ppocr_limit_side_rule(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert limit_side_size(*size, limit_side_len=960, limit_type="max") == expected


def test_ppocr_min_limit_type_upscales_the_short_side() -> None:
    assert limit_side_size(100, 200, limit_side_len=736, limit_type="min") == (736, 1472)
    # already long enough: only rounded, 62.5 x 32 to the even 62
    assert limit_side_size(1000, 2000, limit_side_len=736, limit_type="min") == (992, 1984)


def test_ppocr_preprocessing_of_odd_and_tiny_images() -> None:
    pre = OnnxPreprocessor(parse_config(builtin_document("ppocr-det"), "built-in").preprocess)
    # odd size: the aspect ratio changes a little, x and y scales differ
    image = np.zeros((333, 1001, 3), np.uint8)
    x, (sx, sy) = pre(image)
    assert x.shape == (3, 320, 960) and x.dtype == np.float32
    assert (sx, sy) == (960 / 1001, 320 / 333)
    # tiny (h + w < 64): padded to 32 x 32 first, scale relative to the padding
    x, (sx, sy) = pre(np.zeros((9, 17, 3), np.uint8))
    assert x.shape == (3, 32, 32) and (sx, sy) == (1.0, 1.0)
    # BGR and [0, 1] statistics: a pure red RGB pixel is B=0, G=0, R=1
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    x, _ = pre(red)
    np.testing.assert_allclose(
        x[:, 0, 0], [(0 - 0.485) / 0.229, (0 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-6
    )


# --------------------------------------------------------------------------- export and parity


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped DBNet default weights exported with the CLI."""
    out = tmp_path_factory.mktemp("export") / "dbnet.onnx"
    try:
        main(
            [
                "export",
                "onnx",
                "--plugin",
                "dbnet",
                "--weights",
                str(_dbnet_weights()),
                "--out",
                str(out),
            ]
        )
    except SystemExit as exc:
        assert not exc.code, f"export failed with {exc.code}"
    return out


def test_export_writes_the_model_and_its_config(exported: Path) -> None:
    cfg = read_config_file(exported.with_name("dbnet.tcmbench.json"))
    assert cfg.postprocessor == "db" and cfg.preprocess.rule == "keep_ratio"
    ckpt = load_checkpoint(_dbnet_weights())
    recipe = ckpt.meta["recipe"]
    assert list(cfg.preprocess.mean) == recipe["normalize"]["mean"]
    for key, value in recipe["postprocess"].items():
        assert cfg.postprocess[key] == value
    assert cfg.exported_from["plugin"] == "dbnet"
    assert cfg.exported_from["checkpoint_sha256"] == ckpt.sha256
    assert cfg.exported_from["datasets"] == ["synthtext-mini"]


def test_exported_maps_equal_pytorch_within_1e_4(exported: Path) -> None:
    """Parity on a real input at sizes other than the traced one: the
    probability maps differ by less than 1e-4 (absolute)."""
    import torch

    from tcmbench.data.synthetic.generate import synthesize
    from tcmbench.data.transforms import InferenceTransform
    from tcmbench.inference.onnx_runtime import open_session

    ckpt = load_checkpoint(_dbnet_weights())
    session = open_session(exported)
    transform = InferenceTransform.from_recipe(ckpt.meta["recipe"])
    for index, (h, w) in enumerate([(224, 320), (416, 288)]):
        image = cv2.resize(synthesize(0, "test", index).pixels, (w, h))
        x, _ = transform(image)
        with torch.no_grad():
            ref = ckpt.model(torch.from_numpy(x)[None])["prob"].numpy()
        (got,) = session.run(["prob"], {"images": x[None]})
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-4
        assert ref.max() > 0.9  # text was found: the comparison covers real maps


def test_hmean_identical_with_pytorch_and_onnxruntime(exported: Path) -> None:
    """The same four synthtext-mini test images through predict_samples with
    the PyTorch checkpoint, the same checkpoint under --runtime onnxruntime,
    and its export under the onnx plugin: identical hmean."""
    from tcmbench.data.synthetic.generate import load_synthtext_mini
    from tcmbench.eval import evaluate as score
    from tcmbench.inference import predict_samples
    from tcmbench.inference.loading import load_for_inference

    samples = load_synthtext_mini("test", num_images=4)
    spec = plugins.get_detector("dbnet")
    torch_ckpt = load_checkpoint(_dbnet_weights())
    ort_ckpt = load_for_inference(str(exported), spec=spec, runtime="onnxruntime")
    onnx_ckpt = load_for_inference(str(exported), spec=plugins.get_detector("onnx"))
    recipe = torch_ckpt.meta["recipe"]
    figures = []
    for ckpt, rec in (
        (torch_ckpt, recipe),
        (ort_ckpt, recipe),
        (onnx_ckpt, onnx_ckpt.meta["recipe"]),
    ):
        preds = predict_samples(ckpt.model, samples, rec, "cpu", progress=False)
        result = score(samples, preds, "icdar2015", validate=False)
        figures.append((result.precision, result.recall, result.hmean))
    assert figures[0][2] > 0.5, figures  # the default weights do find the words
    assert figures[0] == figures[1] == figures[2]


def test_runtime_onnxruntime_on_the_cli_matches_torch(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """evaluate with --runtime onnxruntime (checkpoint exported on the fly,
    and the .onnx file) gives the same predictions as PyTorch, records its
    runtime, and does not share PyTorch's prediction cache entry."""
    data = make_ic15_folder(tmp_path / "ic15", n_train=0, n_test=2, size=96)
    docs = []
    for extra in (
        [],
        ["--runtime", "onnxruntime"],
        ["--runtime", "onnxruntime", "--weights", str(exported)],
    ):
        out = tmp_path / f"r{len(docs)}.json"
        weights = [] if "--weights" in extra else ["--weights", str(_dbnet_weights())]
        code, _, err = _run(
            [
                "evaluate",
                "--plugin",
                "dbnet",
                "--dataset",
                "icdar2015",
                "--data-root",
                str(data),
                "--recipe",
                "synthtext-mini",
                "--no-progress",
                "--json",
                str(out),
                "--save-predictions",
                str(tmp_path / f"p{len(docs)}"),
                *weights,
                *extra,
            ],
            capsys,
        )
        assert code == 0, err
        assert "trained on synthetic images only" in err  # icdar2015 is not synthetic
        docs.append(json.loads(out.read_text()))
    assert [d["runtime"] for d in docs] == ["torch", "onnxruntime", "onnxruntime"]
    assert not any(d["cached_predictions"] for d in docs)
    preds = [
        json.loads((tmp_path / f"p{i}" / "predictions.json").read_text())["predictions"]
        for i in range(3)
    ]
    for other in preds[1:]:
        assert other.keys() == preds[0].keys()
        for sid in preds[0]:
            a = [p["polygon"] for p in preds[0][sid]]
            b = [p["polygon"] for p in other[sid]]
            np.testing.assert_allclose(np.array(a, float), np.array(b, float), atol=1e-3)


def test_runtime_errors_are_one_line(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=1)
    common = ["evaluate", "--dataset", "icdar2015", "--data-root", str(data), "--no-progress"]
    cases = [
        (["--plugin", "onnx", "--weights", str(exported), "--tcm"], "--tcm does not apply"),
        (
            ["--plugin", "onnx", "--weights", str(exported), "--recipe", "icdar2015"],
            "--recipe does not apply",
        ),
        (
            ["--plugin", "onnx", "--weights", str(exported), "--runtime", "torch"],
            "--runtime torch does not apply",
        ),
        (
            ["--plugin", "dbnet", "--tcm", "--runtime", "onnxruntime", "--weights", str(exported)],
            "drop --tcm",
        ),
        (["--plugin", "onnx", "--weights", str(tmp_path)], "expected one .onnx file"),
        (["--plugin", "onnx"], "runs finished models: pass --weights"),
    ]
    for args, words in cases:
        code, _, err = _run(common + args, capsys)
        assert code == 2, (args, err)
        assert words in err and "Traceback" not in err, (args, err)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage")
    (tmp_path / "corrupt.tcmbench.json").write_text(json.dumps(BASE))
    code, _, err = _run(common + ["--plugin", "onnx", "--weights", str(corrupt)], capsys)
    assert code == 2 and f"{corrupt}: not an ONNX model" in err, err
    code, _, err = _run(
        [
            "train",
            "--plugin",
            "onnx",
            "--dataset",
            "icdar2015",
            "--data-root",
            str(data),
            "--steps",
            "1",
        ],
        capsys,
    )
    assert code == 2 and "runs exported models only" in err, err


# --------------------------------------------------------------------------- missing extra


def test_missing_onnxruntime_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tcmbench.inference.onnx_runtime import require_onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(PluginError, match=r"pip install 'tcmbench\[onnx\]'"):
        require_onnxruntime()
    model = tmp_path / "ch_PP-OCRv3_det_infer.onnx"
    model.write_bytes(b"x")
    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((32, 32, 3), np.uint8))
    code, _, err = _run(
        [
            "predict",
            str(tmp_path),
            "--plugin",
            "onnx",
            "--weights",
            str(model),
            "--out",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 2 and "tcmbench[onnx]" in err and "Traceback" not in err, err


# --------------------------------------------------------------------------- synthetic default weights


def test_synthetic_default_weights_warn_on_real_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((64, 96, 3), 200, np.uint8))
    code, _, err = _run(
        ["predict", str(image), "--plugin", "dbnet", "--out", str(tmp_path / "o"), "--no-progress"],
        capsys,
    )
    assert code == 0, err
    folder = _dbnet_weights()
    assert f"the weights {folder} were trained on synthetic images only (synthtext-mini)" in err
    assert "--plugin onnx" in err and "hf://" in err
    # refused without --weights on a real dataset: the message says where they are
    data = make_ic15_folder(tmp_path / "ic15", n_train=0, n_test=1)
    code, _, err = _run(
        ["evaluate", "--plugin", "dbnet", "--dataset", "icdar2015", "--data-root", str(data)],
        capsys,
    )
    assert code == 2 and f"They are in {folder}" in err and "synthetic images only" in err, err


def test_no_warning_for_real_weights_or_synthetic_data() -> None:
    from types import SimpleNamespace

    from tcmbench.inference.loading import synthetic_weights_warning

    synthetic = SimpleNamespace(meta={"datasets": ["synthtext-mini"]}, path=Path("w"))
    real = SimpleNamespace(meta={"datasets": ["synthtext-mini", "icdar2015"]}, path=Path("w"))
    unknown = SimpleNamespace(meta={}, path=Path("w"))
    assert synthetic_weights_warning(synthetic, "synthtext-mini") is None
    assert synthetic_weights_warning(synthetic, "msra-td500") is not None
    assert synthetic_weights_warning(real, "msra-td500") is None
    assert synthetic_weights_warning(unknown, None) is None


# --------------------------------------------------------------------------- real models and images


@pytest.mark.realdata
def test_evaluate_ppocr_on_two_td500_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = shared_file(PPOCR)
    root = shared_file("msra-td500")
    out = tmp_path / "r.json"
    code, stdout, err = _run(
        [
            "evaluate",
            "--plugin",
            "onnx",
            "--weights",
            str(model),
            "--dataset",
            "msra-td500",
            "--data-root",
            str(root),
            "--limit",
            "2",
            "--no-progress",
            "--json",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["images"] == 2 and doc["runtime"] == "onnxruntime" and doc["plugin"] == "onnx"
    assert doc["test"]["test"]["rule"] == "limit_side"
    assert doc["test"]["postprocess"]["score_mode"] == "fast"
    assert doc["recall"] >= 0.5 and doc["precision"] >= 0.5, doc  # a real detector on real text
    assert "| msra-td500 | test | msra-td500 | 2 |" in stdout
    assert "synthetic" not in err


@pytest.mark.realdata
def test_predict_ppocr_draws_boxes_on_ic15_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """img_10 of the ICDAR 2015 sample holds a sign with three text lines
    in its top-left corner: PP-OCRv3 boxes them there and nowhere else."""
    model = shared_file(PPOCR)
    image = shared_file("icdar2015/test_images_sample/img_10.jpg")
    out = tmp_path / "out"
    code, _, err = _run(
        [
            "predict",
            str(image),
            "--plugin",
            "onnx",
            "--weights",
            str(model),
            "--out",
            str(out),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads((out / "predictions.json").read_text())
    (record,) = doc["images"]
    boxes = [np.array(p["polygon"]) for p in record["predictions"]]
    assert len(boxes) >= 3
    for box in boxes:
        assert box[:, 0].max() < 300 and box[:, 1].max() < 130, box  # on the sign
    drawn = cv2.imread(str(out / "img_10.png"))
    assert drawn.shape[:2] == (record["height"], record["width"])


def test_export_keeps_the_clip_attention_pool_size_dynamic(tmp_path: Path) -> None:
    """TCM's CLIP attention pool resizes its positional embedding to the
    feature grid at every forward; the export must keep that size dynamic
    (a frozen grid fails the export's check at another input size)."""
    from types import SimpleNamespace

    import torch
    from torch import nn

    from tcmbench.inference.onnx_export import export_detector
    from tcmbench.tcm.image_encoder import DenseAttentionPool

    torch.manual_seed(0)
    c = 32
    clip_pool = SimpleNamespace(
        num_heads=4,
        positional_embedding=torch.randn(1 + 7 * 7, c),
        **{name: nn.Linear(c, c) for name in ("q_proj", "k_proj", "v_proj", "c_proj")},
    )

    class PoolNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, c, kernel_size=32, stride=32)  # 1/32, like C5
            self.pool = DenseAttentionPool(clip_pool, grid=20)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            _, dense = self.pool(self.stem(x))
            return {"dense": dense}

    report = export_detector(PoolNet().eval(), tmp_path / "pool.onnx")
    assert report["outputs"] == ["dense"] and report["max_abs_diff"]["dense"] < 1e-4


@pytest.mark.slow
def test_export_tcm_dbnet(tmp_path: Path) -> None:
    """A whole TCM-DBNet (random CLIP weights, nothing downloaded) exports
    with dynamic size and matches PyTorch, TCM's score map included."""
    from tcmbench.contract.spec import DetectorConfig, TCMConfig
    from tcmbench.inference.onnx_export import export_detector

    spec = plugins.get_detector("dbnet")
    config = DetectorConfig(tcm=TCMConfig(clip_pretrained=None))
    model = plugins.get_plugin_manager().hook.build_detector(spec=spec, config=config)
    report = export_detector(model.eval(), tmp_path / "tcm.onnx")
    assert {"prob", "tcm_score_map"} <= set(report["outputs"])
    assert max(report["max_abs_diff"].values()) < 1e-4


def test_config_takes_every_db_postprocessor_parameter() -> None:
    """An exported DBNet's config carries the postprocessor's parameters;
    the config reader must know each one, or every export written after a
    new parameter lands is refused on load."""
    import dataclasses

    from tcmbench_onnx.config import _DB_POSTPROCESS

    from tcmbench.inference.db_postprocess import DBPostprocessor

    fields = {f.name for f in dataclasses.fields(DBPostprocessor) if f.init}
    assert fields == set(_DB_POSTPROCESS)
