"""``tcmbench experiment run``: grids, cell ids, --tiny, validation, and
real runs of a small grid (DBNet on a 64-px ICDAR 2015-layout folder):
finished cells are skipped, a SIGKILLed run resumes to the same records as
an uninterrupted one, and torchrun spreads the cells over two processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tcmbench.commands.experiment import experiment
from tcmbench.eval.sweep import LABEL as SWEEP_LABEL
from tcmbench.eval.sweep import OFFICIAL_LABEL
from tcmbench.experiment.grid import (
    GridError,
    apply_tiny,
    check_names,
    expand,
    load_grid,
    parse_sets,
    shipped_grids,
    with_sets,
)
from tcmbench.experiment.runner import (
    TORCHRUN_ENV,
    Slot,
    default_save_every,
    log_every_for,
    my_cells,
    single_process_env,
)
from tcmbench.experiment.schema import record_integrity

REPO = Path(__file__).resolve().parent.parent

# A grid whose cells train DBNet (MobileNetV3-small) for 6 steps of 2 crops
# and score 3 test images: seconds per cell on a CPU.
SMALL_GRID = {
    "name": "small",
    "title": "test grid",
    "paper": "none",
    "report": {"kind": "curve", "x": "train_fraction", "series": "tcm"},
    "base": {
        "plugin": "dbnet",
        "recipe": "synthtext-mini",
        "train_datasets": ["icdar2015"],
        "test_datasets": ["icdar2015"],
        "steps": 6,
        "batch_size": 2,
        "lr": 0.001,
        "eval_limit": 3,
        "train_options": {
            "workers": 0,
            "save_every": 2,
            "cache_images": False,
            "tensorboard": False,
        },
    },
    "axes": {"train_fraction": [0.0, 0.5, 1.0]},
}


def _write_grid(path: Path, grid: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def _module_cmd() -> list[str]:
    """How to run the command in a subprocess: ``-m tcmbench experiment``
    once the CLI registers it, else the module's own entry point."""
    from tcmbench.cli import CORE_COMMANDS

    if "experiment" in CORE_COMMANDS:
        return ["-m", "tcmbench", "experiment"]
    return ["-m", "tcmbench.commands.experiment"]


# ------------------------------------------------------------------ grids


def _grid(tmp_path: Path, text: str, name: str = "g.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_axes_times_cells_ids_labels_and_resolved_params(tmp_path: Path) -> None:
    path = _grid(
        tmp_path,
        """
name: demo
base: {plugin: dbnet, train_datasets: [icdar2015], test_datasets: icdar2015, steps: 5}
cells:
  - {label: DBNet, tcm: false}
  - {label: TCM-DBNet, tcm: {context_length: 18}}
axes:
  train_fraction: [0.0, 0.5]
  seed: [0, 1]
""",
    )
    cells = expand(load_grid(path))
    assert [c.id for c in cells] == [
        "000-dbnet-train_fraction=0.0-seed=0",
        "001-dbnet-train_fraction=0.0-seed=1",
        "002-dbnet-train_fraction=0.5-seed=0",
        "003-dbnet-train_fraction=0.5-seed=1",
        "004-tcm-dbnet-train_fraction=0.0-seed=0",
        "005-tcm-dbnet-train_fraction=0.0-seed=1",
        "006-tcm-dbnet-train_fraction=0.5-seed=0",
        "007-tcm-dbnet-train_fraction=0.5-seed=1",
    ]
    c = cells[6]
    assert c.label == "TCM-DBNet"
    assert c.params["tcm"] == {"context_length": 18}
    assert c.params["train_fraction"] == 0.5 and c.params["seed"] == 0
    # every cell key is present, single names become lists, defaults filled
    assert c.params["test_datasets"] == ["icdar2015"]
    assert c.params["eval_split"] == "test" and c.params["init_from"] is None
    assert c.params["steps"] == 5 and c.params["train_options"] == {}
    # the same grid gives the same ids
    assert [x.id for x in expand(load_grid(path))] == [x.id for x in cells]


def test_labels_come_from_varying_keys_without_explicit_ones(tmp_path: Path) -> None:
    path = _grid(
        tmp_path,
        "base: {plugin: dbnet, test_datasets: [icdar2015], train_datasets: [icdar2015]}\n"
        "axes: {lr: [0.001, 0.01], tcm: [false, true]}\n",
        "lrs.yaml",
    )
    grid = load_grid(path)
    assert grid.name == "lrs"  # the file name when the grid has none
    cells = expand(grid)
    assert [c.id for c in cells][:2] == ["000-lr=0.001-tcm=false", "001-lr=0.001-tcm=true"]
    assert cells[1].label == "lr=0.001, tcm=true"


def test_axis_of_bundles_sets_several_keys(tmp_path: Path) -> None:
    path = _grid(
        tmp_path,
        """
name: transfer
base: {plugin: dbnet}
axes:
  data:
    - {label: "IC13 to IC15", train_datasets: [icdar2013], test_datasets: [icdar2015]}
    - {label: "IC13 to TD500", train_datasets: [icdar2013], test_datasets: [msra-td500]}
  tcm: [false, true]
""",
    )
    cells = expand(load_grid(path))
    assert len(cells) == 4
    assert cells[1].id == "001-ic13-to-ic15-tcm=true"
    assert cells[3].params["test_datasets"] == ["msra-td500"] and cells[3].params["tcm"] is True


def test_tiny_form_merges_key_by_key(tmp_path: Path) -> None:
    path = _grid(
        tmp_path,
        """
name: t
variables:
  ckpt: {help: "pretrained weights"}
base: {plugin: dbnet, train_datasets: [icdar2015], test_datasets: [icdar2015], steps: 1000,
       tcm: {context_length: 4}, init_from: "${ckpt}"}
cells:
  - {label: plain, tcm: false}
  - {label: tcm, tcm: true}
axes: {train_fraction: [0.0, 0.1, 1.0]}
tiny:
  variables: {ckpt: {default: embedded}}
  base: {train_datasets: [synthtext-mini], test_datasets: [synthtext-mini], steps: 3,
         tcm: {clip_pretrained: null}}
  axes: {train_fraction: [0.0, 1.0]}
""",
    )
    grid = load_grid(path)
    with pytest.raises(GridError, match=r"uses \$\{ckpt\}, which is not set; pass --set ckpt="):
        expand(grid)
    tiny = apply_tiny(grid)
    cells = expand(tiny)
    assert tiny.tiny and len(cells) == 4
    p = cells[3].params
    assert p["steps"] == 3 and p["train_datasets"] == ["synthtext-mini"]
    assert p["init_from"] == "embedded"
    # base tcm mappings merge; `tcm: true` keeps the mapping, `false` replaces it
    assert p["tcm"] == {"context_length": 4, "clip_pretrained": None}
    assert cells[0].params["tcm"] is False
    # --set gives the variable a value without changing the ids
    set_grid = with_sets(grid, parse_sets(["ckpt=runs/pre/final"], grid))
    full = expand(set_grid)
    assert full[0].params["init_from"] == "runs/pre/final"
    assert [c.id for c in full] == [c.id for c in expand(grid, strict=False)]
    assert set_grid.as_run()["variables"]["ckpt"]["default"] == "runs/pre/final"


def test_set_of_an_unknown_variable_is_one_clear_line(tmp_path: Path) -> None:
    grid = load_grid(_grid(tmp_path, "name: g\nbase: {plugin: dbnet}\n"))
    with pytest.raises(GridError, match=r"--set ckpt: grid 'g' .* has no such variable"):
        parse_sets(["ckpt=x"], grid)
    with pytest.raises(GridError, match="expected NAME=VALUE"):
        parse_sets(["ckpt"], grid)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: g\nbase: {plugin: dbnet\n", r"g\.yaml is not a YAML document .*: line \d+"),
        ("- a\n- b\n", r"g\.yaml: a grid is a YAML mapping"),
        ("name: g\naxis: {}\n", r"g\.yaml: axis is not a known key \(known: name"),
        (
            "name: g\ncells:\n  - {plugin: dbnet}\n  - {plugin: dbnet, stepz: 3}\n",
            r"g\.yaml: cells\[1\]\.stepz is not a known key \(known: label",
        ),
        (
            "name: g\nbase: {tcm: {contxt: 4}}\n",
            r"base\.tcm\.contxt is not a known key \(known: context_length",
        ),
        ("name: g\naxes: {train_fracton: [0.1]}\n", r"axes\.train_fracton is not a cell key"),
        (
            "name: g\naxes: {train_fraction: [0.1, 2]}\n",
            r"axes\.train_fraction\[1\] must be a number >= 0 and <= 1, got 2",
        ),
        ("name: g\naxes: {steps: []}\n", r"axes\.steps must hold 1 to \d+ items, got 0"),
        (
            "name: g\nbase: {train_options: {steps: 3}}\n",
            r"base\.train_options\.steps is set by the cell keys",
        ),
        (
            "name: g\nbase: {train_options: {wrkers: 3}}\n",
            r"train_options\.wrkers is not a known key \(known: weight_decay",
        ),
        ("name: g\nbase: {init_from: '${pre}'}\n", r"\$\{pre\}: variable used but not declared"),
        (
            "name: g\nreport: {kind: pie}\n",
            r"report\.kind must be one of 'curve', 'table', 'bars', got 'pie'",
        ),
        ("name: g\nreport: {kind: curve}\n", r"report\.x is required: a curve needs"),
        (
            "name: g\npaper_values: [{match: {}, dataset: icdar2015, hmean: 88.7, source: x}]\n",
            r"paper_values\[0\]\.hmean must be a number >= 0 and <= 1 or null, got 88\.7",
        ),
        (
            "name: g\npaper_values: [{match: {}, dataset: icdar2015, hmean: 0.887}]\n",
            r"paper_values\[0\]\.source is required",
        ),
        ("name: g\ntiny: {base: {lrr: 1}}\n", r"tiny\.base\.lrr is not a known key"),
        ("name: g\ntiny: {name: x}\n", r"tiny\.name is not a known key"),
    ],
)
def test_bad_grids_are_one_line_errors_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _grid(tmp_path, text)
    with pytest.raises(GridError, match=message) as info:
        load_grid(path)
    assert "\n" not in str(info.value)


def test_incomplete_cells_and_unknown_names_fail_before_running(tmp_path: Path) -> None:
    path = _grid(tmp_path, "name: g\nbase: {plugin: dbnet, train_datasets: [icdar2015]}\n")
    with pytest.raises(GridError, match=r"cell 000-g: no test_datasets"):
        expand(load_grid(path))
    path = _grid(
        tmp_path,
        "name: g\nbase: {plugin: dbnet, test_datasets: [icdar2015], train_fraction: 0.5}\n",
    )
    with pytest.raises(GridError, match=r"train_fraction 0.5 but no train_datasets"):
        expand(load_grid(path))
    path = _grid(
        tmp_path, "name: g\nbase: {plugin: dbnet, test_datasets: [icdar2051], train_fraction: 0}\n"
    )
    with pytest.raises(GridError, match=r"test_datasets: unknown dataset 'icdar2051'; known:"):
        check_names(expand(load_grid(path)), str(path))
    path = _grid(tmp_path, "name: g\nbase: {plugin: dbnot, test_datasets: [icdar2015]}\n")
    with pytest.raises(GridError, match=r"plugin 'dbnot' is not installed"):
        check_names(expand(load_grid(path), strict=False), str(path))


def test_unknown_grid_name_lists_the_shipped_ones() -> None:
    with pytest.raises(GridError, match=r"unknown grid 'fewshot'.*few-shot"):
        load_grid("fewshot")
    with pytest.raises(GridError, match=r"nothere\.yaml: grid file not found"):
        load_grid("nothere.yaml")


SHIPPED = ("few-shot", "domain-transfer", "ablations", "lr-factors", "backbones", "nighttime-art")


def test_shipped_grids_load_expand_and_have_tiny_forms() -> None:
    assert set(SHIPPED) <= set(shipped_grids())
    for name in SHIPPED:
        grid = load_grid(name)
        assert grid.paper.startswith("TCM paper"), name
        cells = expand(grid, strict=False)
        assert len({c.id for c in cells}) == len(cells) > 1
        tiny = apply_tiny(grid)
        tiny_cells = expand(tiny)  # the tiny form needs no --set
        check_names(tiny_cells, grid.source)
        for c in tiny_cells:
            p = c.params
            assert p["train_datasets"] in ([], ["synthtext-mini"]), (name, c.id)
            assert p["test_datasets"] == ["synthtext-mini"], (name, c.id)
            assert p["steps"] is not None and p["steps"] <= 30 and p["eval_limit"], (name, c.id)
            if p["tcm"] is not False:  # no CLIP download on a CPU box
                assert isinstance(p["tcm"], dict) and p["tcm"]["clip_pretrained"] is None
        # published figures carry their source and match a cell of the full grid
        for pv in grid.raw.get("paper_values") or []:
            assert pv["source"]
            assert any(all(c.params.get(k) == v for k, v in pv["match"].items()) for c in cells), (
                name,
                pv,
            )


def test_paper_values_are_only_the_documented_figures() -> None:
    """The figures TCM.md gives (Table 8 best 88.7; Table 9 55.2 / 52.8 /
    70.2) and no others."""
    found = {
        (name, round(pv["hmean"] * 1000))
        for name in SHIPPED
        for pv in load_grid(name).raw.get("paper_values") or []
    }
    assert found == {
        ("lr-factors", 887),
        ("nighttime-art", 552),
        ("nighttime-art", 528),
        ("nighttime-art", 702),
    }


def test_dry_run_prints_the_cells_as_a_table() -> None:
    result = CliRunner().invoke(experiment, ["run", "few-shot", "--tiny", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("grid few-shot (tiny):")
    assert "| id | label | params |" in lines
    rows = [line for line in lines if line.startswith("| 0")]
    assert rows[0].startswith("| 000-dbnet-train_fraction=0.0 | DBNet | tcm=false")
    assert len(rows) == len(expand(apply_tiny(load_grid("few-shot"))))
    # the full grid: unset variables shown, not an error
    result = CliRunner().invoke(experiment, ["run", "few-shot", "--dry-run", "--only", "25"])
    assert result.exit_code == 0, result.output
    assert "${tcm_dbnet_pretrained}" in result.output and "| 025-tcm-dbnet-" in result.output


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(experiment, ["run", "few-shot", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "dbnet_pretrained" in result.output and "Traceback" not in result.output
    result = runner.invoke(experiment, ["run", "few-shot", "--tiny", "--only", "77", "--dry-run"])
    assert result.exit_code == 2 and "--only 77: no such cell" in result.output
    result = runner.invoke(experiment, ["run", "few-shot", "--tiny"])
    assert result.exit_code == 2 and "--out" in result.output


def test_experiment_list_names_the_shipped_grids() -> None:
    result = CliRunner().invoke(experiment, ["list"])
    assert result.exit_code == 0, result.output
    for name in SHIPPED:
        assert f"| {name} | TCM paper" in result.output


# ------------------------------------------------------------------ runner pieces


def test_checkpoint_interval_and_logging_window_divide() -> None:
    assert default_save_every(12) == 3 and default_save_every(2) == 1
    assert default_save_every(None) == 1000 and default_save_every(10**6) == 1000
    for save in (1, 2, 3, 7, 25, 1000, 999):
        log_every = log_every_for(save)
        assert 1 <= log_every <= 10 and save % log_every == 0
    assert log_every_for(25) == 5 and log_every_for(1000) == 10


def test_torchrun_share_and_single_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = list(range(7))
    shares = [my_cells(cells, Slot(r, 3)) for r in range(3)]  # type: ignore[arg-type]
    assert sorted(x for s in shares for x in s) == cells and shares[1] == [1, 4]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with single_process_env():
        assert not any(k in os.environ for k in TORCHRUN_ENV)
    assert os.environ["WORLD_SIZE"] == "2" and os.environ["RANK"] == "1"


# ------------------------------------------------------------------ real runs


@pytest.fixture(scope="module")
def ic15_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_data import make_ic15_folder

    root = tmp_path_factory.mktemp("data")
    make_ic15_folder(root / "icdar2015", n_train=6, n_test=3)
    return root


@pytest.fixture(scope="module")
def clean_run(ic15_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small grid run once, uninterrupted, in this process."""

    tmp = tmp_path_factory.mktemp("clean")
    grid = _write_grid(tmp / "small.yaml", SMALL_GRID)
    (result,) = _in_process(
        ic15_root, tmp / "cache", ["run", str(grid), "--out", str(tmp / "out"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return tmp / "out"


def _in_process(ic15_root: Path, cache: Path, *commands: list[str]) -> list[Any]:
    """Run ``experiment`` subcommands in this process, one torch thread,
    on the tiny data folder; stops at the first that fails."""
    import torch

    results = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TCMBENCH_DATA", str(ic15_root))
            mp.setenv("TCMBENCH_CACHE", str(cache))
            for args in commands:
                results.append(CliRunner().invoke(experiment, args))
                if results[-1].exit_code != 0:
                    break
    finally:
        torch.set_num_threads(threads)
    return results


def _records(out: Path) -> dict[str, dict[str, Any]]:
    return {
        p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("cells/*/record.json"))
    }


def _comparable(rec: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on how the run went (kills, processes)."""
    train = rec["train"]
    return {
        "params": rec["params"],
        "init": rec["init"],
        "results": [
            {k: r[k] for k in ("dataset", "split", "protocol", "precision", "recall", "hmean")}
            for r in rec["results"]
        ],
        "train": None
        if train is None
        else {k: train[k] for k in ("steps", "train_images", "losses", "final")},
    }


def test_clean_run_writes_the_schema(clean_run: Path) -> None:
    meta = json.loads((clean_run / "experiment.json").read_text())
    assert meta["schema"] == 1 and meta["grid"] == "small" and meta["tiny"] is False
    assert meta["report"]["kind"] == "curve"
    ids = [c["id"] for c in meta["cells"]]
    assert ids == [
        "000-train_fraction=0.0",
        "001-train_fraction=0.5",
        "002-train_fraction=1.0",
    ]
    assert yaml.safe_load((clean_run / "grid.yaml").read_text())["name"] == "small"
    recs = _records(clean_run)
    assert list(recs) == ids
    untrained, half, full = (recs[i] for i in ids)
    assert untrained["train"] is None
    assert untrained["init"]["kind"] == "fresh"
    assert half["train"]["train_images"] == 3 and full["train"]["train_images"] == 6
    for rec in (half, full):
        assert rec["status"] == "done" and rec["train"]["steps"] == 6
        assert set(rec["train"]["losses"]) >= {"loss", "loss_prob"}
        assert rec["train"]["final"] == f"cells/{rec['cell']}/run/final"
        assert (clean_run / rec["train"]["final"] / "model.safetensors").is_file()
        # resumable states are dropped once the cell is done
        assert not (clean_run / "cells" / rec["cell"] / "run" / "checkpoints").exists()
    for rec in recs.values():
        (res,) = rec["results"]
        assert res["dataset"] == "icdar2015" and res["images"] == 3
        assert res["protocol"] == "icdar2015" and 0.0 <= res["hmean"] <= 1.0
        # both figures, each labelled: the official protocol's and the papers' (issue 17)
        assert res["figure"] == OFFICIAL_LABEL and res["sweep"]["label"] == SWEEP_LABEL
        assert res["sweep"]["protocol"] == "mmocr-hmean-iou"  # on the polygons as output
        assert 0.0 <= res["sweep"]["best_hmean"] <= 1.0
        assert res["sweep"]["best_threshold"] in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
        assert rec["versions"]["torch"] and rec["device"] == "cpu"
        # schema 2: the record carries the checksum the report verifies
        assert rec["schema"] == 2 and record_integrity(rec) == "verified"


def test_finished_cells_are_skipped(clean_run: Path, ic15_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(clean_run, out)
    before = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/record.json")}
    grid = _write_grid(tmp_path / "small.yaml", SMALL_GRID)
    env = {"TCMBENCH_DATA": str(ic15_root)}
    result = CliRunner().invoke(
        experiment, ["run", str(grid), "--out", str(out), "--no-progress"], env=env
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("done earlier, skipped") == 3
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/record.json")} == before
    # a finished cell run with other settings is refused, not silently reused
    other = json.loads(json.dumps(SMALL_GRID))
    other["base"]["lr"] = 0.002
    grid = _write_grid(tmp_path / "small.yaml", other)
    result = CliRunner().invoke(
        experiment, ["run", str(grid), "--out", str(out), "--no-progress"], env=env
    )
    assert result.exit_code == 2
    assert "was finished with other settings (lr: 0.001 -> 0.002)" in result.output
    # and a folder of another grid is refused
    other["name"] = "another"
    grid = _write_grid(tmp_path / "another.yaml", other)
    result = CliRunner().invoke(experiment, ["run", str(grid), "--out", str(out)], env=env)
    assert result.exit_code == 2 and "holds the full form of grid 'small'" in result.output


def _subprocess_env(ic15_root: Path, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    for k in TORCHRUN_ENV:
        env.pop(k, None)
    env.update(
        TCMBENCH_DATA=str(ic15_root),
        TCMBENCH_CACHE=str(cache),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")]),
    )
    return env


def test_killed_run_resumes_to_the_same_records(
    clean_run: Path, ic15_root: Path, tmp_path: Path
) -> None:
    """SIGKILL once cell 000 is recorded and cell 001 has a checkpoint;
    the second run skips 000, resumes 001 from its checkpoint and ends with
    records equal to the uninterrupted run's."""
    grid = _write_grid(tmp_path / "small.yaml", SMALL_GRID)
    out = tmp_path / "out"
    cmd = [sys.executable, *_module_cmd(), "run", str(grid), "--out", str(out), "--no-progress"]
    env = _subprocess_env(ic15_root, tmp_path / "cache")
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    ck = out / "cells" / "001-train_fraction=0.5" / "run" / "checkpoints"
    deadline = time.monotonic() + 120
    try:
        while not (ck.is_dir() and any(ck.glob("step-*/training_state.pt"))):
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "no checkpoint of cell 001 within 120 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert (out / "cells" / "000-train_fraction=0.0" / "record.json").is_file()
    assert not (out / "cells" / "001-train_fraction=0.5" / "record.json").exists()
    # `experiment status` sees the killed cell's process gone: preempted
    status = CliRunner().invoke(experiment, ["status", str(out), "--json", "-"])
    assert status.exit_code == 0, status.output
    states = {c["cell"]: c["state"] for c in json.loads(status.stdout)["cells"]}
    assert states == {
        "000-train_fraction=0.0": "done",
        "001-train_fraction=0.5": "preempted",
        "002-train_fraction=1.0": "pending",
    }
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "000-train_fraction=0.0: done earlier, skipped" in done.stdout
    assert "001-train_fraction=0.5: stopped before it finished; continuing" in done.stdout
    resumed, clean = _records(out), _records(clean_run)
    assert list(resumed) == list(clean)
    assert resumed["001-train_fraction=0.5"]["train"]["resumed_from_step"] > 0
    for cell_id in clean:
        assert _comparable(resumed[cell_id]) == _comparable(clean[cell_id]), cell_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torchrun_spreads_cells_over_two_cpu_processes(
    clean_run: Path, ic15_root: Path, tmp_path: Path
) -> None:
    grid = _write_grid(tmp_path / "small.yaml", SMALL_GRID)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        *_module_cmd(),
        "run",
        str(grid),
        "--out",
        str(out),
        "--no-progress",
    ]
    env = _subprocess_env(ic15_root, tmp_path / "cache")
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rank 0/2: [1/2] 000-train_fraction=0.0" in done.stdout
    assert "rank 1/2: [1/1] 001-train_fraction=0.5" in done.stdout
    spread, clean = _records(out), _records(clean_run)
    assert list(spread) == list(clean)  # every cell once
    for cell_id in clean:
        assert _comparable(spread[cell_id]) == _comparable(clean[cell_id]), cell_id
        assert spread[cell_id]["device"] == "cpu"
    # each cell trained as one process, not as a DDP group
    for cell_id in ("001-train_fraction=0.5", "002-train_fraction=1.0"):
        log = out / "cells" / cell_id / "run" / "train_log.jsonl"
        starts = [json.loads(x) for x in log.read_text().splitlines() if '"start"' in x]
        assert [s["world_size"] for s in starts] == [1]


def test_cells_of_every_builtin_plugin_train_evaluate_and_report(
    ic15_root: Path, tmp_path: Path
) -> None:
    """A grid is not DBNet-only: a ``plugin`` axis over PANet and FCENet
    trains and evaluates each (DBNet is the other tests' grid), and the
    report has one row per plugin with the records' figures."""
    grid = dict(SMALL_GRID, name="plugins", report={"kind": "table"})
    grid["base"] = dict(SMALL_GRID["base"], steps=2)
    grid["axes"] = {"plugin": ["pan", "fcenet"]}
    path = _write_grid(tmp_path / "plugins.yaml", grid)
    out = tmp_path / "out"
    results = _in_process(
        ic15_root,
        tmp_path / "cache",
        ["run", str(path), "--out", str(out)],
        ["report", str(out), "--format", "md,json"],
    )
    assert [r.exit_code for r in results] == [0, 0], results[-1].output
    records = _records(out)
    assert sorted(r["params"]["plugin"] for r in records.values()) == ["fcenet", "pan"]
    for rec in records.values():
        assert rec["train"]["steps"] == 2
        saved = json.loads(
            (out / "cells" / rec["cell"] / "run" / "final" / "config.json").read_text()
        )
        assert saved["plugin"] == rec["params"]["plugin"]  # the plugin asked for trained
        assert [r["dataset"] for r in rec["results"]] == ["icdar2015"]
        assert 0.0 <= rec["results"][0]["hmean"] <= 1.0
    rows = json.loads((out / "report" / "results.json").read_text())["rows"]
    assert sorted(r["params"]["plugin"] for r in rows) == ["fcenet", "pan"]
    by_plugin = {r["params"]["plugin"]: r for r in rows}
    for rec in records.values():
        row = by_plugin[rec["params"]["plugin"]]
        assert row["hmean"] == rec["results"][0]["hmean"]
