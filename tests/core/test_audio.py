"""core.audio: loading any rate / channels / format, resampling quality, normalise, trim, speech checks."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core import audio
from core.errors import AudioDecodeError, AudioTooLongError


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / sr)[np.argmax(spec)])


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_load_resamples_stereo_file_to_16k_mono(tmp_path, sr):
    x = tone(440, 1.0, sr)
    path = tmp_path / f"stereo_{sr}.wav"
    sf.write(path, np.stack([x, x], axis=1), sr, subtype="PCM_16")
    y = audio.load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - audio.SAMPLE_RATE) <= 1
    assert abs(dominant_freq(y, audio.SAMPLE_RATE) - 440) < 3
    assert 0.45 < np.abs(y[2000:-2000]).max() < 0.55  # amplitude kept by the polyphase filter


def test_resample_removes_content_above_new_nyquist():
    # 12 kHz at 48 kHz cannot exist at 16 kHz (Nyquist 8 kHz): an anti-aliased resampler removes it
    # instead of folding it to 4 kHz.
    x = tone(12000, 0.5, 48000)
    y = audio.resample(x, 48000, 16000)
    assert np.sqrt(np.mean(y[200:-200] ** 2)) < 0.01


@pytest.mark.parametrize("sr", [44100, 48000])
def test_resample_lets_nothing_above_the_new_nyquist_fold_into_speech(sr):
    # 8.5 kHz would fold to 7.5 kHz; scipy's default filter (kept for the speed ensemble) passes it at -14 dB
    rms = {}
    for f in (7000.0, 8500.0):
        for sharp in (True, False):
            y = audio.resample(tone(f, 1.0, sr), sr, 16000, sharp=sharp)[1000:-1000]
            rms[f, sharp] = float(np.sqrt(np.mean(y ** 2))) / (0.5 / np.sqrt(2))
    assert rms[7000.0, True] == pytest.approx(1.0, abs=0.01)  # the speech band passes untouched
    assert rms[8500.0, True] < 1e-3 < 0.05 < rms[8500.0, False]  # below -60 dB; the old filter: above -26 dB


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_a_growing_signal_resampled_in_pieces_equals_resampling_it_whole(sr):
    rng = np.random.default_rng(sr)
    x = rng.standard_normal(int(sr * 2.3)).astype(np.float32)
    stream, pos = audio.StreamResampler(sr), 0
    while pos < x.size:
        n = int(rng.integers(1, sr // 4))
        stream.push(x[pos:pos + n])
        pos += n
        live, whole = stream.output(), audio.resample(x[:pos], sr)
        assert live.size == whole.size
        settled = whole.size - int(0.05 * 16000)  # all but its last 50 ms no longer wait for later input
        np.testing.assert_allclose(live[:settled], whole[:settled], atol=1e-6)
    np.testing.assert_allclose(stream.output(final=True), audio.resample(x, sr), atol=1e-6)


def test_load_array_with_rate_and_int16():
    x = (tone(300, 0.5, 8000) * 32767).astype(np.int16)
    y = audio.load_audio(x, sr=8000)
    assert y.dtype == np.float32 and abs(y.size - 8000) <= 1
    assert 0.45 < np.abs(y).max() < 0.55


def test_channels_first_array_is_averaged():
    x = tone(300, 0.5, 16000)
    y = audio.load_audio(np.stack([x, -x * 0]), sr=16000)  # (2, S)
    np.testing.assert_allclose(y, x / 2, atol=1e-6)


def test_empty_audio_is_never_nan(tmp_path):
    # a (0, C) array fitted to_mono's (C, S) guess: the mean over no samples gave C NaNs
    for empty in (np.zeros((0, 2), np.float32), np.zeros((2, 0), np.float32), np.zeros(0, np.int16)):
        y = audio.load_audio(empty)
        assert y.dtype == np.float32 and y.shape == (0,)
    sf.write(tmp_path / "zero.wav", np.zeros((0, 2), np.float32), 16000, subtype="PCM_16")  # header, no frames
    with pytest.raises(AudioDecodeError, match=r"zero\.wav is empty \(0 samples\)"):
        audio.load_audio(tmp_path / "zero.wav")
    (tmp_path / "none.wav").write_bytes(b"")  # not even a header: said as empty, not "Format not recognised"
    with pytest.raises(AudioDecodeError, match=r"none\.wav is an empty file \(0 bytes\)"):
        audio.load_audio(tmp_path / "none.wav")
    sf.write(tmp_path / "one.wav", np.array([[0.25, 0.75]], np.float32), 16000, subtype="FLOAT")  # 1 stereo frame
    np.testing.assert_array_equal(audio.load_audio(tmp_path / "one.wav"), np.array([0.5], np.float32))


def test_flac_and_unreadable_files(tmp_path):
    sf.write(tmp_path / "a.flac", tone(200, 0.5, 16000), 16000)
    assert audio.load_audio(tmp_path / "a.flac").size == 8000
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio at all")
    with pytest.raises(AudioDecodeError, match=r"bad\.wav") as err:
        audio.load_audio(bad)
    assert str(err.value).count("bad.wav") == 1 and "Convert it to WAV or FLAC" in str(err.value)  # path once
    with pytest.raises(AudioDecodeError, match="does not exist"):
        audio.load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioDecodeError, match="is not a file"):
        audio.load_audio(tmp_path)


def test_a_file_without_read_permission_says_so(tmp_path, monkeypatch):
    path = tmp_path / "noperm.wav"
    sf.write(path, tone(300, 0.5, 16000), 16000)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: deny the open as the kernel does for anyone else
        real_open = builtins.open

        def denied(file, *a, **k):
            if Path(file) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *a, **k)

        monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(AudioDecodeError, match=r"noperm\.wav: permission denied; check its permissions") as err:
        audio.load_audio(path)
    assert "Convert" not in str(err.value)  # the file is fine: converting it is not the fix


def test_overlong_file_is_refused_from_its_header_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(8000 * 61, np.int16), 8000, subtype="PCM_16")  # 61 s

    def no_read(*a, **k):
        raise AssertionError("the samples were read")

    monkeypatch.setattr(sf, "read", no_read)
    with pytest.raises(AudioTooLongError, match=r"long\.wav is 61 s long, above the 60 s limit"):
        audio.load_audio(path, max_s=60.0)


def test_check_speech_rejects_empty_short_silent_nan():
    with pytest.raises(AudioDecodeError, match="empty"):
        audio.check_speech(np.zeros(0, np.float32), name="q.wav")
    with pytest.raises(AudioDecodeError, match=r"q\.wav is 0\.10 s long.*minimum of 0\.3 s"):
        audio.check_speech(tone(300, 0.1, 16000), name="q.wav")
    with pytest.raises(AudioDecodeError, match="silent.*microphone"):
        audio.check_speech(np.zeros(16000, np.float32))
    bad = tone(300, 1.0, 16000)
    bad[100] = np.nan
    with pytest.raises(AudioDecodeError, match="NaN"):
        audio.check_speech(bad)
    audio.check_speech(tone(300, 1.0, 16000))  # fine
    with pytest.raises(AudioDecodeError, match="silent"):  # a DC offset alone is no sound
        audio.check_speech(np.full(16000, 0.05, np.float32))
    with pytest.raises(AudioDecodeError, match=r"q\.wav is 31\.0 s long, above the 30 s a spoken query may last"):
        audio.check_speech(tone(300, 31.0, 16000), name="q.wav")
    audio.check_speech(tone(300, 29.0, 16000))


def test_normalize_peak_dc_and_gain_limit():
    x = tone(300, 0.5, 16000, amp=0.1) + 0.2
    y = audio.normalize(x)
    assert abs(float(y.mean())) < 1e-3
    assert abs(float(np.abs(y).max()) - audio.NORMALIZE_PEAK) < 1e-3
    quiet = tone(300, 0.5, 16000, amp=1e-4)
    assert np.abs(audio.normalize(quiet)).max() <= 1e-4 * audio.MAX_GAIN + 1e-6
    np.testing.assert_array_equal(audio.normalize(np.zeros(10, np.float32)), np.zeros(10))


def test_trim_silence_keeps_speech_and_padding():
    sr = audio.SAMPLE_RATE
    x = np.concatenate([np.zeros(sr), tone(300, 0.5, sr), np.zeros(sr)]).astype(np.float32)
    y = audio.trim_silence(x)
    pad = audio.TRIM_PAD_S
    assert 0.5 <= y.size / sr <= 0.5 + 2 * pad + 0.05
    assert np.abs(y).max() == pytest.approx(0.5, abs=1e-3)
    silent = np.zeros(sr, np.float32)
    assert audio.trim_silence(silent).size == sr
    tail = audio.trim_silence(x, leading=False, pad_s=0.2)  # a recording: its start (and times) kept
    assert np.array_equal(tail, x[: tail.size]) and 1.5 <= tail.size / sr <= 1.5 + 0.2 + 0.05


def test_prepare_query_and_pad_or_trim(tmp_path):
    sr = 44100
    x = np.concatenate([np.zeros(sr // 2), tone(500, 0.6, sr, 0.05), np.zeros(sr // 2)]).astype(np.float32)
    sf.write(tmp_path / "q.wav", x, sr)
    y = audio.prepare_query(tmp_path / "q.wav")
    assert y.size < 16000 and abs(float(np.abs(y).max()) - audio.NORMALIZE_PEAK) < 0.01
    assert audio.pad_or_trim(y, 100).size == 100 and audio.pad_or_trim(y[:10], 100).size == 100
