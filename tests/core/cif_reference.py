"""Plain sequential integrate-and-fire (the CIF paper's algorithm, beta - acc form), kept as the test oracle.

One item at a time, one frame at a time, float64. Semantics are those of issue #2 / DESIGN.md.
"""

from __future__ import annotations

import torch


def cif_sequential(hidden: torch.Tensor, alpha: torch.Tensor, threshold: float = 1.0, *,
                   target_length: int | None = None, tail_threshold: float = 0.5,
                   max_units: int | None = None, min_units: int = 0) -> tuple[torch.Tensor, list[int]]:
    """hidden: (T, D), alpha: (T,) -> (units (N, D) float64, fire frames list[int]). min_units=1 (no target):
    a weight that never reaches the threshold still gives its state as one unit, unscaled (SpeechCLIP+)."""
    h = hidden.to(torch.float64)
    a = alpha.to(torch.float64).clone()
    if target_length is not None:
        total = float(a.sum())
        a = a * (target_length * threshold / max(total, 1e-12))
    nonzero = [t for t in range(len(a)) if a[t] > 0]
    last_nonzero = nonzero[-1] if nonzero else 0
    units: list[torch.Tensor] = []
    frames: list[int] = []
    acc = 0.0
    state = torch.zeros(h.shape[1], dtype=torch.float64)
    for t in range(len(a)):
        w = float(a[t])
        while acc + w >= threshold:  # the boundary lies inside frame t (possibly several times)
            need = threshold - acc
            units.append(state + need * h[t])
            frames.append(t)
            w -= need
            acc = 0.0
            state = torch.zeros_like(state)
        acc += w
        state = state + w * h[t]
    if target_length is not None:
        if len(units) < target_length:  # remainder left by rounding
            units.append(state)
            frames.append(last_nonzero)
        while len(units) < target_length:  # only with an all-zero alpha
            units.append(torch.zeros_like(state))
            frames.append(last_nonzero)
        units, frames = units[:target_length], frames[:target_length]
    elif min_units and not units:
        units.append(state)
        frames.append(last_nonzero)
    elif acc >= tail_threshold and acc > 0:
        units.append(state * threshold / acc)
        frames.append(last_nonzero)
    if max_units is not None:
        units, frames = units[:max_units], frames[:max_units]
    out = torch.stack(units) if units else torch.zeros(0, h.shape[1], dtype=torch.float64)
    return out, frames
