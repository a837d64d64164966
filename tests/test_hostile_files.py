"""Hostile input (issue 10): report targets that are not regular files,
damaged or crafted ``.mat`` files, hostile archives for ``datasets prepare``
and hand-edited prediction caches. Every case must end in a one-line error
(or a clean result), never a traceback, a hang or a dead process."""

from __future__ import annotations

import json
import os
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from tcmbench.cli import main

GT = {"gt_img_1.txt": "0,0,10,0,10,10,0,10,word\n20,0,30,0,30,10,20,10,other\n"}
PRED = {"res_img_1.txt": "0,0,10,0,10,10,0,10\n"}


def make_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The real entry point in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = int(main(list(argv)) or 0)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err


# --------------------------------------------------------------------------- 1. report targets


@pytest.fixture()
def score_args(tmp_path: Path) -> list[str]:
    gt = make_zip(tmp_path / "gt.zip", GT)
    pred = make_zip(tmp_path / "submit.zip", PRED)
    return ["score", "--protocol", "icdar2015", "--gt", str(gt), "--pred", str(pred)]


def test_json_dash_is_stdout_and_no_file_named_dash(
    capsys: pytest.CaptureFixture[str],
    score_args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *score_args, "--json", "-")
    assert code == 0, err
    data = json.loads(out)  # stdout is the JSON alone: the table went to stderr
    assert data["precision"] == 1.0 and data["recall"] == 0.5
    assert "| protocol |" in err
    assert not (tmp_path / "-").exists()


def test_per_image_dash_is_stdout(
    capsys: pytest.CaptureFixture[str], score_args: list[str]
) -> None:
    code, out, err = run(capsys, *score_args, "--per-image", "-")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == ["img_1"]


def test_bench_json_dash_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "bench", "--plugin", "dbnet", "--backbone", "resnet18", "--params-only", "--json", "-"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["params_only"] is True and doc["params"] > 0
    assert "| dbnet-resnet18 |" in err


def _fifo_reader(fifo: Path, sink: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(fifo, "rb") as f:
            sink.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_json_to_a_fifo_is_written_in_place(
    capsys: pytest.CaptureFixture[str], score_args: list[str], tmp_path: Path
) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link-to-fifo"
    link.symlink_to(fifo)
    for target in (fifo, link):
        got: list[bytes] = []
        reader = _fifo_reader(fifo, got)
        code, _, err = run(capsys, *score_args, "--json", str(target))
        reader.join(timeout=10)
        assert code == 0, err
        assert json.loads(got[0])["hmean"] == pytest.approx(2 / 3)
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced
    assert link.is_symlink()


def test_json_to_dev_null_keeps_the_device(
    capsys: pytest.CaptureFixture[str], score_args: list[str], tmp_path: Path
) -> None:
    link = tmp_path / "null-link"
    link.symlink_to("/dev/null")
    for target in ("/dev/null", str(link)):
        code, _, err = run(capsys, *score_args, "--json", target, "--per-image", target)
        assert code == 0, err
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
        assert not list(Path("/dev").glob(".null.*.tmp"))
    assert link.is_symlink() and os.readlink(link) == "/dev/null"


def test_json_regular_file_is_atomic_and_symlinks_survive(
    capsys: pytest.CaptureFixture[str], score_args: list[str], tmp_path: Path
) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    code, _, err = run(capsys, *score_args, "--json", str(link))
    assert code == 0, err
    assert link.is_symlink()  # the target was replaced, not the link
    assert json.loads(real.read_text())["recall"] == 0.5
    assert sorted(p.name for p in tmp_path.glob(".*tmp")) == []


def test_unwritable_report_is_one_line(
    capsys: pytest.CaptureFixture[str], score_args: list[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, *score_args, "--json", str(blocker / "r.json"))
    assert_one_line_error(code, err, str(blocker / "r.json"))
