"""Hostile configs (issue 15, case 5): a checkpoint's config.json recipe,
an ONNX model's config and ``exported_from``, hostile ONNX graphs and a
forged safetensors header. Each exact input of the issue must end in one
line naming the file (and the key, where there is one), exit 2 through the
CLI -- never a traceback, a hang, a memory blow-up or a silent 0 / 29
detections.

Checkpoints are forged from the DBNet weights shipped in the plugin, copied
to ``tmp_path``; ONNX graphs are built here with ``onnx.helper`` (a few
hundred bytes each).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tcmbench.cli import main
from tcmbench.contract import registry as plugins
from tcmbench.errors import CheckpointError
from tcmbench.hub import checkpoints as hub

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper
from tcmbench_onnx.config import OnnxConfigError, read_config_file

# --------------------------------------------------------------------------- helpers


def _embedded() -> Path:
    folder = hub.embedded_weights(plugins.get_detector("dbnet"))
    assert folder is not None, "the DBNet plugin ships its synthtext-mini weights"
    return folder


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """A writable copy of the shipped DBNet checkpoint."""
    return Path(shutil.copytree(_embedded(), tmp_path / "ckpt"))


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "img.png"
    img = np.full((64, 96, 3), 255, np.uint8)
    cv2.putText(img, "TEXT", (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
    cv2.imwrite(str(path), img)
    return path


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``tcmbench ARGS`` run in-process."""
    capsys.readouterr()
    try:
        code = int(main(args) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _predict(weights: Path, tmp_path: Path, plugin: str = "dbnet") -> list[str]:
    return [
        "predict",
        str(_image(tmp_path)),
        "--plugin",
        plugin,
        "--weights",
        str(weights),
        "--out",
        str(tmp_path / "out"),
    ]


def _evaluate(weights: Path, tmp_path: Path, plugin: str = "dbnet") -> list[str]:
    from tiny_data import make_ic15_folder  # tests/ is on sys.path under pytest's rootdir

    data = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=1)
    return [
        "evaluate",
        "--plugin",
        plugin,
        "--dataset",
        "icdar2015",
        "--data-root",
        str(data),
        "--weights",
        str(weights),
        "--no-progress",
    ]


def _one_line(code: int, err: str) -> str:
    """The single error line of a refused run (exit 2, no traceback; what
    the command said before it failed, such as the test settings, may
    precede it)."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


# --------------------------------------------------------------------------- config.json recipe


def _set(*path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        node = meta
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return edit


#: (id, edit of config.json, key the message names, phrase it contains):
#: the exact values of issue 15, case 5.
RECIPE_CASES = [
    ("pad-0", _set("recipe", "test", "pad_divisor", value=0), "recipe.test.pad_divisor",
     "an integer >= 1 and <= 256, got 0"),
    ("pad-minus-1", _set("recipe", "test", "pad_divisor", value=-1), "recipe.test.pad_divisor",
     "got -1"),
    ("long-side-abc", _set("recipe", "test", "long_side", value="abc"), "recipe.test.long_side",
     "an integer >= 32 and <= 8192 or null, got 'abc'"),
    ("long-side-1e9", _set("recipe", "test", "long_side", value=1e9), "recipe.test.long_side",
     "<= 8192 or null, got 1000000000.0"),
    ("short-side-minus-5", _set("recipe", "test", "short_side", value=-5),
     "recipe.test.short_side", ">= 32 and <= 8192 or null, got -5"),
    ("long-side-0", _set("recipe", "test", "long_side", value=0), "recipe.test.long_side",
     "got 0"),
    ("postprocess-unknown-key", _set("recipe", "postprocess", "box_thresh", value=0.6),
     "recipe.postprocess", "unknown DBNet postprocess parameter(s) box_thresh"),
    ("std-1e-30", _set("recipe", "normalize", "std", value=[1e-30, 1e-30, 1e-30]),
     "recipe.normalize.std[0]", "a number >= 0.001 and <= 10000, got 1e-30"),
    ("test-a-string", _set("recipe", "test", value="abc"), "recipe.test",
     "must be a mapping (object), got 'abc'"),
    ("nested-100k-deep", None, "", "nests deeper than 64 levels"),
]  # fmt: skip
DEEP = 100_000


def _forge(ckpt: Path, edit: Callable[[dict[str, Any]], None] | None) -> Path:
    config = ckpt / "config.json"
    meta = json.loads(config.read_text())
    if edit is None:  # recipe.test nested 100k deep, as raw text
        meta["recipe"]["test"] = "__DEEP__"
        text = json.dumps(meta).replace('"__DEEP__"', "[" * DEEP + "]" * DEEP)
        config.write_text(text)
    else:
        edit(meta)
        config.write_text(json.dumps(meta))
    return config


@pytest.mark.parametrize(
    ("edit", "key", "phrase"), [c[1:] for c in RECIPE_CASES], ids=[c[0] for c in RECIPE_CASES]
)
def test_forged_recipe_is_one_line_naming_file_and_key(
    ckpt: Path, edit: Callable[[dict[str, Any]], None] | None, key: str, phrase: str
) -> None:
    config = _forge(ckpt, edit)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        hub.load_checkpoint(ckpt, plugin="dbnet")
    assert time.perf_counter() - t0 < 5
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{config}: {key}" if key else f"{config} "), message
    assert phrase in message, message


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize(
    ("edit", "key", "phrase"), [c[1:] for c in RECIPE_CASES], ids=[c[0] for c in RECIPE_CASES]
)
def test_forged_recipe_through_the_cli(
    ckpt: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    edit: Callable[[dict[str, Any]], None] | None,
    key: str,
    phrase: str,
) -> None:
    config = _forge(ckpt, edit)
    args = (_predict if command == "predict" else _evaluate)(ckpt, tmp_path)
    line = _one_line(*_cli(args, capsys))
    assert line.startswith(f"Error: {config}: {key}" if key else f"Error: {config} "), line
    assert phrase in line, line


def _strip(tmp_path: Path) -> Path:
    """A 40 x 6000 image: a short_side of 8192 alone makes it 8192 x 1228800."""
    path = tmp_path / "strip.png"
    cv2.imwrite(str(path), np.full((40, 6000, 3), 255, np.uint8))
    return path


def test_a_short_side_alone_cannot_blow_up_a_strip(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each side limit is bounded, but the size they give is checked too:
    against the pixel limit of images, before anything is allocated."""
    _forge(ckpt, _set("recipe", "test", value={"long_side": None, "short_side": 8192}))
    args = _predict(ckpt, tmp_path)
    args[1] = str(_strip(tmp_path))
    line = _one_line(*_cli(args, capsys))
    assert "resize a 6000 x 40 image to 1228800 x 8192" in line, line
    assert "over the limit of 50,000,000 pixels (TCMBENCH_MAX_IMAGE_PIXELS" in line, line
    model = _write_onnx(
        tmp_path / "m",
        _db_like(),
        {
            **ONNX_BASE,
            "resize": {"rule": "limit_side", "limit_side_len": 8192, "limit_type": "min"},
        },
    )
    args = _predict(model, tmp_path, plugin="onnx")
    args[1] = str(_strip(tmp_path))
    line = _one_line(*_cli(args, capsys))
    assert "over the limit of 50,000,000 pixels" in line, line


def test_the_recipe_schema_accepts_what_tcmbench_writes(ckpt: Path) -> None:
    """The limits must not refuse a real checkpoint's recipe: the shipped
    one, and the test settings of every plugin's recipes."""
    from tcmbench.safety.checkpoint_schema import RECIPE
    from tcmbench.safety.validation import check_document

    meta = hub.read_checkpoint_meta(ckpt)[0]
    assert meta["recipe"]["test"]["pad_divisor"] == 32
    for name in ("dbnet", "pan", "fcenet"):
        spec = plugins.get_detector(name)
        for recipe_name in spec.recipes:
            recipe = spec.recipe(recipe_name)
            part = {k: recipe[k] for k in ("test", "normalize") if k in recipe}
            assert check_document(part, RECIPE, recipe_name) == part, (name, recipe_name)


def test_a_recipe_passed_in_directly_is_checked_too() -> None:
    """InferenceTransform, which every inference path uses, checks any recipe
    (a grid's, a plugin's) with the same schema: pad 0 cannot reach ``% 0``."""
    from tcmbench.data.transforms import InferenceTransform
    from tcmbench.safety.validation import DocumentError

    with pytest.raises(DocumentError, match=r"^recipe: test\.pad_divisor must be an integer >= 1"):
        InferenceTransform.from_recipe({"test": {"pad_divisor": 0}})
    with pytest.raises(DocumentError, match=r"^recipe: normalize\.std\[1\] must be a number >= "):
        InferenceTransform.from_recipe({"normalize": {"mean": [0, 0, 0], "std": [1, 1e-30, 1]}})
    t = InferenceTransform.from_recipe({"test": {"long_side": 64.0, "pad_divisor": 32}})
    assert (t.long_side, t.pad_divisor) == (64, 32)


# --------------------------------------------------------------------------- ONNX configs and graphs

OPSET = [helper.make_opsetid("", 17)]


def _model(
    nodes: list[Any],
    *,
    input_shape: list[Any] | None = None,
    output_shape: list[Any] | None = None,
    initializers: list[Any] = (),  # type: ignore[assignment]
) -> Any:
    x = helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, input_shape or ["N", 3, "H", "W"]
    )
    y = helper.make_tensor_value_info("prob", TensorProto.FLOAT, output_shape)
    graph = helper.make_graph(nodes, "hostile", [x], [y], list(initializers))
    return helper.make_model(graph, opset_imports=OPSET)


def _db_like() -> Any:
    """A valid DB-shaped model: prob = sigmoid(mean over channels)."""
    return _model(
        [
            helper.make_node("ReduceMean", ["images"], ["m"], axes=[1], keepdims=1),
            helper.make_node("Sigmoid", ["m"], ["prob"]),
        ]
    )


def _huge_tensor(name: str) -> Any:
    """A float tensor whose dims declare 1.2 GB; the file holds no data."""
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend([300_000_000])
    return t


def _plus(name: str) -> list[Any]:
    """Nodes adding the sum of tensor ``name`` to the DB map (so it is used)."""
    return [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1], keepdims=1),
        helper.make_node("ReduceSum", [name], ["s"], keepdims=0),
        helper.make_node("Add", ["m", "s"], ["a"]),
        helper.make_node("Sigmoid", ["a"], ["prob"]),
    ]


def _graph_one_channel() -> Any:
    return _model(
        [helper.make_node("Sigmoid", ["images"], ["prob"])], input_shape=["N", 1, "H", "W"]
    )


def _graph_fixed_32() -> Any:
    return _model(
        [
            helper.make_node("ReduceMean", ["images"], ["m"], axes=[1], keepdims=1),
            helper.make_node("Sigmoid", ["m"], ["prob"]),
        ],
        input_shape=[1, 3, 32, 32],
    )


def _graph_scalar_output() -> Any:
    return _model([helper.make_node("ReduceMean", ["images"], ["prob"], keepdims=0)])


def _graph_expand_8gb() -> Any:
    shape = numpy_helper.from_array(np.array([1, 1, 46341, 46341], np.int64), "shape")
    half = numpy_helper.from_array(np.array([0.5], np.float32), "half")
    return _model(
        [
            helper.make_node("Expand", ["half", "shape"], ["big"]),
            helper.make_node("ReduceMean", ["images"], ["m"], axes=[1], keepdims=1),
            helper.make_node("Add", ["m", "big"], ["a"]),
            helper.make_node("Sigmoid", ["a"], ["prob"]),
        ],
        initializers=[shape, half],
    )


def _graph_huge_initializer() -> Any:
    return _model(_plus("w"), initializers=[_huge_tensor("w")])


def _graph_huge_constant_node() -> Any:
    const = helper.make_node("Constant", [], ["w"], value=_huge_tensor("w_value"))
    return _model([const, *_plus("w")])


def _graph_constant_of_shape_8gb() -> Any:
    shape = numpy_helper.from_array(np.array([46341, 46341], np.int64), "shape")
    return _model(
        [helper.make_node("ConstantOfShape", ["shape"], ["w"]), *_plus("w")],
        initializers=[shape],
    )


def _graph_three_channel_output() -> Any:
    return _model([helper.make_node("Sigmoid", ["images"], ["prob"])])


def _graph_three_channel_dynamic() -> Any:
    """Channels undeclared: only the map onnxruntime returns tells."""
    return _model(
        [helper.make_node("Sigmoid", ["images"], ["prob"])], input_shape=["N", "C", "H", "W"]
    )


def _graph_nan_output() -> Any:
    minus_one = numpy_helper.from_array(np.array([-1.0], np.float32), "minus_one")
    return _model(
        [
            helper.make_node("ReduceMean", ["images"], ["m"], axes=[1], keepdims=1),
            helper.make_node("Abs", ["m"], ["a"]),
            helper.make_node("Sub", ["minus_one", "a"], ["n"]),
            helper.make_node("Log", ["n"], ["prob"]),  # log of a negative number: NaN
        ],
        initializers=[minus_one],
    )


def _graph_logits_output() -> Any:
    return _model([helper.make_node("ReduceMean", ["images"], ["prob"], axes=[1], keepdims=1)])


#: (id, builder, phrase of the one-line error)
GRAPH_CASES = [
    ("one-input-channel", _graph_one_channel, "takes 1 channel(s)"),
    ("fixed-32x32-input", _graph_fixed_32, "has a fixed size (shape [1, 3, 32, 32])"),
    ("scalar-output", _graph_scalar_output, "output 'prob' is a scalar"),
    ("expand-8gb", _graph_expand_8gb, "tensor 'big' would take at least 8.0 GiB"),
    ("huge-initializer", _graph_huge_initializer, "constant 'w' declares 1.1 GiB"),
    ("huge-constant-node", _graph_huge_constant_node, "constant 'w' declares 1.1 GiB"),
    ("constant-of-shape-8gb", _graph_constant_of_shape_8gb, "tensor 'w' would take at least 8.0"),
    ("three-channel-output", _graph_three_channel_output, "output 'prob' has 3 channels"),
    ("three-channel-output-dynamic", _graph_three_channel_dynamic, "output 'prob' has shape (1, 3,"),
    ("nan-output", _graph_nan_output, "output 'prob' holds"),
    ("logits-output", _graph_logits_output, "outside [0, 1]"),
]  # fmt: skip

ONNX_BASE: dict[str, Any] = {
    "format": "tcmbench-onnx",
    "input": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "pixel_range": 1},
    "resize": {"rule": "keep_ratio", "long_side": 96, "short_side": 64, "pad_divisor": 32},
}


def _write_onnx(folder: Path, model: Any, config: Any = None, raw: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "m.onnx"
    onnx.save(model, str(path))
    text = raw if raw is not None else json.dumps(ONNX_BASE if config is None else config)
    (folder / "m.tcmbench.json").write_text(text)
    return path


def test_the_valid_db_like_graph_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The baseline of the hostile graphs below predicts without error."""
    model = _write_onnx(tmp_path / "ok", _db_like())
    code, err = _cli(_predict(model, tmp_path, plugin="onnx"), capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "predictions.json").is_file()


@pytest.mark.parametrize(
    ("build", "phrase"), [c[1:] for c in GRAPH_CASES], ids=[c[0] for c in GRAPH_CASES]
)
def test_hostile_graph_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], build: Callable[[], Any], phrase: str
) -> None:
    model = _write_onnx(tmp_path / "m", build())
    assert model.stat().st_size < 2000  # small files, whatever they declare
    t0 = time.perf_counter()
    line = _one_line(*_cli(_predict(model, tmp_path, plugin="onnx"), capsys))
    assert time.perf_counter() - t0 < 10
    assert line.startswith(f"Error: {model}"), line
    assert phrase in line, line


def test_hostile_graph_through_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _write_onnx(tmp_path / "m", _graph_nan_output())
    line = _one_line(*_cli(_evaluate(model, tmp_path, plugin="onnx"), capsys))
    assert line.startswith(f"Error: {model}: output 'prob' holds"), line


# The peak resident memory of this process alone: VmHWM belongs to the
# address space exec created (ru_maxrss would carry over the forking
# pytest process's peak, gigabytes late in a full run).
MEASURE_RSS = """
import sys
from tcmbench.cli import main
try:
    code = int(main(sys.argv[1:]) or 0)
except SystemExit as exc:
    code = int(exc.code or 0)
with open("/proc/self/status") as status:
    hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(f"MAXRSS_KB {hwm}")
sys.exit(code)
"""


@pytest.mark.slow  # a fresh interpreter per graph (torch's import alone takes seconds)
@pytest.mark.parametrize("build", [_graph_expand_8gb, _graph_constant_of_shape_8gb])
def test_an_8gb_graph_is_refused_without_allocating(
    tmp_path: Path, build: Callable[[], Any]
) -> None:
    """onnxruntime folds constants while creating the session: the check must
    come first. The whole run (torch and onnxruntime imported) stays far
    below the 8 GB the graph asks for."""
    model = _write_onnx(tmp_path / "m", build())
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_RSS, *_predict(model, tmp_path, plugin="onnx")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "would take at least 8.0 GiB" in done.stderr and "Traceback" not in done.stderr
    peak_mb = int(done.stdout.split("MAXRSS_KB")[-1]) / 1024
    assert peak_mb < 1500, f"peak memory {peak_mb:.0f} MB"


def test_the_tensor_limit_is_raisable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tcmbench.inference.onnx_graph import check_model_file

    model = _write_onnx(tmp_path / "m", _db_like())
    check_model_file(model)
    monkeypatch.setenv("TCMBENCH_ONNX_MAX_TENSOR_BYTES", "16")
    shape = numpy_helper.from_array(np.zeros(8, np.float32), "w")
    _write_onnx(tmp_path / "m", _model(_plus("w"), initializers=[shape]))
    with pytest.raises(CheckpointError, match=r"constant 'w' declares 32 bytes .* over the 16"):
        check_model_file(model)
    monkeypatch.setenv("TCMBENCH_ONNX_MAX_TENSOR_BYTES", "lots")
    with pytest.raises(CheckpointError, match="is not a positive integer"):
        check_model_file(model)


# ONNX model configs: the same values in resize / input / postprocess ----------


def _cfg(section: str, **values: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(ONNX_BASE))
    doc[section] = {**doc.get(section, {}), **values}
    return doc


#: (id, config, key the message names, phrase it contains)
ONNX_CONFIG_CASES = [
    ("pad-0", _cfg("resize", pad_divisor=0), "resize.pad_divisor", ">= 1 and <= 256, got 0"),
    ("pad-minus-1", _cfg("resize", pad_divisor=-1), "resize.pad_divisor", "got -1"),
    ("long-side-abc", _cfg("resize", long_side="abc"), "resize.long_side", "got 'abc'"),
    ("long-side-1e9", _cfg("resize", long_side=1e9), "resize.long_side",
     "<= 8192 or null, got 1000000000.0"),
    ("short-side-minus-5", _cfg("resize", short_side=-5), "resize.short_side", "got -5"),
    ("long-side-0", _cfg("resize", long_side=0), "resize.long_side", "got 0"),
    ("limit-side-1e9", {**ONNX_BASE, "resize": {"rule": "limit_side", "limit_side_len": 1e9}},
     "resize.limit_side_len", "<= 8192, got 1000000000.0"),
    ("postprocess-unknown-key", _cfg("postprocess", box_thresh=0.6), "postprocess.box_thresh",
     "is not a known key"),
    ("std-1e-30", _cfg("input", std=[1e-30, 1e-30, 1e-30]), "input.std[0]",
     ">= 0.001 and <= 10000, got 1e-30"),
    ("resize-a-string", {**ONNX_BASE, "resize": "abc"}, "resize",
     "must be a mapping (object), got 'abc'"),
    ("exported-from-a-string", {**ONNX_BASE, "exported_from": "abc"}, "exported_from",
     "must be a mapping (object), got 'abc'"),
    ("exported-from-pad-0",
     {**ONNX_BASE, "exported_from": {"plugin": "dbnet", "architecture": {},
                                     "recipe": {"test": {"pad_divisor": 0}}}},
     "exported_from.recipe.test.pad_divisor", "got 0"),
    ("exported-from-tcm-yes",
     {**ONNX_BASE, "exported_from": {"plugin": "dbnet", "architecture": {"tcm": "yes"}}},
     "exported_from.architecture.tcm", "must be a mapping"),
    ("exported-from-no-architecture", {**ONNX_BASE, "exported_from": {"plugin": "dbnet"}},
     "exported_from.architecture", "is required"),
    ("exported-from-unknown-key",
     {**ONNX_BASE, "exported_from": {"plugin": "dbnet", "architecture": {}, "evil": 1}},
     "exported_from.evil", "is not a known key"),
    ("nested-100k-deep", None, "", "nests deeper than 64 levels"),
]  # fmt: skip


def _config_text(doc: dict[str, Any] | None) -> str:
    if doc is None:
        return json.dumps({**ONNX_BASE, "resize": "__DEEP__"}).replace(
            '"__DEEP__"', "[" * DEEP + "]" * DEEP
        )
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("doc", "key", "phrase"),
    [c[1:] for c in ONNX_CONFIG_CASES],
    ids=[c[0] for c in ONNX_CONFIG_CASES],
)
def test_hostile_onnx_config_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    doc: dict[str, Any] | None,
    key: str,
    phrase: str,
) -> None:
    model = _write_onnx(tmp_path / "m", _db_like(), raw=_config_text(doc))
    config = model.with_name("m.tcmbench.json")
    with pytest.raises(OnnxConfigError) as info:
        read_config_file(config)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{config}: {key} " if key else f"{config} "), message
    assert phrase in message, message
    line = _one_line(*_cli(_predict(model, tmp_path, plugin="onnx"), capsys))
    assert line == f"Error: {message}"


def _exported_doc(**recipe: Any) -> dict[str, Any]:
    """A config as `tcmbench export onnx` writes it for the shipped DBNet."""
    meta = json.loads((_embedded() / "config.json").read_text())
    return {
        **ONNX_BASE,
        "output": {"name": "prob"},
        "exported_from": {
            "plugin": "dbnet",
            "architecture": meta["architecture"],
            "recipe": {**meta["recipe"], **recipe},
            "datasets": meta["datasets"],
        },
    }


@pytest.mark.parametrize(
    ("recipe", "key", "phrase"),
    [
        (
            {"postprocess": {"box_thresh": 0.6}},
            "exported_from.recipe.postprocess",
            "unknown DBNet postprocess parameter(s) box_thresh",
        ),
        ({"test": {"long_side": 1e9}}, "exported_from.recipe.test.long_side", "got 1000000000.0"),
        ({"normalize": {"std": [1e-30] * 3}}, "exported_from.recipe.normalize.std[0]", "1e-30"),
    ],
)
def test_exported_from_through_runtime_onnxruntime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recipe: dict, key: str, phrase: str
) -> None:
    """``--plugin dbnet --runtime onnxruntime`` reads exported_from's recipe:
    its postprocess goes to the plugin's postprocessor, checked at load."""
    model = _write_onnx(tmp_path / "m", _db_like(), _exported_doc(**recipe))
    args = [*_predict(model, tmp_path, plugin="dbnet"), "--runtime", "onnxruntime"]
    line = _one_line(*_cli(args, capsys))
    assert line.startswith(f"Error: {model.with_name('m.tcmbench.json')}: {key}"), line
    assert phrase in line, line


def test_a_valid_exported_from_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _write_onnx(tmp_path / "m", _db_like(), _exported_doc())
    args = [*_predict(model, tmp_path, plugin="dbnet"), "--runtime", "onnxruntime"]
    code, err = _cli(args, capsys)
    assert code == 0, err


# --------------------------------------------------------------------------- safetensors header


def _forge_header(weights: Path, header: bytes, declared: int | None = None) -> None:
    length = len(header) if declared is None else declared
    weights.write_bytes(length.to_bytes(8, "little") + header)


def _entries(n: int) -> bytes:
    one = '"t{}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'
    return ("{" + ",".join(one.format(i) for i in range(n)) + "}").encode()


SAFETENSORS_CASES = [
    ("1m-entries", lambda: _entries(1_000_000), None, "over the 10485760-byte limit"),
    ("60k-entries", lambda: _entries(60_000), None, "lists 60000 tensors, over the limit"),
    ("length-beyond-file", lambda: b"{}", 1 << 40, "over the 10485760-byte limit"),
    ("length-past-end", lambda: b"{}", 1000, "its header claims 1000 bytes"),
    ("header-nested-deep", lambda: b"[" * DEEP + b"]" * DEEP, None, "nests deeper than 64"),
    ("header-a-list", lambda: b"[1, 2]", None, "is not a JSON object"),
]


@pytest.mark.parametrize(
    ("header", "declared", "phrase"),
    [c[1:] for c in SAFETENSORS_CASES],
    ids=[c[0] for c in SAFETENSORS_CASES],
)
def test_forged_safetensors_header_is_refused_fast(
    ckpt: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    header: Callable[[], bytes],
    declared: int | None,
    phrase: str,
) -> None:
    weights = ckpt / "model.safetensors"
    _forge_header(weights, header(), declared)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        hub.load_checkpoint(ckpt, plugin="dbnet")
    assert time.perf_counter() - t0 < 5
    assert str(info.value).startswith(str(weights)) and phrase in str(info.value), info.value
    line = _one_line(*_cli(_predict(ckpt, tmp_path), capsys))
    assert line == f"Error: {info.value}"
