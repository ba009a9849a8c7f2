"""AdamW with weight decay on matrices only, and a linear warm-up + cosine schedule.

The schedule is a pure function of the step and is advanced exactly once per optimiser step
(the released code stepped its warm-up twice, and its plateau scheduler could never fire).
On CUDA the optimiser is torch's fused AdamW (one kernel for every parameter's update, instead of
a few per parameter); on the CPU it is torch's default implementation, as it always was, so CPU
runs keep their results bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] | list[float],
    device: torch.device | None = None,
) -> torch.optim.AdamW:
    """AdamW where only weight matrices (ndim >= 2) decay; norms, biases and gates do not; fused
    when the model trains on a CUDA ``device``."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device is not None and device.type == "cuda"
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), **({"fused": True} if fused else {}))


def warmup_cosine_factor(step: int, warmup: int, total: int, floor: float = 0.1) -> float:
    """LR multiplier: linear 1/warmup .. 1 over ``warmup`` steps, then cosine down to ``floor``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, floor: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine_factor(s, warmup, total, floor))
