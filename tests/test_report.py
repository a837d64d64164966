"""The evaluation report: outcome labels read from every protocol family,
breakdown bins, drawing colours, the page and its folder, the CLI option.

The browser checks (images load, sorting works) are in
test_report_browser.py.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from report_scene import HEIGHT, N_IMAGES, WIDTH, box, expected_errors, scene, write_scene_report

from tcmbench.data.schema import Instance, Prediction
from tcmbench.errors import TcmbenchError
from tcmbench.eval import evaluate
from tcmbench.report.breakdown import (
    ANGLE_EDGES_DEG,
    SIZE_EDGES_PX,
    Bin,
    Breakdown,
    angle_bin,
    breakdowns,
    curvature_bin,
    edge_bin,
    left_out_reason,
    measure,
)
from tcmbench.report.build import MARKER, check_report_dir, worst_images
from tcmbench.report.curve import DEFAULT_THRESHOLDS, model_box_threshold, sweep_thresholds
from tcmbench.report.drawing import COLOURS, LEGEND, draw_outcomes
from tcmbench.report.outcomes import DC, FN, FP, TP, ImageOutcome, image_outcomes

pytest.importorskip("matplotlib", reason="the report extra (matplotlib) is not installed")


def rotated(cx: float, cy: float, w: float, h: float, deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    return corners @ np.array([[c, s], [-s, c]]) + [cx, cy]


def arc_band(r_in: float, r_out: float, start: float, stop: float, n: int = 8) -> np.ndarray:
    """A curved text band (a ring sector) as a 2n-point polygon."""
    t = np.deg2rad(np.linspace(start, stop, n))
    outer = np.stack([200 + r_out * np.cos(t), 200 + r_out * np.sin(t)], 1)
    inner = np.stack([200 + r_in * np.cos(t[::-1]), 200 + r_in * np.sin(t[::-1])], 1)
    return np.concatenate([outer, inner])


# --------------------------------------------------------------------------- measurements


def test_measure_size_angle_and_curvature() -> None:
    flat = measure(box(10, 10, 110, 30))
    assert flat.height == pytest.approx(20) and flat.angle == pytest.approx(0, abs=1e-6)
    assert flat.points == 4 and flat.rect_iou == pytest.approx(1.0)
    for deg in (-30, 30):
        tilted = measure(rotated(100, 100, 120, 24, deg))
        assert tilted.height == pytest.approx(24, rel=1e-3)
        assert tilted.angle == pytest.approx(30, abs=0.1)
    vertical = measure(box(50, 10, 70, 200))
    assert vertical.height == pytest.approx(20) and vertical.angle == pytest.approx(90)
    # a straight line drawn with 8 points is still a straight line
    straight = np.array([[0, 0], [30, 0], [60, 0], [90, 0], [90, 10], [60, 10], [30, 10], [0, 10]])
    assert measure(straight).points == 8 and measure(straight).rect_iou == pytest.approx(1.0)
    assert curvature_bin(measure(straight)) == 1
    half_ring = measure(arc_band(80, 100, 180, 360, n=12))
    assert half_ring.rect_iou < 0.6 and curvature_bin(half_ring) == 3
    gentle = measure(arc_band(400, 430, 255, 285))
    assert 0.6 <= gentle.rect_iou < 0.85 and curvature_bin(gentle) == 2
    assert curvature_bin(flat) == 0


def test_bin_edges_are_lower_inclusive_and_the_last_bin_open() -> None:
    assert [edge_bin(v, SIZE_EDGES_PX) for v in (0, 7.99, 8, 15.9, 16, 127.9, 128, 5000)] == [
        0,
        0,
        1,
        1,
        2,
        4,
        5,
        5,
    ]
    assert edge_bin(-1, SIZE_EDGES_PX) == 0
    last = len(ANGLE_EDGES_DEG) - 1
    assert [angle_bin(a) for a in (0, 4.9, 5, 44.9, 45, 75, 90)] == [0, 0, 1, 3, 4, last, last]


def test_breakdown_counts_care_gts_and_their_recall_per_bin() -> None:
    gt = {
        "a": [
            Instance(box(0, 0, 100, 10)),  # 10 px, 0 deg, found
            Instance(box(0, 20, 100, 60)),  # 40 px, 0 deg, missed
            Instance(box(0, 80, 100, 90), ignore=True),  # don't care: not counted
        ],
        "b": [Instance(rotated(200, 200, 200, 40, 65))],  # 40 px, 65 deg, found
    }
    outcomes = {
        "a": ImageOutcome("a", [TP, FN, DC], [], {}),
        "b": ImageOutcome("b", [TP], [], {}),
    }
    size, angle, curve = breakdowns(gt, outcomes)
    by_size = {b.label: (b.gt, b.matched, b.recall) for b in size.bins}
    assert by_size["8-16 px"] == (1, 1, 1.0)
    assert by_size["32-64 px"] == (2, 1, 0.5)
    assert by_size["0-8 px"] == (0, 0, None)  # empty: undefined, not 0
    by_angle = {b.label: (b.gt, b.matched) for b in angle.bins}
    assert by_angle["0-5 deg"] == (2, 1) and by_angle["60-75 deg"] == (1, 1)
    assert [(b.gt, b.matched) for b in curve.bins] == [(3, 2), (0, 0), (0, 0), (0, 0)]
    assert sum(b.gt for b in size.bins) == sum(b.gt for b in angle.bins) == 3


def test_a_breakdown_with_one_filled_bin_is_left_out_with_its_reason() -> None:
    def part(*counts: int) -> Breakdown:
        return Breakdown("curvature", "", [Bin(f"bin {i}", n, n) for i, n in enumerate(counts)])

    assert left_out_reason(part(3, 1, 0)) is None  # two bins: recall per bin says something
    reason = left_out_reason(part(0, 7, 0))
    assert reason is not None and reason.startswith("curvature: left out")
    assert "all 7 care GTs" in reason and "'bin 1'" in reason
    assert "the one care GT" in (left_out_reason(part(1, 0)) or "")
    assert "no care ground truth" in (left_out_reason(part(0, 0)) or "")


# --------------------------------------------------------------------------- the sweep's start


def test_the_model_box_threshold_is_read_from_the_run_settings() -> None:
    assert model_box_threshold({"postprocess": {"mask_thr": 0.3, "min_score": 0.6}}) == (
        "postprocess.min_score",
        0.6,
    )
    assert model_box_threshold({"postprocess": {"score_thr": 0.3}}) == (
        "postprocess.score_thr",
        0.3,
    )
    for recipe in (None, {}, {"postprocess": {}}, {"postprocess": {"mask_thr": 0.3}}):
        assert model_box_threshold(recipe) is None, recipe
    for bad in (0, 0.0, 1.0, True, "0.6", None):  # no floor, not a number, or no detection left
        assert model_box_threshold({"postprocess": {"min_score": bad}}) is None, bad


@pytest.mark.parametrize("start", [0.05, 0.3, 0.6, 0.85, 0.6000000000000001])
def test_the_sweep_starts_at_the_threshold_with_enough_points(start: float) -> None:
    ts = sweep_thresholds(start)
    assert ts[0] == start and ts == sorted(set(ts)) and ts[-1] < 1
    assert 10 <= len(ts) <= 20
    steps = {round(b - a, 6) for a, b in itertools.pairwise(ts[1:])}
    assert len(steps) == 1  # one step after the start
    assert ts[1] - start <= steps.pop() + 1e-9  # no gap between the start and the grid
    assert sweep_thresholds(None) == sweep_thresholds(0) == list(DEFAULT_THRESHOLDS)


def test_report_sweep_starts_at_the_model_threshold(tmp_path: Path) -> None:
    """The scene's lowest score is 0.4: a model threshold of 0.4 is a floor."""
    page = write_scene_report(tmp_path, model_threshold=("postprocess.min_score", 0.4))
    doc = json.loads((page.parent / "report.json").read_text())
    curve = doc["threshold_curve"]
    assert curve["model_threshold"] == {"key": "postprocess.min_score", "value": 0.4}
    assert curve["thresholds"][0] == 0.4 and min(curve["thresholds"]) == 0.4
    # its first point keeps every detection: the official figures
    assert curve["precision"][0] == pytest.approx(doc["figures"]["precision"])
    assert curve["recall"][0] == pytest.approx(doc["figures"]["recall"])
    assert curve["detections"][0] == sum(len(p) for p in scene(tmp_path / "again")[1].values())
    html = page.read_text()
    assert (
        "Detections below the model&#x27;s box threshold 0.4 (postprocess.min_score of the "
        "run&#x27;s test settings) were never produced; the sweep starts there." in html
    )
    assert "except at t = 0.4 (every detection)" in html


def test_a_threshold_some_detection_scores_below_is_not_a_floor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="tcmbench.report.curve"):
        page = write_scene_report(tmp_path, model_threshold=("postprocess.min_score", 0.45))
    assert "a detection scores 0.4" in caplog.text
    curve = json.loads((page.parent / "report.json").read_text())["threshold_curve"]
    assert curve["model_threshold"] is None and curve["thresholds"][0] == 0.0
    assert "sweep starts there" not in page.read_text()


# --------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize(
    "protocol,params",
    [
        ("icdar2015", {}),
        ("icdar2015", {"confidences": True}),  # detections re-ordered by score inside
        ("totaltext-iou", {"validate": False}),
        ("icdar2013", {}),
        ("icdar2013-deteval", {}),
        ("totaltext-deteval", {}),
    ],
)
def test_outcomes_agree_with_every_protocol_family(
    tmp_path: Path, protocol: str, params: dict
) -> None:
    samples, preds = scene(tmp_path)
    result = evaluate(samples, preds, protocol, **params)
    outcomes = image_outcomes({s.id: s.instances for s in samples}, preds, result.per_image)
    for k, s in enumerate(samples):
        o = outcomes[s.id]
        assert o.gt == [TP, TP if k % 2 == 0 else FN, DC]
        assert o.det[:2] == [TP, DC]
        assert o.det.count(FP) == k and o.errors == expected_errors(k)
        assert o.num_det_care == result.per_image[s.id]["num_det_care"]
    total_tp = sum(o.tp for o in outcomes.values())
    assert total_tp / sum(o.num_gt_care for o in outcomes.values()) == pytest.approx(result.recall)


def test_outcomes_of_an_image_the_protocol_did_not_score(tmp_path: Path) -> None:
    """Total-Text DetEval skips an image without a prediction file."""
    samples, preds = scene(tmp_path)
    del preds["img_2"]
    result = evaluate(samples, preds, "totaltext-deteval")
    o = image_outcomes({s.id: s.instances for s in samples}, preds, result.per_image)["img_2"]
    assert not o.scored and o.gt == [DC, DC, DC] and o.errors == 0


def test_worst_images_most_errors_first_and_never_a_perfect_one(tmp_path: Path) -> None:
    samples, preds = scene(tmp_path)
    result = evaluate(samples, preds, "icdar2015")
    outcomes = image_outcomes({s.id: s.instances for s in samples}, preds, result.per_image)
    worst = worst_images(outcomes, 10)
    assert [o.sample_id for o in worst] == ["img_6", "img_4", "img_5", "img_2", "img_3"]
    assert [o.errors for o in worst] == [6, 4, 4, 2, 2]  # ties: more misses first
    assert len(worst_images(outcomes, 2)) == 2


# --------------------------------------------------------------------------- drawing


def test_each_outcome_is_drawn_in_its_own_colour() -> None:
    assert len(set(COLOURS.values())) == len(COLOURS) == len(LEGEND)
    image = np.zeros((200, 400, 3), np.uint8)
    gts = [
        Instance(box(10, 10, 60, 40)),
        Instance(box(10, 60, 60, 90)),
        Instance(box(10, 110, 60, 140), ignore=True),
    ]
    dets = [
        Prediction(box(110, 10, 160, 40)),
        Prediction(box(110, 60, 160, 90)),
        Prediction(box(110, 110, 160, 140)),
    ]
    out = draw_outcomes(image, gts, [TP, FN, DC], dets, [TP, FP, DC], max_side=400)
    assert out.shape == image.shape
    for x, y, key in (
        (35, 10, "gt_tp"),
        (35, 60, "gt_fn"),
        (35, 110, "gt_dc"),
        (135, 10, "det_tp"),
        (135, 60, "det_fp"),
        (135, 110, "det_dc"),
    ):
        assert tuple(int(v) for v in out[y, x]) == COLOURS[key], key
    # errors get a tint of their colour inside, correct items do not
    fp_inside, tp_inside = out[75, 135], out[25, 135]
    assert fp_inside[0] > 40 and fp_inside[1] < 20 and tuple(tp_inside) == (0, 0, 0)
    miss_inside = out[75, 35]
    assert miss_inside[0] > 40 and miss_inside[2] > 40 and miss_inside[1] == 0  # magenta tint
    assert image.max() == 0  # the input is not drawn on


def test_a_miss_stays_visible_under_a_false_positive() -> None:
    """A failing detector often puts a wrong box over the word it missed."""
    image = np.zeros((100, 200, 3), np.uint8)
    gt = [Instance(box(20, 20, 120, 60))]
    fp = [Prediction(box(20, 20, 120, 60))]  # the worst case: the very same outline
    out = draw_outcomes(image, gt, [FN], fp, [FP], max_side=200)
    column = [tuple(int(v) for v in out[y, 70]) for y in range(16, 25)]
    assert COLOURS["det_fp"] in column and COLOURS["gt_fn"] in column  # thin red on wide magenta
    assert column[4] == COLOURS["det_fp"]  # the edge itself: the false positive on top


def test_overlapping_errors_are_tinted_where_they_overlap_too() -> None:
    """Two overlapping false positives: their common part is tinted like
    the rest (cv2.fillPoly of a list of polygons leaves overlaps as holes)."""
    image = np.zeros((100, 200, 3), np.uint8)
    fps = [Prediction(box(20, 20, 120, 70)), Prediction(box(60, 30, 160, 80))]
    out = draw_outcomes(image, [], [], fps, [FP, FP], max_side=200)
    alone, common = out[25, 40], out[50, 90]
    assert alone[0] > 40 and tuple(int(v) for v in common) == tuple(int(v) for v in alone)


def test_thumbnails_are_drawn_at_thumbnail_scale() -> None:
    image = np.zeros((1000, 2000, 3), np.uint8)
    out = draw_outcomes(image, [], [], [Prediction(box(1000, 500, 1400, 700))], [FP], max_side=500)
    assert out.shape == (250, 500, 3)
    assert tuple(int(v) for v in out[125, 300]) == COLOURS["det_fp"]  # (1200, 500) / 4
    small = draw_outcomes(np.zeros((50, 80, 3), np.uint8), [], [], [], [], max_side=500)
    assert small.shape == (50, 80, 3)  # never enlarged


# --------------------------------------------------------------------------- the folder and the page


def test_report_folder_page_and_numbers(tmp_path: Path) -> None:
    page = write_scene_report(tmp_path)
    root = page.parent
    html = page.read_text()
    # offline: nothing is fetched from anywhere but the folder itself
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", html)
    assert "<link" not in html and "@import" not in html
    srcs = re.findall(r"<img src='([^']+)'", html)
    assert set(srcs) >= {"plots/pr_curve.png", "plots/thresholds.png", "plots/breakdown.png"}
    assert sum(s.startswith("thumbs/") for s in srcs) == N_IMAGES - 1  # img_1 has no error
    for s in srcs:
        assert (root / s).is_file() and (root / s).stat().st_size > 0, s
    # every row of the per-image table links to its own drawn image
    links = re.findall(r"<a class=open href='([^']+)' data-caption='([^']*)'>([^<]+)</a>", html)
    assert [name for _, _, name in links] == [f"img_{k + 1}" for k in range(N_IMAGES)]
    assert len({href for href, _, _ in links}) == N_IMAGES
    assert {s for s in srcs if s.startswith("thumbs/")} <= {href for href, _, _ in links}
    assert sorted(p.name for p in (root / "thumbs").iterdir()) == sorted(
        Path(href).name for href, _, _ in links
    )
    for href, caption, name in links:
        image = cv2.imread(str(root / href))
        assert image is not None and image.shape[:2] == (HEIGHT, WIDTH), href
        k = int(name.split("_")[1]) - 1
        assert caption.startswith(f"{name}: {expected_errors(k)} errors")
    assert "NOT OFFICIAL" in html and "best-threshold sweep" in html
    doc = json.loads((root / "report.json").read_text())
    assert doc["per_image"]["img_6"]["fp"] == 5 and doc["per_image"]["img_6"]["fn"] == 1
    assert doc["worst"][0] == "img_6"
    assert doc["per_image"]["img_6"]["image"] in {href for href, _, _ in links}
    # the scene's GTs are horizontal quadrilaterals of two heights: only the size
    # breakdown is shown, the two others are left out, each with one line
    left = {b["name"]: b["left_out"] for b in doc["breakdowns"]}
    assert left["size"] is None
    care = 2 * N_IMAGES
    assert left["curvature"] == (
        f"curvature: left out, all {care} care GTs are in one bin ('quadrilateral'), "
        "so its recall is the overall recall"
    )
    assert left["orientation"].startswith(f"orientation: left out, all {care} care GTs")
    assert "<h2>Recall by size</h2>" in html and "<h3>curvature</h3>" not in html
    assert html.count("left out, all") == 2
    curve = doc["threshold_curve"]
    # t = 0 keeps every detection: the official figures; at t = 0.5 the FPs are gone
    assert curve["precision"][0] == pytest.approx(doc["figures"]["precision"])
    assert curve["recall"][0] == pytest.approx(doc["figures"]["recall"])
    assert curve["precision"][curve["thresholds"].index(0.5)] == pytest.approx(1.0)
    # the curve is the protocol's own: it meets the sweep wherever both are defined
    sweep = doc["figures"]["sweep"]
    for t, p, r in zip(sweep["thresholds"], sweep["precision"], sweep["recall"]):
        i = curve["thresholds"].index(t)
        assert (curve["precision"][i], curve["recall"][i]) == pytest.approx((p, r))
    assert (root / MARKER).is_file()


def test_a_hostile_sample_id_is_escaped_in_the_page(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script>' onclick='x\" &amp;"
    page = write_scene_report(tmp_path, rename={"img_2": hostile})
    html = page.read_text()
    assert "<script>alert" not in html and "' onclick='x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#x27; onclick=&#x27;x&quot; &amp;amp;" in html
    doc = json.loads((page.parent / "report.json").read_text())
    assert not any(hostile in p for p in map(str, (page.parent / "thumbs").iterdir()))
    assert (page.parent / doc["per_image"][hostile]["image"]).is_file()


def test_report_without_sweep_has_no_unofficial_row(tmp_path: Path) -> None:
    html = write_scene_report(tmp_path, protocol="totaltext-deteval", sweep=False).read_text()
    assert "NOT OFFICIAL" not in html and "totaltext-deteval" in html


def test_report_folder_is_replaced_but_a_foreign_folder_is_refused(tmp_path: Path) -> None:
    page = write_scene_report(tmp_path)
    stale = page.parent / "thumbs" / "999.jpg"
    stale.write_bytes(b"old")
    write_scene_report(tmp_path)  # an earlier report: replaced whole
    assert not stale.exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(TcmbenchError, match="not empty"):
        check_report_dir(foreign)
    (tmp_path / "file").write_text("x")
    with pytest.raises(TcmbenchError, match="not a folder"):
        check_report_dir(tmp_path / "file")


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcmbench.report.plots import require_matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(TcmbenchError, match=r"pip install 'tcmbench\[report\]'"):
        require_matplotlib()


# --------------------------------------------------------------------------- the CLI


class _ThresholdPlugin:
    from tcmbench.contract.hookspecs import hookimpl

    @hookimpl
    def register_detectors(self, register):
        from tiny_data import THRESHOLD_SPEC

        register(THRESHOLD_SPEC)


@pytest.fixture
def threshold_ckpt(tmp_path: Path) -> Path:
    from tiny_data import THRESHOLD_SPEC

    from tcmbench.contract import registry as plugins
    from tcmbench.contract.spec import DetectorConfig
    from tcmbench.hub import checkpoints as hub

    pm = plugins.get_plugin_manager()
    plugin = _ThresholdPlugin()
    pm.register(plugin, name="report-threshold-plugin")
    try:
        model = pm.hook.build_detector(spec=THRESHOLD_SPEC, config=DetectorConfig())
        yield hub.save_checkpoint(tmp_path / "ckpt", model, THRESHOLD_SPEC, DetectorConfig())
    finally:
        pm.unregister(plugin)


def _evaluate(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from tcmbench.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_report_option(
    tmp_path: Path, threshold_ckpt: Path, capsys: pytest.CaptureFixture
) -> None:
    from tiny_data import make_ic15_folder

    data = make_ic15_folder(tmp_path / "ic15", n_train=1, n_test=3)
    base = [
        "evaluate",
        "--plugin",
        "tiny-threshold",
        "--dataset",
        "icdar2015",
        "--data-root",
        str(data),
        "--weights",
        str(threshold_ckpt),
        "--device",
        "cpu",
        "--no-progress",
    ]
    code, _, err = _evaluate([*base, "--report", str(tmp_path / "rep")], capsys)
    assert code == 0, err
    page = tmp_path / "rep" / "index.html"
    assert f"report: {page} (3 images drawn, " in err  # and the folder's size
    assert len(list((tmp_path / "rep" / "thumbs").iterdir())) == 3  # none had an error
    html = page.read_text()
    assert "icdar2015" in html and html.count("1.0000") >= 3  # the perfect detector's P/R/H
    assert "No image has a false positive or a miss" in html
    assert (tmp_path / "rep" / "plots" / "pr_curve.png").stat().st_size > 0
    # a folder holding something else is refused up front, in one line
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, _, err = _evaluate([*base, "--report", str(other)], capsys)
    assert code == 2 and "not empty" in err and "Traceback" not in err
    assert (other / "keep.txt").read_text() == "mine"


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
@pytest.mark.parametrize(
    "gt_rel,fmt,pred_rel,style,protocols",
    [
        (
            "totaltext/test_gt.zip",
            "totaltext",
            "totaltext/baseline_det.zip",
            "polygon",
            [("totaltext-iou", {"validate": False}), ("totaltext-deteval", {})],
        ),
        (
            "icdar2015/test_gt.zip",
            "icdar2015",
            "icdar2015/pixellink_submit.zip",
            "rrc",
            [("icdar2015", {}), ("icdar2013", {}), ("icdar2013-deteval", {})],
        ),
    ],
)
def test_outcomes_and_breakdowns_on_real_detections(
    gt_rel: str,
    fmt: str,
    pred_rel: str,
    style: str,
    protocols: list,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Published detections on real GT: the labels reproduce every count of
    the protocols (pairs and matches alike) and the bins cover every care GT."""
    from conftest import shared_file

    from tcmbench.eval.io import read_ground_truth, read_predictions

    samples, _ = read_ground_truth(shared_file(gt_rel), fmt)
    preds, _ = read_predictions(shared_file(pred_rel), style=style)
    gt = {s.id: s.instances for s in samples}
    preds = {sid: preds.get(sid, []) for sid in gt}
    for name, params in protocols:
        r = evaluate(samples, preds, name, **params)
        with caplog.at_level("WARNING", logger="tcmbench.report.outcomes"):
            outcomes = image_outcomes(gt, preds, r.per_image)
        assert not caplog.records, name  # no count disagreed
        for sid, o in outcomes.items():
            e = r.per_image[sid]
            assert (o.num_gt_care, o.num_det_care) == (e["num_gt_care"], e["num_det_care"]), sid
        if "num_matched" in r.extra:
            assert sum(o.tp for o in outcomes.values()) == r.extra["num_matched"]
        assert sum(o.fp for o in outcomes.values()) > 0 and sum(o.fn for o in outcomes.values()) > 0
    size, angle, curve = breakdowns(gt, outcomes)
    care = sum(o.num_gt_care for o in outcomes.values())
    assert sum(b.gt for b in size.bins) == sum(b.gt for b in angle.bins) == care
    assert sum(b.gt for b in curve.bins) == care
    if fmt == "totaltext":  # curved text: the polygon bins are populated
        assert curve.bins[0].gt < care / 2 and curve.bins[3].gt > 0 and curve.bins[2].gt > 0
