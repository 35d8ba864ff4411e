"""`trainer synth --extend` (new voices over an existing dataset's scenes) and the festival voices."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.signal import butter, sosfiltfilt

from tests.trainer.test_synth import V1, V2, _digest
from trainer.main import main
from trainer.synth import voices as voices_mod
from trainer.synth.vocab import all_words

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs Debian espeak-ng")
needs_festival = pytest.mark.skipif(shutil.which("text2wave") is None, reason="needs Debian festival")


def _lines(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    assert main(["synth", "--out", str(src), "--images", "6", "--val-images", "1", "--test-images", "1",
                 "--seed", "3", "--voices", V1, "--holdout-voices", "flite:rms", "--captions-per-image", "1"]) == 0
    return src


def test_extend_adds_new_voices_to_the_chosen_split_and_leaves_the_source(source: Path, tmp_path: Path) -> None:
    before = _digest(source)
    out = tmp_path / "ext"
    assert main(["synth", "--extend", str(source), "--out", str(out), "--voices", V2, "--captions-per-image", "2",
                 "--seed", "1"]) == 0
    assert _digest(source) == before  # only read
    old, new = _lines(source), _lines(out)
    assert new[:len(old)] == old  # the old lines first, unchanged
    added = new[len(old):]
    train_ids = sorted({x["image_id"] for x in old if x["split"] == "train"})
    assert len(added) == 2 * len(train_ids) == 8
    assert {x["voice"] for x in added} == {V2} and {x["split"] for x in added} == {"train"}
    assert sorted({x["image_id"] for x in added}) == train_ids
    for x in added:
        assert (out / x["audio"]).is_file() and (out / x["image"]).is_file()
        # the new caption describes the scene of the stored image: same objects as the old caption's scene
        old_text = next(o["text"] for o in old if o["image_id"] == x["image_id"])
        shared = {"red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey"}
        assert set(x["text"].split()) & shared & set(old_text.split())
        assert all(w["start_s"] < w["end_s"] for w in x["words"])
    voices = json.loads((out / "voices.json").read_text())
    assert V2 in voices["train_voices"] and voices["holdout_voices"] == ["flite:rms"]
    info = json.loads((out / "info.json").read_text())
    assert info["per_split"]["train"] == len(train_ids) * 3 and info["extensions"][0]["voices"] == [V2]
    # deterministic: the same command again gives the same bytes
    again = tmp_path / "ext2"
    assert main(["synth", "--extend", str(source), "--out", str(again), "--voices", V2, "--captions-per-image", "2",
                 "--seed", "1"]) == 0
    assert _digest(again) == _digest(out)


def test_extend_refuses_what_would_mislead(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ext"
    for held in ("flite:rms", "flite:rms:s0.85"):  # under any spelling
        assert main(["synth", "--extend", str(source), "--out", str(out), "--voices", held]) == 1
        assert "held out" in capsys.readouterr().err  # training on the held-out voice would void its test
    assert main(["synth", "--extend", str(source), "--out", str(source / "inside"), "--voices", V2]) == 1
    assert "only reads the source" in capsys.readouterr().err and not (source / "inside.partial").exists()
    assert main(["synth", "--extend", str(tmp_path / "nothing"), "--out", str(out), "--voices", V2]) == 1
    assert "not a folder made by `trainer synth`" in capsys.readouterr().err
    assert main(["synth", "--extend", str(source), "--out", str(out), "--voices", V2, "--extend-splits", "dev"]) == 1
    assert "choose from test, train, val" in capsys.readouterr().err
    # an image that no longer matches its scene (another generator version, or an edited dataset)
    img = source / "images" / "00000.png"
    Image.fromarray(255 - np.asarray(Image.open(img).convert("RGB"))).save(img)
    assert main(["synth", "--extend", str(source), "--out", str(out), "--voices", V2]) == 1
    assert "no longer renders" in capsys.readouterr().err
    assert not out.exists()


def test_extend_pool_draws_voices_the_source_has_not_heard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "src", tmp_path / "ext"
    assert main(["synth", "--out", str(src), "--images", "2", "--test-images", "0", "--val-images", "0",
                 "--voices", V1, "--voice-pool", "2", "--captions-per-image", "1"]) == 0
    # the same --seed (0) and engines as the source's own pool: its voices must not come back
    assert main(["synth", "--extend", str(src), "--out", str(out), "--voice-pool", "2", "--captions-per-image", "1"]) == 0
    trained = json.loads((src / "voices.json").read_text())["train_voices"]
    new = json.loads((out / "info.json").read_text())["extensions"][0]["voices"]
    assert len(new) == 2 and not {voices_mod.canonical_name(v) for v in new} & {
        voices_mod.canonical_name(v) for v in trained}
    assert "(2 voices;" in capsys.readouterr().out


@pytest.mark.parametrize("broken", ["voices.json", "vocab.json", "audio"])
def test_extend_checks_the_whole_source_before_synthesis(
    source: Path, tmp_path: Path, broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = source / broken
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    out = tmp_path / "ext"
    assert main(["synth", "--extend", str(source), "--out", str(out), "--voices", V2]) == 1
    assert broken in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "ext.partial").exists()


def test_extend_force_never_replaces_a_users_own_manifest_dataset(source: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "manifest.jsonl").write_text('{"audio": "me.wav", "image": "photo.jpg", "text": "my dog"}\n')
    assert main(["synth", "--extend", str(source), "--out", str(mine), "--voices", V2, "--force"]) == 1
    assert sorted(p.name for p in mine.iterdir()) == ["manifest.jsonl"]


def test_festival_pool_draws_only_festival_and_leaves_the_default_pool_alone() -> None:
    pool = voices_mod.voice_pool(10, 0, engines=["festival"])
    assert len(set(pool)) == 10 and {voices_mod.get_voice(n).engine for n in pool} == {"festival"}
    # the default dataset's draws (no engines given) do not depend on the festival voices existing
    assert voices_mod.voice_pool(3, 0) == ["espeak:en-gb-scotland+Gene:r198:p25", "espeak:en-029+marcelo:r219:p33",
                                           "espeak:en-us+iven:r185:p62"]
    assert not set(voices_mod.EXTRA_VOICES) & set(voices_mod.list_voices())
    with pytest.raises(voices_mod.VoiceError, match="unknown pool engine"):
        voices_mod.voice_pool(3, 0, engines=["sapi"])
    with pytest.raises(voices_mod.VoiceError, match="unknown voice"):
        voices_mod.get_voice("festival:ked:f999:s1.0")


@needs_festival
def test_festival_voices_speak_and_follow_their_settings() -> None:
    low = voices_mod.synth_word(voices_mod.get_voice("festival:ked:f80:s1.00"), "circle")
    high = voices_mod.synth_word(voices_mod.get_voice("festival:ked:f160:s1.00"), "circle")
    slow = voices_mod.synth_word(voices_mod.get_voice("festival:ked:f80:s1.40"), "circle")
    hts = voices_mod.synth_word(voices_mod.get_voice("festival:slt-hts"), "circle")
    assert min(low.size, high.size, hts.size) > 0.2 * 16000
    assert not (low.size == high.size and np.allclose(low, high))  # pitch reaches the engine
    assert slow.size > 1.2 * low.size  # and the duration stretch


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The programs the voices run from here on (the list grows as they run)."""
    calls: list[str] = []
    engine = voices_mod._engine

    def counted(voice: voices_mod.Voice, cmd: list[str], stdin: bytes | None = None,
                env: dict[str, str] | None = None) -> object:
        calls.append(cmd[0])
        return engine(voice, cmd, stdin, env)

    monkeypatch.setattr(voices_mod, "_engine", counted)
    return calls


@needs_festival
def test_festival_speaks_a_voices_words_in_one_process_as_text2wave_does(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine_calls: list[str]) -> None:
    words = ["green", "circle", "a", "the", "with", "moon"]
    calls = engine_calls
    odd = tmp_path / 'a "quoted" \\ dir'  # the script names its files in Scheme strings
    odd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(odd))
    for name in ("festival:slt-hts", "festival:ked:f140:s0.90"):
        voice = voices_mod.get_voice(name)
        calls.clear()
        batch = voices_mod.synth_words(voice, words)
        assert calls == ["setarch"]
        for w in words:  # against text2wave, a process per word
            alone = voices_mod._word_clip(voice, w, *voices_mod.synth_raw(voice, w))
            if name == "festival:slt-hts":
                assert np.array_equal(alone, batch[w]), w
            else:  # a festival process that has spoken before may end a ked word ("with", "moon") a little
                # differently from a fresh one (the trim may then keep a quiet tail): the word itself is the same
                n = min(alone.size, batch[w].size)
                assert abs(alone.size - batch[w].size) <= 0.25 * 16000, w
                assert np.array_equal(alone[: n - int(0.15 * 16000)], batch[w][: n - int(0.15 * 16000)]), w


@needs_festival
def test_festival_speaks_the_same_clips_in_every_run() -> None:
    # festival's diphone synthesis reads memory it never wrote: without zeroed allocations the end of ked's
    # "white" or "moon" changed from one process to the next, and with it a dataset made for a seed
    words = all_words()
    for name in ("festival:ked", "festival:ked:f122:s0.85"):
        voice = voices_mod.get_voice(name)
        runs = [voices_mod.synth_words(voice, words) for _ in range(4)]
        for w in words:
            assert all(np.array_equal(runs[0][w], r[w]) for r in runs[1:]), (name, w)


@needs_festival
def test_festival_speaks_a_word_per_process_where_addresses_cannot_be_fixed(
        monkeypatch: pytest.MonkeyPatch, engine_calls: list[str]) -> None:
    calls = engine_calls
    monkeypatch.setattr(voices_mod, "_fixed_addresses", lambda: None)
    clips = voices_mod.synth_words(voices_mod.get_voice("festival:slt-hts"), ["red", "circle"])
    assert calls == ["text2wave", "text2wave"] and min(c.size for c in clips.values()) > 0.1 * 16000


def test_missing_festival_names_the_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voices_mod.shutil, "which", lambda _name: None)
    with pytest.raises(voices_mod.VoiceError, match="apt-get install festival festvox-kdlpc16k"):
        voices_mod.check_engine("festival")


def _speech_lead_trail_ms(clip: np.ndarray) -> tuple[int, int]:
    """ms of the clip before / after its speech: 5 ms frames whose > 150 Hz energy is within 30 dB of the peak."""
    h = sosfiltfilt(butter(4, 150, "highpass", fs=16000, output="sos"), clip)
    n = h.size // 80
    rms = np.sqrt(np.mean(h[: n * 80].reshape(n, 80) ** 2, axis=1))
    loud = np.nonzero(rms >= rms.max() * 10 ** (-30 / 20))[0]
    return int(loud[0]) * 5, int(n - 1 - loud[-1]) * 5


def _rumble_then_word(sr: int) -> np.ndarray:
    """What festival:ked makes: 250 ms of < 20 Hz drift at about -30 dB of the word, then a 'word' (a 120 Hz
    pulse train with harmonics, 300 ms), then silence."""
    t = np.arange(int(0.25 * sr)) / sr
    drift = 0.03 * np.sin(2 * np.pi * 8 * t)
    tw = np.arange(int(0.3 * sr)) / sr
    word = sum(np.sin(2 * np.pi * 120 * k * tw) / k for k in range(1, 20)) * np.hanning(tw.size) ** 0.2
    return np.concatenate([np.zeros(sr // 10), drift, word / np.abs(word).max(), np.zeros(sr // 10)]).astype(np.float32)


def test_festival_clips_are_trimmed_to_the_speech_not_the_rumble(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voices_mod, "synth_raw", lambda voice, text: (_rumble_then_word(16000), 16000))
    monkeypatch.setattr(voices_mod, "_festival_batch",
                        lambda voice, texts, prefix: [(_rumble_then_word(16000), 16000)] * len(texts))
    clip = voices_mod.synth_word(voices_mod.get_voice("festival:ked"), "green")
    lead, trail = _speech_lead_trail_ms(clip)
    assert lead <= 20 and trail <= 20 and 0.28 * 16000 <= clip.size <= 0.33 * 16000
    # the other engines' clips are trimmed as before (the default dataset's bytes): the drift stays in
    assert _speech_lead_trail_ms(voices_mod.synth_word(voices_mod.get_voice("flite:slt"), "green"))[0] >= 200


@needs_festival
def test_festival_word_clips_start_and_end_at_the_speech() -> None:
    for name in ("festival:ked", "festival:ked:f140:s0.90"):
        v = voices_mod.get_voice(name)
        for word in ("green", "a", "the"):  # ked's rumble put 120-225 ms of non-speech before these
            lead, _trail = _speech_lead_trail_ms(voices_mod.synth_word(v, word))
            assert lead <= 50, (name, word, lead)
