"""The optimiser and its learning-rate schedule (conf/optim): AdamW, a linear warm-up, then the schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial

import torch

SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """The learning rate's multiplier at optimizer step `step`: linear warm-up over `warmup` steps, then
    constant, or decaying to 0 at step `total` linearly or along a half cosine."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))


def adamw(params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float, warmup_steps: int,
          schedule: str, total_steps: int):
    """AdamW over `params`, with a per-step `lr_factor` scheduler unless the rate is constant throughout:
    what a LightningModule's `configure_optimizers` returns."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if warmup_steps <= 0 and schedule == "constant":
        return opt
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, warmup=warmup_steps, total=total_steps,
                                                           schedule=schedule))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
