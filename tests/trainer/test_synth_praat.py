"""praat: voices — formant / pitch warps of the engine voices (Praat "Change gender" via parselmouth)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.trainer.test_synth import V1
from trainer.main import main
from trainer.synth import voices as voices_mod
from trainer.synth.generate import SynthOptions
from trainer.synth.voices import SynthError

parselmouth = pytest.importorskip("parselmouth")
SR = 16000


def _vowel(f0: float, formants: tuple[float, ...], seconds: float = 0.5) -> np.ndarray:
    """A pulse train at f0 through two-pole resonators at `formants`: a crude, steady vowel."""
    from scipy import signal

    x = np.zeros(int(seconds * SR))
    x[:: int(SR / f0)] = 1.0
    for fc in formants:
        r, w = np.exp(-np.pi * 80 / SR), 2 * np.pi * fc / SR
        x = signal.lfilter([1.0], [1.0, -2 * r * np.cos(w), r * r], x)
    return (x / np.abs(x).max()).astype(np.float32)


def _centroid(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    return float((spec * freqs).sum() / spec.sum())


def _f0(x: np.ndarray) -> float:
    pitch = parselmouth.Sound(x.astype(np.float64), SR).to_pitch(pitch_floor=75, pitch_ceiling=600)
    values = pitch.selected_array["frequency"]
    return float(np.median(values[values > 0]))


def test_change_speaker_moves_formants_and_pitch_and_keeps_the_tempo() -> None:
    x = _vowel(120.0, (700.0, 1200.0, 2500.0))
    up = voices_mod.change_speaker(x, 1.2, 1.0)
    down = voices_mod.change_speaker(x, 0.85, 1.0)
    assert abs(up.size - x.size) < 0.02 * x.size and abs(down.size - x.size) < 0.02 * x.size
    assert _centroid(up) > 1.1 * _centroid(x) > 1.1 * _centroid(down)
    assert _f0(up) == pytest.approx(120.0, rel=0.05)  # formants moved, pitch kept
    higher = voices_mod.change_speaker(x, 1.0, 1.5)
    assert _f0(higher) == pytest.approx(180.0, rel=0.05)


def test_praat_names_parse_and_name_their_speaker() -> None:
    v = voices_mod.get_voice("praat:fr1.15:pr0.90:flite:kal:f110:s0.85")
    assert (v.engine, v.variant, v.formant_ratio, v.pitch_ratio) == ("praat", "flite:kal:f110:s0.85", 1.15, 0.9)
    assert voices_mod.speaker_of(v.name) == "flite:kal:f110:s0.85"
    assert voices_mod.speaker_of("flite:kal") == "flite:kal"
    for bad in ("praat:fr1.15:pr0.90:nobody", "praat:fr2.50:pr1.00:flite:kal",
                "praat:fr1.10:pr1.00:praat:fr1.10:pr1.00:flite:kal", "praat:fr1.1:pr1.0:flite:kal"):
        with pytest.raises(voices_mod.VoiceError, match="unknown voice"):
            voices_mod.get_voice(bad)


def test_praat_pool_is_deterministic_and_never_warps_a_held_out_voice() -> None:
    pool = voices_mod.voice_pool(30, 5, exclude=["flite:rms"], engines=["praat"])
    assert pool == voices_mod.voice_pool(30, 5, exclude=["flite:rms"], engines=["praat"]) and len(set(pool)) == 30
    assert {voices_mod.get_voice(n).engine for n in pool} == {"praat"}
    bases = [voices_mod.speaker_of(n) for n in pool]
    assert all(voices_mod.get_voice(b).engine != "praat" for b in bases) and "flite:rms" not in bases


@pytest.mark.skipif(shutil.which("flite") is None, reason="needs Debian flite")
def test_a_praat_voice_speaks_a_different_word_clip() -> None:
    plain = voices_mod.synth_word(voices_mod.get_voice("flite:kal"), "circle")
    warped = voices_mod.synth_word(voices_mod.get_voice("praat:fr1.18:pr1.10:flite:kal"), "circle")
    assert abs(warped.size - plain.size) < 0.1 * plain.size and np.abs(warped).max() == pytest.approx(1.0)
    assert _centroid(warped) > 1.05 * _centroid(plain)
    text, sr = voices_mod.synth_raw(voices_mod.get_voice("praat:fr1.18:pr1.10:flite:kal"), "a red circle")
    base, base_sr = voices_mod.synth_raw(voices_mod.get_voice("flite:kal"), "a red circle")
    assert sr == SR and abs(text.size / sr - base.size / base_sr) < 0.05  # whole texts too, same tempo


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None,
                    reason="needs Debian espeak-ng and flite")
def test_a_warp_of_the_held_out_voice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    warp = "praat:fr1.10:pr1.00:flite:rms"
    with pytest.raises(SynthError, match="held-out voice"):
        SynthOptions(out=tmp_path / "x", images=4, seed=0, voices=[V1, warp], holdout_voices=["flite:rms"]).validate()
    src = tmp_path / "src"
    assert main(["synth", "--out", str(src), "--images", "4", "--val-images", "1", "--test-images", "1",
                 "--seed", "3", "--voices", V1, "--holdout-voices", "flite:rms"]) == 0
    assert main(["synth", "--extend", str(src), "--out", str(tmp_path / "ext"), "--voices", warp]) == 1
    assert "held out" in capsys.readouterr().err and not (tmp_path / "ext").exists()


def test_missing_parselmouth_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "parselmouth", None)
    with pytest.raises(voices_mod.VoiceError, match="pip install 'praat-parselmouth"):
        voices_mod.check_engine("praat")


def test_an_unvoiced_clip_is_warped_without_a_warning(recwarn: pytest.WarningsRecorder) -> None:
    hiss = (np.random.default_rng(0).standard_normal(8000) * 0.3).astype(np.float32)
    out = voices_mod.change_speaker(hiss, 1.15, 1.0)
    assert out.size == hiss.size and np.isfinite(out).all() and not recwarn.list


def test_the_warp_is_deterministic_whatever_ran_before():
    """Praat's overlap-add draws random pulses in unvoiced stretches; the same clip must warp the same way
    (it did not: two datasets made with one seed differed in a third of their praat: utterances)."""
    x = _vowel(120, (700, 1200))
    x = np.concatenate([x, 0.1 * np.random.default_rng(0).standard_normal(SR // 2)]).astype(np.float32)  # + unvoiced
    first = voices_mod.change_speaker(x, 0.9, 1.1)
    voices_mod.change_speaker(x[::-1].copy(), 1.1, 0.9)  # something else in between
    assert np.array_equal(first, voices_mod.change_speaker(x, 0.9, 1.1))
