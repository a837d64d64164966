"""Heatmaps of the image embedding and of the visual prompt (paper Fig. 7),
for ``tcmbench predict --tcm --show-prompts``.

One PNG per image: [input | image embedding | visual prompt], each heatmap
being the channel mean of the (B, 1024, h, w) tensor, min-max normalised per
map, upsampled bilinearly to the image size, JET-coloured and blended with
the image. The image embedding is the attention pool's dense output before
VG; the visual prompt is VG's output (what VG adds, before ``visual_gamma``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tcmbench.errors import PluginError
from tcmbench.tcm import CLIP_MEAN, CLIP_STD


def _heat(t: Any) -> np.ndarray:
    """(C, h, w) tensor -> (h, w) float in [0, 1]."""
    m = t.float().mean(dim=0).cpu().numpy()
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def _overlay(heat: np.ndarray, image_bgr: np.ndarray) -> np.ndarray:
    import cv2

    h, w = image_bgr.shape[:2]
    heat = cv2.resize(heat.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(colour, 0.6, image_bgr, 0.4, 0)


def _image_from_tensor(image: Any, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo the normalisation of a (3, H, W) RGB tensor -> uint8 BGR."""
    arr = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    arr = arr * np.asarray(std, dtype=np.float32) + np.asarray(mean, dtype=np.float32)
    return np.ascontiguousarray(np.clip(arr, 0, 255).astype(np.uint8)[:, :, ::-1])


def prompt_heatmaps(model: Any, image_tensor: Any) -> tuple[Any, Any]:
    """(image-embedding maps, visual-prompt maps), each (B, 1024, h, w)."""
    import torch

    matching = getattr(model, "feature_transform", None)
    if matching is None or not hasattr(matching, "match"):
        raise PluginError("--show-prompts needs a TCM model (built with --tcm)")
    if matching.visual_prompt_generator is None:
        raise PluginError(
            "--show-prompts draws the visual prompt, but this model was built without "
            "the visual prompt generator (--no-tcm-vg)"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = image_tensor if image_tensor.dim() == 4 else image_tensor.unsqueeze(0)
            result = matching.match(model.backbone(x))
    finally:
        model.train(was_training)
    return result.dense, result.visual_prompt


def save_prompt_heatmaps(
    model: Any,
    image_tensor: Any,
    out_path: str | Path,
    *,
    image: np.ndarray | None = None,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> list[Path]:
    """Write [input | image embedding | visual prompt] for each image.

    ``image_tensor``: the normalised model input, (3, H, W) or (B, 3, H, W).
    ``image``: the original uint8 BGR image (one image only) to draw on;
    otherwise the input is un-normalised with ``mean`` / ``std``. For a batch
    the files are ``<stem>_<i><suffix>``. Returns the paths written.
    """
    import cv2

    from tcmbench.safety.paths import atomic_write_bytes

    dense, prompt = prompt_heatmaps(model, image_tensor)
    batch = image_tensor if image_tensor.dim() == 4 else image_tensor.unsqueeze(0)
    out_path = Path(out_path)
    suffix = out_path.suffix or ".png"
    written: list[Path] = []
    for i in range(batch.shape[0]):
        if image is not None and batch.shape[0] == 1:
            base = np.ascontiguousarray(image)
        else:
            base = _image_from_tensor(batch[i], mean, std)
        panels = [base, _overlay(_heat(dense[i]), base), _overlay(_heat(prompt[i]), base)]
        canvas = np.concatenate(panels, axis=1)
        path = (
            out_path if batch.shape[0] == 1 else out_path.with_name(f"{out_path.stem}_{i}{suffix}")
        )
        ok, buf = cv2.imencode(suffix, canvas)
        if not ok:
            raise PluginError(f"could not encode {path} (unsupported image suffix {suffix!r})")
        atomic_write_bytes(path, buf.tobytes())
        written.append(path)
    return written
