"""Conventions every command shares (issue 19).

- ``--json PATH``: ``-`` prints the JSON on stdout (alone), any other path
  writes the file; a bare ``--json`` (the old flag) is a usage error that
  names the new form.
- A plugin that has not opted into TCM gets one message, word for word the
  same, from ``train``, ``bench``, ``evaluate`` and ``predict``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tcmbench.cli import cli, main
from tcmbench.contract import registry as plugins
from tcmbench.contract.hookspecs import hookimpl
from tcmbench.contract.spec import tcm_not_supported_message


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TCMBENCH_DATA", raising=False)
    monkeypatch.setenv("TCMBENCH_CACHE", str(tmp_path / "tcmbench-cache"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The real entry point in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = int(main(list(argv)) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gt_dir(tmp_path: Path) -> Path:
    """Two ICDAR 2015 GT files: enough for ``stats`` and ``verify``."""
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "gt_img_1.txt").write_text("10,10,50,10,50,30,10,30,word\n0,0,9,0,9,9,0,9,###\n")
    (gt / "gt_img_2.txt").write_text("0,0,20,0,20,20,0,20,fine\n")
    return gt


# The commands whose --json was a flag before issue 19, with the exit code
# they end with on the data above (verify: counts do not match -> 1).
JSON_COMMANDS: dict[str, tuple[list[str], int]] = {
    "datasets list": (["datasets", "list"], 0),
    "datasets show": (["datasets", "show", "ctw1500"], 0),
    "datasets stats": (["datasets", "stats", "icdar2015", "--data-root", "{gt}"], 0),
    "datasets verify": (["datasets", "verify", "icdar2015", "--data-root", "{gt}"], 1),
    "plugins": (["plugins"], 0),
}


def _argv(name: str, gt: Path) -> tuple[list[str], int]:
    argv, code = JSON_COMMANDS[name]
    return [a.replace("{gt}", str(gt)) for a in argv], code


@pytest.mark.parametrize("name", sorted(JSON_COMMANDS))
def test_json_dash_is_stdout_and_a_path_is_a_file(
    name: str, gt_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, expected = _argv(name, gt_dir)
    code, out, _ = run(capsys, *argv, "--json", "-")
    assert code == expected, out
    on_stdout = json.loads(out)  # stdout carries the JSON and nothing else
    assert on_stdout

    target = tmp_path / "report.json"
    code, out, _ = run(capsys, *argv, "--json", str(target))
    assert code == expected
    assert json.loads(target.read_text()) == on_stdout
    assert not out.lstrip().startswith(("{", "[")), "with a file, stdout keeps the human output"


@pytest.mark.parametrize("name", sorted(JSON_COMMANDS))
def test_bare_json_is_a_usage_error_naming_the_new_form(
    name: str, gt_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, _ = _argv(name, gt_dir)
    code, out, err = run(capsys, *argv, "--json")
    assert code == 2 and out == ""
    assert "--json -" in err and "Traceback" not in err


def _json_options(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Option]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _json_options(command, f"{prefix}{name} ")
        elif command is not None:
            for param in command.params:
                if isinstance(param, click.Option) and "--json" in param.opts:
                    yield f"{prefix}{name}", param


def test_every_json_option_takes_a_path() -> None:
    """No command is left with the old flag (score, compare, evaluate and
    bench already took a path; the datasets commands and plugins now do)."""
    found = dict(_json_options(cli))
    assert {"score", "evaluate", "bench", "datasets stats", "plugins"} <= set(found)
    for command, option in found.items():
        assert not option.is_flag, f"{command} --json is still a flag"
        assert "-" in (option.help or ""), f"{command} --json does not say '-' is stdout"


# --------------------------------------------------------------------------- TCM support

NO_TCM = "no-tcm-toy"


@pytest.fixture
def no_tcm_plugin() -> Iterator[str]:
    """A detector plugin that has not opted into TCM (never built here)."""
    from tcmbench.contract.spec import DetectorSpec

    def build_parts(config: object) -> object:
        raise AssertionError("--tcm must be refused before the model is built")

    class Plugin:
        @hookimpl
        def register_detectors(self, register):  # type: ignore[no-untyped-def]
            register(DetectorSpec(name=NO_TCM, build_parts=build_parts))

    pm = plugins.get_plugin_manager()
    plugin = Plugin()
    pm.register(plugin, name="no-tcm-toy-plugin")
    try:
        yield NO_TCM
    finally:
        pm.unregister(plugin)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--dataset", "synthtext-mini", "--steps", "1"],
        ["bench", "--params-only"],
        ["evaluate", "--dataset", "icdar2015", "--device", "cpu"],
        ["predict", "{image}", "--out", "{out}", "--device", "cpu"],
    ],
    ids=lambda a: a[0],
)
def test_a_plugin_without_tcm_gets_the_same_message_everywhere(
    argv: list[str],
    no_tcm_plugin: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = tmp_path / "photo.png"
    image.write_bytes(b"")  # never read: the refusal comes first
    args = [a.format(image=image, out=tmp_path / "out") for a in argv]
    code, _, err = run(capsys, *args, "--plugin", no_tcm_plugin, "--tcm")
    assert code != 0 and "Traceback" not in err
    assert tcm_not_supported_message(no_tcm_plugin) in err
    assert "checkpoint" not in err.lower()  # the plugin is the problem, not a checkpoint
    assert not (tmp_path / "out").exists()
