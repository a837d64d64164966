"""TCM-wide fidelity rows (issue 17, docs/tcm.md "Where tcmbench follows the
authors' code"): each test is named after its row of
:data:`tcmbench.tcm.fidelity.ROWS` and checks a hand-made input against a
value worked out by hand from the official algorithm (the working is in the
docstring)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tcmbench.tcm.loss import (
    TCMAuxLoss,
    broadcast_balanced_bce_loss,
    ohem_dice_with_logits,
    ohem_mask,
)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _db_target(targets, logits):
    return targets["gt_shrink"], targets["gt_shrink_mask"]


# ----------------------------------------------------------------- row 13


def test_row13_ohem_dice_smooth_in_numerator():
    """mmocr 0.x ``PANLoss.dice_loss_with_logits`` (and TCM's
    ``PANIdentityHead``): a = sum(pg) + s, b = sum(pp) + s, c = sum(gg) + s,
    loss = 1 - 2a / (b + c), s = 0.001, mean over the images.

    Image 0 (1 x 4): logits 0 everywhere, so p = 0.5; text [1, 1, 0, 0].
    OHEM keeps the 2 positives and min(3 x 2, 2) = 2 negatives: all 4.
    sum(pg) = 0.5 + 0.5 = 1, sum(pp) = 4 x 0.25 = 1, sum(gg) = 2:
    loss_0 = 1 - 2 (1 + s) / (1 + s + 2 + s) = 1 - 2.002 / 3.002.

    Image 1: no text, logits -30 (p = 9.4e-14, an empty prediction). No
    positives: OHEM keeps the whole mask. sum(pg) = 0, sum(pp) ~ 3.5e-26,
    sum(gg) = 0: loss_1 = 1 - 2s / (2s) = 0 (without s in the numerator it
    would be 1).

    Batch loss = (loss_0 + 0) / 2 = (1 - 2.002 / 3.002) / 2 = 0.166556..."""
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [-30.0, -30.0, -30.0, -30.0]]).reshape(2, 1, 1, 4)
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).reshape(2, 1, 4)
    mask = torch.ones(2, 1, 4)
    s = 0.001
    expected = (1 - 2 * (1 + s) / (1 + s + 2 + s)) / 2
    assert ohem_dice_with_logits(logits, target, mask).item() == pytest.approx(expected, abs=1e-7)
    # Image 1 alone: an empty prediction on an image without text costs nothing.
    assert ohem_dice_with_logits(logits[1:], target[1:], mask[1:]).item() == pytest.approx(
        0.0, abs=1e-7
    )


def test_row13_ohem_ranks_negatives_over_the_whole_image():
    """mmocr 0.x ``PANLoss.ohem_img``: pos = text pixels inside the mask;
    neg_num = min(3 pos, #non-text pixels of the *whole* image); the
    threshold is the neg_num-th highest score among all non-text pixels
    (ignored ones too); kept = (score >= threshold or text) and inside mask.

    1 x 8 image, text at pixel 0; pixel 1 is an ignored region (mask 0) that
    the model scores highest (9). pos = 1, neg_num = min(3, 7) = 3. Non-text
    scores: 9 (ignored), 5, 4, 3, -1, -2, -5: the 3rd highest is 4. Kept:
    text pixel 0, and pixels with score >= 4 inside the mask: 2 (5), 3 (4);
    pixel 1 is outside the mask. -> [1, 0, 1, 1, 0, 0, 0, 0]. (Ranking only
    the negatives inside the mask would also keep pixel 4, score 3.)"""
    logits = torch.tensor([0.0, 9.0, 5.0, 4.0, 3.0, -1.0, -2.0, -5.0]).reshape(1, 1, 1, 8)
    gt = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]).reshape(1, 1, 8)
    mask = torch.tensor([1.0, 0, 1, 1, 1, 1, 1, 1]).reshape(1, 1, 8)
    assert ohem_mask(logits, gt, mask).reshape(-1).tolist() == [1, 0, 1, 1, 0, 0, 0, 0]


# ------------------------------------------------- row 0: the aux-loss batching

#: Two 1 x 4 images that differ. softplus: a = sp(-2), b = sp(0) = ln 2, c = sp(2).
LOGITS = torch.tensor([[2.0, 2.0, 0.0, -2.0], [-2.0, 0.0, 2.0, 0.0]]).reshape(2, 1, 1, 4)
TARGET = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]).reshape(2, 1, 4)
MASK = torch.ones(2, 1, 4)


def test_row0_aux_loss_official_broadcast_on_two_images():
    """wenwenyu/TCM ``IdentityHead.balance_bce_loss`` on a batch of 2.

    Pixel BCE of each image against its own target (a = sp(-2) = 0.126928,
    b = ln 2, c = sp(2) = 2.126928):
    image A logits [2, 2, 0, -2], text [1, 0, 0, 0]: L_A = [a, c, b, a];
    image B logits [-2, 0, 2, 0], text [0, 0, 1, 1]: L_B = [a, b, a, b].
    Positives P_A = [1,0,0,0], P_B = [0,0,1,1]: pos = 3; negatives
    Q_A = [0,1,1,1], Q_B = [1,1,0,0]: 5, so k = min(5, 9) = 5.

    Broadcast (N, 1, H, W) x (N, H, W) -> (N, N, H, W): entry (i, j, p) =
    L_i[p] x P_j[p]. Positive term = sum_p (L_A[p] + L_B[p]) (P_A[p] +
    P_B[p]) = (a + a) + (b + a) + (a + b) = 4a + 2b (image A's losses at B's
    text pixels count as positives).
    Negative entries L_i[p] Q_j[p]: pixel 1 is negative in both images, so
    L_A[1] = c and L_B[1] = b appear twice each; the other pixels once:
    multiset {c, c, b, b, b, b, a, a, a, a} (+ zeros); top 5 = 2c + 3b.
    Loss = (4a + 2b + 2c + 3b) / (3 + 5) = (4a + 5b + 2c) / 8 = 1.028412.

    The per-image loss (the paper's): A keeps its positive and its 3
    negatives, B its 2 positives and 2 negatives: (2a + b + c + 2a + 2b) / 8
    = (4a + 3b + c) / 8 = 0.589203."""
    a, b, c = _softplus(-2.0), math.log(2.0), _softplus(2.0)
    official = (4 * a + 5 * b + 2 * c) / 8
    per_image = (4 * a + 3 * b + c) / 8
    assert broadcast_balanced_bce_loss(LOGITS, TARGET, MASK).item() == pytest.approx(
        official, rel=1e-6
    )
    targets = {"gt_shrink": TARGET, "gt_shrink_mask": MASK}
    default = TCMAuxLoss(_db_target, upsample=False)
    assert default.batching == "official_broadcast"
    got = default({"tcm_score_logits": LOGITS}, targets)["loss_tcm"]
    assert got.item() == pytest.approx(official, rel=1e-6)
    alt = TCMAuxLoss(_db_target, upsample=False, batching="per_image")
    got = alt({"tcm_score_logits": LOGITS}, targets)["loss_tcm"]
    assert got.item() == pytest.approx(per_image, rel=1e-6)
    # Batch 1: the same loss either way.
    one = {"gt_shrink": TARGET[:1], "gt_shrink_mask": MASK[:1]}
    assert default({"tcm_score_logits": LOGITS[:1]}, one)["loss_tcm"].item() == pytest.approx(
        alt({"tcm_score_logits": LOGITS[:1]}, one)["loss_tcm"].item(), rel=1e-6
    )
    with pytest.raises(ValueError, match="aux_loss_batching"):
        TCMAuxLoss(_db_target, batching="mixed")


def _literal_broadcast(logits, target, mask, ratio=3.0, eps=1e-6):
    """The official expression itself: (N, 1, H, W) losses times (N, H, W)
    masks, top-k over the (N, N, H, W) product."""
    positive = target * mask
    negative = (1 - target) * mask
    pos = int(positive.float().sum())
    k = min(int(negative.float().sum()), int(pos * ratio))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target.unsqueeze(1), reduction="none"
    )
    neg_loss, _ = torch.topk((loss * negative).view(-1), k)
    return ((loss * positive).sum() + neg_loss.sum()) / (pos + k + eps)


@pytest.mark.parametrize("soft_mask", [False, True])
def test_row0_broadcast_equals_the_literal_official_expression(soft_mask):
    """Random batches of 3 (0/1 masks take the N x HW path, a soft mask
    the dense one): loss and gradient equal the literal broadcast."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 1, 6, 7, generator=gen)
    target = (torch.rand(3, 6, 7, generator=gen) > 0.7).float()
    mask = (torch.rand(3, 6, 7, generator=gen) > 0.2).float()
    if soft_mask:
        mask = mask * 0.5
    ours_in = logits.clone().requires_grad_(True)
    ref_in = logits.clone().requires_grad_(True)
    ours = broadcast_balanced_bce_loss(ours_in, target, mask)
    ref = _literal_broadcast(ref_in, target, mask)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    ours.backward()
    ref.backward()
    assert torch.allclose(ours_in.grad, ref_in.grad, atol=1e-6)


def test_row0_recipe_opts_out_by_name():
    """``tcm.aux_loss_batching`` is read from the recipe; a recipe that says
    nothing gets the official broadcast; a bad name is one line."""
    from types import SimpleNamespace

    from tcmbench.tcm.config import TCMConfigError, validate_tcm_config
    from tcmbench.train.recipe_choice import build_detector_config

    cfg = SimpleNamespace(tcm={"context_length": None}, backbone=None, pretrained_backbone=None)
    plain = build_detector_config(cfg, {"tcm": {"context_length": 4}})
    assert plain.tcm.aux_loss_batching == "official_broadcast"
    opted = build_detector_config(cfg, {"tcm": {"aux_loss_batching": "per_image"}})
    assert opted.tcm.aux_loss_batching == "per_image"
    bad = build_detector_config(cfg, {"tcm": {"aux_loss_batching": "mixed"}})
    with pytest.raises(TCMConfigError, match="aux_loss_batching must be one of"):
        validate_tcm_config(bad.tcm)


# ----------------------------------------------------------------- row 14


def _box(x0: float) -> np.ndarray:
    return np.array([[x0, 0], [x0 + 10, 0], [x0 + 10, 10], [x0, 10]], dtype=np.float64)


def test_row14_sweep_matches_mmocr_range_and_reports_best():
    """mmocr 0.x ``eval_hmean``: thr = iter * 0.1 for iter 3..9 (float64
    0.30000000000000004 ... 0.9), detections with score >= thr, best hmean
    kept (strictly greater: the lowest threshold wins a tie).

    3 GT boxes G1..G3; detections D1 = G1 @0.95, D2 = G2 @0.8 (exactly),
    D3 = G3 @0.55, and three false positives @0.45, @0.35, @0.3 (exactly).
    0.3 < 0.30000000000000004: the last one is never kept (mmocr 0.x also
    drops score <= 0.3 first).

    t = 0.3: D1 D2 D3 F.45 F.35 -> P 3/5, R 1, H 0.75
    t = 0.4: D1 D2 D3 F.45      -> P 3/4, R 1, H 6/7
    t = 0.5: D1 D2 D3           -> P 1,   R 1, H 1.0   <- best
    t = 0.6, 0.7: D1 D2         -> P 1, R 2/3, H 0.8
    t = 0.8: D1 D2 (0.8 >= 0.8) -> H 0.8 (numpy.arange's 0.8000000000000003
             would drop D2: H 0.5)
    t = 0.9: D1                 -> P 1, R 1/3, H 0.5
    The official figure scores all 6: P 1/2, R 1, H 2/3."""
    from tcmbench.commands.evaluate import sweep_line
    from tcmbench.data.schema import Instance, Prediction
    from tcmbench.eval import evaluate
    from tcmbench.eval.sweep import THRESHOLDS

    assert THRESHOLDS.tolist() == [i * 0.1 for i in range(3, 10)]
    gts = [Instance(polygon=_box(x), ignore=False, text="w") for x in (0, 20, 40)]
    scored = [(0, 0.95), (20, 0.8), (40, 0.55), (60, 0.45), (80, 0.35), (100, 0.3)]
    preds = [Prediction(polygon=_box(x), score=s) for x, s in scored]
    result = evaluate({"img_1": gts}, {"img_1": preds}, "icdar2015", sweep=True)
    assert (result.precision, result.recall) == (0.5, 1.0)
    assert result.hmean == pytest.approx(2 / 3)
    sweep = result.sweep
    assert sweep["thresholds"] == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert sweep["precision"][:3] == [pytest.approx(3 / 5), pytest.approx(3 / 4), 1.0]
    assert sweep["hmean"] == pytest.approx([0.75, 6 / 7, 1.0, 0.8, 0.8, 0.8, 0.5])
    assert (sweep["best_threshold"], sweep["best_hmean"]) == (0.5, 1.0)
    papers = "best-threshold hmean as mmocr 0.x reports it (the papers' figure)"
    assert sweep["label"].startswith(papers) and "not the official protocol" in sweep["label"]
    assert "range(3, 10)" in sweep["source"]
    assert result.summary()["sweep"]["label"] == sweep["label"]
    line = sweep_line(sweep)
    assert line is not None and line.startswith(papers) and "hmean 1.0000 at score >= 0.5" in line


# ----------------------------------------------------------------- the table


def test_every_tcm_fidelity_row_has_a_test_and_the_docs_table_is_fresh():
    """Each row of tcmbench.tcm.fidelity.ROWS has a test named after its
    number here, and docs/tcm.md carries the generated table unchanged."""
    import sys
    from pathlib import Path

    from tcmbench import docgen
    from tcmbench.tcm.fidelity import ROWS

    names = [n for n in dir(sys.modules[__name__]) if n.startswith("test_row")]
    assert {r.row for r in ROWS} == {0, 13, 14}
    for r in ROWS:
        assert any(n.startswith(f"test_row{r.row}_") for n in names), r.row
        assert r.official and r.source and r.default
    doc = (Path(__file__).resolve().parent.parent / "docs" / "tcm.md").read_text()
    block = next(m for m in docgen.BLOCK.finditer(doc) if m["spec"] == "fidelity tcm")
    assert block["body"] == docgen.render("fidelity tcm")
    assert "tcm.aux_loss_batching: official_broadcast" in block["body"]
