"""Test-time speed ensemble of a query (beyond the paper; `ModelConfig.query_speed_ensemble`).

A speaker the model never heard is, to a speech encoder trained on a few voices, mostly a shifted pitch and
vocal-tract length. Resampling the query by a few factors around 1 (what the training's speed augmentation
does: tempo, pitch and formants together) and averaging each branch's vector over the copies places it nearer
the voices the model knows. Keywords, segments and alpha are not averaged: they stay the recorded audio's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from core.audio import resample
from core.model.upstream import SAMPLE_RATE

BranchVectors = tuple[torch.Tensor | None, torch.Tensor | None]  # (parallel, cascaded), (B, E) L2-normalised


def speed_warp(wav: np.ndarray, factor: float) -> np.ndarray:
    """`wav` played `factor` times faster (and higher): resampled to len / factor samples at 16 kHz."""
    if factor == 1.0:
        return wav
    # scipy's default filter (sharp=False): the ensemble's factors and the shipped models' cards were set with it
    return resample(np.asarray(wav, np.float32), int(round(SAMPLE_RATE * factor)), SAMPLE_RATE, sharp=False)


def warm_up() -> None:
    """Import and run the resampler once (scipy's import costs ~0.35-0.8 s): at model load, not the first query."""
    speed_warp(np.zeros(SAMPLE_RATE // 10, np.float32), 1.08)


def ensemble_vectors(base: BranchVectors, wavs: Sequence[np.ndarray], factors: Sequence[float],
                     run: Callable[[list[np.ndarray]], BranchVectors]) -> BranchVectors:
    """Each branch's vector averaged over `base` (factor 1) and every other factor's copies, renormalised.
    `run` encodes a list of waves; all copies go through it as one batch (one pass costs less than several)."""
    others = [f for f in factors if f != 1.0]
    n = len(wavs)
    copies = [speed_warp(w, f) for f in others for w in wavs]
    warped = run(copies) if copies else (None, None)
    out: list[torch.Tensor | None] = []
    for v, w in zip(base, warped, strict=True):
        if v is None or w is None:
            out.append(v)
            continue
        total = v + w.reshape(len(others), n, -1).sum(dim=0)
        out.append(F.normalize(total, dim=-1))
    return out[0], out[1]
