"""Where recorded audio comes from. The recorder only sees `AudioSource`: the microphone in the app, a
WAV streamed in real time in tests and benchmarks. Sources push float32 mono chunks (or `SourceError`)
into a queue from their own thread; nothing here blocks the GUI thread."""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

BLOCK_S = 0.05  # 50 ms per chunk pushed by a source


@dataclass(frozen=True)
class SourceError:
    """Put into the chunk queue when the device fails; the recorder stops and says so."""

    message: str


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    default_rate: int


class NoInputDeviceError(RuntimeError):
    """No microphone can be opened."""


class AudioSource(ABC):
    """A stream of float32 mono chunks at `sample_rate` Hz, pushed into `chunks` until `stop()`."""

    name: str = "audio source"
    sample_rate: int = 16000

    @abstractmethod
    def start(self, chunks: queue.Queue) -> None:
        """Begin pushing chunks. Raises NoInputDeviceError (with a message for the user) if it cannot."""

    @abstractmethod
    def stop(self) -> None:
        """Stop pushing; safe to call twice."""


def list_input_devices() -> list[InputDevice]:
    """Microphones sounddevice can see; [] when PortAudio has none (or is missing)."""
    try:
        import sounddevice as sd

        devices = sd.query_devices()
    except Exception as exc:  # noqa: BLE001 - PortAudio missing or broken: no devices
        logger.warning("cannot list audio devices: %s", exc)
        return []
    return [
        InputDevice(i, str(d["name"]), int(d["default_samplerate"]))
        for i, d in enumerate(devices)
        if int(d.get("max_input_channels", 0)) > 0
    ]


class SoundDeviceSource(AudioSource):
    """The microphone, through a sounddevice InputStream whose callback only copies into the queue."""

    def __init__(self, device_name: str = "") -> None:
        self.device_name = device_name
        self._stream = None
        self.name = device_name or "the default microphone"

    def _pick(self) -> InputDevice:
        devices = list_input_devices()
        if not devices:
            raise NoInputDeviceError(
                "No microphone was found. Plug one in and pick it in the microphone list, "
                "or search from an audio file (Ctrl+O), a sample query, or typed text (Ctrl+F)."
            )
        for d in devices:
            if d.name == self.device_name:
                return d
        try:
            import sounddevice as sd

            default_in = sd.default.device[0]
            for d in devices:
                if d.index == default_in:
                    return d
        except Exception:  # noqa: BLE001
            pass
        return devices[0]

    def start(self, chunks: queue.Queue) -> None:
        import sounddevice as sd

        dev = self._pick()
        self.name = dev.name

        def callback(indata: np.ndarray, frames: int, t: object, status: sd.CallbackFlags) -> None:
            if status.input_overflow:
                logger.debug("input overflow")
            chunks.put(indata[:, 0].astype(np.float32, copy=True))

        def finished() -> None:
            if self._stream is not None:  # closed by PortAudio, not by us: the device went away
                chunks.put(SourceError(f"The microphone '{dev.name}' stopped delivering audio."))

        last: Exception | None = None
        for rate in (16000, dev.default_rate):
            try:
                stream = sd.InputStream(
                    device=dev.index, channels=1, samplerate=rate, dtype="float32",
                    blocksize=int(rate * BLOCK_S), callback=callback, finished_callback=finished,
                )
                self.sample_rate = rate
                self._stream = stream
                stream.start()
                logger.info("recording from %s at %d Hz", dev.name, rate)
                return
            except Exception as exc:  # noqa: BLE001 - try the device's own rate, then give up
                last = exc
                self._stream = None
        raise NoInputDeviceError(
            f"The microphone '{dev.name}' cannot be opened ({last}). Pick another one in the list, "
            "or search from an audio file (Ctrl+O)."
        )

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # noqa: BLE001 - a dead device may fail to close
                logger.warning("closing the input stream failed: %s", exc)


class ArraySource(AudioSource):
    """Streams a given waveform in real time (x `speed`) from a thread, as a microphone would.
    `fail_after_s` simulates a device that dies mid-recording."""

    def __init__(self, wav: np.ndarray, sample_rate: int = 16000, *, speed: float = 1.0,
                 fail_after_s: float | None = None, name: str = "test signal") -> None:
        self.wav = np.asarray(wav, dtype=np.float32)
        self.sample_rate = sample_rate
        self.speed = speed
        self.fail_after_s = fail_after_s
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, chunks: queue.Queue) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(chunks,), name="array-source", daemon=True)
        self._thread.start()

    def _run(self, chunks: queue.Queue) -> None:
        block = int(self.sample_rate * BLOCK_S)
        t0 = time.perf_counter()
        for i, start in enumerate(range(0, len(self.wav), block)):
            if self._stop.is_set():
                return
            if self.fail_after_s is not None and start / self.sample_rate >= self.fail_after_s:
                chunks.put(SourceError(f"The microphone '{self.name}' stopped delivering audio."))
                return
            chunks.put(self.wav[start:start + block].copy())
            delay = t0 + (i + 1) * BLOCK_S / self.speed - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
        # After the clip: keep sending silence, as a live microphone would, until stopped.
        while not self._stop.wait(BLOCK_S / self.speed):
            chunks.put(np.zeros(block, np.float32))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)


class FileSource(ArraySource):
    """A WAV/FLAC/OGG file streamed as if spoken into a microphone (tests, benchmarks)."""

    def __init__(self, path: str, *, speed: float = 1.0, fail_after_s: float | None = None) -> None:
        import soundfile as sf

        data, sr = sf.read(path, dtype="float32", always_2d=True)
        super().__init__(data.mean(axis=1), sr, speed=speed, fail_after_s=fail_after_s, name=str(path))
