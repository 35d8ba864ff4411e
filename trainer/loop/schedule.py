"""Learning-rate schedule: a pure function of the step (linear warm-up, then linear/cosine decay)."""

from __future__ import annotations

import logging
import math

logger = logging.getLogger(__name__)


def get_lr(step: int, *, lr: float, warmup_steps: int, max_steps: int, min_lr: float = 0.0,
           schedule: str = "linear") -> float:
    """Learning rate for optimiser step `step` (0-based).

    Warm-up: lr * (step + 1) / warmup_steps for step < warmup_steps. Then decay from lr to min_lr at
    `max_steps`: linear (the authors' `linear_warmup_decay`), cosine, or constant (stays at lr).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    if schedule == "cosine":
        return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return lr + (min_lr - lr) * progress
    raise ValueError(f"unknown schedule {schedule!r}: use linear, cosine or constant")
