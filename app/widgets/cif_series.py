"""The series the CIF plot draws, computed from a query (plain numpy, no Qt): the waveform's envelope, CIF's
running integral, how many frames the units cover, and a unit's label."""

from __future__ import annotations

from typing import Any

import numpy as np

FRAME_S = 0.02  # 20 ms per HuBERT frame: the time step of SpeechQuery.alpha unless it names its own frame_s
CIF_THRESHOLD = 1.0  # a unit fires each time the integral of alpha reaches this
WAVE_POINTS = 2400  # the waveform is drawn as a min/max envelope of at most this many points


def envelope(wav: np.ndarray, sr: int, points: int = WAVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(t, y) of a min/max envelope of `wav` (S,) with at most `points` points, for fast drawing."""
    n = len(wav)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    bins = max(1, points // 2)
    if n <= points:
        return np.arange(n) / sr, wav.astype(np.float32)
    step = n // bins
    w = wav[: step * bins].reshape(bins, step)
    y = np.empty(bins * 2, np.float32)
    y[0::2], y[1::2] = w.min(axis=1), w.max(axis=1)
    t = np.repeat(np.arange(bins) * step / sr, 2)
    return t, y


def running_integral(alpha: np.ndarray, threshold: float = CIF_THRESHOLD) -> np.ndarray:
    """CIF's accumulator per frame: cumsum(alpha) that drops by `threshold` at every fire, shape (T,)."""
    c = np.cumsum(np.asarray(alpha, np.float64))
    return (c - np.floor(c / threshold + 1e-9) * threshold).astype(np.float32)


def used_frames(query: Any, alpha: np.ndarray, threshold: float = CIF_THRESHOLD) -> int | None:
    """How many frames the model's units cover when it stopped before alpha ran out (CIF's cap of
    cif.max_units keyword units: the rest of the clip reaches no unit); None when every fire is a unit."""
    n = len(list(getattr(query, "segments", []) or []))
    if n == 0 or alpha.size == 0:
        return None
    c = np.cumsum(np.asarray(alpha, np.float64))
    if n >= int(np.floor(c[-1] / threshold + 1e-9)):
        return None
    return min(int(np.searchsorted(c, n * threshold - 1e-9)) + 1, alpha.size)  # through the n-th fire frame


def tick_step(top: float, max_intervals: float = 2.5) -> float:
    """The major tick spacing (1, 2 or 5 x 10^k) for an axis from 0 to `top` with at most `max_intervals` intervals:
    the alpha panel is a few tens of pixels high, and pyqtgraph's own choice packs five labels into it."""
    if not top > 0:
        return 1.0
    step = 10.0 ** np.floor(np.log10(top / max_intervals))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if top / (step * factor) <= max_intervals + 1e-9:
            return float(step * factor)
    return float(step * 10.0)


def unit_label(unit: Any) -> str:
    cands = getattr(unit, "candidates", None) or []
    return str(cands[0][0]).strip() if cands else ""
