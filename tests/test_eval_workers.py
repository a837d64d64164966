"""Scoring split over forked worker processes (tcmbench/eval/workers.py):
the same figures, per-image entries and errors as one process, bit for bit."""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared_file

from tcmbench.data.schema import Instance, Prediction
from tcmbench.errors import ProtocolError
from tcmbench.eval import evaluate, workers

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only"
)


def band(rng: np.random.Generator, x: float, y: float, n: int) -> np.ndarray:
    """A curved text band of 2n points (top left to right, bottom back),
    in the order the curved script accepts."""
    xs = x + np.linspace(0, 60 + 40 * rng.random(), n)
    top = y + 5 * np.sin(xs / 17.0)
    pts = np.concatenate(
        [np.stack([xs, top], 1), np.stack([xs[::-1], top[::-1] + 12 + 3 * rng.random()], 1)]
    )
    return np.round(pts)[::-1].copy()


def quad(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


def synthetic(kind: str, images: int = 400, seed: int = 0) -> tuple[dict, dict]:
    """Ground truth and detections (jittered copies, misses, false alarms,
    don't cares, images without a prediction file)."""
    rng = np.random.default_rng(seed)
    gt: dict[str, list[Instance]] = {}
    preds: dict[str, list[Prediction]] = {}
    for i in range(1, images + 1):
        sid = f"img_{i}"
        insts, dets = [], []
        for k in range(int(rng.integers(1, 9))):
            x, y = 130.0 * (k % 4), 40.0 * (k // 4)
            poly = (
                band(rng, x, y, 7) if kind == "curved" else quad(x, y, 60 + 30 * rng.random(), 20)
            )
            ignore = rng.random() < 0.15
            insts.append(Instance(polygon=poly, ignore=ignore, text="###" if ignore else "w"))
            if rng.random() < 0.8:
                dets.append(Prediction(poly + np.round(rng.normal(0, 3, 2)), rng.random()))
        if rng.random() < 0.3:
            alarm = quad(600, 300, 40, 20)  # RRC order; the curved script wants the reverse
            dets.append(Prediction(alarm[::-1].copy() if kind == "curved" else alarm, rng.random()))
        gt[sid] = insts
        if rng.random() > 0.05:
            preds[sid] = dets
    return gt, preds


CASES = [
    ("icdar2015", "quads", {}),
    ("icdar2015", "quads", {"confidences": True}),
    ("ctw1500-iou", "curved", {}),
    ("tiou", "curved", {}),
    ("totaltext-deteval", "curved", {"missing_predictions": "count"}),
    ("totaltext-deteval", "curved", {}),
]


@pytest.mark.parametrize(("protocol", "kind", "params"), CASES)
def test_split_over_processes_gives_the_same_result(protocol: str, kind: str, params: dict) -> None:
    gt, preds = synthetic(kind)
    one = evaluate(gt, preds, protocol, **params)
    with workers.use(3):  # the run below is split in three
        n_polygons = [len(gt[s]) + len(preds.get(s, ())) for s in gt]
        assert len(workers.ranges(n_polygons, workers.MIN_PART_POLYGONS)) == 3
    split = evaluate(gt, preds, protocol, workers=3, **params)
    assert split.summary() == one.summary()
    assert json.dumps(split.per_image) == json.dumps(one.per_image)  # order and floats


def test_the_sweep_splits_too_for_the_iou_family() -> None:
    gt, preds = synthetic("quads")
    one = evaluate(gt, preds, "icdar2015", sweep=True)
    assert evaluate(gt, preds, "icdar2015", sweep=True, workers=2).sweep == one.sweep


def test_an_error_in_a_later_part_is_the_one_process_error() -> None:
    """A hostile image in the second half: the child fails, the part runs
    again here, and the error is the one a single process raises."""
    gt, preds = synthetic("quads")
    preds["img_200"] = [Prediction(quad(0, 0, 5, 5), 0.5) for _ in range(6000)]
    with pytest.raises(ProtocolError) as one:
        evaluate(gt, preds, "icdar2015")
    with pytest.raises(ProtocolError) as split:
        evaluate(gt, preds, "icdar2015", workers=2)
    assert str(split.value) == str(one.value)
    assert "img_200" in str(one.value)


def test_ranges_balance_weights_and_stay_whole_when_not_worth_it() -> None:
    with workers.use(2):
        assert workers.ranges([10] * 100, 200) == [(0, 50), (50, 100)]
        assert workers.ranges([90, 5, 5], 10) == [(0, 1), (1, 3)]
        assert workers.ranges([10] * 10, 1000) == [(0, 10)]  # too small to split
    assert workers.ranges([10] * 100, 200) == [(0, 100)]  # not asked for
    with workers.use(4):
        parts = workers.ranges([1] * 1000, 10)
        assert len(parts) == 4 and parts[0][0] == 0 and parts[-1][1] == 1000
        assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))


def test_no_fork_while_another_thread_runs() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not workers.can_fork()
        with workers.use(2):
            assert workers.ranges([10] * 100, 10) == [(0, 100)]
    finally:
        stop.set()
        other.join()
    assert workers.can_fork()


def test_parts_come_back_in_order_and_a_dead_child_is_replaced() -> None:
    parent = os.getpid()

    def part(lo: int, hi: int) -> list[int]:
        if os.getpid() != parent and lo == 20:
            os._exit(3)  # killed before it sent anything
        return list(range(lo, hi))

    got = workers.run_parts([(0, 10), (10, 20), (20, 30), (30, 40)], part)
    assert got == [list(range(a, a + 10)) for a in range(0, 40, 10)]


def test_a_failing_child_part_raises_from_this_process_first_part_first() -> None:
    calls: list[tuple[int, int, int]] = []

    def part(lo: int, hi: int) -> int:
        calls.append((os.getpid(), lo, hi))
        if lo >= 10:
            raise ValueError(f"part {lo}")
        return lo

    with pytest.raises(ValueError, match="part 10"):  # the first failing part in order
        workers.run_parts([(0, 10), (10, 20), (20, 30)], part)
    assert (os.getpid(), 10, 20) in calls  # raised here, with this process's traceback
    assert (os.getpid(), 20, 30) not in calls  # the later part's error is not waited for


# --------------------------------------------------------------------------- the score command


def run_score(*args: str, vv: bool = False) -> tuple[int, str, str]:
    import subprocess

    res = subprocess.run(
        [sys.executable, "-m", "tcmbench", *(["-vv"] if vv else []), "score", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    return res.returncode, res.stdout, res.stderr


def rrc_zips(
    tmp_path: Path, images: int = 400, bad_name: str | None = None, bad_line: str | None = None
) -> tuple[Path, Path]:
    """An ICDAR 2015 GT zip and submission of :func:`synthetic` quads; the
    submission may hold an extra entry ``bad_name`` and, in its last file,
    the extra line ``bad_line``."""
    gt, preds = synthetic("quads", images)
    gt_zip, pred_zip = tmp_path / "gt.zip", tmp_path / "submit.zip"
    with zipfile.ZipFile(gt_zip, "w") as z:
        for sid, insts in gt.items():
            lines = [
                ",".join(str(int(v)) for v in x.polygon.reshape(-1)) + ("," + (x.text or ""))
                for x in insts
            ]
            z.writestr(f"gt_{sid}.txt", "\n".join(lines) + "\n")
    with zipfile.ZipFile(pred_zip, "w") as z:
        for sid, dets in preds.items():
            lines = [",".join(str(int(v)) for v in d.polygon.reshape(-1)) for d in dets]
            if bad_line is not None and sid == list(preds)[-1]:
                lines.append(bad_line)
            z.writestr(f"res_{sid}.txt", "\n".join(lines) + "\n")
        if bad_name is not None:
            z.writestr(bad_name, "0,0,1,0,1,1,0,1\n")
    return gt_zip, pred_zip


def test_score_with_workers_prints_and_writes_what_one_process_does(tmp_path: Path) -> None:
    gt, pred = rrc_zips(tmp_path)
    outs = {}
    for w in ("1", "2"):
        out = tmp_path / f"r{w}.json"
        code, stdout, stderr = run_score(
            "-p", "icdar2015", "--gt", str(gt), "--pred", str(pred), "--workers", w,
            "--json", str(out), "--per-image", str(tmp_path / f"p{w}.jsonl"),
        )  # fmt: skip
        assert code == 0, stderr
        outs[w] = (stdout, out.read_text(), (tmp_path / f"p{w}.jsonl").read_text())
    assert outs["2"] == outs["1"]
    # and the two processes were used: -vv says so
    code, _, stderr = run_score(
        "-p", "icdar2015", "--gt", str(gt), "--pred", str(pred), "--workers", "2", vv=True
    )
    assert code == 0, stderr
    assert "predictions read by a worker process" in stderr
    assert "images split over 2 processes" in stderr


@pytest.mark.parametrize(
    ("bad_name", "expected"),
    [("res_foo.txt", "entry name not valid"), ("res_img_3.txt.bak", "have no ground truth")],
)
def test_score_with_workers_keeps_the_official_name_check(
    tmp_path: Path, bad_name: str, expected: str
) -> None:
    """The worker reads the predictions before the ground truth says whether
    RRC names are required; the check still happens, with the same message."""
    gt, pred = rrc_zips(tmp_path, bad_name=bad_name)
    one = run_score("-p", "icdar2015", "--gt", str(gt), "--pred", str(pred), "--workers", "1")
    two = run_score("-p", "icdar2015", "--gt", str(gt), "--pred", str(pred), "--workers", "2")
    assert one[0] == 2 and expected in one[2]
    assert two == one


def test_score_with_workers_reports_a_malformed_line_as_one_process(tmp_path: Path) -> None:
    gt, pred = rrc_zips(tmp_path, bad_line="0,0,10,0,10,10,0,ten")
    one = run_score("-p", "icdar2015", "--gt", str(gt), "--pred", str(pred), "--workers", "1")
    two = run_score("-p", "icdar2015", "--gt", str(gt), "--pred", str(pred), "--workers", "2")
    assert one[0] == 2 and "res_img_400.txt, line" in one[2], one
    assert two == one


def test_score_workers_option_is_checked(tmp_path: Path) -> None:
    gt, pred = rrc_zips(tmp_path, images=3)
    code, _, stderr = run_score(
        "-p", "icdar2015", "--gt", str(gt), "--pred", str(pred), "--workers", "0"
    )
    assert code == 2 and "--workers" in stderr and "auto" in stderr


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("protocol", "gt", "pred", "extra"),
    [
        ("icdar2015", "icdar2015/test_gt.zip", "icdar2015/pixellink_submit.zip", []),
        ("ctw1500-iou", "ctw1500/test_gt.zip", "ctw1500/example_det.zip", []),
        ("totaltext-deteval", "totaltext/test_gt.zip", "totaltext/baseline_det.zip", ["--pred-order", "xy"]),
    ],
)  # fmt: skip
def test_the_benchmark_sets_score_the_same_with_workers(
    tmp_path: Path, protocol: str, gt: str, pred: str, extra: list[str]
) -> None:
    got = []
    for w in ("1", "2"):
        out = tmp_path / f"{w}.json"
        code, stdout, stderr = run_score(
            "-p", protocol, "--gt", str(shared_file(gt)), "--pred", str(shared_file(pred)),
            *extra, "--workers", w, "--json", str(out),
        )  # fmt: skip
        assert code == 0, stderr
        data = json.loads(out.read_text())
        data["params"].pop("workers", None)
        got.append((stdout, data))
    assert got[1] == got[0]


@pytest.mark.parametrize(
    "values",
    [
        [[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]],
        [[1.5, 2.0], [3.0, 4.0], [5.0, 7.0]],
        [[-0.0, 2.0], [3.0, 4.0], [5.0, 7.0]],
        [[1e39, 2.0], [3.0, 4.0], [5.0, 7.0]],
        [[float("nan"), 2.0], [float("inf"), 4.0], [5.0, -7.0]],
        [[2.0**31, 2.0], [3.0, 4.0], [5.0, 7.0]],
        [[40000.0, 2.0], [3.0, 4.0], [5.0, 7.0]],
        [[65537.0, 2.0], [3.0, 4.0], [5.0, 7.0]],
    ],
)
def test_predictions_cross_processes_unchanged(values: list[list[float]]) -> None:
    """What the worker reading the predictions sends back is what it read,
    to the bit (whole-pixel submissions travel as int16 or int32)."""
    import pickle

    from tcmbench.eval.io import PredictionFiles, flat_predictions, unflat_predictions

    poly = np.array(values, dtype=np.float64)
    files = PredictionFiles(
        {"img_1": [Prediction(poly, 0.5), Prediction(poly[::-1].copy(), None)], "img_2": []},
        {"img_1": ("x.zip:res_img_1.txt", [1, 2]), "img_2": ("x.zip:res_img_2.txt", [])},
        "rrc",
    )
    back = unflat_predictions(pickle.loads(pickle.dumps(flat_predictions(files))))
    assert list(back) == ["img_1", "img_2"] and back.origins == files.origins
    assert back.style == "rrc" and back["img_2"] == []
    for got, want in zip(back["img_1"], files["img_1"]):
        assert got.polygon.dtype == np.float64
        assert got.polygon.tobytes() == want.polygon.tobytes()
        assert got.score == want.score


def test_a_worker_forks_no_workers_of_its_own() -> None:
    def part(lo: int, hi: int) -> tuple[int, bool]:
        return os.getpid(), workers.wanted()

    with workers.use(2):
        (here, here_wanted), (there, there_wanted) = workers.run_parts([(0, 1), (1, 2)], part)
    assert here == os.getpid() and here_wanted
    assert there != here and not there_wanted
