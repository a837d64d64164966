"""``tcmbench import ppocr``: PaddleOCR's PP-OCR detectors as trainable DBNet checkpoints.

Fast tests build PP-OCR-shaped PyTorch models with random weights, export
them with ``torch.onnx.export`` and import the graph back (weights must
round-trip exactly), and check the importer's one-line errors on graphs
built with ``onnx.helper``. Real-data tests import PaddleOCR's own
``ch_PP-OCRv3_det_infer.onnx`` and compare the PyTorch model with
onnxruntime on MSRA-TD500 photos, and evaluate both on all 200 test photos.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
from conftest import shared_file
from onnx import TensorProto, helper, numpy_helper
from tcmbench_dbnet.ppocr.onnx_import import ARCHITECTURES, build_model
from tcmbench_dbnet.ppocr.recipe import PPOCR_POSTPROCESS, PPOCR_TEST, normalize_rgb

from tcmbench.cli import main
from tcmbench.data.transforms import InferenceTransform
from tcmbench.hub.checkpoints import load_checkpoint

PPOCR_V3 = "models/ch_PP-OCRv3_det_infer.onnx"
V3, V4 = ARCHITECTURES


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``tcmbench ARGS`` run in-process."""
    capsys.readouterr()
    try:
        code = int(main(args) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _randomised(arch: Any) -> Any:
    """A model of ``arch`` whose BatchNorm statistics and affine scalars
    are random too (fresh ones are 0 / 1, which a swapped pair would not
    reveal)."""
    _, model = build_model(arch)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith(("running_var", "scale")):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith(("running_mean", "bias")) and tensor.dtype.is_floating_point:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
    return model.eval()


class _ProbOnly(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["prob"]


def _export(model: torch.nn.Module, path: Path) -> Path:
    """``torch.onnx.export`` keeping BatchNorm as nodes (eval mode would
    fold it into the convs)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _ProbOnly(model),
            (torch.zeros(1, 3, 64, 64),),
            buf,
            dynamo=False,
            opset_version=14,
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
            input_names=["x"],
            output_names=["prob"],
            dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}},
        )
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path]]:
    """Random PP-OCRv3 / v4 models and their exported graphs (RGB input)."""
    folder = tmp_path_factory.mktemp("ppocr_export")
    out = {}
    for arch in (V3, V4):
        model = _randomised(arch)
        out[arch.backbone] = (model, _export(model, folder / f"{arch.backbone}.onnx"))
    return out


def _same_weights(source: Any, imported: Any) -> list[str]:
    """Names of tensors that differ (the threshold branch is not in a graph)."""
    theirs, ours = source.state_dict(), imported.state_dict()
    assert set(theirs) == set(ours)
    return [
        k
        for k in theirs
        if not k.startswith("head.thr_branch.")
        and not k.endswith("num_batches_tracked")
        and not torch.equal(theirs[k], ours[k])
    ]


# --------------------------------------------------------------------------- the parts


@pytest.mark.parametrize("arch", [V3, V4], ids=lambda a: a.backbone)
def test_ppocr_parts_train_like_any_dbnet(arch: Any) -> None:
    """Selected by architecture.backbone / options.neck; every parameter
    gets a gradient from the DB loss (the threshold branch included)."""
    from tcmbench.contract.registry import get_detector, get_plugin_manager

    model = get_plugin_manager().hook.build_detector(
        spec=get_detector("dbnet"), config=arch.config()
    )
    assert type(model.neck).__name__ == "RSEFPN" and model.neck.out_channels == 96
    model.train()
    x = torch.randn(2, 3, 64, 96)
    target = model.target_builder(
        [np.array([[8, 8], [60, 8], [60, 30], [8, 30]], np.float32)], [False], 64, 96
    )
    targets = {k: torch.from_numpy(np.stack([v, v])) for k, v in target.items()}
    out = model(x, targets)
    assert out["prob"].shape == (2, 1, 64, 96) and out["thr"].shape == (2, 1, 64, 96)
    out["losses"]["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_ppocr_backbone_has_no_imagenet_weights() -> None:
    from tcmbench.contract.registry import get_detector, get_plugin_manager
    from tcmbench.contract.spec import DetectorConfig
    from tcmbench.errors import PluginError

    config = DetectorConfig(backbone="ppocrv3_mobilenetv3", pretrained_backbone=True)
    with pytest.raises(PluginError, match="import ppocr"):
        get_plugin_manager().hook.build_detector(spec=get_detector("dbnet"), config=config)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("backbone", ["ppocrv3_mobilenetv3", "ppocrv4_lcnetv3"])
def test_exported_graph_imports_back_with_the_same_weights(
    backbone: str,
    exported: dict[str, tuple[Any, Path]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, graph = exported[backbone]
    out = tmp_path / "ckpt"
    code, stdout, err = _cli(
        ["import", "ppocr", str(graph), "--out", str(out), "--input-order", "rgb"], capsys
    )
    assert code == 0, err
    assert f"wrote {out}" in stdout
    ck = load_checkpoint(out, plugin="dbnet")
    assert ck.config.backbone == backbone and ck.config.options["neck"] == "rse_fpn"
    assert _same_weights(source, ck.model) == []
    meta = json.loads((out / "config.json").read_text())
    assert meta["source"]["ppocr_onnx"]["max_abs_diff_vs_onnxruntime"] <= 1e-4
    assert meta["recipe"]["test"] == PPOCR_TEST
    assert meta["recipe"]["postprocess"] == PPOCR_POSTPROCESS
    card = (out / "README.md").read_text()
    assert "license: apache-2.0" in card and "PaddleOCR" in card and "## License" in card


def test_bgr_graph_gets_its_first_conv_reversed(
    exported: dict[str, tuple[Any, Path]], tmp_path: Path
) -> None:
    """PaddleOCR's graphs read BGR: the imported model reads RGB and its
    first conv is the graph's with the input channels reversed."""
    from tcmbench_dbnet.ppocr.onnx_import import import_ppocr

    source, graph = exported["ppocrv3_mobilenetv3"]
    out = import_ppocr(graph, tmp_path / "bgr")
    model = load_checkpoint(out).model
    first = "backbone.stem.0.weight"
    assert torch.equal(model.state_dict()[first], source.state_dict()[first].flip(1))
    assert _same_weights(source, model) == [first]
    recipe = json.loads((out / "config.json").read_text())["recipe"]
    assert recipe["normalize"] == normalize_rgb(bgr_input=True)
    # PaddleOCR's statistics are listed B, G, R: the red channel's is 0.406.
    assert recipe["normalize"]["mean"][0] == pytest.approx(0.406 * 255)


def test_a_graph_wired_differently_is_caught_by_running_it(
    exported: dict[str, tuple[Any, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every layer fits, but one residual Add became a Mul: the check
    against onnxruntime refuses it, in one line."""
    _, graph = exported["ppocrv3_mobilenetv3"]
    model = onnx.load(str(graph))
    consts = {i.name for i in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output
    }
    residual = next(n for n in model.graph.node if n.op_type == "Add" and not set(n.input) & consts)
    residual.op_type = "Mul"
    bad = tmp_path / "rewired.onnx"
    onnx.save(model, str(bad))
    code, _, err = _cli(["import", "ppocr", str(bad), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "layers fit, but its output differs" in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- error paths


def _graph(nodes: list[Any], inits: dict[str, np.ndarray], out: str, path: Path) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, "h", "w"])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    return path


def _conv(name: str, x: str, w: str, out: str, k: int, stride: int = 1, group: int = 1) -> Any:
    return helper.make_node(
        "Conv",
        [x, w],
        [out],
        name=name,
        kernel_shape=[k, k],
        strides=[stride, stride],
        pads=[k // 2] * 4,
        group=group,
    )


def _bn(name: str, x: str, c: int, out: str, inits: dict[str, np.ndarray]) -> Any:
    for key, value in (("s", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)):
        inits[f"{name}.{key}"] = np.full(c, value)
    return helper.make_node(
        "BatchNormalization",
        [x, *(f"{name}.{k}" for k in "sbmv")],
        [out],
        name=name,
        epsilon=1e-5,
    )


def _stem(inits: dict[str, np.ndarray]) -> list[Any]:
    """The PP-OCRv3 stem and the start of its first block: conv 3->8 s2,
    BN, hard swish, conv 8->8 1x1, BN, ReLU."""
    inits["w0"] = np.zeros((8, 3, 3, 3))
    inits["w1"] = np.zeros((8, 8, 1, 1))
    return [
        _conv("stem", "x", "w0", "c0", 3, stride=2),
        _bn("bn0", "c0", 8, "b0", inits),
        helper.make_node("HardSwish", ["b0"], ["h0"], name="hs0"),
        _conv("expand", "h0", "w1", "c1", 1),
        _bn("bn1", "c1", 8, "b1", inits),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
    ]


def _one_line_error(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> str:
    code, _, err = _cli(
        ["import", "ppocr", str(path), "--out", str(tmp_path / "o"), *extra], capsys
    )
    assert code == 2, err
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()
    return err


def test_wrong_channels_name_the_node_and_what_was_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inits: dict[str, np.ndarray] = {}
    nodes = _stem(inits)
    inits["w2"] = np.zeros((16, 1, 3, 3))  # the depthwise conv of 8 channels, given 16
    nodes.append(_conv("dw_bad", "r1", "w2", "c2", 3, group=16))
    err = _one_line_error(_graph(nodes, inits, "c2", tmp_path / "g.onnx"), tmp_path, capsys)
    assert "node 6 (Conv 'dw_bad'): expected 3x3 conv 8->8 channels, stride 1, groups 8" in err
    assert "found 3x3 conv 16->16 channels" in err
    assert "closest: PP-OCRv3" in err


def test_unknown_op_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inits: dict[str, np.ndarray] = {}
    nodes = _stem(inits)
    nodes.append(helper.make_node("LeakyRelu", ["r1"], ["y"], name="leaky"))
    err = _one_line_error(_graph(nodes, inits, "y", tmp_path / "g.onnx"), tmp_path, capsys)
    assert "node 6 (LeakyRelu 'leaky'): op LeakyRelu is not part of a PP-OCR DB detector" in err


def test_a_graph_that_stops_early_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inits: dict[str, np.ndarray] = {}
    nodes = _stem(inits)
    err = _one_line_error(_graph(nodes, inits, "r1", tmp_path / "g.onnx"), tmp_path, capsys)
    assert "the graph ends (after node 5 (Relu 'relu1')) where the PP-OCRv3" in err
    assert "expects 3x3 conv 8->8 channels, stride 1, groups 8" in err


def test_not_an_onnx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "det.onnx"
    path.write_bytes(b"\x08\x07not a protobuf at all\xff\xff")
    err = _one_line_error(path, tmp_path, capsys)
    assert f"{path} is not a readable ONNX model" in err
    err = _one_line_error(tmp_path / "missing.onnx", tmp_path, capsys)
    assert "ONNX model not found" in err


def test_missing_onnx_package_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "det.onnx"
    path.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    err = _one_line_error(path, tmp_path, capsys)
    assert "pip install 'tcmbench[onnx]'" in err


# --------------------------------------------------------------------------- test settings


def test_recorded_settings_equal_the_onnx_plugins_for_ppocr() -> None:
    """The checkpoint's recipe is the onnx plugin's built-in ppocr-det
    config, with PaddleOCR's BGR [0, 1] normalisation turned into RGB 0-255
    (the first conv is reversed on import)."""
    from tcmbench_onnx.config import builtin_document, parse_config

    onnx_recipe = parse_config(builtin_document("ppocr-det"), "built-in").recipe()
    assert {k: v for k, v in onnx_recipe["test"].items() if k != "runtime"} == PPOCR_TEST
    assert onnx_recipe["postprocess"] == PPOCR_POSTPROCESS
    norm = onnx_recipe["normalize"]
    assert norm["channel_order"] == "bgr" and norm["pixel_range"] == 1.0
    ours = normalize_rgb(bgr_input=True)
    assert ours["mean"] == pytest.approx([m * 255 for m in norm["mean"][::-1]])
    assert ours["std"] == pytest.approx([s * 255 for s in norm["std"][::-1]])


@pytest.mark.parametrize("size", [(333, 1001), (1200, 1600), (600, 800), (9, 17), (960, 40)])
def test_limit_side_transform_gives_the_onnx_plugins_input(size: tuple[int, int]) -> None:
    """InferenceTransform with the recorded recipe feeds the PyTorch model
    what the onnx plugin feeds the graph, channels reversed."""
    from tcmbench_onnx.config import builtin_document, parse_config

    from tcmbench.inference.preprocess import OnnxPreprocessor

    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    theirs, their_scale = OnnxPreprocessor(
        parse_config(builtin_document("ppocr-det"), "built-in").preprocess
    )(image)
    ours, our_scale = InferenceTransform.from_recipe(
        {"test": PPOCR_TEST, "normalize": normalize_rgb(True)}
    )(image)
    assert our_scale == their_scale
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs[::-1], atol=1e-5)


# --------------------------------------------------------------------------- PaddleOCR's own models


@pytest.fixture(scope="module")
def imported_v3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tcmbench_dbnet.ppocr.onnx_import import import_ppocr

    return import_ppocr(shared_file(PPOCR_V3), tmp_path_factory.mktemp("ppocrv3") / "ckpt")


def _td500_photos(n: int) -> list[Path]:
    root = shared_file("msra-td500") / "test"
    photos = sorted(root.glob("*.JPG"))
    if len(photos) < n:
        pytest.skip(f"{root} holds {len(photos)} photos, {n} needed")
    return photos[:n]


def _max_map_difference(graph: Path, checkpoint: Path, photos: list[Path]) -> float:
    """Largest |prob| difference between onnxruntime on the graph and
    PyTorch on the checkpoint, each given the same preprocessed photo
    (PyTorch's copy with the channels in RGB order)."""
    ort = pytest.importorskip("onnxruntime")
    from tcmbench_onnx.config import builtin_document, parse_config

    from tcmbench.data.torch_data import load_image
    from tcmbench.inference.preprocess import OnnxPreprocessor

    pre = OnnxPreprocessor(parse_config(builtin_document("ppocr-det"), "built-in").preprocess)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    model = load_checkpoint(checkpoint).model.eval()
    worst = 0.0
    for photo in photos:
        x, _ = pre(load_image(photo, photo.stem))
        (theirs,) = session.run(None, {session.get_inputs()[0].name: x[None]})
        with torch.no_grad():
            ours = model(torch.from_numpy(np.ascontiguousarray(x[::-1]))[None])["prob"].numpy()
        assert ours.shape == theirs.shape
        worst = max(worst, float(np.abs(ours - theirs).max()))
    return worst


@pytest.mark.realdata
@pytest.mark.slow
def test_ppocrv3_maps_equal_onnxruntime_on_20_td500_photos(imported_v3: Path) -> None:
    photos = _td500_photos(20)
    assert _max_map_difference(shared_file(PPOCR_V3), imported_v3, photos) <= 1e-4


@pytest.mark.realdata
@pytest.mark.slow
def test_ppocrv4_from_the_rapidocr_wheel_imports_and_matches(tmp_path: Path) -> None:
    """PP-OCRv4's detector ships in rapidocr-onnxruntime (a package, not
    ../shared/data): imported, its maps equal onnxruntime's on TD500."""
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    from tcmbench_dbnet.ppocr.onnx_import import import_ppocr

    graph = Path(rapidocr.__file__).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"
    if not graph.is_file():
        pytest.skip(f"{graph} is not in this rapidocr-onnxruntime wheel")
    out = import_ppocr(graph, tmp_path / "v4")
    assert load_checkpoint(out).config.backbone == "ppocrv4_lcnetv3"
    assert _max_map_difference(graph, out, _td500_photos(5)) <= 1e-4


def _evaluate(plugin: str, weights: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code, _, err = _cli(
        [
            "evaluate",
            "--plugin",
            plugin,
            "--weights",
            str(weights),
            "--dataset",
            "msra-td500",
            "--data-root",
            str(shared_file("msra-td500")),
            "--no-progress",
            "--no-cache",
            "--json",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    return dict(json.loads(out.read_text()))


@pytest.mark.realdata
@pytest.mark.slow  # all 200 TD500 photos twice: about 45 s on 2 CPU cores
def test_evaluate_dbnet_equals_onnx_plugin_on_all_td500_photos(
    imported_v3: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = _evaluate("dbnet", imported_v3, tmp_path / "dbnet.json", capsys)
    theirs = _evaluate("onnx", shared_file(PPOCR_V3), tmp_path / "onnx.json", capsys)
    assert ours["images"] == theirs["images"] == 200
    # The checkpoint's own recipe, not the TD500 one (short side 736, threshold 0.08).
    assert ours["test_settings_source"]["origin"] == "checkpoint"
    assert ours["test"]["test"] == PPOCR_TEST
    keys = ("precision", "recall", "hmean", "num_det", "num_matched")
    assert {k: ours[k] for k in keys} == {k: theirs[k] for k in keys}
