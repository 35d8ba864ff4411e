"""On-the-fly speech augmentation for training: speed (resampling), random equalisation, spectral tilt,
synthetic room reverberation, noise and gain.

Resampling changes tempo, pitch and formant positions together (Kaldi-style speed perturbation), the cheapest
way to make a few synthetic voices look like many; word times are scaled with it, so CIF targets and the
auxiliary boundary loss stay exact. Random numbers come from torch's global RNG, which checkpoints save, so a
resumed run (0 workers) draws the same augmentations. Equalisation (a few random peaking filters) colours
the voice the way another vocal tract or microphone would; reverberation (an exponentially decaying noise
impulse response, RT60 drawn per utterance) is what a spoken query into a laptop microphone sounds like;
neither moves a word's start, so the word times stay valid.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import signal

logger = logging.getLogger(__name__)


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()).item())


@dataclass(frozen=True)
class SpeechAugment:
    """speed: range of the resampling factor (> 1 is faster and higher); eq_p: chance of 1-3 peaking filters
    (centre 150 Hz-6 kHz, gain within +-eq_db, Q 0.7-2.5); tilt_p: chance of a first-order filter
    y[n] = x[n] - c x[n-1] with c in tilt (c > 0 brightens, c < 0 darkens); reverb_p: chance of a synthetic
    room with RT60 in reverb_rt60 seconds; noise_p: chance of white noise at an SNR drawn from snr_db;
    gain_db: range of a level change."""

    speed: tuple[float, float] = (1.0, 1.0)
    tilt_p: float = 0.0
    tilt: tuple[float, float] = (-0.6, 0.9)
    eq_p: float = 0.0
    eq_db: float = 9.0
    reverb_p: float = 0.0
    reverb_rt60: tuple[float, float] = (0.15, 0.6)
    noise_p: float = 0.0
    snr_db: tuple[float, float] = (15.0, 40.0)
    gain_db: tuple[float, float] = (0.0, 0.0)

    @property
    def enabled(self) -> bool:
        return (self.speed != (1.0, 1.0) or self.tilt_p > 0 or self.eq_p > 0 or self.reverb_p > 0
                or self.noise_p > 0 or self.gain_db != (0.0, 0.0))

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
        if self.eq_p > 0 and float(torch.rand(()).item()) < self.eq_p:
            for _ in range(1 + int(torch.randint(0, 3, ()).item())):
                x = _peaking(x, math.exp(_uniform(math.log(150.0), math.log(6000.0))),
                             _uniform(-self.eq_db, self.eq_db), _uniform(0.7, 2.5))
        if self.tilt_p > 0 and float(torch.rand(()).item()) < self.tilt_p:
            c = _uniform(*self.tilt)
            x = np.concatenate([x[:1], x[1:] - c * x[:-1]]).astype(np.float32)
        if self.reverb_p > 0 and float(torch.rand(()).item()) < self.reverb_p:
            x = _reverberate(x, _uniform(*self.reverb_rt60), int(torch.randint(0, 2**31 - 1, ()).item()))
        new_peak = float(np.abs(x).max())
        if new_peak > 0 and peak > 0:
            x = (x * (peak / new_peak)).astype(np.float32)  # keep the level; only the colour changes
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


def _peaking(x: np.ndarray, fc_hz: float, gain_db: float, q: float, sr: int = 16000) -> np.ndarray:
    """RBJ audio-EQ-cookbook peaking filter."""
    fc_hz = min(fc_hz, 0.45 * sr)
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * fc_hz / sr
    alpha = math.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * math.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * math.cos(w0), 1 - alpha / a])
    return signal.lfilter(b / den[0], den / den[0], x).astype(np.float32)


def _reverberate(x: np.ndarray, rt60_s: float, seed: int, sr: int = 16000) -> np.ndarray:
    """Convolve with a synthetic room: the direct path, then noise decaying by 60 dB in rt60_s, starting a few
    ms later. The output keeps the input's length (the tail past the end is cut), so word starts stay put."""
    g = np.random.default_rng(seed)
    n = max(2, int(rt60_s * sr))
    t = np.arange(n) / sr
    tail = g.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)  # ln(1000): -60 dB at rt60
    tail[: int(g.uniform(0.002, 0.006) * sr)] = 0.0
    rir = tail * (g.uniform(0.3, 1.0) / (np.sqrt(np.sum(tail ** 2)) + 1e-9))  # wet energy relative to the direct path
    rir[0] = 1.0
    return signal.fftconvolve(x, rir)[: x.size].astype(np.float32)
