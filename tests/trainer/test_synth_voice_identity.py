"""One voice, several spellings: `canonical_name` and every held-out / distinctness check that uses it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from trainer.main import main
from trainer.synth import voices as voices_mod
from trainer.synth.generate import SynthOptions
from trainer.synth.voices import SynthError, VoiceError, canonical_name, held_out_clash, voice_pool

ALIASES = [
    ("piper:joe:ls1.00", "piper:joe"),
    ("piper:joe:ls0.80", "piper:joe:ls0.8"),
    ("flite:rms:s0.85", "flite:rms"),
    ("flite:slt:f220:s0.90", "flite:slt:f220:s0.9"),
    ("espeak:en-us:r090:p05", "espeak:en-us:r90:p5"),
    ("espeak:en-us+m3", "espeak:en-us+m3:r175:p50"),  # espeak-ng's own rate and pitch
    ("flite:rms:f200", "flite:rms"),  # rms ignores int_f0_target_mean: the same clips
    ("flite:rms:f60:s0.90", "flite:rms:s0.9"),
    ("praat:fr1.10:pr0.90:piper:joe:ls1.0", "praat:fr1.10:pr0.90:piper:joe"),
]


@pytest.mark.parametrize(("alias", "name"), ALIASES)
def test_canonical_name_joins_the_spellings_of_one_voice(alias: str, name: str) -> None:
    assert canonical_name(alias) == canonical_name(name) == name
    assert voices_mod.get_voice(name).engine == voices_mod.get_voice(alias).engine  # a valid name itself


def test_canonical_name_keeps_named_and_distinct_voices_apart() -> None:
    for name in [*voices_mod.VOICES, *voices_mod.EXTRA_VOICES]:
        assert canonical_name(name) == name
    assert canonical_name("piper:joe:ls1.01") != canonical_name("piper:joe")
    assert canonical_name("flite:rms:s0.86") != canonical_name("flite:rms")
    with pytest.raises(VoiceError, match="unknown voice"):
        canonical_name("piper:bob")


@pytest.mark.parametrize("voice", ["flite:rms:s0.85", "praat:fr1.10:pr0.90:flite:rms:s0.85", "flite:rms:f200",
                                   "flite:rms:f100:s0.85", "praat:fr1.10:pr0.90:flite:rms:f150",
                                   # the held-out speaker at another tempo
                                   "flite:rms:s0.9", "praat:fr1.10:pr0.90:flite:rms:s0.7"])
def test_a_held_out_voice_under_another_spelling_is_refused(voice: str, tmp_path: Path) -> None:
    opts = SynthOptions(out=tmp_path / "x", images=10, voices=[voice, "flite:slt"], holdout_voices=["flite:rms"],
                        test_images=2)
    with pytest.raises(SynthError, match="held-out voice"):
        opts.validate()


def test_cli_refuses_the_held_out_voice_under_another_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "alias"
    assert main(["synth", "--out", str(out), "--images", "4", "--voices", "flite:rms:s0.85,flite:slt",
                 "--holdout-voices", "flite:rms"]) == 1
    assert "flite:rms:s0.85 speak with a held-out voice" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "alias.partial").exists()


def test_tempo_copies_of_a_held_out_voice_are_its_speaker() -> None:
    holdout = ["espeak:en-us+m3:r180:p60", "piper:joe:ls0.8"]
    assert held_out_clash(["espeak:en-us+m3:r220:p60", "espeak:en-us+m3:r180:p61", "espeak:en-gb+m3:r180:p60",
                           "piper:joe", "praat:fr1.10:pr1.00:piper:joe:ls1.20", "flite:slt"], holdout) == [
        "espeak:en-us+m3:r220:p60", "piper:joe", "praat:fr1.10:pr1.00:piper:joe:ls1.20"]
    # a held-out warp is its own speaker: its base voice may still be trained on, not the warp at another tempo
    warp = "praat:fr1.10:pr0.90:flite:slt"
    assert held_out_clash(["flite:slt", "flite:slt:s0.7", f"{warp}:s0.70"], [warp]) == [f"{warp}:s0.70"]
    with pytest.raises(VoiceError, match="only 0 distinct voices"):  # piper has one speaker
        voice_pool(1, 0, exclude=["piper:joe:ls0.8"], engines=["piper"])


def test_pool_spares_every_spelling_of_the_voices_in_use_and_named_voices() -> None:
    pool = voice_pool(40, 0, known=["piper:joe:ls0.8"], engines=["piper"])
    keys = [canonical_name(v) for v in pool]
    assert len(set(keys)) == 40
    assert not set(keys) & {"piper:joe", "piper:joe:ls0.8", "piper:joe:ls1.15"}


def test_pool_says_when_it_cannot_draw_enough_voices() -> None:
    with pytest.raises(VoiceError, match="only 48 distinct voices"):
        voice_pool(60, 0, known=["piper:joe:ls0.8"], engines=["piper"])


def test_default_pool_draws_never_change() -> None:
    holdout = list(voices_mod.DEFAULT_HOLDOUT)
    named = [v for v in voices_mod.list_voices() if v not in holdout]
    pool = voice_pool(160, 0, exclude=holdout, known=named)  # the default dataset's (scripts/default-data.sh)
    assert hashlib.sha256("\n".join(pool).encode()).hexdigest() == (
        "c39f5f44378842c77afab06b0b224be0be98e5b7c55f4fa308129ea34bab4436")
    # its one alias (of the named piper:joe) is kept so that the dataset's bytes stay the same
    assert [v for v in pool if canonical_name(v) in named] == ["piper:joe:ls1.00"]


@pytest.mark.skipif(shutil.which("flite") is None, reason="needs Debian flite")
def test_two_spellings_speak_the_same_clip() -> None:
    a = voices_mod.synth_word(voices_mod.get_voice("flite:rms"), "red")
    b = voices_mod.synth_word(voices_mod.get_voice("flite:rms:s0.85"), "red")
    assert a.shape == b.shape and (a == b).all()
    c = voices_mod.synth_word(voices_mod.get_voice("flite:rms:f200"), "red")  # rms ignores the f0 setting
    assert a.shape == c.shape and (a == c).all()
