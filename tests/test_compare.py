"""``tcmbench compare`` and the paired bootstrap behind it.

The bootstrap is checked against answers known without it: a loop-based
bootstrap drawing the same indices, the exact bootstrap distribution of a
4-image set (all 4^4 resamples enumerated) and of a 400-image set whose
statistic is a multinomial count (enumerated with its pmf). On real data
(the Total-Text baseline and perturbed copies) the interval must contain
the difference the protocol itself gives, and must cover the population
difference at about its nominal rate when images are drawn from a known
population.
"""

from __future__ import annotations

import itertools
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_file

from tcmbench.commands.compare import compare
from tcmbench.data.schema import Instance, Prediction
from tcmbench.errors import AnnotationFormatError, ProtocolError, TcmbenchError
from tcmbench.eval import bootstrap as bs
from tcmbench.eval.api import evaluate
from tcmbench.eval.bootstrap import (
    Accumulators,
    accumulators_from_per_image,
    accumulators_from_result,
    figures,
    paired_bootstrap,
)

ALL_PROTOCOLS = (
    "icdar2015",
    "msra-td500",
    "totaltext-iou",
    "ctw1500-iou",
    "tiou",
    "totaltext-deteval",
    "icdar2013",
    "icdar2013-deteval",
)
CURVED = {"totaltext-iou", "ctw1500-iou", "tiou"}
Box = tuple[int, int, int, int]


def _acc(rows: Any, ids: Any = None) -> Accumulators:
    m = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    ids = tuple(ids) if ids is not None else tuple(f"img{k}" for k in range(len(m)))
    return Accumulators(ids, m[:, 0], m[:, 1], m[:, 2], m[:, 3])


def _random_pair(n: int, seed: int, credits: bool) -> tuple[Accumulators, Accumulators]:
    """Two runs on n images: integer counts (IoU protocols) or fractional
    credits with 0.8 weights (DetEval protocols)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        gt = rng.integers(0, 6, n).astype(float)
        det = rng.integers(0, 6, n).astype(float)
        matched = np.minimum(gt, det) * rng.random(n)
        rn = matched if credits else np.floor(matched)
        pn = rn * (1.0 + 0.6 * rng.random(n)) if credits else rn
        pn = np.minimum(pn, det)
        out.append(_acc(np.stack([rn, gt, pn, det], axis=1)))
    return out[0], out[1]


def _py_figures(rn: float, rd: float, pn: float, pd: float) -> tuple[float, float, float]:
    r = rn / rd if rd else 0.0
    p = pn / pd if pd else 0.0
    return p, r, (2 * r * p / (r + p) if r + p else 0.0)


# --------------------------------------------------------------------------- the statistic


def test_figures_follow_the_protocols_zero_rules() -> None:
    p, r, h = figures(np.array([[3, 4, 3, 6], [0, 0, 0, 5], [0, 2, 0, 0], [0, 0, 0, 0]]))
    assert p.tolist() == [0.5, 0.0, 0.0, 0.0]
    assert r.tolist() == [0.75, 0.0, 0.0, 0.0]
    assert h[0] == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    assert h[1:].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("credits", [False, True])
def test_bootstrap_equals_a_loop_over_the_same_draws(credits: bool) -> None:
    """Brute force: draw each resample's indices with the same generator,
    sum the accumulators image by image in Python, recompute the figures."""
    a, b = _random_pair(7, seed=11, credits=credits)
    resamples, seed = 400, 5
    got = paired_bootstrap(a, b, resamples=resamples, confidence=0.9, seed=seed)

    rng = np.random.default_rng(seed)
    deltas: list[list[float]] = []
    for _ in range(resamples):
        idx = rng.integers(0, 7, size=7)
        fa = _py_figures(*(sum(float(getattr(a, f)[i]) for i in idx) for f in _FIELDS))
        fb = _py_figures(*(sum(float(getattr(b, f)[i]) for i in idx) for f in _FIELDS))
        deltas.append([y - x for x, y in zip(fa, fb)])
    d = np.array(deltas)
    obs = np.array(b.figures()) - np.array(a.figures())
    for k, name in enumerate(("precision", "recall", "hmean")):
        m = got.metrics[name]
        assert m.delta == pytest.approx(obs[k], abs=1e-15)
        low, high = np.quantile(d[:, k], [0.05, 0.95])
        assert m.ci_low == pytest.approx(low, abs=1e-12)
        assert m.ci_high == pytest.approx(high, abs=1e-12)
        count = sum(abs(x - obs[k]) >= abs(obs[k]) - 1e-12 for x in d[:, k])
        assert m.p_value == pytest.approx((1 + count) / (resamples + 1), abs=1.5 / resamples)
        assert m.se == pytest.approx(float(np.std(d[:, k], ddof=1)), rel=1e-9)


_FIELDS = ("recall_num", "recall_den", "precision_num", "precision_den")


def test_bootstrap_matches_the_exact_enumeration_of_all_resamples() -> None:
    """n = 4: the bootstrap distribution is the 4^4 = 256 equally likely
    index tuples. The Monte Carlo figures must agree within their error."""
    a = _acc([[1, 2, 1, 3], [0, 1, 0, 2], [2, 2, 2, 2], [0, 3, 0, 1]])
    b = _acc([[2, 2, 2, 3], [1, 1, 1, 1], [1, 2, 1, 2], [1, 3, 1, 2]])
    n = 4
    exact = []
    for idx in itertools.product(range(n), repeat=n):
        fa = _py_figures(*(sum(float(getattr(a, f)[i]) for i in idx) for f in _FIELDS))
        fb = _py_figures(*(sum(float(getattr(b, f)[i]) for i in idx) for f in _FIELDS))
        exact.append(fb[2] - fa[2])
    ex = np.array(exact)
    obs = b.figures()[2] - a.figures()[2]
    resamples = 100_000
    got = paired_bootstrap(a, b, resamples=resamples, seed=1).metrics["hmean"]
    assert got.delta == pytest.approx(obs, abs=1e-15)
    # p: a Monte Carlo estimate of the exact tail share (binomial error).
    p_exact = float(np.mean(np.abs(ex - obs) >= abs(obs) - 1e-12))
    assert abs(got.p_value - p_exact) < 4 * math.sqrt(p_exact * (1 - p_exact) / resamples) + 1e-4
    assert got.se == pytest.approx(float(ex.std()), rel=0.01)
    # The interval ends are quantiles of the exact (discrete) distribution.
    tol = 4 * math.sqrt(0.025 * 0.975 / resamples)
    for end, q in ((got.ci_low, 0.025), (got.ci_high, 0.975)):
        assert np.mean(ex < end - 1e-12) <= q + tol
        assert np.mean(ex <= end + 1e-12) >= q - tol


def test_bootstrap_matches_a_known_sampling_distribution() -> None:
    """400 images with one care GT and one care detection each: H is the
    share of matched images, so B - A over a resample is (N+ - N-) / 400
    with (N+, N-, N0) multinomial(400; 60/400, 30/400, 310/400). Its exact
    distribution, enumerated with the multinomial pmf, is the answer."""
    n, plus, minus = 400, 60, 30
    a_rows, b_rows = [], []
    for k in range(n):
        ma, mb = (0, 1) if k < plus else (1, 0) if k < plus + minus else (k % 2, k % 2)
        a_rows.append([ma, 1, ma, 1])
        b_rows.append([mb, 1, mb, 1])
    a, b = _acc(a_rows), _acc(b_rows)
    obs = (plus - minus) / n
    # Exact distribution of (N+ - N-) / n.
    qp, qm, q0 = plus / n, minus / n, 1 - (plus + minus) / n
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    ok = i + j <= n
    i, j = i[ok], j[ok]
    lg = np.vectorize(math.lgamma)
    logp = (
        math.lgamma(n + 1)
        - lg(i + 1)
        - lg(j + 1)
        - lg(n - i - j + 1)
        + i * math.log(qp)
        + j * math.log(qm)
        + (n - i - j) * math.log(q0)
    )
    pmf = np.exp(logp)
    values = (i - j) / n
    assert pmf.sum() == pytest.approx(1.0, abs=1e-9)
    sd_exact = math.sqrt(float((pmf * (values - obs) ** 2).sum()))
    # Known in closed form too: Var = (q+ + q- - (q+ - q-)^2) / n.
    assert sd_exact == pytest.approx(math.sqrt((qp + qm - (qp - qm) ** 2) / n), rel=1e-9)
    p_exact = float(pmf[np.abs(values - obs) >= abs(obs) - 1e-12].sum())

    resamples = 40_000
    got = paired_bootstrap(a, b, resamples=resamples, seed=2)
    h = got.metrics["hmean"]
    assert h.delta == pytest.approx(obs, abs=1e-15)
    assert h.se == pytest.approx(sd_exact, rel=0.02)
    assert abs(h.p_value - p_exact) < 4 * math.sqrt(p_exact * (1 - p_exact) / resamples) + 1e-4
    order = np.argsort(values)
    cdf_v, cdf = values[order], np.cumsum(pmf[order])
    tol = 4 * math.sqrt(0.025 * 0.975 / resamples)
    for end, q in ((h.ci_low, 0.025), (h.ci_high, 0.975)):
        below = float(cdf[cdf_v < end - 1e-12][-1]) if (cdf_v < end - 1e-12).any() else 0.0
        upto = float(cdf[cdf_v <= end + 1e-12][-1])
        assert below <= q + tol and upto >= q - tol
    # P = R = H here, so all three metrics agree.
    assert got.metrics["precision"].ci_low == h.ci_low
    assert got.metrics["recall"].p_value == h.p_value


@pytest.mark.parametrize("credits", [False, True])
def test_identical_runs_give_zero_with_ci_zero_and_p_one(credits: bool) -> None:
    a, _ = _random_pair(50, seed=3, credits=credits)
    b = a.reordered(list(reversed(a.ids)))  # same images, another order
    got = paired_bootstrap(a, b, resamples=2000, seed=9)
    for m in got.metrics.values():
        assert (m.delta, m.ci_low, m.ci_high, m.se, m.p_value) == (0.0, 0.0, 0.0, 0.0, 1.0)
        assert m.a == m.b


def test_block_size_does_not_change_the_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _random_pair(37, seed=4, credits=True)
    whole = paired_bootstrap(a, b, resamples=300, seed=7)
    monkeypatch.setattr(bs, "CHUNK_CELLS", 37 * 16 + 5)  # blocks of 16 rows
    blocked = paired_bootstrap(a, b, resamples=300, seed=7)
    assert whole == blocked
    other_seed = paired_bootstrap(a, b, resamples=300, seed=8)
    assert other_seed.metrics["hmean"].ci_low != whole.metrics["hmean"].ci_low


def test_bootstrap_refuses_unpaired_or_empty_input() -> None:
    a = _acc([[1, 1, 1, 1], [0, 1, 0, 1]], ids=["x", "y"])
    b = _acc([[1, 1, 1, 1], [0, 1, 0, 1]], ids=["x", "z"])
    with pytest.raises(ProtocolError, match="same images"):
        paired_bootstrap(a, b)
    with pytest.raises(ProtocolError, match="no images"):
        paired_bootstrap(_acc(np.zeros((0, 4))), _acc(np.zeros((0, 4))))


# --------------------------------------------------------------------------- accumulators of each protocol


def _rect(x0: float, y0: float, x1: float, y1: float, curved: bool) -> np.ndarray:
    pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
    return pts[::-1].copy() if curved else pts  # the curved scripts want the other turn


def _scene(curved: bool) -> tuple[dict[str, list[Instance]], dict[str, list[Prediction]]]:
    """Splits (one-to-many), merges (many-to-one), misses, false positives,
    a don't-care region and an image without GT."""

    def r(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        return _rect(x0, y0, x1, y1, curved=curved)

    gt = {
        "img_1": [Instance(r(0, 0, 100, 20)), Instance(r(0, 50, 100, 70))],
        "img_2": [Instance(r(0, 0, 100, 20)), Instance(r(120, 0, 220, 20))],
        "img_3": [Instance(r(0, 0, 80, 30)), Instance(r(200, 0, 260, 20), ignore=True)],
        "img_4": [],
    }
    pr = {
        "img_1": [
            Prediction(r(0, 0, 50, 20)),
            Prediction(r(50, 0, 100, 20)),
            Prediction(r(0, 51, 100, 71)),
            Prediction(r(300, 300, 340, 320)),
        ],
        "img_2": [Prediction(r(0, 0, 220, 20)), Prediction(r(118, 0, 221, 21))],
        "img_3": [Prediction(r(1, 1, 80, 30)), Prediction(r(201, 0, 260, 20))],
        "img_4": [Prediction(r(0, 0, 9, 9))],
    }
    return gt, pr


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_per_image_accumulators_add_up_to_every_protocols_figures(protocol: str) -> None:
    gt, pr = _scene(protocol in CURVED)
    result = evaluate(gt, pr, protocol)
    acc = accumulators_from_result(result)  # raises if the sums disagree
    assert acc.ids == ("img_1", "img_2", "img_3", "img_4")
    p, r, h = acc.figures()
    assert (p, r, h) == pytest.approx((result.precision, result.recall, result.hmean), abs=1e-12)
    assert 0 < result.hmean < 1
    if protocol in ("totaltext-deteval", "icdar2013", "icdar2013-deteval"):
        # The split / merge weights (0.8) are in the numerators.
        frac = np.concatenate([acc.recall_num % 1, acc.precision_num % 1])
        assert np.any(np.abs(frac - 0.8) < 1e-9) or np.any(np.abs(frac - 0.6) < 1e-9)


def test_deteval_image_skipped_by_the_official_script_adds_nothing() -> None:
    gt, pr = _scene(False)
    del pr["img_2"]  # no prediction file: the official Deteval.py never sees it
    result = evaluate(gt, pr, "totaltext-deteval")
    acc = accumulators_from_result(result)
    k = acc.ids.index("img_2")
    assert (acc.recall_den[k], acc.precision_den[k], acc.recall_num[k]) == (0.0, 0.0, 0.0)


def test_per_image_results_that_do_not_add_up_are_refused() -> None:
    gt, pr = _scene(False)
    result = evaluate(gt, pr, "icdar2015")
    result.per_image["img_1"]["num_matched"] += 1
    with pytest.raises(ProtocolError, match="do not add up to the global"):
        accumulators_from_result(result, source="run A")
    with pytest.raises(ProtocolError, match="image img_9: no per-image counts"):
        accumulators_from_per_image({"img_9": {"hmean": 0.5}}, source="plugin")
    with pytest.raises(ProtocolError, match="num_det_care must be an integer >= 0"):
        accumulators_from_per_image({"a": {"num_gt_care": 1, "num_det_care": -1, "num_matched": 0}})


# --------------------------------------------------------------------------- the command


def _write_rrc(folder: Path, prefix: str, boxes: dict[int, list[Box]], text: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, rects in boxes.items():
        lines = []
        for x0, y0, x1, y1 in rects:
            pts = f"{x0},{y0},{x1},{y0},{x1},{y1},{x0},{y1}"
            lines.append(pts + (",word" if text else ""))
        (folder / f"{prefix}img_{n}.txt").write_text("\n".join(lines) + "\n")
    return folder


def _ic15_set(tmp_path: Path, n_images: int = 12) -> tuple[Path, dict[int, list[Box]]]:
    gt = {
        k: [(10, 10, 110, 40), (10, 60, 110, 90), (200, 10, 300, 40)]
        for k in range(1, n_images + 1)
    }
    _write_rrc(tmp_path / "gt", "gt_", gt, text=True)
    return tmp_path / "gt", gt


def _invoke(*args: Any) -> Any:
    return CliRunner().invoke(compare, [str(a) for a in args], catch_exceptions=True)


def _one_line_error(result: Any, cls: type[Exception] = TcmbenchError) -> str:
    assert result.exit_code != 0
    assert isinstance(result.exception, cls), result.output
    msg = str(result.exception)
    assert "\n" not in msg
    return msg


def test_cli_compares_two_prediction_folders(tmp_path: Path) -> None:
    gt_dir, gt = _ic15_set(tmp_path)
    a = _write_rrc(tmp_path / "a", "res_", {k: v[:2] for k, v in gt.items()}, text=False)
    b = _write_rrc(tmp_path / "b", "res_", gt, text=False)
    out = tmp_path / "cmp.json"
    res = _invoke(a, b, "-p", "icdar2015", "--gt", gt_dir, "--resamples", 500, "--json", out)
    assert res.exit_code == 0, res.output
    assert "| hmean | 0.8000 | 1.0000 | +0.2000 |" in res.output
    doc = json.loads(out.read_text())
    assert doc["hmean"]["delta"] == pytest.approx(0.2)
    assert doc["recall"]["delta"] == pytest.approx(1 / 3)
    assert doc["precision"]["delta"] == 0.0
    # Every image differs the same way: no resample can remove the gap.
    assert doc["hmean"]["ci_low"] == doc["hmean"]["ci_high"] == pytest.approx(0.2)
    assert doc["run_a"]["num_matched"] == 24 and doc["run_b"]["num_matched"] == 36
    assert doc["images"] == 12 and doc["resamples"] == 500
    assert doc["hmean"]["p_value"] == pytest.approx(1 / 501)


def test_cli_refuses_runs_on_different_images(tmp_path: Path) -> None:
    gt_dir, gt = _ic15_set(tmp_path)
    a = _write_rrc(tmp_path / "a", "res_", gt, text=False)
    b = _write_rrc(tmp_path / "b", "res_", {k: v for k, v in gt.items() if k > 4}, text=False)
    msg = _one_line_error(_invoke(a, b, "-p", "icdar2015", "--gt", gt_dir), ProtocolError)
    assert "do not cover the same images" in msg
    assert "A (" in msg and "has 12" in msg and "has 8" in msg
    assert "4 only in A (img_1, img_2, img_3 ...)" in msg and "0 only in B (none)" in msg


def test_cli_names_the_file_and_line_of_a_malformed_prediction(tmp_path: Path) -> None:
    gt_dir, gt = _ic15_set(tmp_path)
    a = _write_rrc(tmp_path / "a", "res_", gt, text=False)
    b = _write_rrc(tmp_path / "b", "res_", gt, text=False)
    (b / "res_img_3.txt").write_text("10,10,110,10,110,40,10,40\n10,60,oops,60\n")
    msg = _one_line_error(_invoke(a, b, "-p", "icdar2015", "--gt", gt_dir), AnnotationFormatError)
    assert "res_img_3.txt, line 2" in msg


def test_cli_per_image_files_and_evaluate_folders_give_the_same_answer(tmp_path: Path) -> None:
    from tcmbench.commands.score import score
    from tcmbench.eval.io import read_predictions
    from tcmbench.eval.submission import write_submission

    gt_dir, gt = _ic15_set(tmp_path)
    a = _write_rrc(tmp_path / "a", "res_", {k: v[: 1 + k % 3] for k, v in gt.items()}, text=False)
    b = _write_rrc(tmp_path / "b", "res_", {k: v[: 1 + k % 2] for k, v in gt.items()}, text=False)
    ref_json = tmp_path / "ref.json"
    common = ["-p", "icdar2015", "--resamples", 800, "--seed", 3]
    assert _invoke(a, b, "--gt", gt_dir, *common, "--json", ref_json).exit_code == 0
    ref = json.loads(ref_json.read_text())
    assert ref["hmean"]["p_value"] < 1.0 and ref["hmean"]["ci_low"] < ref["hmean"]["ci_high"]

    # score --per-image files: already scored, no GT needed.
    jsonl = {}
    for name, folder in (("a", a), ("b", b)):
        jsonl[name] = tmp_path / f"{name}.jsonl"
        r = CliRunner().invoke(
            score,
            [
                "-p",
                "icdar2015",
                "--gt",
                str(gt_dir),
                "--pred",
                str(folder),
                "--per-image",
                str(jsonl[name]),
            ],
        )
        assert r.exit_code == 0, r.output
    out = tmp_path / "jsonl.json"
    assert _invoke(jsonl["a"], jsonl["b"], *common, "--json", out).exit_code == 0
    got = json.loads(out.read_text())
    for metric in ("hmean", "precision", "recall"):
        assert got[metric] == pytest.approx(ref[metric], abs=1e-12)

    # evaluate --save-predictions folders (submit.zip + predictions.json).
    ev = tmp_path / "eval_b"
    write_submission(ev, read_predictions(b, style="rrc")[0], "icdar2015")
    out = tmp_path / "ev.json"
    assert _invoke(a, ev, "--gt", gt_dir, *common, "--json", out).exit_code == 0
    got = json.loads(out.read_text())
    assert got["run_b"]["kind"] == "evaluate-folder"
    for metric in ("hmean", "precision", "recall"):
        assert got[metric] == pytest.approx(ref[metric], abs=1e-12)

    # Its predictions.json is scored as its submit.zip is: the same figures.
    out = tmp_path / "ev_json.json"
    r = _invoke(a, ev / "predictions.json", "--gt", gt_dir, *common, "--json", out)
    assert r.exit_code == 0, r.output
    got = json.loads(out.read_text())
    for metric in ("hmean", "precision", "recall"):
        assert got[metric] == pytest.approx(ref[metric], abs=1e-12)
    # A --json summary is refused with a pointer.
    msg = _one_line_error(_invoke(a, ref_json, "--gt", gt_dir, *common))
    assert "without per-image results" in msg


def test_cli_bad_per_image_line_and_missing_gt(tmp_path: Path) -> None:
    good = tmp_path / "a.jsonl"
    good.write_text('{"id": "img_1", "num_gt_care": 2, "num_det_care": 2, "num_matched": 1}\n')
    bad = tmp_path / "b.jsonl"
    bad.write_text(good.read_text() + '{"id": "img_2", "num_gt_care": 2}\n')
    msg = _one_line_error(_invoke(good, bad, "-p", "icdar2015"), AnnotationFormatError)
    assert "b.jsonl, line 2" in msg and "num_det_care" in msg
    bad.write_text("{not json\n")
    assert "b.jsonl, line 1" in _one_line_error(_invoke(good, bad, "-p", "icdar2015"))
    # Prediction sets need ground truth.
    _, gt = _ic15_set(tmp_path)
    a = _write_rrc(tmp_path / "a", "res_", gt, text=False)
    res = _invoke(a, a, "-p", "icdar2015")
    assert res.exit_code == 2 and "pass --gt" in res.output


# --------------------------------------------------------------------------- real data


def _rewrite_zip(src: Path, dst: Path, keep: Any) -> None:
    """A copy of a curved-text result zip, keeping the lines ``keep(name,
    k, line)`` says."""
    with zipfile.ZipFile(src) as zf, zipfile.ZipFile(dst, "w") as out:
        for name in sorted(zf.namelist(), reverse=True):  # another entry order too
            lines = [ln for ln in zf.read(name).decode().splitlines() if ln.strip()]
            kept = [ln for k, ln in enumerate(lines) if keep(name, k, ln)]
            out.writestr(name, "".join(f"{ln}\n" for ln in kept))


def _direct_delta(gt: Path, a: Path, b: Path) -> dict[str, float]:
    """B - A scored with the protocol itself, not through compare."""
    from tcmbench.eval.io import read_ground_truth, read_predictions

    samples, _ = read_ground_truth(gt, "totaltext")
    ra = evaluate(samples, read_predictions(a, style="polygon")[0], "totaltext-iou")
    rb = evaluate(samples, read_predictions(b, style="polygon")[0], "totaltext-iou")
    return {m: getattr(rb, m) - getattr(ra, m) for m in ("hmean", "precision", "recall")}


@pytest.mark.realdata
def test_totaltext_baseline_against_perturbed_copies(tmp_path: Path) -> None:
    gt = shared_file("totaltext/test_gt.zip")
    base = shared_file("totaltext/baseline_det.zip")
    rng = np.random.default_rng(2024)
    cases = {
        "drop20": lambda name, k, ln: rng.random() >= 0.20,  # a clear loss
        "noop": lambda name, k, ln: True,  # same detections, new file
    }
    tiny_rng = np.random.default_rng(7)
    cases["drop0.3"] = lambda name, k, ln: tiny_rng.random() >= 0.003  # a handful of lines
    seen: dict[str, dict[str, Any]] = {}
    for case, keep in cases.items():
        copy = tmp_path / f"{case}.zip"
        _rewrite_zip(base, copy, keep)
        out = tmp_path / f"{case}.json"
        res = _invoke(base, copy, "-p", "totaltext-iou", "--gt", gt, "--json", out)
        assert res.exit_code == 0, res.output
        doc = json.loads(out.read_text())
        seen[case] = doc
        assert doc["images"] == 300 and doc["resamples"] == 10_000
        assert doc["run_a"]["hmean"] == pytest.approx(0.7492, abs=5e-5)  # published baseline
        true = _direct_delta(gt, base, copy)
        for metric in ("hmean", "precision", "recall"):
            m = doc[metric]
            assert m["delta"] == pytest.approx(true[metric], abs=1e-12)
            assert m["ci_low"] <= true[metric] <= m["ci_high"]
        print(
            f"{case}: delta {doc['hmean']['delta']:+.4f}, CI [{doc['hmean']['ci_low']:+.4f}, "
            f"{doc['hmean']['ci_high']:+.4f}], p {doc['hmean']['p_value']:.4g}, "
            f"scoring {doc['seconds']['scoring']} s, bootstrap {doc['seconds']['bootstrap']} s"
        )
    clear = seen["drop20"]["hmean"]
    assert clear["delta"] < -0.03 and clear["ci_high"] < 0 and clear["p_value"] < 0.05
    noop = seen["noop"]["hmean"]
    assert (noop["delta"], noop["ci_low"], noop["ci_high"], noop["p_value"]) == (0, 0, 0, 1)
    tiny = seen["drop0.3"]["hmean"]
    assert tiny["delta"] != 0 and tiny["ci_low"] < 0 < tiny["ci_high"] and tiny["p_value"] > 0.05


@pytest.mark.realdata
def test_interval_covers_the_population_difference_at_its_nominal_rate() -> None:
    """The 300 Total-Text images as a known population: draw test sets of
    100 images from it with replacement (so its figures are the population
    values exactly), compare on each, count how often the 95% interval
    holds the population difference. 400 sets: the binomial standard error
    of a 95% rate is 1.1 points."""
    from tcmbench.eval.io import read_ground_truth, read_predictions

    samples, _ = read_ground_truth(shared_file("totaltext/test_gt.zip"), "totaltext")
    preds, _ = read_predictions(shared_file("totaltext/baseline_det.zip"), style="polygon")
    rng = np.random.default_rng(5)
    dropped = {k: [p for p in v if rng.random() >= 0.1] for k, v in preds.items()}
    a = accumulators_from_result(evaluate(samples, preds, "totaltext-iou"))
    b = accumulators_from_result(evaluate(samples, dropped, "totaltext-iou"))
    population = b.figures()[2] - a.figures()[2]
    ma, mb = a.matrix(), b.matrix()
    trials, covered = 400, 0
    for t in range(trials):
        idx = rng.integers(0, len(a.ids), 100)
        ids = [f"s{k}" for k in range(100)]
        sub_a, sub_b = _acc(ma[idx], ids), _acc(mb[idx], ids)
        h = paired_bootstrap(sub_a, sub_b, resamples=1000, seed=t).metrics["hmean"]
        covered += h.ci_low <= population <= h.ci_high
    rate = covered / trials
    print(f"population delta {population:+.4f}, coverage {rate:.3f}")
    assert 0.90 <= rate <= 0.99


def _doc_block(path: Path, after: str) -> str:
    """The first ```text block after the line containing ``after``."""
    text = path.read_text(encoding="utf-8")
    start = text.index("```text\n", text.index(after)) + len("```text\n")
    return text[start : text.index("```", start)]


@pytest.mark.realdata
def test_docs_example_is_the_programs_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/compare.md's example output is what `tcmbench compare` prints on
    the Total-Text baseline against a copy with 5 % of its lines dropped
    (rng seed 5), paths shortened by running beside symlinks."""
    gt = shared_file("totaltext/test_gt.zip")
    base = shared_file("totaltext/baseline_det.zip")
    rng = np.random.default_rng(5)
    _rewrite_zip(base, tmp_path / "drop5.zip", lambda name, k, ln: rng.random() >= 0.05)
    (tmp_path / "baseline_det.zip").symlink_to(base)
    (tmp_path / "test_gt.zip").symlink_to(gt)
    monkeypatch.chdir(tmp_path)
    res = _invoke(
        Path("baseline_det.zip"), Path("drop5.zip"), "-p", "totaltext-iou", "--gt", "test_gt.zip"
    )
    assert res.exit_code == 0, res.output
    doc = _doc_block(Path(__file__).resolve().parent.parent / "docs" / "compare.md", "Example:")
    assert res.output == doc, f"docs/compare.md example is stale; the program prints:\n{res.output}"
