"""Running a torch detector on a numpy batch: the PyTorch runtime.

The pipeline (:func:`tcmbench.inference.pipeline.predict_samples`) hands
every runtime the same zero-padded float32 NCHW batch; this one moves it to
the device, runs the network without autograd (in float16 autocast with
``amp`` on CUDA) and returns the maps in float32 for the postprocessor.
Torch is imported here only, so the onnxruntime path never loads it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TorchRunner:
    """``batch (N, 3, H, W) float32 -> the network's outputs dict``."""

    def __init__(self, net: Any, device: Any, amp: bool = False) -> None:
        self.net = net
        self.device = device
        self.amp = amp and getattr(device, "type", str(device)) == "cuda"

    def __call__(self, batch: np.ndarray) -> dict[str, Any]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        with (
            torch.inference_mode(),
            torch.autocast("cuda", dtype=torch.float16, enabled=self.amp),
        ):
            outputs = self.net(x)
        return {k: (v.float() if torch.is_tensor(v) else v) for k, v in outputs.items()}
