"""Optimizers: Adam, AdamW, SGD from torch, and Ranger written here.

Ranger (RAdam + Lookahead, with gradient centralisation) is what the
official TCM / PAN / FCE recipes use for MSRA-TD500; it is not in torch.
It is one :class:`torch.optim.Optimizer`, so ``state_dict()`` holds the
moments, the step counts *and* the Lookahead slow weights, and a resumed
run continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from tcmbench.errors import TcmbenchError

OPTIMIZERS = ("adam", "adamw", "sgd", "ranger")


class Ranger(torch.optim.Optimizer):
    """RAdam (Liu et al. 2020) wrapped in Lookahead (Zhang et al. 2019).

    RAdam: Adam whose adaptive step is switched on only once the variance of
    the adaptive learning rate is tractable (``rho_t > 5``, the threshold of
    the reference Ranger and of ``torch.optim.RAdam``), rectified by ``r_t``;
    before that, a plain momentum step. Lookahead: every ``k`` steps
    the slow weights move ``alpha`` of the way towards the fast weights, and
    the fast weights restart from them. Gradient centralisation subtracts the
    per-filter mean of the gradient of conv / linear weights. Weight decay is
    decoupled (AdamW style). Defaults follow the reference Ranger.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.95, 0.999),
        eps: float = 1e-5,
        weight_decay: float = 0.0,
        k: int = 6,
        alpha: float = 0.5,
        gc: bool = True,
    ) -> None:
        if lr <= 0 or not 0 < alpha <= 1 or k < 1:
            raise ValueError(f"invalid Ranger settings lr={lr} alpha={alpha} k={k}")
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "k": k,
            "alpha": alpha,
            "gc": gc,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            rho_inf = 2.0 / (1.0 - beta2) - 1.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad: Tensor = p.grad
                if grad.is_sparse:
                    raise RuntimeError("Ranger does not support sparse gradients")
                grad = grad.float()
                if group["gc"] and grad.dim() > 1:
                    grad = grad - grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True)
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    state["slow"] = p.detach().float().clone()
                state["step"] += 1
                t = int(state["step"].item())
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias1 = 1 - beta1**t
                beta2_t = beta2**t
                rho_t = rho_inf - 2.0 * t * beta2_t / (1.0 - beta2_t)
                fast = p.data.float()
                if group["weight_decay"] != 0:
                    fast.mul_(1 - group["lr"] * group["weight_decay"])
                if rho_t > 5.0:
                    r = math.sqrt(
                        (rho_t - 4)
                        * (rho_t - 2)
                        * rho_inf
                        / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
                    )
                    denom = v.sqrt().add_(group["eps"])
                    fast.addcdiv_(m, denom, value=-group["lr"] * r * math.sqrt(1 - beta2_t) / bias1)
                else:
                    fast.add_(m, alpha=-group["lr"] / bias1)
                if t % group["k"] == 0:
                    slow = state["slow"]
                    slow.add_(fast - slow, alpha=group["alpha"])
                    fast.copy_(slow)
                p.data.copy_(fast)
        return loss


def build_optimizer(
    name: str,
    param_groups: list[dict[str, Any]],
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """An optimizer over ``Detector.param_groups(lr, weight_decay)`` groups
    (each already carries its own ``lr`` and ``weight_decay``)."""
    key = name.lower()
    if key == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay)
    if key == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay)
    if key == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if key == "ranger":
        return Ranger(param_groups, lr=lr, weight_decay=weight_decay)
    raise TcmbenchError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
