"""Checkpoint configs, ONNX model configs and safetensors headers against
hostile documents (issue 15).

Each input is what ``--weights`` would hand tcmbench: a checkpoint folder
whose ``config.json`` recipe (``test``, ``normalize``, ``postprocess``) is
hostile, a ``NAME.tcmbench.json`` / ``.yaml`` beside an ONNX model, or a
safetensors file with a forged header. The contract (conftest.py): loading
returns usable settings -- resize sizes within the documented limits, a
postprocessor built from the parameters -- or raises a TcmbenchError with
one line; never another exception, never 5 s or more.

The loading steps run are those of ``hub.load_checkpoint`` and
``tcmbench_onnx.config`` before any network is built (building one per
input would make the suite slow and test nothing more about the config).
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcmbench.contract import registry as plugins
from tcmbench.data.image_limits import max_image_pixels
from tcmbench.data.transforms import InferenceTransform
from tcmbench.hub import checkpoints as hub
from tcmbench.safety.checkpoint_schema import check_postprocess

from .conftest import contract, fuzz_settings
from .fuzz_strategies import HOSTILE_JSON, PLACEHOLDER, hostile_json_text

pytest.importorskip("onnx")
from tcmbench_onnx.config import read_config_file

from tcmbench.inference.db_postprocess import POSTPROCESS_PARAMS, DBPostprocessor
from tcmbench.inference.preprocess import OnnxPreprocessor


def _shipped() -> Path:
    folder = hub.embedded_weights(plugins.get_detector("dbnet"))
    assert folder is not None
    return folder


SHIPPED_META: dict[str, Any] = json.loads((_shipped() / "config.json").read_text())
#: The parts of config.json the loader reads (the provenance keys would only
#: dilute the mutations).
CHECKPOINT_SEED: dict[str, Any] = {
    "plugin": "dbnet",
    "format_version": 1,
    "architecture": SHIPPED_META["architecture"],
    "recipe": {
        "test": {"long_side": 1024, "short_side": 736, "pad_divisor": 32},
        "normalize": SHIPPED_META["recipe"]["normalize"],
        "postprocess": SHIPPED_META["recipe"]["postprocess"],
    },
    "datasets": ["synthtext-mini"],
}
ONNX_SEED: dict[str, Any] = {
    "format": "tcmbench-onnx",
    "version": 1,
    "input": {
        "name": "images",
        "channel_order": "rgb",
        "mean": [123.675, 116.28, 103.53],
        "std": [58.395, 57.12, 57.375],
        "pixel_range": 255,
    },
    "resize": {"rule": "keep_ratio", "long_side": 1024, "short_side": 736, "pad_divisor": 32},
    "output": {"name": "prob"},
    "postprocessor": "db",
    "postprocess": {"mask_thr": 0.3, "min_score": 0.5, "max_candidates": 1000},
    "exported_from": {
        "plugin": "dbnet",
        "architecture": SHIPPED_META["architecture"],
        "recipe": CHECKPOINT_SEED["recipe"],
        "datasets": ["synthtext-mini"],
        "opset": 17,
    },
}

#: Values of the issue and their neighbours, as raw JSON text.
HOSTILE_SETTINGS = [
    "0",
    "-1",
    "-5",
    '"abc"',
    "1e9",
    "1e-30",
    "31",
    "8193",
    "257",
    "32.5",
    "true",
    "[32]",
    '{"a": 1}',
    "null",
    # plausible values, so that some documents get past the schema and
    # reach the transform and the postprocessor
    "32",
    "8192",
    "1",
    "256",
    "0.5",
    "[0.5, 0.5, 0.5]",
    "[58.0, 57.0, 57.0]",
    '"quad"',
    '"keep_ratio"',
    '"limit_side"',
    '"min"',
    "false",
    "{}",
]
#: Keys the mutations aim at (most of the hostile surface): (path, key).
TARGETS: list[tuple[tuple[str, ...], str]] = [
    (("recipe", "test"), k)
    for k in (
        "long_side",
        "short_side",
        "pad_divisor",
        "runtime",
        "rule",
        "limit_side_len",
        "limit_type",
        "zz",
    )
] + [
    (("recipe",), "test"),
    (("recipe",), "normalize"),
    (("recipe",), "postprocess"),
    (("recipe", "normalize"), "mean"),
    (("recipe", "normalize"), "std"),
    ((), "recipe"),
    *((("recipe", "postprocess"), k) for k in [*POSTPROCESS_PARAMS, "box_thresh"]),
]
ONNX_TARGETS: list[tuple[tuple[str, ...], str]] = [
    (("resize",), k)
    for k in (
        "rule",
        "long_side",
        "short_side",
        "pad_divisor",
        "limit_side_len",
        "limit_type",
        "divisor",
    )
] + [
    (("input",), "mean"),
    (("input",), "std"),
    (("input",), "pixel_range"),
    (("input",), "channel_order"),
    ((), "resize"),
    ((), "input"),
    ((), "postprocess"),
    ((), "postprocessor"),
    ((), "extends"),
    ((), "exported_from"),
    (("exported_from",), "recipe"),
    (("exported_from",), "architecture"),
    (("exported_from", "recipe"), "test"),
    (("exported_from", "recipe", "test"), "pad_divisor"),
    (("exported_from", "architecture"), "tcm"),
    *((("postprocess",), k) for k in [*POSTPROCESS_PARAMS, "box_thresh"]),
]

#: Image sizes the accepted settings are applied to: a photo, a thin strip
#: (which short_side alone scales to gigapixels), a tiny image.
SIZES = [(480, 640), (40, 6000), (10, 12)]

hostile_value = st.one_of(
    st.sampled_from(HOSTILE_SETTINGS),
    st.sampled_from(HOSTILE_SETTINGS),
    st.sampled_from(HOSTILE_JSON),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.lists(st.sampled_from(["0", "1e-30", "1", "-1", '"x"', "1e9"]), max_size=4).map(
        lambda xs: "[" + ", ".join(xs) + "]"
    ),
)


@st.composite
def targeted_text(draw: st.DrawFn, seed: dict[str, Any], targets: list[Any]) -> str:
    """``seed`` as JSON with 1 to 3 of ``targets`` set to hostile raw values."""
    doc = json.loads(json.dumps(seed))
    raw: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        path, key = draw(st.sampled_from(targets))
        node: Any = doc
        for part in path:
            if not isinstance(node, dict):
                break
            node = node.setdefault(part, {})
        if isinstance(node, dict):
            raw.append(draw(hostile_value))
            node[key] = f"{PLACEHOLDER}{len(raw) - 1}"
    text = json.dumps(doc)
    for i, choice in enumerate(raw):
        text = text.replace(json.dumps(f"{PLACEHOLDER}{i}"), choice)
    return text


def config_text(seed: dict[str, Any], targets: list[Any]) -> st.SearchStrategy[str]:
    """Targeted hostile values, or the generic JSON mutations (deep nesting,
    cut documents, values replaced anywhere)."""
    return st.one_of(targeted_text(seed, targets), hostile_json_text(seed))


def _sizes_ok(size: tuple[int, int]) -> None:
    """Accepted settings give a network input within the pixel limit."""
    h, w = size
    assert h >= 1 and w >= 1 and h * w <= max_image_pixels(), size


def load_checkpoint_settings(folder: Path) -> dict[str, Any]:
    """What ``--weights FOLDER`` decides from config.json before the weights:
    the checked config, the postprocess parameters applied to the plugin's
    postprocessor, and the test-time transform (its sizes for :data:`SIZES`)."""
    meta, _ = hub.read_checkpoint_meta(folder)
    recipe = meta.get("recipe") or {}
    check_postprocess(
        DBPostprocessor(), recipe.get("postprocess"), str(folder), "recipe.postprocess"
    )
    transform = InferenceTransform.from_recipe(recipe)
    for size in SIZES:
        _sizes_ok(transform.size_for(*size))
    assert 1 <= transform.pad_divisor <= 256
    assert min(transform.std) >= 1e-3
    return meta


def load_onnx_settings(config: Path) -> Any:
    cfg = read_config_file(config)
    for size in SIZES:
        _sizes_ok(OnnxPreprocessor(cfg.preprocess).size_for(*size))
    if cfg.postprocessor == "db":
        DBPostprocessor(**cfg.postprocess)
    if cfg.exported_from is not None:
        exported_recipe = cfg.exported_from.get("recipe") or {}
        _sizes_ok(InferenceTransform.from_recipe(exported_recipe).size_for(480, 640))
    return cfg


@fuzz_settings()
@given(text=config_text(CHECKPOINT_SEED, TARGETS))
def test_checkpoint_config(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_bytes(text.encode("utf-8", "surrogatepass"))
        (folder / "model.safetensors").write_bytes(b"")  # never read by these steps
        contract("checkpoint config.json", lambda: load_checkpoint_settings(folder))


@fuzz_settings()
@given(text=config_text(ONNX_SEED, ONNX_TARGETS), as_yaml=st.booleans())
def test_onnx_config(text: str, as_yaml: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suffix = ".tcmbench.json"
        data = text.encode("utf-8", "surrogatepass")
        if as_yaml:
            # JSON is YAML: the YAML reader gets the same hostile document.
            suffix = ".tcmbench.yaml"
        path = Path(tmp) / f"m{suffix}"
        path.write_bytes(data)
        contract(f"onnx config {'yaml' if as_yaml else 'json'}", lambda: load_onnx_settings(path))


def _safetensors_seed() -> bytes:
    import torch
    from safetensors.torch import save

    return save({"a": torch.zeros(2, 3), "b.weight": torch.ones(4, dtype=torch.float16)})


SAFETENSORS_SEED = _safetensors_seed()
_HEADER_LEN = int.from_bytes(SAFETENSORS_SEED[:8], "little")
SAFETENSORS_HEADER = json.loads(SAFETENSORS_SEED[8 : 8 + _HEADER_LEN])
SAFETENSORS_DATA = SAFETENSORS_SEED[8 + _HEADER_LEN :]


@functools.cache
def many_entries(n: int) -> bytes:
    """A header of ``n`` empty tensors, built once per ``n`` (building it per
    input allocates 300,000 small strings each time, which fragments the
    process's memory)."""
    entry = '"t{}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'
    return ("{" + ",".join(entry.format(i) for i in range(n)) + "}").encode()


@st.composite
def safetensors_file(draw: st.DrawFn) -> tuple[str | int, str, int]:
    """How to forge the seed file: its header mutated (JSON text) or one of
    many more entries than any checkpoint holds (an entry count), and the
    length field: true, short, long or huge. The bytes are built in the
    test (:func:`forged_file`): a strategy's values stay small, since
    hypothesis keeps them."""
    header: str | int = draw(hostile_json_text(SAFETENSORS_HEADER))
    if draw(st.integers(0, 9)) == 0:
        header = draw(st.sampled_from([1_000, 60_000, 300_000]))
    lie = draw(st.sampled_from(["none", "none", "none", "short", "long", "huge"]))
    amount = 0
    if lie == "short":
        amount = draw(st.integers(0, 1 << 20))
    elif lie == "long":
        amount = draw(st.integers(1, 1 << 20))
    elif lie == "huge":
        amount = draw(st.integers(1 << 30, (1 << 64) - 1))
    return header, lie, amount


def forged_file(spec: tuple[str | int, str, int]) -> bytes:
    header_spec, lie, amount = spec
    if isinstance(header_spec, int):
        header = many_entries(header_spec)
    else:
        header = header_spec.encode("utf-8", "surrogatepass")
    length = len(header)
    if lie == "short":
        length = min(amount, length)
    elif lie == "long":
        length += amount
    elif lie == "huge":
        length = amount
    return length.to_bytes(8, "little") + header + SAFETENSORS_DATA


def load_safetensors(path: Path) -> int:
    state = hub.load_state_dict(path)
    for name, tensor in state.items():
        assert isinstance(name, str) and tensor.numel() >= 0
    return len(state)


@fuzz_settings()
@given(spec=safetensors_file())
def test_safetensors_header(spec: tuple[str | int, str, int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        path.write_bytes(forged_file(spec))
        contract("safetensors header", lambda: load_safetensors(path))


def test_seeds_load(tmp_path: Path) -> None:
    """The unmutated seeds are accepted, so the mutations start from inputs
    that reach every check."""
    (tmp_path / "config.json").write_text(json.dumps(CHECKPOINT_SEED))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert load_checkpoint_settings(tmp_path)["plugin"] == "dbnet"
    (tmp_path / "m.tcmbench.json").write_text(json.dumps(ONNX_SEED))
    assert load_onnx_settings(tmp_path / "m.tcmbench.json").exported_from["plugin"] == "dbnet"
    (tmp_path / "s.safetensors").write_bytes(SAFETENSORS_SEED)
    assert load_safetensors(tmp_path / "s.safetensors") == 2
