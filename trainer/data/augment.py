"""On-the-fly speech augmentation for training: speed (resampling), spectral tilt, gain and noise.

Resampling changes tempo, pitch and formant positions together (Kaldi-style speed perturbation), the cheapest
way to make a few synthetic voices look like many; word times are scaled with it, so CIF targets and the
auxiliary boundary loss stay exact. Random numbers come from torch's global RNG, which checkpoints save, so a
resumed run (0 workers) draws the same augmentations.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()).item())


@dataclass(frozen=True)
class SpeechAugment:
    """speed: range of the resampling factor (> 1 is faster and higher); tilt_p: chance of a first-order
    filter y[n] = x[n] - c x[n-1] with c in tilt (c > 0 brightens, c < 0 darkens); noise_p: chance of white
    noise at an SNR drawn from snr_db; gain_db: range of a level change."""

    speed: tuple[float, float] = (1.0, 1.0)
    tilt_p: float = 0.0
    tilt: tuple[float, float] = (-0.6, 0.9)
    noise_p: float = 0.0
    snr_db: tuple[float, float] = (15.0, 40.0)
    gain_db: tuple[float, float] = (0.0, 0.0)

    @property
    def enabled(self) -> bool:
        return self.speed != (1.0, 1.0) or self.tilt_p > 0 or self.noise_p > 0 or self.gain_db != (0.0, 0.0)

    def __call__(self, wav: np.ndarray, words: list[dict[str, Any]] | None
                 ) -> tuple[np.ndarray, list[dict[str, Any]] | None]:
        """(S,) float32 waveform and its word times -> augmented copies."""
        x = np.asarray(wav, dtype=np.float32)
        if x.size < 2:
            return x, words
        factor = _uniform(*self.speed)
        if abs(factor - 1.0) > 1e-3:
            n_out = max(2, int(round(x.size / factor)))
            x = np.interp(np.arange(n_out, dtype=np.float64) * factor, np.arange(x.size), x).astype(np.float32)
            if words is not None:
                words = [{**w, "start_s": round(w["start_s"] / factor, 4), "end_s": round(w["end_s"] / factor, 4)}
                         for w in words]
        peak = float(np.abs(x).max())
        if self.tilt_p > 0 and float(torch.rand(()).item()) < self.tilt_p:
            c = _uniform(*self.tilt)
            x = np.concatenate([x[:1], x[1:] - c * x[:-1]]).astype(np.float32)
            new_peak = float(np.abs(x).max())
            if new_peak > 0:
                x *= peak / new_peak  # keep the level; only the spectral balance changes
        if self.noise_p > 0 and float(torch.rand(()).item()) < self.noise_p:
            power = float(np.mean(x.astype(np.float64) ** 2))
            if power > 0:
                snr = _uniform(*self.snr_db)
                g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
                noise = torch.randn(x.size, generator=g).numpy()
                x = x + noise.astype(np.float32) * math.sqrt(power / 10 ** (snr / 10))
        gain = _uniform(*self.gain_db)
        if gain != 0.0:
            x = x * np.float32(10 ** (gain / 20))
        return np.clip(x, -1.0, 1.0).astype(np.float32), words
