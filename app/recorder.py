"""Recording: drains an AudioSource's queue on a GUI timer (cheap: list appends), measures the input
level, and stops by itself after a long silence or at the length limit."""

from __future__ import annotations

import logging
import queue

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from app.audio_source import AudioSource, NoInputDeviceError, SourceError
from core.audio import StreamResampler

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what the model takes; sources at other rates are resampled by core.audio
POLL_MS = 30  # how often the GUI timer drains the chunk queue
SPEECH_RMS = 0.012  # ~ -38 dBFS: a chunk louder than this counts as speech
SILENCE_STOP_S = 1.2  # stop after this much silence following speech
NO_SPEECH_STOP_S = 6.0  # stop when nothing louder than silence arrived for this long
MAX_RECORD_S = 12.0  # hard length limit of one spoken query
TRAIL_KEEP_S = 0.2  # silence kept after the last sound when a recording is trimmed


def level_of(chunk: np.ndarray) -> float:
    """0..1 meter value: RMS in dBFS mapped from [-60, 0] dB."""
    if chunk.size == 0:
        return 0.0
    rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
    db = 20.0 * np.log10(rms + 1e-9)
    return float(np.clip((db + 60.0) / 60.0, 0.0, 1.0))


class Recorder(QObject):
    """Collects audio from one source at a time. `stopped` carries the 16 kHz mono buffer and why."""

    level_changed = Signal(float)
    grew = Signal()
    started = Signal()
    stopped = Signal(object, str)  # (np.ndarray float32 (S,) at 16 kHz, reason)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, max_s: float = MAX_RECORD_S,
                 silence_stop_s: float = SILENCE_STOP_S, no_speech_stop_s: float = NO_SPEECH_STOP_S) -> None:
        super().__init__(parent)
        self.max_s = max_s
        self.silence_stop_s = silence_stop_s
        self.no_speech_stop_s = no_speech_stop_s
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._source: AudioSource | None = None
        self._queue: queue.Queue = queue.Queue()
        self._chunks: list[np.ndarray] = []
        self._n = 0
        self._rate = SAMPLE_RATE
        self._heard_speech = False
        self._silent_s = 0.0
        self._cache: tuple[tuple[int, bool], np.ndarray] | None = None  # keyed on (samples, recording)
        self._resampler: StreamResampler | None = None  # a source not at 16 kHz: resampled as it grows

    @property
    def recording(self) -> bool:
        return self._source is not None

    @property
    def duration_s(self) -> float:
        return self._n / self._rate

    @property
    def heard_speech(self) -> bool:
        return self._heard_speech

    def start(self, source: AudioSource) -> None:
        """Open the source and start collecting. Emits `failed` (never raises) when it cannot."""
        if self.recording:
            return
        self._queue = queue.Queue()
        self._chunks, self._n, self._cache = [], 0, None
        self._heard_speech, self._silent_s = False, 0.0
        try:
            source.start(self._queue)
        except NoInputDeviceError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any device error becomes a message
            logger.exception("cannot start %s", source.name)
            self.failed.emit(f"Cannot record from '{source.name}': {exc}. Open an audio file instead (Ctrl+O).")
            return
        self._source = source
        self._rate = source.sample_rate
        self._resampler = StreamResampler(self._rate, SAMPLE_RATE) if self._rate != SAMPLE_RATE else None
        self._timer.start()
        self.started.emit()

    def stop(self, reason: str = "user") -> None:
        """Stop, keep what was recorded, and emit `stopped(wav, reason)`."""
        if not self.recording:
            return
        self._close()
        self._drain()
        self.level_changed.emit(0.0)
        self.stopped.emit(self.wav16k(), reason)

    def _close(self) -> None:
        self._timer.stop()
        source, self._source = self._source, None
        if source is not None:
            source.stop()

    @property
    def sample_rate(self) -> int:
        return self._rate

    def raw(self) -> np.ndarray:
        """The buffer so far at the source's own rate (for drawing: no resampling), shape (S,)."""
        if self._rate == SAMPLE_RATE:
            return self.wav16k()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    def wav16k(self) -> np.ndarray:
        """The buffer so far, float32 mono 16 kHz, shape (S,)."""
        if self._cache is not None and self._cache[0] == (self._n, self.recording):
            return self._cache[1]
        if self._resampler is not None:  # the new samples only; its last few ms settle when recording stops
            wav = self._resampler.output(final=not self.recording)
        else:
            wav = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        wav = np.asarray(wav, np.float32)
        self._cache = ((self._n, self.recording), wav)
        return wav

    def _drain(self) -> SourceError | None:
        got: list[np.ndarray] = []
        error = None
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, SourceError):
                error = item
                break
            got.append(item)
        limit = int(self.max_s * self._rate)
        for chunk in got:
            chunk = chunk[: max(limit - self._n, 0)]  # never keep more than the length limit, however late polled
            if not chunk.size:
                continue
            self._chunks.append(chunk)
            self._n += len(chunk)
            if self._resampler is not None:
                self._resampler.push(chunk)
            rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64)))) if chunk.size else 0.0
            if rms >= SPEECH_RMS:
                self._heard_speech, self._silent_s = True, 0.0
            else:
                self._silent_s += len(chunk) / self._rate
        if got:
            self.level_changed.emit(level_of(got[-1]))
            self.grew.emit()
        return error

    def _poll(self) -> None:
        error = self._drain()
        if error is not None:
            self._close()
            self.level_changed.emit(0.0)
            self.failed.emit(f"{error.message} Recording stopped after {self.duration_s:.1f} s. "
                             "Pick another microphone, or open an audio file (Ctrl+O).")
            return
        if self.duration_s >= self.max_s:
            self.stop("limit")
        elif self._heard_speech and self._silent_s >= self.silence_stop_s:
            self.stop("silence")
        elif not self._heard_speech and self.duration_s >= self.no_speech_stop_s:
            self.stop("no-speech")
