"""Tiny real inputs for training / evaluation tests.

- :func:`make_ic15_folder`: an ICDAR 2015-layout dataset folder
  (``train_images/img_N.png`` + ``train_gts/gt_img_N.txt``, same for test)
  of 64-px images with dark rectangular 'words', loadable with
  ``--dataset icdar2015 --data-root FOLDER`` through the real reader.
- :func:`tiny_parts`: a small detector without batch norm (so gradient
  accumulation and DDP are exactly comparable) built from the same
  DetectorParts contract as DBNet.
- :func:`threshold_parts`: a fixed (untrained) detector that finds dark
  rectangles by thresholding; its predictions are exact, which lets tests
  check the inference geometry (resize, padding, scale back) end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from tcmbench.contract.spec import DetectorConfig, DetectorSpec
from tcmbench.data.schema import Instance, Prediction, Sample
from tcmbench.models.detector import DetectorParts


def _boxes(rng: np.random.Generator, size: int) -> list[tuple[int, int, int, int]]:
    """1-2 non-overlapping axis-aligned word boxes (x0, y0, x1, y1)."""
    boxes = []
    y = int(rng.integers(3, 8))
    for _ in range(int(rng.integers(1, 3))):
        h = int(rng.integers(8, 14))
        if y + h >= size - 2:
            break
        x0 = int(rng.integers(3, size // 3))
        x1 = int(min(size - 3, x0 + rng.integers(16, size - 8)))
        boxes.append((x0, y, x1, y + h))
        y += h + int(rng.integers(6, 12))
    return boxes


def make_ic15_folder(
    root: Path, n_train: int = 6, n_test: int = 3, size: int = 64, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        (root / f"{split}_images").mkdir(parents=True, exist_ok=True)
        (root / f"{split}_gts").mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            img = np.full((size, size, 3), 210, np.uint8)
            lines = []
            for x0, y0, x1, y1 in _boxes(rng, size):
                img[y0:y1, x0:x1] = 20
                # the word's pixel grid [x0, x1) x [y0, y1): corners at pixel edges
                lines.append(f"{x0},{y0},{x1},{y0},{x1},{y1},{x0},{y1},WORD")
            cv2.imwrite(str(root / f"{split}_images" / f"img_{i}.png"), img)
            (root / f"{split}_gts" / f"gt_img_{i}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_samples(root: Path, n: int = 8, size: int = 64, seed: int = 0) -> list[Sample]:
    """Samples (in memory) over freshly written images."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = np.full((size, size, 3), 210, np.uint8)
        insts = []
        for x0, y0, x1, y1 in _boxes(rng, size):
            img[y0:y1, x0:x1] = 20
            insts.append(Instance(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)))
        path = root / f"s{i}.png"
        cv2.imwrite(str(path), img)
        out.append(Sample(f"s{i}", str(path), size, size, insts))
    return out


def mask_targets(polygons: Any, ignores: Any, height: int, width: int) -> dict[str, np.ndarray]:
    mask = np.zeros((height, width), np.float32)
    for poly, ignore in zip(polygons, ignores):
        if not ignore:
            cv2.fillPoly(mask, [np.round(poly).astype(np.int32).reshape(-1, 1, 2)], 1.0)
    return {"mask": mask}


class _Stages(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.out_channels = [8, 8]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        a = torch.relu(self.conv1(x))
        return [a, torch.relu(self.conv2(a))]


class _Neck(nn.Module):
    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels[-1], 8, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.proj(feats[-1])


class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = nn.functional.interpolate(
            self.out(x), scale_factor=4, mode="bilinear", align_corners=False
        )
        return {"prob": torch.sigmoid(logits)}


class _MSELoss(nn.Module):
    """Per-pixel mean: the loss of a batch is the mean of its images'
    losses, which is what makes accumulation / DDP exactly comparable."""

    def forward(
        self, outputs: dict[str, Any], targets: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        loss = (outputs["prob"][:, 0] - targets["mask"]).pow(2).mean()
        return {"loss": loss, "loss_mse": loss.detach()}


def threshold_postprocess(
    outputs: dict[str, Any], metas: list[dict[str, Any]]
) -> list[list[Prediction]]:
    """Connected regions of prob > 0.5 as min-area quads, in original pixels."""
    prob = outputs["prob"].detach().float().cpu().numpy()[:, 0]
    out = []
    for p, meta in zip(prob, metas):
        sx, sy = meta["scale"]
        h, w = meta["orig_size"]
        valid = p[: round(h * sy), : round(w * sx)]
        contours, _ = cv2.findContours(
            (valid > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        preds = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            quad = np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]], np.float64)
            preds.append(
                Prediction(
                    quad / np.array([sx, sy]), score=float(valid[y : y + bh, x : x + bw].mean())
                )
            )
        out.append(preds)
    return out


def tiny_parts(config: DetectorConfig) -> DetectorParts:
    return DetectorParts(
        backbone=_Stages(),
        neck_builder=_Neck,
        head=_Head(),
        loss=_MSELoss(),
        target_builder=mask_targets,
        postprocessor=threshold_postprocess,
    )


class _Darkness(nn.Module):
    """prob = sigmoid(-k * (grey - 0)): dark pixels (normalised well below
    zero) -> ~1, the light background -> ~0. Weights fixed, not trained."""

    def __init__(self) -> None:
        super().__init__()
        self.grey = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.grey.weight.fill_(1.0 / 3.0)
            self.grey.bias.zero_()
        self.out_channels = [1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.grey(x)]


class _Identity(nn.Module):
    def __init__(self, channels: list[int]) -> None:
        super().__init__()

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return feats[-1]


class _ProbHead(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"prob": torch.sigmoid(-20.0 * x)}


def threshold_parts(config: DetectorConfig) -> DetectorParts:
    return DetectorParts(
        backbone=_Darkness(),
        neck_builder=_Identity,
        head=_ProbHead(),
        loss=_MSELoss(),
        target_builder=mask_targets,
        postprocessor=threshold_postprocess,
    )


TINY_RECIPE = {
    "optimizer": {"name": "sgd", "lr": 0.05, "weight_decay": 0.0, "momentum": 0.9},
    "schedule": {"name": "poly", "power": 0.9, "min_lr": 1e-7, "by": "step"},
    "batch_size": 2,
    "train": {
        "augment": [
            {"name": "hflip", "prob": 0.5},
            {"name": "rotate", "max_angle": 10.0},
            {"name": "random_scale", "range": [0.75, 1.25]},
            {"name": "random_crop", "size": [64, 64]},
        ],
        "pad_divisor": 32,
    },
    # Upscale 64 px images to a 96 px short side at test time: predictions
    # must be mapped back by the scale to match the ground truth.
    "test": {"long_side": None, "short_side": 96, "pad_divisor": 32},
    "postprocess": {},
    "train_loop": {"workers": 0},
}

TINY_SPEC = DetectorSpec(
    name="tiny-train", build_parts=tiny_parts, version="0.0", recipes={"default": TINY_RECIPE}
)
THRESHOLD_SPEC = DetectorSpec(
    name="tiny-threshold",
    build_parts=threshold_parts,
    version="0.0",
    recipes={"default": TINY_RECIPE},
)
