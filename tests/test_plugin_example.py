"""The example detector of docs/plugins.md ("Writing a detector"),
``docs/examples/tcmbench_blobs``, tested like the built-in detectors.

The example is a project a reader installs as it stands
(``pip install docs/examples/tcmbench_blobs``): its ``pyproject.toml``
registers the package ``tcmbench_blobs`` in the ``tcmbench`` entry-point
group and ships ``weights/``, trained by its ``make_weights.py``. The slow
test does exactly that install, into a fresh virtual environment, and runs
the installed plugin's shipped weights. The other tests register the
package the way its entry point would (``pm.register`` of the package
module, unregistered in ``finally``): it is listed, built plain and with
TCM (random CLIP weights, 64-px inputs), its post-processing is checked
on perfect maps, it trains a few steps through ``tcmbench train`` (warned
as too short by the default minimum: its recipes set none) and its
checkpoint is scored by ``tcmbench evaluate --weights``. The docs'
excerpts of it must be verbatim copies of its files, so that the guide
cannot drift from code that is known to work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import REPO
from shapely.geometry import Polygon

torch = pytest.importorskip("torch")

from tcmbench.cli import main
from tcmbench.contract.registry import get_detector, get_plugin_manager
from tcmbench.contract.spec import DetectorConfig, TCMConfig
from tcmbench.errors import PluginError

#: The example project: pyproject.toml, make_weights.py, the package tcmbench_blobs/.
PROJECT = REPO / "docs" / "examples" / "tcmbench_blobs"
PACKAGE = PROJECT / "tcmbench_blobs"
DOC = REPO / "docs" / "plugins.md"
SECTION = "## Writing a detector"
EXAMPLE_MARK = re.compile(r"<!-- example: (?P<file>\S+) -->")
RANDOM_CLIP = TCMConfig(clip_pretrained=None)
SMALL = {"backbone": "mobilenetv3_small", "options": {"neck_channels": 32}}


@pytest.fixture(scope="module")
def blobs() -> Iterator[ModuleType]:
    """The example package, registered as its entry point would be."""
    sys.path.insert(0, str(PROJECT))
    try:
        import tcmbench_blobs

        pm = get_plugin_manager()
        pm.register(tcmbench_blobs, name="blobs")
        try:
            yield tcmbench_blobs
        finally:
            pm.unregister(tcmbench_blobs)
    finally:
        sys.path.remove(str(PROJECT))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def meta_model(blobs: ModuleType) -> Any:
    """A plain blobs detector on the meta device: its target builder and
    postprocessor, without allocating a network."""
    return build(device="meta")


def build(tcm: TCMConfig | None = None, device: str = "cpu", **kwargs: Any) -> Any:
    config = DetectorConfig(tcm=tcm, **{**SMALL, **kwargs})
    with torch.device(device):
        return get_plugin_manager().hook.build_detector(spec=get_detector("blobs"), config=config)


def rect(cx: float, cy: float, w: float, h: float, angle: float = 0.0) -> np.ndarray:
    return cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = Polygon(a).buffer(0), Polygon(b).buffer(0)
    return float(pa.intersection(pb).area / pa.union(pb).area)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------- the docs


def _section() -> str:
    text = DOC.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


def test_docs_excerpts_are_verbatim_copies_of_the_example() -> None:
    """Every python block of the section is marked ``<!-- example: FILE -->``
    and appears verbatim in that example file. An unmarked block fails
    too, so code cannot slip into the guide without being the tested
    example's code."""
    section = _section()
    blocks = list(re.finditer(r"```python\n(?P<code>.*?)```", section, re.DOTALL))
    quoted: set[str] = set()
    for block in blocks:
        before = section[: block.start()].rstrip().splitlines()[-1].strip()
        mark = EXAMPLE_MARK.fullmatch(before)
        first = block["code"].splitlines()[0]
        assert mark is not None, f"python block {first!r} is not marked <!-- example: FILE -->"
        source = (PROJECT / mark["file"]).read_text()
        assert block["code"] in source, f"block {first!r} differs from {mark['file']}"
        quoted.add(mark["file"])
    files = {f"tcmbench_blobs/{n}" for n in ("__init__.py", "spec.py", "model.py")}
    assert quoted == files, f"the guide quotes {sorted(quoted)}, expected {sorted(files)}"


def test_pyproject_registers_the_package_ships_weights_and_is_quoted_whole() -> None:
    """The project's pyproject.toml puts the package in the ``tcmbench``
    entry-point group and its weights in the wheel; the guide shows the
    whole file, marked ``<!-- example: pyproject.toml -->``."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    text = (PROJECT / "pyproject.toml").read_text()
    project = tomllib.loads(text)
    assert project["project"]["entry-points"]["tcmbench"] == {"blobs": "tcmbench_blobs"}
    assert project["tool"]["setuptools"]["packages"] == ["tcmbench_blobs"]
    assert "weights/*" in project["tool"]["setuptools"]["package-data"]["tcmbench_blobs"]
    assert (PACKAGE / "__init__.py").is_file()
    section = _section()
    block = re.search(r"(?P<mark>[^\n]*)\n```toml\n(?P<toml>.*?)```", section, re.DOTALL)
    assert block is not None, "the guide shows no pyproject.toml"
    assert block["mark"].strip() == "<!-- example: pyproject.toml -->"
    assert block["toml"] == text, "the guide's pyproject.toml differs from the example's"


# ---------------------------------------------------------------- the plugin


def test_registered_listed_and_torch_free() -> None:
    """What the CLI does at start-up: import the package, collect the
    detectors; nothing heavy may be imported on the way."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(PROJECT)!r})\n"
        "import tcmbench_blobs\n"
        "from tcmbench.contract.registry import describe_plugins, detectors, get_plugin_manager\n"
        "get_plugin_manager().register(tcmbench_blobs, name='blobs')\n"
        "spec = detectors()['blobs']\n"
        "assert spec.tcm is not None and 'synthtext-mini' in spec.recipes\n"
        "row = [r for r in describe_plugins() if r['name'] == 'blobs'][0]\n"
        "assert row['hooks'] == ['register_detectors'], row\n"
        "assert 'torch' not in sys.modules and 'cv2' not in sys.modules, 'heavy import'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_plugins_command_lists_it(blobs: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["plugins", "--json", "-"], capsys)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["blobs"]["hooks"] == ["register_detectors"]
    assert rows["blobs"]["core"] is False


def test_parameter_counts_on_the_meta_device(blobs: ModuleType) -> None:
    """No memory, no weights: the neck and head sizes follow from the
    options and the backbone's channels."""
    model = build(device="meta", options={"neck_channels": 64})
    assert model.backbone.out_channels == [16, 24, 48, 96]  # MobileNetV3-small C2..C5
    n_neck = sum(p.numel() for p in model.neck.parameters())
    assert n_neck == sum(c * 64 for c in (16, 24, 48, 96)) + 4 * (64 * 16 * 9)
    assert sum(p.numel() for p in model.head.parameters()) == 16 * 4 + 1


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"neck_channels": 96.5}, r"blobs option neck_channels must be an integer"),
        ({"neck_channels": 2}, r"neck_channels must be an integer >= 4"),
        ({"neck_width": 64}, r"unknown blobs option\(s\) neck_width"),
        ({"postprocess": {"thr": 2}}, r"blobs postprocess parameter thr must be"),
        ({"postprocess": {"treshold": 0.3}}, r"unknown blobs postprocess parameter\(s\) treshold"),
    ],
)
def test_bad_options_are_plugin_errors_naming_them(
    blobs: ModuleType, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(PluginError, match=match):
        build(device="meta", options=options)


def test_unknown_backbone_is_a_plugin_error(blobs: ModuleType) -> None:
    with pytest.raises(PluginError, match=r"unknown backbone 'resnet19'"):
        build(device="meta", backbone="resnet19")


def _batch(model: Any, n: int = 2, size: int = 64) -> tuple[Any, dict[str, Any]]:
    words = [rect(30, 20, 40, 14, 10), rect(36, 44, 44, 12, -20)]
    per_image = [
        model.target_builder([words[i % 2], rect(12, 56, 16, 8)], [False, True], size, size)
        for i in range(n)
    ]
    targets = {k: torch.from_numpy(np.stack([t[k] for t in per_image])) for k in per_image[0]}
    images = torch.from_numpy(np.random.default_rng(0).normal(size=(n, 3, size, size)))
    return images.float(), targets


def test_targets_fill_words_and_mask_dont_care(meta_model: Any) -> None:
    word, dont_care = rect(30, 20, 40, 14, 10), rect(12, 56, 16, 8)
    t = meta_model.target_builder([word, dont_care], [False, True], 64, 96)
    assert set(t) == {"gt_text", "gt_mask"}
    assert all(v.dtype == np.float32 and v.shape == (64, 96) for v in t.values())
    assert t["gt_text"].sum() == pytest.approx(40 * 14, rel=0.15)
    assert t["gt_text"][20, 30] == 1 and t["gt_mask"][20, 30] == 1
    assert t["gt_text"][56, 12] == 0 and t["gt_mask"][56, 12] == 0


def test_plain_forward_and_loss(blobs: ModuleType) -> None:
    torch.manual_seed(0)
    model = build().train()
    images, targets = _batch(model)
    out = model(images, targets)
    assert tuple(out["text_logits"].shape) == (2, 1, 64, 64)
    losses = out["losses"]
    assert set(losses) == {"loss", "loss_bce", "loss_dice"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert torch.allclose(losses["loss"], losses["loss_bce"] + losses["loss_dice"])
    losses["loss"].backward()
    assert model.head.out.weight.grad is not None and model.head.out.weight.grad.abs().sum() > 0


def test_tcm_forward_aux_loss_and_lr_factors(blobs: ModuleType) -> None:
    """TCM-blobs with random CLIP weights: the score-map loss is added to
    the total, the image encoder trains at 0.1 x lr, the text encoder is
    frozen (left out of the optimizer), neck and head train at 1 x lr."""
    pytest.importorskip("open_clip")
    torch.manual_seed(0)
    model = build(RANDOM_CLIP).train()
    images, targets = _batch(model)
    out = model(images, targets)
    losses = out["losses"]
    assert set(losses) == {"loss", "loss_bce", "loss_dice", "loss_tcm"}
    assert all(torch.isfinite(v) for v in losses.values())
    own = model.loss(out, targets)["loss"]
    assert torch.allclose(losses["loss"], own + losses["loss_tcm"])
    base_lr = 1e-2
    lr_of = {id(p): g["lr"] for g in model.param_groups(base_lr, 1e-4) for p in g["params"]}
    assert all(lr_of[id(p)] == pytest.approx(0.1 * base_lr) for p in model.backbone.parameters())
    assert not any(id(p) in lr_of for p in model.feature_transform.text_encoder.parameters())
    assert lr_of[id(model.head.out.weight)] == pytest.approx(base_lr)
    assert lr_of[id(model.neck.lateral_convs[3].weight)] == pytest.approx(base_lr)
    assert model.neck.lateral_convs[3].weight.shape[1] == 2049


# ---------------------------------------------------------------- post-processing


def perfect_outputs(model: Any, polys: list[np.ndarray], height: int, width: int) -> dict[str, Any]:
    """What a perfect blobs head outputs: its own target map."""
    t = model.target_builder(polys, [False] * len(polys), height, width)
    return {"text": torch.from_numpy(t["gt_text"])[None, None]}


def test_postprocess_recovers_rotated_rectangles(meta_model: Any) -> None:
    polys = [rect(60, 40, 80, 24, 20), rect(150, 110, 90, 30, -35), rect(50, 120, 60, 20)]
    outputs = perfect_outputs(meta_model, polys, 160, 224)
    preds = meta_model.postprocessor(outputs, [{"orig_size": (160, 224), "scale": (1, 1)}])
    assert len(preds[0]) == 3
    for p in preds[0]:
        assert p.polygon.shape == (4, 2) and p.score == pytest.approx(1.0)
        assert max(iou(p.polygon, g) for g in polys) > 0.9


def test_postprocess_maps_back_and_ignores_padding(meta_model: Any) -> None:
    """The image was shown at 2x and padded to 192 x 256: predictions come
    back in original pixels, and a blob in the padding is not reported."""
    polys = [rect(60, 40, 80, 24, 20), rect(120, 110, 70, 24, -35)]
    outputs = perfect_outputs(meta_model, [*polys, rect(200, 180, 40, 12)], 192, 256)
    meta = {"orig_size": (80, 90), "scale": (2.0, 2.0)}  # input 160 x 180 of the 192 x 256
    preds = meta_model.postprocessor(outputs, [meta])[0]
    assert len(preds) == 2
    for p in preds:
        assert max(iou(p.polygon * 2, g) for g in polys) > 0.9
        assert p.polygon[:, 0].max() <= 89 and p.polygon[:, 1].max() <= 79


def test_postprocess_parameters_filter_and_are_checked(meta_model: Any) -> None:
    polys = [rect(60, 40, 80, 24, 20), rect(150, 40, 3, 2)]  # a word and a speck
    outputs = perfect_outputs(meta_model, polys, 96, 224)
    outputs["text"] = outputs["text"] * 0.55  # a confident-enough map?
    meta = [{"orig_size": (96, 224), "scale": (1.0, 1.0)}]
    post = meta_model.postprocessor  # thr 0.5, min_score 0.6, min_area 16
    assert post(outputs, meta) == [[]]
    assert len(post.with_params(min_score=0.5)(outputs, meta)[0]) == 1  # the speck is too small
    assert len(post.with_params(min_score=0.5, min_area=4)(outputs, meta)[0]) == 2
    with pytest.raises(PluginError, match=r"unknown blobs postprocess parameter\(s\) mask_thr"):
        post.with_params(mask_thr=0.3)


# ---------------------------------------------------------------- end to end


def test_train_then_evaluate_the_checkpoint(
    blobs: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tcmbench train` for a few steps on a tiny ICDAR 2015-layout folder
    (the synthtext-mini recipe: 224-px crops, original-size tests), then
    `tcmbench evaluate --weights` on its final checkpoint."""
    from safetensors.torch import load_file
    from tiny_data import make_ic15_folder

    data = make_ic15_folder(tmp_path / "ic15", n_train=4, n_test=2)
    run = tmp_path / "run"
    common = ["--plugin", "blobs", "--dataset", "icdar2015", "--data-root", str(data)]
    common += ["--recipe", "synthtext-mini", "--device", "cpu", "--no-progress"]
    code, out, err = run_cli(
        ["train", *common, "--steps", "3", "--batch-size", "2", "--workers", "0"]
        + ["--log-every", "1", "--save-every", "1", "--keep", "0", "--output", str(run)],
        capsys,
    )
    assert code == 0, err[-2000:]
    assert "trained 3 steps" in out
    # The recipe sets no min_steps: the default minimum warns (from scratch, 6 images).
    assert "warning: this run is too short to learn: 3 steps x 2 images" in out + err
    meta = json.loads((run / "final" / "config.json").read_text())
    assert meta["plugin"] == "blobs"
    assert meta["architecture"]["options"] == {"neck_channels": 64}
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    steps = [e for e in log if e["event"] == "train"]
    assert [e["step"] for e in steps] == [1, 2, 3]
    assert all({"loss", "loss_bce", "loss_dice"} <= set(e) for e in steps)  # terms are logged
    # Steps 2 and 3 moved the weights, and kept them finite.
    first = load_file(str(run / "checkpoints" / "step-0000001" / "model.safetensors"))
    final = load_file(str(run / "final" / "model.safetensors"))
    assert set(first) == set(final) and all(torch.isfinite(v).all() for v in final.values())
    assert not torch.equal(first["head.out.weight"], final["head.out.weight"])

    report = tmp_path / "r.json"
    code, out, err = run_cli(
        ["evaluate", *common, "--weights", str(run / "final"), "--json", str(report)], capsys
    )
    assert code == 0, err[-2000:]
    assert "| icdar2015 | test | icdar2015 | 2 |" in out
    doc = json.loads(report.read_text())
    assert doc["plugin"] == "blobs" and doc["images"] == 2
    assert doc["test"]["test"] == {"long_side": None, "short_side": None, "pad_divisor": 32}
    assert doc["test"]["postprocess"] == {"thr": 0.5, "min_score": 0.6, "min_area": 16.0}
    assert all(0.0 <= doc[k] <= 1.0 for k in ("precision", "recall", "hmean"))


def test_a_60_step_run_is_warned_too_short_by_the_default_minimum(
    blobs: ModuleType, tmp_path: Path
) -> None:
    """Issue 19: a 60-step run of a new plugin scored 0.0000 with no
    warning. The example's recipes set no ``train_loop.min_steps``, so the
    default minimum applies: ``train --plugin blobs --dataset synthtext-mini
    --steps 60`` (batch 8: 480 images) is warned before its first step and
    its start event is flagged. ``Trainer.begin`` (build, log, warn)
    stands for the run: no step is trained."""
    from tiny_data import make_samples

    from tcmbench.train.hyper import DEFAULT_MIN_STEPS, DEFAULT_MIN_STEPS_BATCH, TrainConfig
    from tcmbench.train.recipe_choice import build_detector_config, choose_recipe
    from tcmbench.train.run import recipe_for
    from tcmbench.train.trainer import Trainer

    spec = get_detector("blobs")
    assert not any("min_steps" in (r.get("train_loop") or {}) for r in spec.recipes.values())
    cfg = TrainConfig(
        plugin="blobs",
        datasets=["synthtext-mini"],
        steps=60,
        device="cpu",
        workers=0,
        progress=False,
        tensorboard=False,
        output=str(tmp_path / "run"),
    )
    choice = choose_recipe(cfg, spec)
    config = build_detector_config(cfg, choice.recipe)
    samples = make_samples(tmp_path / "data", n=2)
    trainer = Trainer(spec, config, recipe_for(choice.recipe, config), cfg, samples)
    said: list[str] = []
    trainer.announce = said.append
    short = trainer.begin()
    batch = spec.recipes["synthtext-mini"]["batch_size"]
    assert short is not None and short["min_steps_from"] == "default"
    (warning,) = [s for s in said if "too short" in s]
    assert warning.startswith(
        f"warning: this run is too short to learn: 60 steps x {batch} images = {60 * batch} "
    )
    images = DEFAULT_MIN_STEPS * DEFAULT_MIN_STEPS_BATCH
    assert (
        "the recipe sets no train_loop.min_steps, so the default minimum applies: "
        f"{DEFAULT_MIN_STEPS} steps x {DEFAULT_MIN_STEPS_BATCH} = {images}" in warning
    )
    assert f"({-(-images // batch)} steps at this batch size)" in warning
    start = json.loads((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()[0])
    assert start["event"] == "start" and start["too_short"] is True
    assert start["min_steps"] == DEFAULT_MIN_STEPS and start["min_steps_from"] == "default"


def test_shipped_weights_are_found_and_say_they_are_synthetic(
    blobs: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example ships ``weights/`` (made by its make_weights.py): the
    default of ``evaluate --dataset synthtext-mini``. Their config.json
    records a full run of the ``synthtext-mini`` recipe on synthetic images
    only and its test figures, and no path of the machine that made them;
    so on another dataset ``evaluate`` names the folder instead of taking
    it, and run there anyway they are warned as synthetic-trained, as the
    built-ins' are."""
    from tiny_data import make_ic15_folder

    from tcmbench.hub.checkpoints import embedded_weights

    spec = get_detector("blobs")
    folder = embedded_weights(spec)
    assert folder == PACKAGE / "weights"
    assert (folder / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    text = (folder / "config.json").read_text()
    meta = json.loads(text)
    recipe = spec.recipes["synthtext-mini"]
    assert meta["plugin"] == "blobs" and meta["datasets"] == ["synthtext-mini"]
    assert meta["recipe"]["model"] == recipe["model"]
    assert meta["step"] == meta["hyper"]["total_steps"] == recipe["steps"]
    assert "too_short" not in meta  # the recipe's length is above the default minimum
    (result,) = meta["results"]
    assert result["dataset"] == "synthtext-mini" and result["protocol"] == "icdar2015"
    assert 0.0 <= result["hmean"] <= 1.0
    assert str(REPO) not in text and "/tmp/" not in text and meta["train"]["output"] is None

    data = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=2)
    common = ["evaluate", "--plugin", "blobs", "--dataset", "icdar2015", "--data-root", str(data)]
    code, _, err = run_cli(common, capsys)
    assert code == 2 and "Traceback" not in err
    assert f"--weights {folder}" in err and "trained on synthetic images only" in err
    report = tmp_path / "r.json"
    args = [*common, "--weights", str(folder), "--device", "cpu", "--no-progress"]
    code, out, err = run_cli([*args, "--json", str(report)], capsys)
    assert code == 0, err[-2000:]
    assert f"the weights {folder} were trained on synthetic images only" in out + err
    assert json.loads(report.read_text())["weights"] == str(folder)


def _fresh_venv(root: Path) -> tuple[Path, Path]:
    """A new virtual environment that also sees this one's packages
    (torch, tcmbench, pip, setuptools), so that nothing is downloaded:
    ``--system-site-packages`` reaches only the base interpreter's, so a
    .pth line adds this environment's site directories (``addsitedir``
    also runs their .pth files: an editable tcmbench's finder). Its
    python and its own site-packages."""
    import site

    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(root)],
        check=True,
        timeout=120,
    )
    python = root / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    user = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    dirs = [d for d in (*site.getsitepackages(), *user) if Path(d).is_dir()]
    line = "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs)
    (Path(purelib) / "_parent_environment.pth").write_text(line + "\n")
    return python, Path(purelib)


@pytest.mark.slow
def test_pip_install_of_the_example_as_it_stands(tmp_path: Path) -> None:
    """``pip install docs/examples/tcmbench_blobs`` (a copy: pip builds in
    the folder) into a fresh virtual environment, offline
    (``--no-deps --no-build-isolation``: tcmbench, torch and setuptools come
    from this environment). Its python then lists the plugin, loaded
    through the entry point from the installed package, and
    ``evaluate --plugin blobs --dataset synthtext-mini`` without
    ``--weights`` runs the weights the wheel installed, which detect the
    synthetic text (first 20 test images)."""
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    shutil.copytree(PROJECT, project, ignore=ignore)
    python, purelib = _fresh_venv(tmp_path / "venv")
    work = tmp_path / "work"  # the commands' folder: nothing importable in it
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TCMBENCH_LOAD_PLUGINS"}
    env.update(PIP_NO_INDEX="1", PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(tmp_path))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(python), *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        return done

    run("-m", "pip", "install", "--no-deps", "--no-build-isolation", str(project))
    installed = purelib / "tcmbench_blobs"
    assert (installed / "weights" / "model.safetensors").is_file()  # package-data in the wheel
    assert not (installed.parent / "make_weights.py").exists()

    rows = {
        r["name"]: r for r in json.loads(run("-m", "tcmbench", "plugins", "--json", "-").stdout)
    }
    assert rows["blobs"]["hooks"] == ["register_detectors"] and rows["blobs"]["core"] is False
    assert rows["blobs"]["version"] == "0.1.0"
    where = run("-c", "import tcmbench_blobs; print(tcmbench_blobs.__file__)").stdout.strip()
    assert Path(where).parent == installed

    report = tmp_path / "r.json"
    run(
        "-m", "tcmbench", "evaluate", "--plugin", "blobs", "--dataset", "synthtext-mini",
        "--limit", "20", "--device", "cpu", "--no-progress", "--json", str(report),
    )  # fmt: skip
    doc = json.loads(report.read_text())
    assert doc["plugin"] == "blobs" and doc["images"] == 20
    assert doc["weights"] == str(installed / "weights")
    assert doc["hmean"] >= 0.5
