"""The plugin contract: every hookspec is documented and exercised here.

Fake plugins are defined in this file and registered with ``pm.register``
(unregistered in ``finally``), the way a third-party package's module would
be registered from its entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pluggy
import pytest
from click.testing import CliRunner

from tcmbench.contract import hookspecs
from tcmbench.contract import registry as plugins
from tcmbench.contract.hookspecs import hookimpl
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.source import AnnotationSource, ParseReport
from tcmbench.errors import AnnotationFormatError, PluginError

REPO = Path(__file__).resolve().parent.parent
HOOK_NAMES = sorted(
    name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "tcmbench_spec")
)


def _read_toy(
    source: AnnotationSource, images: Path | None, report: ParseReport, **options: object
) -> list[Sample]:
    """A toy format: one ``id: x1 y1 x2 y2 ...`` polygon per line."""
    samples: dict[str, Sample] = {}
    for name in source.names("*.toy"):
        for lineno, line in source.iter_lines(name):
            sid, _, coords = line.partition(":")
            try:
                pts = np.array([float(v) for v in coords.split()], dtype=np.float32).reshape(-1, 2)
                inst = Instance(pts)
            except ValueError as exc:
                report.fail(source.location(name), lineno, "id: x1 y1 x2 y2 x3 y3 ...", str(exc))
                continue
            samples.setdefault(sid, Sample(sid, None, 0, 0)).instances.append(inst)
    return [samples[k] for k in sorted(samples)]


class ToyPlugin:
    """A complete third-party plugin: a format, a protocol, a dataset, a command."""

    def __init__(self, dataset_yaml: Path | None = None) -> None:
        self.dataset_yaml = dataset_yaml

    @hookimpl
    def register_dataset_formats(self, register):
        register(plugins.DatasetFormat(name="toy", reader=_read_toy, summary="toy polygons"))

    @hookimpl
    def register_protocols(self, register):
        def count_only(gt, predictions, **params):
            from tcmbench.eval.result import Result

            n_gt = sum(len(v) for v in gt.values())
            n_pred = sum(len(v) for v in predictions.values())
            r = min(n_pred, n_gt) / n_gt if n_gt else 0.0
            return Result("toy-count", r, r, r)

        register(plugins.ProtocolSpec(name="toy-count", evaluate=count_only, summary="counts"))

    @hookimpl
    def register_datasets(self, register):
        if self.dataset_yaml is not None:
            register(self.dataset_yaml)

    @hookimpl
    def register_commands(self, cli):
        import click

        @cli.command(name="toy-hello")
        @click.argument("who")
        def toy_hello(who: str) -> None:
            """Say hello (added by a plugin)."""
            click.echo(f"hello {who} from a plugin")


@pytest.fixture
def toy_plugin():
    pm = plugins.get_plugin_manager()
    plugin = ToyPlugin()
    pm.register(plugin, name="toy-plugin")
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


def test_every_hookspec_is_documented_and_tested() -> None:
    docs = (REPO / "docs" / "plugins.md").read_text()
    this_file = Path(__file__).read_text()
    assert HOOK_NAMES, "no hookspecs found"
    for name in HOOK_NAMES:
        assert f"### {name}" in docs, f"hookspec {name} is not documented in docs/plugins.md"
        assert f"def test_hook_{name}" in this_file, f"hookspec {name} has no test_hook_{name}"


def test_hook_register_dataset_formats(toy_plugin: ToyPlugin, tmp_path: Path) -> None:
    fmt = plugins.get_dataset_format("toy")
    (tmp_path / "a.toy").write_text(
        "img1: 0 0 10 0 10 10\nimg1: 1 1 5 1 5 5 1 5\nimg2: 0 0 3 0 3 3\n"
    )
    samples = fmt.reader(AnnotationSource(tmp_path), None, ParseReport())
    assert [s.id for s in samples] == ["img1", "img2"]
    assert samples[0].instances[1].polygon.shape == (4, 2)
    (tmp_path / "a.toy").write_text("img1: 0 0 10 0 10 10\nimg2: 0 0 oops\n")
    with pytest.raises(AnnotationFormatError, match=r"a\.toy, line 2.*expected id: x1 y1"):
        fmt.reader(AnnotationSource(tmp_path), None, ParseReport())
    report = ParseReport(skip_invalid=True)
    assert len(fmt.reader(AnnotationSource(tmp_path), None, report)) == 1
    assert len(report.skipped) == 1


@dataclass
class _ShiftRight:
    """A toy augmentation: moves image and polygons ``pixels`` to the right."""

    pixels: int = 1

    def __call__(self, image, polys, ignores, rng):
        shifted = np.zeros_like(image)
        shifted[:, self.pixels :] = image[:, : image.shape[1] - self.pixels]
        return shifted, [p + np.float32([self.pixels, 0]) for p in polys], ignores


def test_hook_register_augmentations() -> None:
    from tcmbench.data.transforms import TrainTransform, build_augmentation
    from tcmbench.errors import TcmbenchError

    class AugPlugin:
        @hookimpl
        def register_augmentations(self, register):
            register(plugins.AugmentationSpec(name="shift_right", factory=_ShiftRight))
            register(plugins.AugmentationSpec(name="lazy_shift", factory=f"{__name__}:_ShiftRight"))

    pm = plugins.get_plugin_manager()
    plugin = AugPlugin()
    pm.register(plugin, name="aug-plugin")
    try:
        recipe = {"train": {"augment": [{"name": "shift_right", "pixels": 3}], "pad_divisor": 1}}
        transform = TrainTransform.from_recipe(recipe)
        image = np.zeros((4, 8, 3), np.uint8)
        image[:, 0] = 255
        poly = np.float32([[0, 0], [2, 0], [2, 2]])
        out = transform(image, [poly], [False], np.random.default_rng(0))
        assert np.allclose(out.polygons[0][:, 0], [3, 5, 5])
        assert out.image[0, :, 3].max() > out.image[0, :, 0].max()  # the column moved
        assert isinstance(build_augmentation({"name": "lazy_shift"}), _ShiftRight)
        with pytest.raises(TcmbenchError, match=r"unknown parameter.*pixls"):
            build_augmentation({"name": "shift_right", "pixls": 2})
        with pytest.raises(TcmbenchError, match=r"unknown augmentation 'shift_lft'.*shift_right"):
            build_augmentation({"name": "shift_lft"})
    finally:
        pm.unregister(plugin)

    class Shadowing:
        @hookimpl
        def register_augmentations(self, register):
            register(plugins.AugmentationSpec(name="hflip", factory=_ShiftRight))

    shadow = Shadowing()
    pm.register(shadow, name="shadow-plugin")
    try:
        with pytest.raises(TcmbenchError, match="built-in name"):
            build_augmentation({"name": "hflip"})
    finally:
        pm.unregister(shadow)


def test_hook_register_protocols(toy_plugin: ToyPlugin) -> None:
    spec = plugins.get_protocol("toy-count")
    poly = np.array([[0, 0], [1, 0], [1, 1]], dtype=np.float32)
    result = spec.evaluate({"a": [Instance(poly), Instance(poly)]}, {"a": [object()]})
    assert result.recall == 0.5
    with pytest.raises(PluginError, match="unknown protocol"):
        plugins.get_protocol("no-such-protocol")


def test_hook_register_commands(toy_plugin: ToyPlugin) -> None:
    from tcmbench.cli import cli

    cli._plugins_loaded = False  # type: ignore[attr-defined]
    try:
        result = CliRunner().invoke(cli, ["toy-hello", "world"])
        assert result.exit_code == 0, result.output
        assert "hello world from a plugin" in result.output
        assert "toy-hello" in CliRunner().invoke(cli, ["--help"]).output
    finally:
        cli.commands.pop("toy-hello", None)
        cli._plugins_loaded = False  # type: ignore[attr-defined]


def test_hook_register_datasets(tmp_path: Path) -> None:
    from tcmbench.data import dataset as ds

    yaml_path = tmp_path / "toyset.yaml"
    yaml_path.write_text(
        "name: toyset\ntitle: Toy set\nformat: toy\nprotocol: icdar2015\n"
        "splits:\n  test:\n    annotations: gts\n"
    )
    (tmp_path / "gts").mkdir()
    (tmp_path / "gts" / "a.toy").write_text("img1: 0 0 10 0 10 10\n")
    pm = plugins.get_plugin_manager()
    plugin = ToyPlugin(dataset_yaml=yaml_path)
    pm.register(plugin, name="toy-plugin-ds")
    try:
        assert "toyset" in ds.list_dataset_configs()
        samples, _ = ds.load_split("toyset", "test", data_root=str(tmp_path))
        assert [s.id for s in samples] == ["img1"]
    finally:
        pm.unregister(plugin)


def _tiny_parts(config):
    import torch
    from torch import nn

    from tcmbench.models.detector import DetectorParts

    class Stages(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.out_channels = [4, 8]
            self.a = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.b = nn.Conv2d(4, 8, 3, stride=2, padding=1)

        def forward(self, x):
            a = self.a(x)
            return [a, self.b(a)]

    class Neck(nn.Module):
        def __init__(self, in_channels: list[int]) -> None:
            super().__init__()
            self.proj = nn.Conv2d(in_channels[-1], 2, 1)

        def forward(self, feats):
            return self.proj(feats[-1])

    class Head(nn.Module):
        def forward(self, x):
            return {"prob": torch.sigmoid(x[:, :1])}

    class Loss(nn.Module):
        def forward(self, outputs, targets):
            return {"loss": (outputs["prob"] - targets["gt"]).abs().mean()}

    return DetectorParts(
        Stages(), Neck, Head(), Loss(), lambda *a: {}, lambda o, m: [[] for _ in m]
    )


TINY_SPEC_NAME = "tiny-test-detector"


def _tiny_spec():
    from tcmbench.contract.spec import DetectorSpec

    return DetectorSpec(name=TINY_SPEC_NAME, build_parts=_tiny_parts)


def test_hook_register_detectors() -> None:
    spec = _tiny_spec()

    class DetPlugin:
        @hookimpl
        def register_detectors(self, register):
            register(spec)

    pm = plugins.get_plugin_manager()
    plugin = DetPlugin()
    pm.register(plugin, name="tiny-det")
    try:
        assert plugins.get_detector(TINY_SPEC_NAME) is spec
    finally:
        pm.unregister(plugin)
    with pytest.raises(PluginError, match="unknown detector plugin"):
        plugins.get_detector(TINY_SPEC_NAME)


def test_hook_build_detector() -> None:
    """The default implementation assembles the parts; the TCM wrapper
    refuses a detector that has not opted in; a plugin's own firstresult
    implementation takes precedence over the default."""
    import torch

    from tcmbench.contract.spec import DetectorConfig, TCMConfig
    from tcmbench.models.detector import Detector

    spec = _tiny_spec()
    pm = plugins.get_plugin_manager()
    model = pm.hook.build_detector(spec=spec, config=DetectorConfig())
    assert isinstance(model, Detector)
    out = model(torch.zeros(1, 3, 16, 16), {"gt": torch.zeros(1, 1, 4, 4)})
    assert out["prob"].shape == (1, 1, 4, 4)
    assert torch.isfinite(out["losses"]["loss"])
    with pytest.raises(PluginError, match="has not opted into TCM"):
        pm.hook.build_detector(spec=spec, config=DetectorConfig(tcm=TCMConfig()))

    sentinel = torch.nn.Identity()

    class OwnBuilder:
        @hookimpl
        def build_detector(self, spec, config):
            return sentinel if spec.name == TINY_SPEC_NAME else None

    own = OwnBuilder()
    pm.register(own, name="own-builder")
    try:
        assert pm.hook.build_detector(spec=spec, config=DetectorConfig()) is sentinel
    finally:
        pm.unregister(own)


def test_duplicate_registration_names_both_plugins(toy_plugin: ToyPlugin) -> None:
    pm = plugins.get_plugin_manager()
    dup = ToyPlugin()
    pm.register(dup, name="toy-plugin-dup")
    try:
        with pytest.raises(
            PluginError, match="registered twice: by toy-plugin and by toy-plugin-dup"
        ):
            plugins.dataset_formats()
    finally:
        pm.unregister(dup)


def test_misspelled_hookimpl_is_caught() -> None:
    class Typo:
        @hookimpl
        def register_dataset_format(self, register):  # the typo: missing "s"
            register(None)

    pm = pluggy.PluginManager("tcmbench")
    pm.add_hookspecs(hookspecs)
    pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError, match="register_dataset_format"):
        pm.check_pending()


def test_misspelled_hookimpl_in_an_installed_plugin_is_a_plugin_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Typo:
        @hookimpl
        def register_dataset_format(self, register):  # the typo: missing "s"
            register(None)

    def load_typo(pm: pluggy.PluginManager) -> None:
        pm.register(Typo(), name="typo-plugin")

    monkeypatch.setattr(plugins, "_load_entry_points", load_typo)
    plugins.reset_plugin_manager()
    try:
        with pytest.raises(
            PluginError, match=r"plugin 'typo-plugin' is invalid: .*register_dataset_format"
        ):
            plugins.get_plugin_manager()
    finally:
        plugins.reset_plugin_manager()


def _run_cli(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tcmbench", *args],
        check=False,  # the test reads the exit status
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_plugins_command_lists_hooks_and_versions_and_honours_allow_list() -> None:
    listed = json.loads(_run_cli(["plugins", "--json", "-"]).stdout)
    by_name = {p["name"]: p for p in listed}
    assert "dbnet" in by_name and by_name["dbnet"]["version"]
    assert "register_detectors" in by_name["dbnet"]["hooks"]
    assert by_name["tcmbench.tcm.hook"]["core"] is True
    none_allowed = json.loads(
        _run_cli(["plugins", "--json", "-"], {"TCMBENCH_LOAD_PLUGINS": ""}).stdout
    )
    assert "dbnet" not in {p["name"] for p in none_allowed}
    core = {p["name"] for p in none_allowed}
    assert "tcmbench.data.formats.registry" in core  # core always loads


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from tcmbench.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip().endswith("NO-TORCH"), out.stdout + out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--plugin", "pan", "--dataset", "synthtext-mini", "--steps", "1"],
        ["evaluate", "--plugin", "pan", "--dataset", "synthtext-mini", "--limit", "1"],
        ["bench", "--plugin", "pan", "--params-only"],
    ],
    ids=["train", "evaluate", "bench"],
)
def test_a_misspelt_recipe_is_one_line_not_the_default(args: list[str], tmp_path: Path) -> None:
    """``--recipe`` names a recipe; a typo must not silently train or score
    with the plugin's default settings."""
    res = subprocess.run(
        [sys.executable, "-m", "tcmbench", *args, "--recipe", "pan-paper-icdar2051"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no recipe 'pan-paper-icdar2051'" in lines[0], res.stderr
    assert "pan-paper-icdar2015" in lines[0]  # the list names the intended one
    assert not list(tmp_path.iterdir())  # nothing trained or written
