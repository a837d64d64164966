"""TCM's auxiliary loss: the per-image balanced BCE (the paper's loss,
``tcm.aux_loss_batching: per_image``; the official broadcast, the default,
is tested in test_tcm_fidelity.py), upsampling, and PAN's OHEM + dice."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from tcmbench.tcm.loss import TCMAuxLoss, ohem_dice_with_logits, ohem_mask


def _bce(x: float, y: float) -> float:
    p = 1.0 / (1.0 + math.exp(-x))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def _db_target(targets, logits):
    return targets["gt_shrink"], targets["gt_shrink_mask"]


def test_balanced_bce_pairs_each_image_with_its_own_mask():
    # Image 0: one positive pixel, four negatives; image 1: no positive.
    logits = torch.tensor([[[0.5, -1.0, 2.0, 0.0, -3.0]], [[4.0, 4.0, 4.0, 4.0, 4.0]]]).reshape(
        2, 1, 1, 5
    )
    gt = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]).reshape(2, 1, 5)
    mask = torch.ones(2, 1, 5)
    loss = TCMAuxLoss(_db_target, upsample=False, batching="per_image")(
        {"tcm_score_logits": logits}, {"gt_shrink": gt, "gt_shrink_mask": mask}
    )["loss_tcm"]
    # Image 0 keeps its positive and its 3 hardest negatives (logits 2, 0, -1);
    # image 1 has no positive, so none of its (very wrong) negatives count.
    pos = _bce(0.5, 1)
    negs = sorted((_bce(v, 0) for v in (-1.0, 2.0, 0.0, -3.0)), reverse=True)[:3]
    assert loss.item() == pytest.approx((pos + sum(negs)) / 4, rel=1e-5)


def test_balanced_bce_does_not_depend_on_batch_composition():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 8, 8)
    gt = (torch.rand(3, 8, 8) > 0.8).float()
    mask = torch.ones(3, 8, 8)
    loss = TCMAuxLoss(_db_target, upsample=False, batching="per_image")
    whole = loss({"tcm_score_logits": logits}, {"gt_shrink": gt, "gt_shrink_mask": mask})[
        "loss_tcm"
    ]
    # Per-image mining: each image's hardest negatives come from its own pixels,
    # so counts and sums add up image by image (the official loss mixes images).
    sums, counts = 0.0, 0.0
    for i in range(3):
        n_pos = gt[i].sum().item()
        one = loss(
            {"tcm_score_logits": logits[i : i + 1]},
            {"gt_shrink": gt[i : i + 1], "gt_shrink_mask": mask[i : i + 1]},
        )["loss_tcm"].item()
        n = n_pos + min(64 - n_pos, math.floor(3 * n_pos))
        sums += one * n
        counts += n
    assert whole.item() == pytest.approx(sums / counts, rel=1e-5)


def test_aux_loss_upsamples_x32_bilinear_and_weights():
    logits = torch.tensor([[[[3.0, -3.0], [-3.0, 3.0]]]])
    gt = torch.zeros(1, 64, 64)
    gt[:, :32, :32] = 1
    gt[:, 32:, 32:] = 1
    targets = {"gt_shrink": gt, "gt_shrink_mask": torch.ones(1, 64, 64)}
    good = TCMAuxLoss(_db_target, weight=2.0)({"tcm_score_logits": logits}, targets)["loss_tcm"]
    bad = TCMAuxLoss(_db_target, weight=2.0)({"tcm_score_logits": -logits}, targets)["loss_tcm"]
    assert good < 0.5 < bad
    with pytest.raises(ValueError):  # no upsampling: 2x2 logits cannot meet a 64x64 target
        TCMAuxLoss(_db_target, upsample=False)({"tcm_score_logits": logits}, targets)
    with pytest.raises(ValueError):
        TCMAuxLoss(_db_target, kind="focal")


def test_ohem_keeps_positives_and_three_times_the_hardest_negatives():
    logits = torch.tensor([0.0, 5.0, 4.0, 3.0, -1.0, -2.0, 2.0, -5.0]).reshape(1, 1, 1, 8)
    gt = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]).reshape(1, 1, 8)
    mask = torch.ones(1, 1, 8)
    sel = ohem_mask(logits, gt, mask).reshape(-1)
    assert sel.tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    no_pos = ohem_mask(logits, torch.zeros_like(gt), mask).reshape(-1)
    assert no_pos.tolist() == [1] * 8


def test_ohem_dice_is_low_for_a_good_prediction():
    gt = torch.zeros(2, 16, 16)
    gt[:, 4:12, 4:12] = 1
    mask = torch.ones(2, 16, 16)
    good = (gt * 20 - 10).unsqueeze(1)
    assert ohem_dice_with_logits(good, gt, mask).item() < 0.01
    assert ohem_dice_with_logits(-good, gt, mask).item() > 0.9
