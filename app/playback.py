"""Replay a part of the query audio through the default output device (sounddevice, non-blocking)."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


class PlaybackError(RuntimeError):
    """No output device, or it failed; the message says what to do."""


def play_segment(wav: np.ndarray, start_s: float, end_s: float, sr: int = 16000) -> None:
    """Start playing wav[start_s:end_s] (S,) and return at once. Raises PlaybackError with a user message."""
    a, b = max(0, int(start_s * sr)), min(len(wav), int(end_s * sr))
    if b <= a:
        raise PlaybackError("This part of the recording is empty; nothing to play.")
    try:
        import sounddevice as sd

        if not any(int(d.get("max_output_channels", 0)) > 0 for d in sd.query_devices()):
            raise PlaybackError("No audio output device was found, so the segment cannot be played. "
                                "Connect speakers or headphones and play it again.")
        sd.stop()
        sd.play(np.asarray(wav[a:b], np.float32), sr, blocking=False)
    except PlaybackError:
        raise
    except Exception as exc:  # noqa: BLE001 - PortAudio errors become one message
        raise PlaybackError(f"Cannot play audio ({exc}). Check the system's output device.") from exc
