"""Training augmentation: speed perturbation keeps word times exact; draws are reproducible; config checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from trainer.config import load_config
from trainer.data.augment import SpeechAugment

SR = 16000


def _tone_word_clip() -> tuple[np.ndarray, list[dict]]:
    wav = np.zeros(SR, np.float32)
    t = np.arange(int(0.3 * SR)) / SR
    wav[int(0.2 * SR):int(0.5 * SR)] = 0.5 * np.sin(2 * np.pi * 220 * t)  # a "word" from 0.2 s to 0.5 s
    return wav, [{"word": "red", "start_s": 0.2, "end_s": 0.5}]


def test_speed_resamples_the_audio_and_scales_the_word_times_with_it() -> None:
    wav, words = _tone_word_clip()
    out, w = SpeechAugment(speed=(1.25, 1.25))(wav, words)
    assert out.size == round(SR / 1.25)
    assert w == [{"word": "red", "start_s": 0.16, "end_s": 0.4}]
    loud = np.flatnonzero(np.abs(out) > 0.05)
    assert abs(loud[0] / SR - 0.16) < 0.005 and abs(loud[-1] / SR - 0.4) < 0.005  # the word moved with its times
    spectrum = np.abs(np.fft.rfft(out[int(0.2 * SR):int(0.36 * SR)]))
    peak_hz = np.argmax(spectrum) * SR / (int(0.36 * SR) - int(0.2 * SR))
    assert abs(peak_hz - 275) < 15  # pitch rises by the same factor


def test_draws_come_from_torchs_rng_so_a_resumed_run_repeats_them() -> None:
    wav, words = _tone_word_clip()
    aug = SpeechAugment(speed=(0.8, 1.2), tilt_p=1.0, noise_p=1.0, gain_db=(-6, 0))
    torch.manual_seed(3)
    a, wa = aug(wav, words)
    torch.manual_seed(3)
    b, wb = aug(wav, words)
    assert np.array_equal(a, b) and wa == wb
    c, _ = aug(wav, words)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert np.abs(a).max() <= 1.0 and a.dtype == np.float32


def test_off_by_default_and_ranges_are_checked() -> None:
    assert not SpeechAugment().enabled
    cfg = load_config(None, {"dataset": "synthetic"})
    assert cfg.augment_speed == [1.0, 1.0] and cfg.augment_noise_p == 0.0
    cfg = load_config(None, ["--dataset=synthetic", "--augment-speed=0.85,1.15"])
    assert cfg.augment_speed == [0.85, 1.15]
    with pytest.raises(ConfigError, match="augment_speed"):
        load_config(None, {"dataset": "synthetic", "augment_speed": [1.2, 0.8]})
    with pytest.raises(ConfigError, match="augment_noise_p"):
        load_config(None, {"dataset": "synthetic", "augment_noise_p": 1.5})
    with pytest.raises(ConfigError, match="augment_snr_db"):
        load_config(None, {"dataset": "synthetic", "augment_snr_db": ["loud", 3]})


def test_equalisation_and_reverb_colour_the_voice_but_keep_length_level_and_word_starts() -> None:
    wav, words = _tone_word_clip()
    aug = SpeechAugment(eq_p=1.0, reverb_p=1.0, reverb_rt60=(0.4, 0.4))
    torch.manual_seed(0)
    out, w = aug(wav, words)
    assert out.shape == wav.shape and w == words  # no time warp: the known word times stay exact
    assert abs(np.abs(out).max() - np.abs(wav).max()) < 1e-3  # the level is kept
    assert np.abs(out[: int(0.2 * SR) - 10]).max() < 1e-6  # nothing before the word starts (causal)
    tail = out[int(0.5 * SR) + 400:int(0.5 * SR) + 2400]
    assert np.sqrt(np.mean(tail ** 2)) > 1e-3  # the room rings on after the word ends
    assert np.abs(out[int(0.9 * SR):]).max() < np.abs(tail).max()  # ... and decays
    assert not np.allclose(out[int(0.2 * SR):int(0.5 * SR)], wav[int(0.2 * SR):int(0.5 * SR)], atol=1e-2)


def test_peaking_filter_boosts_its_band_only() -> None:
    from trainer.data.augment import _peaking

    t = np.arange(SR) / SR
    for hz, expect in ((1000, 9.0), (4000, 0.0)):
        tone = np.sin(2 * np.pi * hz * t).astype(np.float32)
        y = _peaking(tone, 1000.0, 9.0, 2.0)[SR // 2:]
        gain_db = 20 * np.log10(np.sqrt(np.mean(y ** 2)) / np.sqrt(np.mean(tone[SR // 2:] ** 2)))
        assert abs(gain_db - expect) < 1.0


def test_new_augmentation_keys_are_checked() -> None:
    cfg = load_config(None, ["--dataset=synthetic", "--augment-eq-p=0.5", "--augment-reverb-rt60=0.2,0.5"])
    assert cfg.augment_eq_p == 0.5 and cfg.augment_reverb_rt60 == [0.2, 0.5]
    with pytest.raises(ConfigError, match="augment_reverb_p"):
        load_config(None, {"dataset": "synthetic", "augment_reverb_p": -0.1})
    with pytest.raises(ConfigError, match="augment_reverb_rt60"):
        load_config(None, {"dataset": "synthetic", "augment_reverb_rt60": [0.0, 0.3]})
