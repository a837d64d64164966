"""``tcmbench score`` end to end: files in, table / JSON / JSON lines out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, shared_file

GT_IC15 = {
    # gt_img_1: two care boxes and a don't-care one; gt_img_2: one box.
    "gt_img_1.txt": "\ufeff0,0,10,0,10,10,0,10,word\r\n20,0,30,0,30,10,20,10,other\r\n40,0,50,0,50,10,40,10,###\r\n",
    "gt_img_2.txt": "0,0,10,0,10,10,0,10,hello\n",
}


def make_zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcmbench", "score", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def run_code(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -c code`` from the repository, its output captured."""
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env=env,
    )


@pytest.fixture()
def ic15(tmp_path: Path) -> tuple[Path, Path]:
    gt = make_zip(tmp_path / "gt.zip", GT_IC15)
    pred = make_zip(
        tmp_path / "submit.zip",
        {
            # one hit, one false positive, one absorbed by ###; img 2: a hit
            "res_img_1.txt": "0,0,10,0,10,10,0,10,0.9\n60,60,70,60,70,70,60,70,0.4\n40,0,50,0,50,10,40,10,0.8\n",
            "res_img_2.txt": "0,0,10,0,10,11,0,11,0.7\n",
        },
    )
    return gt, pred


def test_table_json_and_per_image(ic15: tuple[Path, Path], tmp_path: Path) -> None:
    gt, pred = ic15
    out, lines = tmp_path / "r.json", tmp_path / "r.jsonl"
    res = run_cli(
        "--protocol",
        "icdar2015",
        "--gt",
        str(gt),
        "--pred",
        str(pred),
        "--param",
        "confidences=true",
        "--json",
        str(out),
        "--per-image",
        str(lines),
    )
    assert res.returncode == 0, res.stderr
    assert "| protocol | precision | recall | hmean | AP |" in res.stdout
    assert "| icdar2015 | 0.6667 | 0.6667 | 0.6667 |" in res.stdout
    data = json.loads(out.read_text())
    # 2 matched of 3 care GTs and 3 care detections (the ### one is absorbed)
    assert data["precision"] == data["recall"] == pytest.approx(2 / 3)
    assert data["protocol"] == "icdar2015" and "ap" in data and "tiou_hmean" not in data
    assert data["params"]["confidences"] is True and data["num_det_care"] == 3
    rows = [json.loads(x) for x in lines.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["img_1", "img_2"]
    assert rows[0]["det_dont_care"] == [2] and rows[0]["num_matched"] == 1


def test_sweep_is_printed_apart(tmp_path: Path) -> None:
    gt = make_zip(tmp_path / "gt.zip", {"1001.txt": "0,10,10,10,10,0,0,0,CARE\n"})
    det = make_zip(
        tmp_path / "det.zip",
        {"1001.txt": "0,10,10,10,10,0,0,0,0.95\n40,50,50,50,50,40,40,40,0.35\n"},
    )
    out = tmp_path / "r.json"
    res = run_cli(
        "-p", "ctw1500-iou", "--gt", str(gt), "--pred", str(det), "--sweep", "--json", str(out)
    )
    assert res.returncode == 0, res.stderr
    assert "| ctw1500-iou | 0.5000 | 1.0000 | 0.6667 |" in res.stdout
    assert (
        "Best-threshold sweep at mmocr 0.x's thresholds, matched by ctw1500-iou's rules "
        "(not the official figure;" in res.stdout
    )
    assert "| 0.4 (best) | 1.0000 | 1.0000 | 1.0000 |" in res.stdout
    data = json.loads(out.read_text())
    assert data["hmean"] == pytest.approx(2 / 3) and data["sweep"]["best_hmean"] == 1.0
    assert {"tiou_precision", "tiou_recall", "tiou_hmean"} <= set(data)


def test_pred_order_yx(tmp_path: Path) -> None:
    gt = make_zip(tmp_path / "gt.zip", {"1001.txt": "0,10,20,10,20,0,0,0,CARE\n"})
    # the same 20 x 10 box written y,x (read as x,y it is 10 x 20: IoU 1/3)
    det = make_zip(tmp_path / "det.zip", {"1001.txt": "10,0,10,20,0,20,0,0\n"})
    assert (
        "| 0.0000 | 0.0000 | 0.0000 |"
        in run_cli(
            "-p", "ctw1500-iou", "--gt", str(gt), "--pred", str(det), "--param", "validate=false"
        ).stdout
    )
    res = run_cli("-p", "ctw1500-iou", "--gt", str(gt), "--pred", str(det), "--pred-order", "yx")
    assert "| 1.0000 | 1.0000 | 1.0000 |" in res.stdout, res.stderr


@pytest.mark.parametrize(
    ("files", "pattern"),
    [
        ({"res_img_1.txt": "", "res_img_9.txt": ""}, "have no ground truth: img_9"),
        (
            {"res_img_1.txt": "0,0,10,0,10,10,0,10\n1,2,3\n"},
            r"submit.zip:res_img_1.txt, line 2: malformed",
        ),
        (
            {"res_img_1.txt": "0,0,10,0,10,10,0,10\n0,10,10,10,10,0,0,0\n"},
            r"res_img_1.txt, line 2: icdar2015: .*clockwise",
        ),
        ({"results.txt": ""}, "entry name not valid"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    ic15: tuple[Path, Path], tmp_path: Path, files: dict[str, str], pattern: str
) -> None:
    import re

    gt, _ = ic15
    pred = make_zip(tmp_path / "submit.zip", files)
    res = run_cli("--protocol", "icdar2015", "--gt", str(gt), "--pred", str(pred))
    assert res.returncode == 2
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert re.search(pattern, err), err


def test_usage_errors(ic15: tuple[Path, Path]) -> None:
    gt, pred = ic15
    res = run_cli("--gt", str(gt), "--pred", str(pred))
    assert res.returncode == 2 and "--protocol" in res.stderr
    res = run_cli("-p", "icdar2015", "--gt", str(gt), "--pred", str(pred), "--param", "nonsense")
    assert res.returncode == 2 and "KEY=VALUE" in res.stderr
    res = run_cli("-p", "icdar2015", "--gt", str(gt), "--pred", str(pred), "--param", "iou=0.7")
    assert res.returncode == 2 and "unknown parameter" in res.stderr
    res = run_cli("-p", "no-such-protocol", "--gt", str(gt), "--pred", str(pred))
    assert res.returncode == 2 and "icdar2015" in res.stderr


def test_dataset_picks_protocol_and_format(ic15: tuple[Path, Path], tmp_path: Path) -> None:
    gt, pred = ic15
    out = tmp_path / "r.json"
    res = run_cli(
        "--dataset",
        "icdar2015",
        "--gt",
        str(gt),
        "--pred",
        str(pred),
        "--json",
        str(out),
        "--param",
        "confidences=true",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["protocol"] == "icdar2015"


#: Modules a `score` of integer quads has no use for: each costs start-up
#: time the official script does not pay (torch seconds, the rest
#: milliseconds: plugin machinery, GEOS, numpy's masked arrays).
NOT_ON_THE_SCORE_PATH = (
    "torch",
    "pandas",
    "scipy",
    "PIL",
    "yaml",
    "tqdm",
    "pluggy",
    "shapely",
    "numpy.ma",
    "xml.etree.ElementTree",
)


def test_score_imports_only_what_it_needs(ic15: tuple[Path, Path]) -> None:
    gt, pred = ic15
    code = (
        "import sys\nfrom tcmbench.cli import main\n"
        f"main(['score', '-p', 'icdar2015', '--gt', {str(gt)!r}, '--pred', {str(pred)!r},"
        " '--param', 'confidences=true'])\n"
        f"print('LOADED', [m for m in {NOT_ON_THE_SCORE_PATH!r} if m in sys.modules])\n"
    )
    res = run_code(code)
    assert res.returncode == 0, res.stderr
    assert "LOADED []" in res.stdout, res.stdout


def test_numpy_starts_with_one_blas_thread(ic15: tuple[Path, Path]) -> None:
    """Scoring does no linear algebra: numpy must be first imported after
    the command asked OpenBLAS for one thread (a pool of one spinning thread
    per core costs CPU time and start-up). An option parsed with an import
    that pulls numpy in early broke this once."""
    gt, pred = ic15
    code = (
        "import builtins, os, sys\n"
        "seen = []\n"
        "real_import = builtins.__import__\n"
        "def spy(name, *a, **k):\n"
        "    if name == 'numpy' and 'numpy' not in sys.modules and not seen:\n"
        "        seen.append(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
        "    return real_import(name, *a, **k)\n"
        "builtins.__import__ = spy\n"
        "from tcmbench.cli import main\n"
        "try:\n"
        f"    main(['score', '-p', 'icdar2015', '--gt', {str(gt)!r}, '--pred', {str(pred)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('BLAS THREADS AT NUMPY IMPORT', seen)\n"
    )
    res = run_code(code, env={k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"})
    assert res.returncode == 0, res.stderr
    assert "BLAS THREADS AT NUMPY IMPORT ['1']" in res.stdout, res.stdout


@pytest.mark.realdata
def test_done_when_figures_through_the_cli(tmp_path: Path) -> None:
    cases = [
        ("icdar2015", "icdar2015/test_gt.zip", "icdar2015/pixellink_submit.zip"),
        ("ctw1500-iou", "ctw1500/test_gt.zip", "ctw1500/example_det.zip"),
        ("totaltext-iou", "totaltext/test_gt.zip", "totaltext/baseline_det.zip"),
    ]
    got = {}
    for protocol, gt, pred in cases:
        out = tmp_path / f"{protocol}.json"
        res = run_cli(
            "-p",
            protocol,
            "--gt",
            str(shared_file(gt)),
            "--pred",
            str(shared_file(pred)),
            "--json",
            str(out),
        )
        assert res.returncode == 0, res.stderr
        got[protocol] = json.loads(out.read_text())
    ic15 = got["icdar2015"]
    assert (ic15["precision"], ic15["recall"], ic15["hmean"]) == (
        0.8289345063538612,
        0.8165623495426095,
        0.822701916080524,
    )
    ctw = got["ctw1500-iou"]
    assert [round(ctw[k], 4) for k in ("recall", "precision", "hmean")] == [0.8162, 0.7497, 0.7815]
    assert [round(ctw[k], 3) for k in ("tiou_recall", "tiou_precision", "tiou_hmean")] == [
        0.52,
        0.572,
        0.545,
    ]
    tt = got["totaltext-iou"]
    assert [round(tt[k], 4) for k in ("recall", "precision", "hmean")] == [0.7014, 0.8038, 0.7492]
    assert [round(tt[k], 3) for k in ("tiou_recall", "tiou_precision")] == [0.479, 0.619]
    assert round(tt["tiou_hmean"], 2) == 0.54


def test_help_lists_installed_protocols_including_a_plugins(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``score --help`` lists the protocols installed now, not a list typed
    next to the option: a plugin's protocol appears as soon as it is installed."""
    from collections.abc import Callable
    from typing import Any

    from tcmbench.cli import main
    from tcmbench.contract import registry as plugins
    from tcmbench.contract.hookspecs import hookimpl

    def help_text() -> str:
        capsys.readouterr()
        try:
            code = int(main(["score", "--help"]) or 0)
        except SystemExit as exc:
            code = int(exc.code or 0)
        assert code == 0
        # undo click's wrapping (it also breaks lines after a hyphen: "mmocr-hmean- iou")
        return " ".join(capsys.readouterr().out.split()).replace("- ", "-")

    class ExtraProtocol:
        @hookimpl
        def register_protocols(self, register: Callable[[Any], None]) -> None:
            register(plugins.ProtocolSpec(name="my-plugin-protocol", evaluate=lambda *a: None))

    before = help_text()
    assert "my-plugin-protocol" not in before
    for name in plugins.protocols():
        assert name in before
    pm = plugins.get_plugin_manager()
    extra = ExtraProtocol()
    pm.register(extra, name="extra-protocol-plugin")
    try:
        assert "my-plugin-protocol" in help_text()
    finally:
        pm.unregister(extra)
