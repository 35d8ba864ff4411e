"""Audio front-end: load, resample, normalise, trim and check speech. Pure functions over named constants.

Everything here takes and returns 1-D float32 numpy arrays at `SAMPLE_RATE` (16 kHz mono) unless a
function says otherwise; no function keeps state (whisper's audio.py is the model).
"""

from __future__ import annotations

import functools
import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import NoReturn

import numpy as np

from core.errors import AudioDecodeError, AudioTooLongError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Hz; what every HuBERT-family upstream expects
MIN_SPEECH_S = 0.3  # shorter than this there is no word to hear
MAX_AUDIO_S = 600.0  # ten minutes: longer audio is refused before it is read (a memory risk)
MAX_QUERY_S = 30.0  # a spoken query: self-attention memory grows with the square of the length (30 s ~1.6 GB)
SILENCE_PEAK = 1e-4  # peak amplitude below which a recording is treated as silence (-80 dBFS)
NORMALIZE_PEAK = 0.9  # target peak after normalisation
MAX_GAIN = 100.0  # at most +40 dB of gain, so near-silent noise is not blown up to full scale
TRIM_TOP_DB = 40.0  # frames quieter than (loudest frame - 40 dB) count as silence when trimming
TRIM_FRAME_S = 0.025  # 25 ms analysis window for trimming
TRIM_HOP_S = 0.010  # 10 ms hop
TRIM_PAD_S = 0.1  # keep 100 ms of context either side of the speech


def _name(source: object) -> str:
    return str(source) if isinstance(source, (str, Path)) else "the audio buffer"


def _to_float32(x: np.ndarray) -> np.ndarray:
    """Integer PCM -> float32 in [-1, 1]; float input is cast. Shape is kept."""
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        scale = float(max(abs(info.min), info.max))
        offset = 0.0 if info.min < 0 else (info.max + 1) / 2.0  # unsigned PCM (8-bit WAV) is centred at 128
        return ((x.astype(np.float32) - offset) / scale).astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise AudioDecodeError(f"audio samples of dtype {x.dtype} are not numbers; pass float or integer PCM")


def to_mono(x: np.ndarray) -> np.ndarray:
    """(S,) or (S, C) -> (S,) by averaging channels. A (C, S) array with 0 < C < S is detected and transposed.
    An empty array gives (0,)."""
    if x.ndim == 1:
        return x
    if x.ndim != 2:
        raise AudioDecodeError(f"audio must be 1-D (samples) or 2-D (samples, channels); got shape {x.shape}")
    if x.size == 0:  # (0, C) or (C, 0): the mean of no samples would be NaN
        return np.zeros(0, np.float32)
    if x.shape[0] < x.shape[1] and x.shape[0] <= 8:  # (channels, samples), as torchaudio returns
        x = x.T
    return x.mean(axis=1).astype(np.float32)


def resample(x: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE, *, sharp: bool = True) -> np.ndarray:
    """Resample (S,) float32 from `sr_in` to `sr_out` with a polyphase FIR, anti-aliased.

    The rate ratio is reduced to a fraction up/down (44.1 kHz -> 16 kHz is 160/441). `sharp` (the default): a
    Kaiser-designed low-pass flat to ~0.92 of the lower Nyquist and >= 80 dB down from it on (`_sharp_lowpass`);
    False: scipy's default filter (Kaiser beta 5 cut at Nyquist), which lets 8-10 kHz of a 44.1/48 kHz recording
    fold into the speech band at -14 to -57 dB. The test-time speed ensemble keeps it: the shipped models' cards
    were measured with it.
    """
    if sr_in <= 0 or sr_out <= 0:
        raise AudioDecodeError(f"sample rates must be positive; got {sr_in} -> {sr_out}")
    if sr_in == sr_out or x.size == 0:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly  # scipy is heavy to import; only resampling needs it

    ratio = Fraction(sr_out, sr_in).limit_denominator(10000)
    up, down = ratio.numerator, ratio.denominator
    window = _sharp_lowpass(up, down) if sharp else ("kaiser", 5.0)
    y = resample_poly(x.astype(np.float64), up, down, window=window)
    return y.astype(np.float32)


RESAMPLE_TRANSITION = 0.08  # the low-pass's transition band, as a share of the lower of the two Nyquists
RESAMPLE_STOPBAND_DB = 80.0


@functools.lru_cache(maxsize=16)
def _sharp_lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR for resample_poly(up, down): its stop band starts at the lower Nyquist (44.1 kHz
    -> 16 kHz: 7.36 kHz passes, from 8 kHz on >= 80 dB down), so nothing folds back into the band kept.
    Length grows with max(up, down) (~55k taps for 160/441, ~380 for 1/3); cached per ratio."""
    from scipy.signal import firwin, kaiserord

    m = max(up, down)
    numtaps, beta = kaiserord(RESAMPLE_STOPBAND_DB, RESAMPLE_TRANSITION / m)
    h = firwin(numtaps | 1, (1.0 - RESAMPLE_TRANSITION / 2) / m, window=("kaiser", beta))
    return h  # resample_poly scales it by `up` itself (unity gain after its zero-stuffing)


class StreamResampler:
    """`resample` (sharp) of a signal that grows chunk by chunk, at a cost per call that follows the new samples,
    not the whole buffer (a live recording from a device that refuses 16 kHz is read several times a second).

    `push(chunk)` appends input; `output()` is the whole signal so far at `sr_out`: identical (to float rounding)
    to resample() of everything pushed, except its last ~filter-length samples, which await the input after
    them; `output(final=True)` is resample() of the whole, exactly (the signal has ended)."""

    def __init__(self, sr_in: int, sr_out: int = SAMPLE_RATE) -> None:
        if sr_in <= 0 or sr_out <= 0:
            raise AudioDecodeError(f"sample rates must be positive; got {sr_in} -> {sr_out}")
        ratio = Fraction(sr_out, sr_in).limit_denominator(10000)
        self.sr_in, self.sr_out = sr_in, sr_out
        self.up, self.down = ratio.numerator, ratio.denominator
        self._h = _sharp_lowpass(self.up, self.down) if sr_in != sr_out else np.ones(1)
        self._context = len(self._h) // (2 * self.up) + 2 * self.down  # input samples one output depends on
        self._chunks: list[np.ndarray] = []
        self._x = np.zeros(0, np.float32)  # the input from sample `_offset` on (what later outputs still read)
        self._offset = 0  # a multiple of `down`
        self._done: list[np.ndarray] = []  # outputs that no later input changes
        self._n_done = 0

    def push(self, chunk: np.ndarray) -> None:
        self._chunks.append(np.asarray(chunk, np.float32).reshape(-1))

    def output(self, final: bool = False) -> np.ndarray:
        if self._chunks:
            self._x = np.concatenate([self._x, *self._chunks])
            self._chunks = []
        up, down = self.up, self.down
        if self.sr_in == self.sr_out:
            return self._x.copy()
        n_in = self._offset + self._x.size
        if n_in == 0:
            return np.zeros(0, np.float32)
        from scipy.signal import resample_poly

        n_out = -(-n_in * up // down)  # resample_poly's length: ceil(n * up / down)
        settled = n_out if final else max(0, (n_in - self._context) * up // down)
        k = self._start_block()  # start at input k*down: its output index is k*up, exactly
        x = self._x[k * down - self._offset:]
        y = resample_poly(x.astype(np.float64), up, down, window=self._h).astype(np.float32)
        if settled > self._n_done:
            self._done.append(y[self._n_done - k * up:settled - k * up])
            self._n_done = settled
        tail = y[self._n_done - k * up:]
        next_k = self._start_block()  # what the next call reads from: the input before it is dropped
        self._x = self._x[next_k * down - self._offset:]
        self._offset = next_k * down
        return np.concatenate([*self._done, tail])

    def _start_block(self) -> int:
        """The first input block (of `down` samples) that the unsettled outputs depend on."""
        return max(0, (self._n_done * self.down // self.up - self._context) // self.down)


def load_audio(source: str | Path | np.ndarray, sr: int | None = None, *, max_s: float = MAX_AUDIO_S) -> np.ndarray:
    """Read a file (any format libsndfile reads: wav, flac, ogg, mp3...) or take an array; return (S,) float32
    mono at 16 kHz.

    `sr` is the rate of an array given directly (default: already 16 kHz); it is ignored for files, whose
    header says their rate. Raises AudioDecodeError naming the file when it cannot be read or holds no samples
    (an empty array comes back empty: check_speech refuses it), and AudioTooLongError for audio longer than
    `max_s` (a file's header is read first: it is refused unread).
    """
    if isinstance(source, np.ndarray):
        x, rate = to_mono(_to_float32(source)), sr or SAMPLE_RATE
    else:
        import soundfile as sf

        path = Path(source)
        if not path.exists():
            raise AudioDecodeError(f"audio file {path} does not exist; check the path")
        if not path.is_file():
            raise AudioDecodeError(f"{path} is not a file; choose an audio file (WAV, FLAC, OGG, MP3)")
        try:  # open it as libsndfile will: its own text for no permission or an I/O error is "System error"
            with open(path, "rb"):
                pass
        except PermissionError as exc:
            raise AudioDecodeError(f"cannot read audio file {path}: permission denied; check its permissions "
                                   "(e.g. `chmod u+r FILE`) or copy it where you may read it") from exc
        except OSError as exc:
            raise AudioDecodeError(f"cannot read audio file {path}: {exc.strerror or exc}") from exc
        if path.stat().st_size == 0:  # libsndfile would say "Format not recognised" of a 0-byte file
            raise AudioDecodeError(f"{path} is an empty file (0 bytes); record or choose a file with speech in it")
        try:
            info = sf.info(str(path))
            if 0 < info.samplerate and 0 < info.frames < 2**62 and info.frames / info.samplerate > max_s:
                _too_long(path, info.frames / info.samplerate, max_s)
            x, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except AudioDecodeError:
            raise
        except Exception as exc:  # libsndfile raises its own error types for every malformed file
            # libsndfile's text repeats the path ("Error opening '/x.wav': Format not recognised."): keep the reason
            reason = str(exc).split("': ", 1)[-1].rstrip(". ") or type(exc).__name__
            raise AudioDecodeError(
                f"cannot read audio file {path}: {reason}. Convert it to WAV or FLAC (e.g. `sox in.x -r 16000 out.wav`)"
            ) from exc
        if x.shape[0] == 0:  # a valid header with no frames: nothing to hear, and no caller can use it
            raise AudioDecodeError(_empty_message(path))
        x = x.mean(axis=1)  # always_2d: (S, C), so to_mono's (C, S) guess must not run (1-frame stereo)
    if x.size and x.size / rate > max_s:
        _too_long(source, x.size / rate, max_s)
    return resample(x, int(rate), SAMPLE_RATE)


def _empty_message(name: object) -> str:
    return f"{name} is empty (0 samples); record or choose a file with speech in it"


def _too_long(source: object, seconds: float, max_s: float) -> NoReturn:
    raise AudioTooLongError(
        f"{_name(source)} is {seconds:.0f} s long, above the {max_s:.0f} s limit; cut it to the spoken query "
        "(e.g. `sox in.wav out.wav trim 0 10`)"
    )


def normalize(x: np.ndarray, peak: float = NORMALIZE_PEAK, max_gain: float = MAX_GAIN) -> np.ndarray:
    """Remove the DC offset and scale so the peak is `peak`, with at most `max_gain` of amplification.

    (S,) float32 -> (S,) float32. Silence (all zeros) comes back unchanged.
    """
    if x.size == 0:
        return x.astype(np.float32, copy=False)
    y = x.astype(np.float32) - np.float32(x.mean())
    current = float(np.max(np.abs(y)))
    if not math.isfinite(current) or current == 0.0:
        return y
    gain = min(peak / current, max_gain)
    return (y * np.float32(gain)).astype(np.float32)


def frame_energies_db(x: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, int, int]:
    """RMS energy per frame in dB: returns (energies (F,), frame length, hop) in samples."""
    frame, hop = int(TRIM_FRAME_S * sr), int(TRIM_HOP_S * sr)
    if x.size < frame:
        rms = np.sqrt(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
        return np.array([20 * np.log10(max(rms, 1e-10))]), frame, hop
    n = 1 + (x.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    rms = np.sqrt(np.mean(np.square(x[idx], dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10)), frame, hop


def trim_silence(x: np.ndarray, sr: int = SAMPLE_RATE, top_db: float = TRIM_TOP_DB, *, leading: bool = True,
                 pad_s: float = TRIM_PAD_S) -> np.ndarray:
    """Cut leading (unless `leading` is False: times then stay those of `x`) and trailing silence: frames more
    than `top_db` below the loudest frame, keeping `pad_s` of context. (S,) -> (S',) with S' <= S; a silent
    input comes back unchanged.
    """
    if x.size == 0:
        return x
    energies, frame, hop = frame_energies_db(x, sr)
    loud = np.flatnonzero(energies >= energies.max() - top_db)
    if loud.size == 0 or energies.max() <= -199:
        return x
    pad = int(pad_s * sr)
    start = max(0, int(loud[0]) * hop - pad) if leading else 0
    end = min(x.size, int(loud[-1]) * hop + frame + pad)
    return x[start:end]


def check_speech(x: np.ndarray, sr: int = SAMPLE_RATE, name: str = "the recording") -> None:
    """Raise AudioDecodeError when `x` (S,) cannot hold a spoken query: empty, NaN/inf, shorter than
    `MIN_SPEECH_S`, longer than `MAX_QUERY_S`, or silent (peak of the signal without its DC offset below
    `SILENCE_PEAK`). `name` (a file name) goes into the message.
    """
    if x.size == 0:
        raise AudioDecodeError(_empty_message(name))
    if not np.all(np.isfinite(x)):
        raise AudioDecodeError(f"{name} contains NaN or infinite samples; the file or the recorder is broken")
    duration = x.size / sr
    if duration < MIN_SPEECH_S:
        raise AudioDecodeError(
            f"{name} is {duration:.2f} s long, shorter than the minimum of {MIN_SPEECH_S} s; speak a longer query"
        )
    if duration > MAX_QUERY_S:
        raise AudioDecodeError(
            f"{name} is {duration:.1f} s long, above the {MAX_QUERY_S:.0f} s a spoken query may last; "
            "cut it to the query (e.g. `sox in.wav out.wav trim 0 10`)"
        )
    peak = float(np.max(np.abs(x - np.float32(x.mean()))))  # a constant offset is not sound
    if peak < SILENCE_PEAK:
        raise AudioDecodeError(
            f"{name} is silent (peak {peak:.1e} < {SILENCE_PEAK:.0e}); check the microphone and its input level"
        )


def prepare_query(source: str | Path | np.ndarray, sr: int | None = None) -> np.ndarray:
    """load -> check -> trim -> normalise: the waveform a spoken query is searched with, (S,) float32 16 kHz."""
    x = load_audio(source, sr)
    name = _name(source)
    check_speech(x, name=name)
    x = trim_silence(x)
    check_speech(x, name=name)
    return normalize(x)


def pad_or_trim(x: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad or cut (S,) to exactly `length` samples."""
    if x.size >= length:
        return x[:length]
    return np.pad(x, (0, length - x.size)).astype(np.float32)
