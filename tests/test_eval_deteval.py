"""totaltext-deteval against the official Total-Text Deteval.py.

Realdata tests reproduce the official figures on the Total-Text baseline
and the per-pair sigma / tau of the official Matlab example. The other
cases (handcrafted splits, merges, quirks, don't-cares, rounding
boundaries, self-intersecting polygons, missing prediction files, plus
seeded random curved scenes) were run through the official Deteval.py in a
separate process; its output is fixed in EXPECTED as data (see the comment
there). Our code never computes the expected numbers.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import shared_file

from tcmbench.data.schema import Instance, Prediction
from tcmbench.errors import AnnotationFormatError, ProtocolError
from tcmbench.eval.deteval import (
    deteval_tables,
    evaluate_totaltext_deteval,
    read_deteval_mat_predictions,
)
from tcmbench.eval.overlaps import iter_image_overlaps

Points = list[list[int]]
# {"gt": [[points, dont_care], ...], "det": [points, ...] or None (no prediction file)}
Image = dict[str, Any]


def box(left: int, top: int, right: int, bottom: int) -> Points:
    return [[left, top], [right, top], [right, bottom], [left, bottom]]


def band(
    cx: float, cy: float, radius: float, a0: float, a1: float, height: float, n: int = 7
) -> Points:
    """A curved word: 2n points along an arc of ``radius`` (top edge
    left->right, bottom edge right->left), integer coordinates."""
    angles = [a0 + (a1 - a0) * i / (n - 1) for i in range(n)]
    top = [[round(cx + radius * math.cos(a)), round(cy - radius * math.sin(a))] for a in angles]
    r2 = radius - height
    bottom = [
        [round(cx + r2 * math.cos(a)), round(cy - r2 * math.sin(a))] for a in reversed(angles)
    ]
    return top + bottom


HANDCRAFTED: dict[str, list[Image]] = {
    "one_to_one_curved": [
        {
            "gt": [[band(300, 400, 200, 2.4, 0.8, 40), 0]],
            "det": [band(302, 401, 201, 2.38, 0.79, 42)],
        },
    ],
    "split_two": [
        {"gt": [[box(0, 0, 100, 20), 0]], "det": [box(0, 0, 48, 20), box(52, 0, 100, 20)]},
    ],
    "split_single_candidate": [
        # two dets overlap the GT (k = 2) but only one has tau >= tp
        {"gt": [[box(0, 0, 100, 20), 0]], "det": [box(0, 0, 75, 20), box(70, -40, 110, 60)]},
    ],
    "merge_sigma_uses_tp": [
        # the second GT is only 65% covered: sigma >= tp (0.6) but < tr
        # (0.7); the official many-to-one still takes it (tp, not tr)
        {"gt": [[box(0, 0, 40, 20), 0], [box(50, 0, 90, 20), 0]], "det": [box(0, 0, 76, 20)]},
    ],
    "merge_three": [
        {
            "gt": [[box(0, 0, 30, 20), 0], [box(35, 0, 60, 20), 0], [box(65, 0, 100, 20), 0]],
            "det": [box(-2, -2, 102, 22)],
        },
    ],
    "one_to_one_sigma_and_tau_columns_differ": [
        # det 0 covers the GT (sigma 1) but is large (tau 0.5); det 1 sits
        # inside (tau 1, sigma 0.6): one sigma and one tau candidate in
        # different columns -> matched with the sigma column.
        {"gt": [[box(0, 0, 100, 20), 0]], "det": [box(0, 0, 100, 40), box(0, 0, 60, 20)]},
        # the same, plus an overlapping GT that could split over det 0 only
        # if det 0 were left unflagged by the one-to-one pass
        {
            "gt": [[box(0, 0, 100, 20), 0], [box(0, 10, 100, 60), 0]],
            "det": [box(0, 0, 100, 40), box(0, 0, 60, 20), box(0, 40, 100, 60)],
        },
    ],
    "two_sigma_candidates": [
        {"gt": [[box(0, 0, 100, 20), 0]], "det": [box(0, 0, 100, 20), box(-1, -1, 101, 21)]},
    ],
    "sigma_rounding_boundary": [
        # 141/200 = 0.705 rounds (np.round) to 0.7: not > tr
        {"gt": [[box(0, 0, 200, 10), 0]], "det": [box(0, 0, 141, 10)]},
        # 142/200 = 0.71
        {"gt": [[box(0, 0, 200, 10), 0]], "det": [box(0, 0, 142, 10)]},
    ],
    "dont_care_filter": [
        # det 0: 100% on the DC GT -> deleted; det 1 (area 99): 50/(99+1) =
        # 0.5, not > 0.5 -> kept; det 2 matches the care GT.
        {
            "gt": [[box(0, 0, 50, 10), 1], [box(0, 100, 100, 120), 0]],
            "det": [
                box(0, 0, 50, 10),
                [[0, 0], [5, 0], [5, 10], [7, 10], [7, 17], [0, 17]],
                box(0, 100, 100, 120),
            ],
        },
    ],
    "self_intersecting_det": [
        # a bow-tie with unequal lobes: raw area = difference of the lobes,
        # intersection on the buffer(0)-repaired polygon
        {"gt": [[box(0, 0, 100, 40), 0]], "det": [[[0, 0], [100, 40], [100, 0], [0, 30]]]},
    ],
    "self_intersecting_gt": [
        {
            "gt": [[[[0, 0], [100, 40], [100, 0], [0, 30]], 0], [box(200, 0, 260, 30), 0]],
            "det": [box(0, 0, 100, 40), box(200, 0, 260, 30)],
        },
    ],
    "missing_prediction_file": [
        {"gt": [[box(0, 0, 100, 20), 0]], "det": [box(0, 0, 100, 20)]},
        {"gt": [[box(0, 0, 100, 20), 0], [box(0, 50, 100, 70), 0]], "det": None},
        {"gt": [[box(0, 0, 100, 20), 0]], "det": []},
    ],
    "no_care_gt": [
        {"gt": [[box(0, 0, 100, 20), 1]], "det": [box(0, 0, 100, 20), box(300, 300, 330, 330)]},
        {"gt": [], "det": [box(0, 0, 10, 10)]},
    ],
}


def _j(rng: random.Random, a: int) -> int:
    return rng.randint(-a, a)


def random_image(rng: random.Random) -> Image:
    """Curved lines of words (14-point bands) with detections that are
    jittered copies, sub-bands (splits), bands spanning neighbours (merges),
    misses, false positives, don't-cares and the odd bow-tie."""
    gts: list[list[Any]] = []
    dets: list[Points] = []
    for _ in range(rng.randint(1, 3)):
        cx, cy = rng.randint(200, 800), rng.randint(300, 900)
        radius = rng.randint(120, 400)
        height = rng.randint(15, 50)
        a = rng.uniform(2.0, 2.6)
        words = []
        for _ in range(rng.randint(1, 4)):
            span = rng.uniform(0.15, 0.45)
            words.append((a, a - span))
            a -= span + rng.uniform(0.02, 0.08)
        for w in words:
            gts.append([band(cx, cy, radius, *w, height), int(rng.random() < 0.1)])
        i = 0
        while i < len(words):
            a0, a1 = words[i]
            mode = rng.random()
            if mode < 0.4:
                dets.append(
                    [
                        [x + _j(rng, 3), y + _j(rng, 3)]
                        for x, y in band(cx, cy, radius, a0, a1, height)
                    ]
                )
                i += 1
            elif mode < 0.55 and i + 1 < len(words):
                n = rng.randint(2, min(3, len(words) - i))
                dets.append(
                    band(cx + _j(rng, 3), cy + _j(rng, 3), radius, a0, words[i + n - 1][1], height)
                )
                i += n
            elif mode < 0.72:
                cuts = sorted(rng.uniform(a1, a0) for _ in range(rng.randint(1, 2)))[::-1]
                edges = [a0, *cuts, a1]
                for b0, b1 in itertools.pairwise(edges):
                    if b0 - b1 > 0.03:
                        dets.append(band(cx, cy, radius + _j(rng, 2), b0, b1, height + _j(rng, 3)))
                i += 1
            elif mode < 0.82:
                i += 1
            else:
                dets.append(
                    band(
                        cx + rng.randint(-40, 40),
                        cy + rng.randint(-20, 20),
                        radius,
                        a0,
                        a1,
                        height + _j(rng, 8),
                    )
                )
                i += 1
    for _ in range(rng.randint(0, 2)):
        x, y = rng.randint(0, 900), rng.randint(0, 900)
        dets.append(box(x, y, x + rng.randint(10, 150), y + rng.randint(10, 60)))
    bands = [i for i, d in enumerate(dets) if len(d) > 4]
    if bands and rng.random() < 0.15:
        # self-intersecting band (a symmetric bow-tie from a box would have
        # zero raw area: the official script divides by it and crashes)
        d = rng.choice(bands)
        poly = list(dets[d])
        poly[1], poly[2] = poly[2], poly[1]
        dets[d] = poly
    rng.shuffle(dets)
    return {"gt": gts, "det": dets}


def random_cases(seed: int = 2017, n_cases: int = 20, n_images: int = 6) -> list[list[Image]]:
    rng = random.Random(seed)
    return [[random_image(rng) for _ in range(n_images)] for _ in range(n_cases)]


def all_cases() -> dict[str, list[Image]]:
    cases = dict(HANDCRAFTED)
    for n, case in enumerate(random_cases()):
        cases[f"random_{n:02d}"] = case
    return cases


# Cases also run with non-default thresholds (the oracle's constants edited).
PARAM_CASES: dict[str, dict[str, Any]] = {
    "random_03": {"tr": 0.8, "tp": 0.4, "k": 3, "penalty": 0.5},
    "merge_sigma_uses_tp": {"tr": 0.5, "tp": 0.7, "k": 2, "penalty": 0.9},
}


def to_inputs(images: list[Image]) -> tuple[dict[str, list[Instance]], dict[str, list[Prediction]]]:
    """Ids img1, img2, ...; an image whose "det" is None has no prediction."""
    gt = {
        f"img{k + 1}": [Instance(np.array(p, np.float32), ignore=bool(dc)) for p, dc in im["gt"]]
        for k, im in enumerate(images)
    }
    pred = {
        f"img{k + 1}": [Prediction(np.array(p, np.float64)) for p in im["det"]]
        for k, im in enumerate(images)
        if im["det"] is not None
    }
    return gt, pred


# EXPECTED: output of the official Deteval.py (cs-chan/Total-Text-Dataset at
# commit 9e8ff0aa453e420922a6c2bd5097ad61a4b9d87a, Evaluation_Protocol/
# Python_scripts/Deteval.py + polygon_fast.py; local edits: paths from argv,
# images walked in numeric order instead of os.listdir order, f-score
# printed) with shapely 2.2.0 / GEOS 3.14.1 / numpy 2.4.6, on the cases
# above written as official inputs (GT .mat with '#' don't-cares,
# predictions as y,x text files; "det": None = no file).
# case -> (precision, recall, hmean, per image (precision, recall) or None
# for an image the official never read)
EXPECTED: dict[str, tuple[float, float, float, list[Any]]] = {
    "one_to_one_curved": (1.0, 1.0, 1.0, [(1.0, 1.0)]),
    "split_two": (0.8, 0.8, 0.8000000000000002, [(0.8, 0.8)]),
    "split_single_candidate": (0.5, 1.0, 0.6666666666666666, [(0.5, 1.0)]),
    "merge_sigma_uses_tp": (0.8, 0.8, 0.8000000000000002, [(0.8, 0.8)]),
    "merge_three": (0.8, 0.8000000000000002, 0.8000000000000002, [(0.8, 0.8000000000000002)]),
    "one_to_one_sigma_and_tau_columns_differ": (
        0.4,
        0.6666666666666666,
        0.5,
        [(0.5, 1.0), (0.3333333333333333, 0.5)],
    ),
    "two_sigma_candidates": (0.8, 0.8, 0.8000000000000002, [(0.8, 0.8)]),
    "sigma_rounding_boundary": (0.5, 0.5, 0.5, [(0.0, 0.0), (1.0, 1.0)]),
    "dont_care_filter": (0.5, 1.0, 0.6666666666666666, [(0.5, 1.0)]),
    "self_intersecting_det": (0.0, 0.0, 0.0, [(0.0, 0.0)]),
    "self_intersecting_gt": (0.5, 0.5, 0.5, [(0.5, 0.5)]),
    "missing_prediction_file": (1.0, 0.5, 0.6666666666666666, [(1.0, 1.0), None, (0.0, 0.0)]),
    "no_care_gt": (0.0, 0.0, 0.0, [(0.0, 0.0), (0.0, 0.0)]),
    "random_00": (
        0.42105263157894735,
        0.6153846153846154,
        0.5,
        [
            (0.3333333333333333, 1.0),
            (0.25, 0.25),
            (0.6666666666666666, 0.6666666666666666),
            (0.25, 1.0),
            (0.0, 0.0),
            (1.0, 1.0),
        ],
    ),
    "random_01": (
        0.6952380952380953,
        0.7393939393939395,
        0.7166364916515794,
        [
            (0.5333333333333333, 0.8),
            (0.6749999999999999, 0.6000000000000001),
            (0.45, 0.5599999999999999),
            (0.76, 0.85),
            (0.7714285714285715, 0.76),
            (0.9333333333333332, 0.96),
        ],
    ),
    "random_02": (
        0.7170731707317075,
        0.7454545454545455,
        0.7309884778653729,
        [
            (0.7, 0.7749999999999999),
            (1.0, 0.8571428571428571),
            (0.6000000000000001, 0.8000000000000002),
            (0.5800000000000001, 0.68),
            (0.52, 0.9),
            (0.9333333333333332, 0.6),
        ],
    ),
    "random_03": (
        0.5783783783783784,
        0.5461538461538462,
        0.5618044000739508,
        [
            (0.8666666666666667, 0.9),
            (0.48888888888888893, 0.39999999999999997),
            (0.5666666666666668, 0.68),
            (0.625, 0.65),
            (0.3333333333333333, 0.5),
            (0.625, 0.43333333333333335),
        ],
    ),
    "random_04": (
        0.7111111111111111,
        0.6518518518518519,
        0.6801932367149758,
        [
            (0.5999999999999999, 0.5399999999999999),
            (1.0, 0.6666666666666666),
            (0.9333333333333332, 0.96),
            (0.6666666666666666, 0.5),
            (0.9, 0.8500000000000001),
            (0.0, 0.0),
        ],
    ),
    "random_05": (
        0.6638297872340427,
        0.6545454545454547,
        0.6591549295774649,
        [
            (0.5, 0.5),
            (0.75, 0.9428571428571428),
            (0.6588235294117647, 0.6),
            (0.6599999999999999, 0.5666666666666668),
            (0.0, 0.0),
            (0.8500000000000001, 0.68),
        ],
    ),
    "random_06": (
        0.5794871794871795,
        0.6363636363636364,
        0.60659509202454,
        [
            (0.6923076923076923, 0.7333333333333333),
            (0.75, 0.75),
            (0.2, 0.64),
            (0.3, 0.43333333333333335),
            (0.65, 0.6),
            (0.675, 0.6333333333333333),
        ],
    ),
    "random_07": (
        0.6303030303030304,
        0.7703703703703704,
        0.6933333333333334,
        [
            (0.6, 0.9333333333333332),
            (1.0, 1.0),
            (0.0, 0.0),
            (0.7333333333333334, 0.8800000000000001),
            (0.6, 0.7333333333333334),
            (0.7666666666666666, 0.76),
        ],
    ),
    "random_08": (
        0.6387096774193549,
        0.7307692307692307,
        0.681645225584345,
        [
            (0.5333333333333333, 0.8),
            (0.6, 0.5555555555555556),
            (0.7749999999999999, 0.9199999999999999),
            (0.6333333333333333, 0.7666666666666666),
            (0.6666666666666666, 1.0),
            (0.5, 0.6666666666666666),
        ],
    ),
    "random_09": (
        0.6717948717948719,
        0.6687500000000001,
        0.6702689778840407,
        [
            (0.7999999999999999, 0.7999999999999999),
            (0.37142857142857144, 0.36),
            (0.8800000000000001, 0.7333333333333334),
            (1.0, 1.0),
            (0.72, 0.7),
            (0.55, 0.5599999999999999),
        ],
    ),
    "random_10": (
        0.7111111111111112,
        0.8,
        0.7529411764705883,
        [
            (0.0, 0.0),
            (0.7000000000000001, 0.8666666666666667),
            (0.4, 0.5333333333333333),
            (0.9, 0.911111111111111),
            (0.8800000000000001, 0.8800000000000001),
            (0.4, 0.8),
        ],
    ),
    "random_11": (
        0.6444444444444445,
        0.724137931034483,
        0.6819708846584548,
        [
            (0.7333333333333334, 0.8800000000000001),
            (0.7000000000000001, 0.7428571428571428),
            (0.7666666666666666, 0.6499999999999999),
            (0.5599999999999999, 0.9),
            (0.25, 0.5),
            (0.5333333333333333, 0.5333333333333333),
        ],
    ),
    "random_12": (
        0.6594594594594596,
        0.7870967741935483,
        0.7176470588235295,
        [
            (0.6222222222222222, 0.6857142857142858),
            (0.6, 0.8666666666666667),
            (0.7428571428571429, 0.72),
            (0.3333333333333333, 1.0),
            (0.825, 0.8285714285714285),
            (0.6, 0.8250000000000001),
        ],
    ),
    "random_13": (
        0.580952380952381,
        0.5700000000000001,
        0.5754240794373191,
        [
            (0.6000000000000001, 0.5428571428571428),
            (0.6666666666666666, 0.6666666666666666),
            (0.3333333333333333, 0.3333333333333333),
            (0.5, 0.6666666666666666),
            (0.9, 0.8666666666666667),
            (0.0, 0.0),
        ],
    ),
    "random_14": (
        0.5846153846153848,
        0.6782608695652176,
        0.6279661016949154,
        [
            (0.5, 0.5),
            (0.8400000000000001, 0.65),
            (0.6, 1.0),
            (0.7250000000000001, 0.8666666666666667),
            (0.43333333333333335, 0.6),
            (0.4727272727272727, 0.6),
        ],
    ),
    "random_15": (
        0.6258064516129033,
        0.688888888888889,
        0.6558342420937842,
        [
            (0.6, 0.5),
            (0.4, 0.8),
            (0.6909090909090909, 0.85),
            (0.9, 0.8666666666666667),
            (0.72, 0.7),
            (0.45, 0.52),
        ],
    ),
    "random_16": (
        0.5652173913043478,
        0.5809523809523809,
        0.5729768786127166,
        [
            (0.8, 0.8),
            (0.6666666666666666, 0.6666666666666666),
            (0.6, 0.4666666666666666),
            (0.8666666666666667, 0.6),
            (0.5, 0.6),
            (0.25, 0.5),
        ],
    ),
    "random_17": (
        0.7538461538461539,
        0.6962962962962963,
        0.7239292730844794,
        [
            (0.76, 0.7666666666666666),
            (1.0, 0.5),
            (0.68, 0.6),
            (0.6, 0.65),
            (0.6, 0.5599999999999999),
            (1.0, 1.0),
        ],
    ),
    "random_18": (
        0.6000000000000001,
        0.6153846153846154,
        0.6075949367088608,
        [
            (0.5666666666666668, 0.8500000000000001),
            (0.7111111111111111, 0.6857142857142857),
            (0.6, 0.5),
            (0.5, 0.5),
            (0.6000000000000001, 0.4),
            (0.5, 0.6),
        ],
    ),
    "random_19": (
        0.6357142857142858,
        0.6636363636363637,
        0.6493753123438282,
        [
            (0.72, 0.7),
            (0.26666666666666666, 0.26666666666666666),
            (1.0, 0.5),
            (0.5666666666666668, 0.8500000000000001),
            (0.72, 0.7),
            (0.9, 0.9333333333333332),
        ],
    ),
}
EXPECTED_PARAMS: dict[str, tuple[float, float, float, list[Any]]] = {
    "random_03": (
        0.33783783783783783,
        0.34615384615384615,
        0.34194528875379937,
        [
            (0.3333333333333333, 0.5),
            (0.3888888888888889, 0.35714285714285715),
            (0.3333333333333333, 0.3),
            (0.3125, 0.375),
            (0.3333333333333333, 0.5),
            (0.3125, 0.25),
        ],
    ),
    "merge_sigma_uses_tp": (0.0, 0.0, 0.0, [(0.0, 0.0)]),
}


def _check(result: Any, expected: tuple[float, float, float, list[Any]]) -> None:
    precision, recall, hmean, images = expected
    assert (result.precision, result.recall, result.hmean) == (precision, recall, hmean)
    for k, want in enumerate(images, start=1):
        entry = result.per_image[f"img{k}"]
        if want is None:
            assert "skipped" in entry
        else:
            assert (entry["precision"], entry["recall"]) == tuple(want)


@pytest.mark.parametrize("case", list(EXPECTED))
def test_matches_official_deteval(case: str) -> None:
    gt, pred = to_inputs(all_cases()[case])
    _check(evaluate_totaltext_deteval(gt, pred), EXPECTED[case])


@pytest.mark.parametrize("case", list(EXPECTED_PARAMS))
def test_params_match_official_with_edited_constants(case: str) -> None:
    gt, pred = to_inputs(all_cases()[case])
    # as strings, the way `tcmbench score --param KEY=VALUE` passes them
    params = {k: str(v) for k, v in PARAM_CASES[case].items()}
    result = evaluate_totaltext_deteval(gt, pred, **params)
    _check(result, EXPECTED_PARAMS[case])
    assert result.params["k"] == PARAM_CASES[case]["k"]


def test_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    images = [im for n in ("random_01", "random_02", "random_05") for im in all_cases()[n]]
    gt, pred = to_inputs(images)
    whole = evaluate_totaltext_deteval(gt, pred)
    import tcmbench.eval.overlaps as mod

    monkeypatch.setattr(mod, "PAIR_BUDGET", 7)
    chunked = evaluate_totaltext_deteval(gt, pred)
    assert (chunked.precision, chunked.recall) == (whole.precision, whole.recall)
    assert chunked.per_image == whole.per_image


def test_missing_prediction_official_vs_count(caplog: pytest.LogCaptureFixture) -> None:
    gt, pred = to_inputs(HANDCRAFTED["missing_prediction_file"])
    with caplog.at_level(logging.WARNING, logger="tcmbench.eval.deteval"):
        official = evaluate_totaltext_deteval(gt, pred)
    assert "no prediction file" in caplog.text
    assert official.extra["images_without_predictions"] == 1
    assert official.extra["num_gt_care"] == 2  # img2's two GTs dropped, as Deteval.py does
    assert official.per_image["img2"]["missing_prediction_file"]
    counted = evaluate_totaltext_deteval(gt, pred, missing_predictions="count")
    # 4 care GTs, one matched; the single detection matched
    assert (counted.recall, counted.precision) == (0.25, 1.0)
    assert (
        counted.per_image["img2"]["num_gt_care"] == 2 and "skipped" not in counted.per_image["img2"]
    )
    # "count" == the official run with an empty prediction file for img2
    pred_empty = dict(pred, img2=[])
    explicit = evaluate_totaltext_deteval(gt, pred_empty)
    assert (explicit.precision, explicit.recall, explicit.hmean) == (
        counted.precision,
        counted.recall,
        counted.hmean,
    )


def test_match_indices_refer_to_input_lists() -> None:
    gt, pred = to_inputs(HANDCRAFTED["dont_care_filter"])
    entry = evaluate_totaltext_deteval(gt, pred).per_image["img1"]
    assert entry["matches"] == [["one-to-one", [1], [2]]]
    assert (entry["num_det"], entry["num_det_care"], entry["num_gt"], entry["num_gt_care"]) == (
        3,
        2,
        2,
        1,
    )
    gt, pred = to_inputs(HANDCRAFTED["merge_sigma_uses_tp"])
    entry = evaluate_totaltext_deteval(gt, pred, details="false").per_image["img1"]
    assert "matches" not in entry and entry["recall_credit"] == pytest.approx(1.6)


def test_bad_geometry_never_crashes_and_scores_as_documented() -> None:
    """Inputs the official script crashes on (non-finite, < 3 points, zero
    raw area) are unmatched detections; they still count in precision."""
    gt = {
        "img1": [
            Instance(np.array(box(0, 0, 100, 20), np.float32)),
            Instance(np.array([[0, 50], [50, 50], [100, 50]], np.float32)),
        ]
    }  # zero-area GT
    pred = {
        "img1": [
            Prediction(np.array(box(0, 0, 100, 20), float)),
            Prediction(np.array([[0, 0], [np.nan, 0], [100, 20], [0, 20]])),
            Prediction(np.array([[0, 0], [100, 20]], float)),
            Prediction(
                np.array([[0, 0], [100, 20], [100, 0], [0, 20]], float)
            ),  # symmetric bow-tie
            Prediction(np.array([[0, 0], [np.inf, 20], [5, 5]])),
            Prediction(np.zeros((0, 2))),
        ]
    }
    result = evaluate_totaltext_deteval(gt, pred)
    assert result.extra["num_det_care"] == 6 and result.extra["num_gt_care"] == 2
    assert (result.precision, result.recall) == (1 / 6, 0.5)
    # the same junk next to a don't-care GT is never filtered (it overlaps nothing)
    gt_dc = {"img1": [Instance(np.array(box(0, 0, 100, 20), np.float32), ignore=True)]}
    result = evaluate_totaltext_deteval(gt_dc, {"img1": pred["img1"][1:3] + pred["img1"][4:]})
    assert result.extra["num_det_care"] == 4 and result.precision == 0.0


def test_invalid_requests_are_protocol_errors() -> None:
    gt, pred = to_inputs(HANDCRAFTED["split_two"])
    with pytest.raises(ProtocolError, match="no ground truth: img9"):
        evaluate_totaltext_deteval(gt, dict(pred, img9=[]))
    with pytest.raises(ProtocolError, match=r"unknown parameter.*iou"):
        evaluate_totaltext_deteval(gt, pred, iou=0.5)
    with pytest.raises(ProtocolError, match="missing_predictions"):
        evaluate_totaltext_deteval(gt, pred, missing_predictions="zero")
    with pytest.raises(ProtocolError, match="k="):
        evaluate_totaltext_deteval(gt, pred, k="2.5")
    with pytest.raises(ProtocolError, match="tr="):
        evaluate_totaltext_deteval(gt, pred, tr="high")


def test_registered_protocol() -> None:
    from tcmbench.contract.registry import get_protocol

    spec = get_protocol("totaltext-deteval")
    assert spec.params["tr"] == 0.7 and spec.params["missing_predictions"] == "official"
    gt, pred = to_inputs(HANDCRAFTED["split_two"])
    result = spec.evaluate(gt, pred, **spec.params)
    assert (result.precision, result.recall) == EXPECTED["split_two"][:2]


def test_mat_prediction_reader_rejects_other_files(tmp_path: Path) -> None:
    import io

    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, {"polygt": np.zeros((1, 6))})
    with pytest.raises(AnnotationFormatError, match="accuInf"):
        read_deteval_mat_predictions(buf.getvalue(), "x.mat")
    with pytest.raises(AnnotationFormatError, match="MATLAB"):
        read_deteval_mat_predictions(b"not a mat file", "y.mat")


# --------------------------------------------------------------------------- real data


def _baseline_predictions(path: Path) -> Any:
    """baseline_det.zip: imgN.txt, lines of x,y integers (``--pred-order xy``)."""
    from tcmbench.eval.io import read_predictions

    preds, _ = read_predictions(path, style="polygon")
    return preds


@pytest.mark.realdata
def test_totaltext_baseline_official_figures() -> None:
    from tcmbench.data.formats.api import read_annotations

    samples, _ = read_annotations("totaltext", shared_file("totaltext/test_gt.zip"))
    gt = {s.id: s.instances for s in samples}
    pred = _baseline_predictions(shared_file("totaltext/baseline_det.zip"))
    assert len(gt) == len(pred) == 300
    result = evaluate_totaltext_deteval(gt, pred)
    # official Deteval.py figures (its os.listdir order moves the last bits)
    assert result.precision == pytest.approx(0.7846790890269146, abs=1e-12)
    assert result.recall == pytest.approx(0.6822041553748862, abs=1e-12)
    assert result.hmean == pytest.approx(0.7298622262036172, abs=1e-12)
    assert (result.extra["num_gt_care"], result.extra["num_det_care"]) == (2214, 1932)
    assert (result.extra["num_gt"], result.extra["num_det"]) == (2545, 2098)


@pytest.mark.realdata
def test_matlab_example_sigma_tau() -> None:
    """Every (GT, prediction) pair with a non-empty intersection, in the
    order Eval.m visits them, has the unrounded tau and sigma Result.txt
    lists (Eval.m prints precision, then recall)."""
    from tcmbench.data.formats.totaltext import read_totaltext_mat

    root = shared_file("totaltext/mat_examples")
    expected = [
        line.split() for line in (root / "Result.txt").read_text().splitlines() if line.strip()
    ]
    got = []
    for i in range(1, 6):
        name = f"poly_gt_img{i}.mat"
        gts = read_totaltext_mat((root / "Groundtruth" / name).read_bytes(), name)
        dets = read_deteval_mat_predictions(
            (root / "Prediction" / f"img{i}.mat").read_bytes(), f"img{i}.mat"
        )
        [overlap] = iter_image_overlaps(
            [([g.polygon for g in gts], [d.polygon for d in dets])], repair=True, det_first=True
        )
        sigma, tau, _, _ = deteval_tables(overlap, np.zeros(len(gts), bool), rounded=False)
        for g, d in zip(*np.nonzero(overlap.inter > 0)):
            got.append((name, tau[g, d], sigma[g, d]))
    assert len(got) == len(expected) == 30
    for (name, tau, sigma), (want_name, want_tau, want_sigma) in zip(got, expected):
        assert name == want_name
        assert tau == pytest.approx(float(want_tau), abs=1e-12)
        assert sigma == pytest.approx(float(want_sigma), abs=1e-12)


def _with_scores(pred: dict[str, list[Prediction]]) -> dict[str, list[Prediction]]:
    return {
        k: [Prediction(p.polygon, score=((i * 37 + len(k)) % 97) / 96) for i, p in enumerate(v)]
        for k, v in pred.items()
    }


def test_sweep_equals_scoring_the_filtered_predictions() -> None:
    """Each sweep threshold scores as the protocol does on the detections
    with score >= threshold (computed from one set of tables)."""
    images = [im for n in ("random_04", "random_07", "merge_three") for im in all_cases()[n]]
    gt, pred = to_inputs(images)
    pred = _with_scores(pred)
    result = evaluate_totaltext_deteval(gt, pred, sweep="true")
    official = evaluate_totaltext_deteval(gt, pred)
    assert (result.precision, result.recall) == (official.precision, official.recall)
    sweep = result.sweep
    assert sweep is not None and "not the official" in sweep["label"]
    assert sweep["thresholds"] == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    for t, p, r in zip(sweep["thresholds"], sweep["precision"], sweep["recall"]):
        kept = {k: [x for x in v if not np.float32(x.score) < t] for k, v in pred.items()}
        filtered = evaluate_totaltext_deteval(gt, kept)
        assert p == pytest.approx(filtered.precision, abs=1e-12)
        assert r == pytest.approx(filtered.recall, abs=1e-12)
    assert sweep["best_hmean"] == max(sweep["hmean"])
    with pytest.raises(ProtocolError, match="score"):
        evaluate_totaltext_deteval(gt, to_inputs(images)[1], sweep=True)


def test_registry_defaults_equal_module_defaults() -> None:
    from tcmbench.eval import deteval, icdar2013
    from tcmbench.eval.protocols import DETEVAL_PROTOCOLS

    assert DETEVAL_PROTOCOLS["totaltext-deteval"][2] == deteval.DEFAULT_PARAMS
    assert DETEVAL_PROTOCOLS["icdar2013"][2] == icdar2013.DEFAULT_PARAMS
    assert DETEVAL_PROTOCOLS["icdar2013-deteval"][2] == icdar2013.DEFAULT_PARAMS


@pytest.mark.realdata
def test_score_cli_official_and_corrected(tmp_path: Path) -> None:
    """`tcmbench score` end to end on the official files: the official
    figures by default; with an image's prediction file removed, the
    official rule drops its GTs, missing_predictions=count keeps them."""
    import json
    import zipfile

    from click.testing import CliRunner

    from tcmbench.cli import cli

    gt = shared_file("totaltext/test_gt.zip")
    pred = shared_file("totaltext/baseline_det.zip")
    out = tmp_path / "r.json"
    args = ["score", "--protocol", "totaltext-deteval", "--gt", str(gt), "--pred-order", "xy"]
    res = CliRunner().invoke(cli, [*args, "--pred", str(pred), "--json", str(out)])
    assert res.exit_code == 0, res.output
    figures = json.loads(out.read_text())
    assert figures["precision"] == pytest.approx(0.7846790890269146, abs=1e-12)
    assert figures["hmean"] == pytest.approx(0.7298622262036172, abs=1e-12)

    folder = tmp_path / "pred"
    folder.mkdir()
    with zipfile.ZipFile(pred) as z:
        for name in z.namelist():
            if name != "img2.txt":
                (folder / name).write_bytes(z.read(name))
    official = tmp_path / "official.json"
    counted = tmp_path / "counted.json"
    res = CliRunner().invoke(cli, [*args, "--pred", str(folder), "--json", str(official)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        cli,
        [
            *args,
            "--pred",
            str(folder),
            "--json",
            str(counted),
            "--param",
            "missing_predictions=count",
        ],
    )
    assert res.exit_code == 0, res.output
    a, b = json.loads(official.read_text()), json.loads(counted.read_text())
    assert a["images_without_predictions"] == b["images_without_predictions"] == 1
    assert b["num_gt_care"] - a["num_gt_care"] == 7  # img2's care GTs
    assert b["recall"] < a["recall"] and b["precision"] == a["precision"]


def test_fast_kernel_tables_equal_official_geos_tables() -> None:
    """The numpy-kernel path (with its GEOS recheck near rounding ties) gives
    the sigma / tau tables of the pure GEOS path the official script takes,
    on random polygons (mostly self-intersecting) and on curved scenes."""
    from tcmbench.eval.deteval import near_official_ties

    rng = np.random.default_rng(5)
    images = [
        (
            [rng.integers(0, 100, (rng.integers(3, 9), 2)).astype(float) for _ in range(3)],
            [rng.integers(0, 100, (rng.integers(3, 9), 2)).astype(float) for _ in range(3)],
        )
        for _ in range(150)
    ]
    for im in all_cases()["random_01"] + all_cases()["random_08"]:
        images.append(
            ([np.array(p, float) for p, _ in im["gt"]], [np.array(p, float) for p in im["det"]])
        )
    fast = iter_image_overlaps(images, repair=True, det_first=True, recheck=near_official_ties)
    slow = iter_image_overlaps(images, repair=True, det_first=True)
    for (g, _), f, s in zip(images, fast, slow):
        np.testing.assert_allclose(f.inter, s.inter, rtol=1e-9, atol=1e-9)
        ign = np.zeros(len(g), bool)
        for a, b in zip(deteval_tables(f, ign), deteval_tables(s, ign)):
            np.testing.assert_array_equal(a, b)


def test_images_scored_together_equal_image_by_image() -> None:
    """score_images (the don't-care filter, the tables and the one-to-one
    pass for many images at once) gives what deteval_tables and
    match_totaltext give image by image: credits in their order, matches,
    care GTs and kept detections; ratios land on the thresholds often."""
    from tcmbench.eval.deteval import match_totaltext, score_images
    from tcmbench.eval.overlaps import ImageOverlap

    rng = np.random.default_rng(4)
    rule = {"tr": 0.7, "tp": 0.6, "k": 2, "penalty": 0.8}
    images, ignores = [], []
    for _ in range(400):
        g, d = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        gt_area = rng.choice([0.0, 50.0, 100.0, 200.0], size=g)
        det_area = rng.choice([0.0, 50.0, 100.0, 120.0], size=d)
        frac = rng.choice([0.0, 0.0, 0.3, 0.5, 0.6, 0.7, 0.71, 0.9, 1.0], size=(g, d))
        inter = frac * np.minimum(gt_area[:, None], det_area[None, :])
        images.append(ImageOverlap(inter, gt_area, det_area, [], [], tag=None))
        ignores.append(rng.random(g) < 0.2)
    got = score_images(images, ignores, **rule)
    kinds = set()
    for overlap, ignore, (scored, care, kept) in zip(images, ignores, got, strict=True):
        sigma, tau, want_care, want_kept = deteval_tables(overlap, ignore)
        want = match_totaltext(sigma, tau, **rule)
        assert scored == want
        assert care.tolist() == want_care.tolist() and kept.tolist() == want_kept.tolist()
        kinds |= {m[0] for m in want.matches}
    assert kinds == {"one-to-one", "one-to-many", "many-to-one"}  # every pass was exercised
