"""Pure audio helpers for synthesis: resample, trim, normalise, and join word clips into an utterance.

Joining clips with pauses makes every word's start and end exact; speed perturbation (resampling the
whole utterance) scales those times by the same known factor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from math import gcd

import numpy as np
from scipy.signal import butter, resample_poly, sosfiltfilt

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME = SAMPLE_RATE // 100  # 10 ms energy frames for silence trimming


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling of a (S,) float signal from `sr_in` to `sr_out` Hz."""
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)
    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def highpass(x: np.ndarray, cutoff_hz: float = 80.0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Zero-phase 4th-order Butterworth high-pass (forward and back, so no sample moves): removes DC and rumble
    below `cutoff_hz`. Clips too short to filter are returned unchanged."""
    sos = butter(4, cutoff_hz, "highpass", fs=sr, output="sos")
    if x.size <= 3 * (2 * len(sos) + 1):  # sosfiltfilt's default padding needs more samples
        return x.astype(np.float32, copy=False)
    return sosfiltfilt(sos, x).astype(np.float32)


def peak_normalize(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale so that max |x| == peak (silence is returned unchanged)."""
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


def trim_silence(x: np.ndarray, threshold_db: float = -35.0, margin_s: float = 0.005) -> np.ndarray:
    """Cut leading/trailing frames whose RMS is `threshold_db` below the loudest 10 ms frame."""
    n = x.size // FRAME
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(rms >= rms.max() * 10 ** (threshold_db / 20))[0]
    margin = int(margin_s * SAMPLE_RATE)
    start = max(0, int(loud[0]) * FRAME - margin)
    end = min(x.size, (int(loud[-1]) + 1) * FRAME + margin)
    return x[start:end]


@dataclass(frozen=True)
class WordSpan:
    word: str
    start_s: float
    end_s: float


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (and higher) by resampling; len(out) ~= len(x) / factor."""
    if abs(factor - 1.0) < 1e-6:
        return x
    frac = Fraction(factor).limit_denominator(40)
    return resample_poly(x, frac.denominator, frac.numerator).astype(np.float32)


def build_utterance(
    words: list[str],
    clips: dict[str, np.ndarray],
    rng: np.random.Generator,
    *,
    pause_s: tuple[float, float] = (0.03, 0.12),
    edge_s: tuple[float, float] = (0.05, 0.25),
    speed: tuple[float, float] = (0.9, 1.1),
    noise_p: float = 0.5,
    snr_db: tuple[float, float] = (20.0, 40.0),
    word_speed: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, list[WordSpan]]:
    """Join word clips with random pauses, then perturb speed, add noise, normalise.

    `word_speed`: each word clip is first resampled by its own factor from this range, so one voice's word
    never sounds twice the same (a cached clip would otherwise be identical in every utterance).

    Returns the waveform (S,) float32 16 kHz and one WordSpan per word (exact, in order, inside).
    """
    # Per utterance, a speaking tempo: the pauses of one speaker are similar to each other.
    lo, hi = pause_s
    centre = rng.uniform(lo, hi)
    parts: list[np.ndarray] = [np.zeros(int(rng.uniform(*edge_s) * SAMPLE_RATE), np.float32)]
    spans: list[tuple[str, int, int]] = []
    pos = parts[0].size
    for i, w in enumerate(words):
        clip = clips[w] * np.float32(rng.uniform(0.7, 1.0))  # word-level loudness variation
        if word_speed != (1.0, 1.0):
            clip = speed_perturb(clip, float(rng.uniform(*word_speed)))
        spans.append((w, pos, pos + clip.size))
        parts.append(clip)
        pos += clip.size
        if i + 1 < len(words):
            gap = np.clip(rng.normal(centre, (hi - lo) / 6), lo, hi)
            parts.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
            pos += parts[-1].size
    parts.append(np.zeros(int(rng.uniform(*edge_s) * SAMPLE_RATE), np.float32))
    wav = np.concatenate(parts)
    n_in = wav.size
    wav = speed_perturb(wav, float(rng.uniform(*speed)))
    scale = wav.size / n_in
    if rng.random() < noise_p:
        sig = float(np.sqrt(np.mean(wav**2)) + 1e-9)
        snr = rng.uniform(*snr_db)
        wav = wav + rng.normal(0, sig * 10 ** (-snr / 20), size=wav.size).astype(np.float32)
    wav = peak_normalize(wav, float(rng.uniform(0.5, 0.95)))
    dur = wav.size / SAMPLE_RATE
    out = [
        WordSpan(w, round(min(s * scale / SAMPLE_RATE, dur), 4), round(min(e * scale / SAMPLE_RATE, dur), 4))
        for w, s, e in spans
    ]
    return wav, out
