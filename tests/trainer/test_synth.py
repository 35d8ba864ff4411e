"""`python -m trainer synth`: determinism, manifest schema, word boundaries, splits, errors (espeak only, tiny)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.core.libfakes import held_by_another_process
from trainer.main import main
from trainer.synth import voices as voices_mod
from trainer.synth.audio_ops import SAMPLE_RATE, build_utterance
from trainer.synth.render import render
from trainer.synth.scenes import caption, sample_scene
from trainer.synth.vocab import COLOURS, all_words

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs Debian espeak-ng")

V1 = "espeak:en-us:r190:p50"
V2 = "espeak:en-us+f2:r205:p70"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "info.json":
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _run(out: Path, *extra: str) -> int:
    return main(
        [
            "synth",
            "--out",
            str(out),
            "--images",
            "2",
            "--seed",
            "5",
            "--voices",
            V1,
            "--captions-per-image",
            "2",
            *extra,
        ]
    )


def test_same_seed_same_bytes_and_schema(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _run(a) == 0
    voices_mod._VOCAB_MEMO.clear()  # the engines themselves must repeat, not just the memo
    assert _run(b, "--workers", "2") == 0
    assert _digest(a) == _digest(b)  # manifest, PNGs and WAV bytes, whatever the worker count
    assert (
        main(
            [
                "synth",
                "--out",
                str(c),
                "--images",
                "2",
                "--seed",
                "6",
                "--voices",
                V1,
                "--captions-per-image",
                "2",
            ]
        )
        == 0
    )
    assert _digest(a) != _digest(c)

    lines = [json.loads(x) for x in (a / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    vocab = set(json.loads((a / "vocab.json").read_text())["words"])
    assert json.loads((a / "voices.json").read_text())["train_voices"] == [V1]
    for d in lines:
        assert set(d) >= {"audio", "image", "image_id", "text", "words", "voice", "split"}
        assert d["voice"] == V1 and d["split"] == "train" and isinstance(d["image_id"], int)
        assert (a / d["image"]).is_file()
        wav, sr = sf.read(a / d["audio"], dtype="float32")
        assert sr == SAMPLE_RATE and wav.ndim == 1
        dur = wav.size / sr
        assert [w["word"] for w in d["words"]] == d["text"].split()
        assert set(d["text"].split()) <= vocab
        prev_end = 0.0
        for w in d["words"]:  # in order, not overlapping, inside the audio
            assert prev_end <= w["start_s"] < w["end_s"] <= dur + 1e-6
            prev_end = w["end_s"]
        # the spans hold the speech: louder inside words than in the gaps between them
        inside = np.zeros(wav.size, bool)
        for w in d["words"]:
            inside[int(w["start_s"] * sr) : int(w["end_s"] * sr)] = True
        assert np.sqrt(np.mean(wav[inside] ** 2)) > 3 * np.sqrt(np.mean(wav[~inside] ** 2))


def test_refuses_non_empty_dir_and_force_replaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _run(out) == 1
    assert "--force" in capsys.readouterr().err
    assert _run(out, "--force") == 1  # not a synth folder: never deleted
    assert (out / "keep.txt").exists()
    shutil.rmtree(out)
    assert _run(out) == 0
    assert _run(out, "--force", "--images", "3") == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 6
    assert not (tmp_path / "o.partial").exists()


def test_force_never_replaces_a_users_own_manifest_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mydata"
    (mine / "recordings").mkdir(parents=True)
    (mine / "manifest.jsonl").write_text('{"audio": "recordings/me.wav", "image": "photo.jpg", "text": "my dog"}\n')
    (mine / "recordings" / "me.wav").write_text("precious")
    assert _run(mine, "--force") == 1
    assert "not one" in capsys.readouterr().err
    (mine / "info.json").write_text("{not json")  # a look-alike is not enough either
    (mine / "voices.json").write_text("{}")
    assert _run(mine, "--force") == 1
    assert (mine / "recordings" / "me.wav").read_text() == "precious"
    assert not (tmp_path / "mydata.partial").exists()


def test_splits_by_image_and_holdout_voice(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--images",
                "5",
                "--val-images",
                "1",
                "--test-images",
                "2",
                "--voices",
                V1,
                "--holdout-voices",
                V2,
                "--captions-per-image",
                "1",
                "--image-size",
                "32",
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    split_of = {d["image_id"]: d["split"] for d in lines if d["split"] != "test_unseen_voice"}
    assert split_of == {0: "train", 1: "train", 2: "val", 3: "test", 4: "test"}
    unseen = [d for d in lines if d["split"] == "test_unseen_voice"]
    assert sorted(d["image_id"] for d in unseen) == [3, 4] and {d["voice"] for d in unseen} == {V2}
    assert all(d["voice"] == V1 for d in lines if d["split"] != "test_unseen_voice")


def test_unknown_voice_lists_valid_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--out", str(tmp_path / "x"), "--voices", "espeak:en-us:fast"]) == 1
    err = capsys.readouterr().err
    assert "unknown voice 'espeak:en-us:fast'" in err and "flite:slt" in err and "piper:joe" in err
    assert "espeak:VARIANT[:rRATE:pPITCH]" in err
    if shutil.which("espeak-ng"):  # a well-formed name whose language espeak-ng does not have
        assert main(["synth", "--out", str(tmp_path / "x"), "--voices", "espeak:nobody"]) == 1
        assert "espeak-ng has no language 'nobody'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_missing_engine_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(voices_mod.shutil, "which", lambda _name: None)
    assert _run(tmp_path / "x") == 1
    assert "apt-get install espeak-ng" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_list_voices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--list-voices"]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert {"piper:joe", "flite:rms", V1} <= set(names) and len(names) >= 15


def test_every_word_is_one_clip_token() -> None:
    # open_clip's tokenizer module alone (the package import pulls in timm etc., ~15 s here)
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "tokenizer.py"
    mod_spec = importlib.util.spec_from_file_location("_open_clip_tokenizer", path)
    assert mod_spec is not None and mod_spec.loader is not None
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    tok = mod.SimpleTokenizer()
    assert len(tok.encode("hexagon")) == 2  # the check can fail
    multi = [w for w in all_words() if len(tok.encode(w)) != 1]
    assert multi == []


def test_caption_names_every_object_and_render_draws_it() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        scene = sample_scene(rng)
        text = caption(scene, rng)
        for o in scene.objects:
            assert f"{o.colour} {o.shape}" in text
    scene = sample_scene(np.random.default_rng(3))
    img = np.asarray(render(scene, 96)).astype(int)
    for o in scene.objects:
        if o.shape in ("ring", "moon"):  # hollow or offset: the centre may be background
            continue
        px = img[int(o.cy * 96), int(o.cx * 96)]
        assert np.abs(px - np.array(COLOURS[o.colour])).max() < 40


def test_build_utterance_times_follow_speed_perturbation() -> None:
    clips = {"red": np.ones(1600, np.float32) * 0.5, "circle": np.ones(3200, np.float32) * 0.5}
    wav, spans = build_utterance(
        ["red", "circle"], clips, np.random.default_rng(1), noise_p=0.0, speed=(1.1, 1.1)
    )
    assert [s.word for s in spans] == ["red", "circle"]
    assert spans[0].end_s - spans[0].start_s == pytest.approx(0.1 / 1.1, abs=2e-3)
    assert spans[1].end_s - spans[1].start_s == pytest.approx(0.2 / 1.1, abs=2e-3)
    assert spans[1].end_s <= wav.size / SAMPLE_RATE


def test_demo_photos_and_queries(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--demo-photos",
                "3",
                "--demo-queries",
                "2",
                "--photo-size",
                "80x60",
                "--voices",
                V1,
                "--seed",
                "1",
            ]
        )
        == 0
    )
    from PIL import Image

    photos = [json.loads(x) for x in (out / "photos.jsonl").read_text().splitlines()]
    assert len(photos) == 3
    with Image.open(out / photos[0]["file"]) as im:
        assert im.format == "JPEG" and im.size == (80, 60)
    queries = [json.loads(x) for x in (out / "queries.jsonl").read_text().splitlines()]
    assert len(queries) == 2
    targets = {p["file"]: p["text"] for p in photos}
    for q in queries:
        assert q["voice"] == V1 and (out / q["audio"]).is_file()
        assert (out / q["audio"]).with_suffix(".txt").read_text().strip() == q["text"]
        # the query names colour + shape pairs that the target photo's caption names too
        words = q["text"].split()
        shapes = [
            i
            for i, w in enumerate(words)
            if w
            in {"circle", "square", "triangle", "star", "heart", "cross", "ring", "diamond", "moon", "arrow"}
        ]
        assert shapes and all(f"{words[i - 1]} {words[i]}" in targets[q["target"]] for i in shapes)


def test_voice_pool_is_deterministic_distinct_and_spares_the_holdout() -> None:
    pool = voices_mod.voice_pool(120, seed=3, exclude=["flite:rms"])
    assert pool == voices_mod.voice_pool(120, seed=3, exclude=["flite:rms"])
    assert pool != voices_mod.voice_pool(120, seed=4, exclude=["flite:rms"])
    assert len(set(pool)) == 120 and not set(pool) & set(voices_mod.list_voices())
    engines = {voices_mod.get_voice(n).engine for n in pool}
    assert engines == {"espeak", "flite", "piper"}
    assert not any(n.startswith("flite:rms") for n in pool)  # the held-out speaker, at no pitch or tempo


def test_parametric_voices_parse_and_speak() -> None:
    v = voices_mod.get_voice("flite:slt:f220:s0.90")
    assert (v.engine, v.variant, v.f0, v.stretch) == ("flite", "slt", 220, 0.9)
    assert voices_mod.get_voice("piper:joe:ls1.10").length_scale == pytest.approx(1.1)
    e = voices_mod.get_voice("espeak:en-gb+Andy:r170:p30")
    assert (e.variant, e.rate, e.pitch) == ("en-gb+Andy", 170, 30)
    for bad in ("espeak:en-us:r999:p50", "flite:slt:f9999", "piper:joe:ls9", "flite:nobody:f100"):
        with pytest.raises(voices_mod.VoiceError, match="unknown voice"):
            voices_mod.get_voice(bad)
    a = voices_mod.synth_word(e, "circle")
    b = voices_mod.synth_word(voices_mod.get_voice("espeak:en-gb+Andy:r170:p70"), "circle")
    assert a.size > 1600 and b.size > 1600 and not (a.size == b.size and np.allclose(a, b))
    if shutil.which("flite"):
        lo = voices_mod.synth_word(voices_mod.get_voice("flite:slt:f120:s0.85"), "circle")
        hi = voices_mod.synth_word(voices_mod.get_voice("flite:slt:f260:s0.85"), "circle")
        assert not (lo.size == hi.size and np.allclose(lo, hi))  # the pitch setting reaches the engine


def test_word_speed_varies_each_clip_and_keeps_times_exact() -> None:
    clips = {"red": np.ones(1600, np.float32) * 0.5, "circle": np.ones(3200, np.float32) * 0.5}
    words = ["red", "circle", "red", "circle", "red"]
    wav, spans = build_utterance(words, clips, np.random.default_rng(2), noise_p=0.0, speed=(1.0, 1.0),
                                 word_speed=(0.8, 1.25))
    reds = [s.end_s - s.start_s for s in spans if s.word == "red"]
    assert len({round(d, 3) for d in reds}) == 3  # the same clip at three lengths
    assert all(0.1 / 1.25 - 2e-3 <= d <= 0.1 / 0.8 + 2e-3 for d in reds)
    assert all(a.end_s <= b.start_s for a, b in zip(spans, spans[1:], strict=False))
    assert spans[-1].end_s <= wav.size / SAMPLE_RATE


def test_cli_voice_pool_reaches_the_manifest(tmp_path: Path) -> None:
    out = tmp_path / "pool"
    assert _run(out, "--voice-pool", "3", "--word-speed", "0.9,1.1", "--images", "4") == 0
    voices = {json.loads(line)["voice"] for line in (out / "manifest.jsonl").read_text().splitlines()}
    assert voices <= {V1, *voices_mod.voice_pool(3, 5, exclude=[V1])} and len(voices) >= 2


def test_unknown_espeak_variant_is_refused_not_mislabelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # espeak-ng itself would speak it with its default voice and exit 0
    assert main(["synth", "--out", str(tmp_path / "x"), "--voices", "espeak:en-us+nobody:r180:p40"]) == 1
    assert "no variant 'nobody'" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "x"), "--voices", "espeak:xx-zz:r180:p40"]) == 1
    assert "no language 'xx-zz'" in capsys.readouterr().err
    for name in voices_mod.voice_pool(200, 0) + [v for v in voices_mod.list_voices() if v.startswith("espeak")]:
        voices_mod.check_voice(voices_mod.get_voice(name))  # every pool and named voice exists


@pytest.mark.parametrize("workers", [1, 2])
def test_word_synthesis_reports_progress_per_voice(workers: int) -> None:
    from trainer.synth.generate import build_word_cache

    calls: list[tuple[int, int]] = []
    cache = build_word_cache([V1, V2], workers, lambda done, total: calls.append((done, total)))
    assert calls == [(0, 2), (1, 2), (2, 2)] and list(cache) == [V1, V2]


def test_cli_shows_a_voices_bar_before_the_scenes_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path / "bars", "--voices", f"{V1},{V2}", "--workers", "2") == 0
    err = capsys.readouterr().err
    assert "voices: 100%" in err and "2/2" in err
    assert err.index("voices:") < err.index("scenes:")


def test_speed_option_sets_or_switches_off_the_utterance_resampling(tmp_path: Path) -> None:
    clip_s = {w: voices_mod.synth_word(voices_mod.get_voice(V1), w).size / SAMPLE_RATE for w in all_words()}

    def word_lengths_match(out: Path) -> bool:
        lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        return all(abs(w["end_s"] - w["start_s"] - clip_s[w["word"]]) < 2e-4 for m in lines for w in m["words"])

    assert _run(tmp_path / "off", "--speed", "1,1", "--noise-p", "0") == 0
    assert json.loads((tmp_path / "off" / "info.json").read_text())["speed"] == [1.0, 1.0]
    assert word_lengths_match(tmp_path / "off")  # no resampling: every word is its clip's length
    assert _run(tmp_path / "on", "--speed", "1.2,1.3", "--noise-p", "0") == 0
    assert json.loads((tmp_path / "on" / "info.json").read_text())["speed"] == [1.2, 1.3]
    assert not word_lengths_match(tmp_path / "on")


@pytest.mark.parametrize("value", ["0.3,1", "1.1,0.9", "1,3", "nan,1", "fast"])
def test_bad_speed_is_a_usage_error(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path / "x", "--speed", value)
    assert exc.value.code == 2 and "argument --speed: expected" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field", ["speed", "word_speed"])
def test_options_refuse_a_bad_speed_range(field: str, tmp_path: Path) -> None:
    from trainer.synth.generate import SynthOptions

    opts = SynthOptions(out=tmp_path / "o", images=2, voices=[V1], **{field: (1.2, 0.9)})
    with pytest.raises(voices_mod.SynthError, match="must be LO,HI"):
        opts.validate()


HOLD_LOCK = """
import sys
from core.file_lock import FileLock
FileLock(sys.argv[1], "a test").acquire()
print("locked", flush=True)
sys.stdin.read()
"""


@contextmanager
def locked_by_another_process(lock: Path) -> Iterator[int]:
    """A second process holding the lock file `lock`, as a synth run writing its folder does; yields its PID."""
    with held_by_another_process(HOLD_LOCK, str(lock)) as pid:
        yield pid


def test_a_second_run_into_the_same_out_is_refused_while_the_first_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, partial = tmp_path / "o", tmp_path / "o.partial"
    (partial / "audio").mkdir(parents=True)
    (partial / "audio" / "00000_0.wav").write_bytes(b"being written")
    with locked_by_another_process(partial / ".lock") as pid:
        assert _run(out) == 1
        assert _run(out, "--force") == 1
        err = capsys.readouterr().err
        assert f"another synth run (pid {pid}) is writing {partial}" in err and "choose another --out" in err
        assert "Traceback" not in err
        assert (partial / "audio" / "00000_0.wav").read_bytes() == b"being written"  # the first run's files stay
        assert not out.exists()
    assert _run(out) == 0  # its process ended: the lock went with it


def test_a_live_pid_in_an_unlocked_lock_file_is_not_a_run(tmp_path: Path) -> None:
    out, partial = tmp_path / "o", tmp_path / "o.partial"
    partial.mkdir()
    (partial / ".lock").write_text(f"{os.getppid()} host\n")  # a live process (a reused PID), holding no lock
    assert _run(out) == 0 and not partial.exists()


def test_a_run_holds_its_lock_until_it_publishes(tmp_path: Path) -> None:
    from trainer.synth.generate import SynthOptions, claim_partial, generate, release_partial
    from trainer.synth.voices import SynthError

    out = tmp_path / "o"
    refused: list[str] = []

    def second_run(done: int, total: int) -> None:
        with pytest.raises(SynthError, match="another synth run") as exc:
            claim_partial(out)  # another open of the lock file conflicts, even in one process
        refused.append(str(exc.value))

    generate(SynthOptions(out=out, images=1, voices=[V1], captions_per_image=1), on_progress=second_run)
    assert len(refused) == 1 and f"another synth run (pid {os.getpid()})" in refused[0]
    assert not (out / ".lock").exists() and not out.with_name("o.partial").exists()
    tmp = claim_partial(out)  # released
    assert sorted(p.name for p in tmp.iterdir()) == [".lock"]
    release_partial(tmp)


def test_the_lock_of_a_run_that_is_gone_is_ignored(tmp_path: Path) -> None:
    out, partial = tmp_path / "o", tmp_path / "o.partial"
    (partial / "images").mkdir(parents=True)
    (partial / "images" / "00007.png").write_bytes(b"left over")
    with locked_by_another_process(partial / ".lock") as pid:
        pass  # it ended without letting go, as a killed run does: its PID stays in the file, its lock does not
    assert (partial / ".lock").read_text() == f"{pid}\n"
    assert _run(out) == 0
    assert not partial.exists() and not (out / ".lock").exists() and not (out / "images" / "00007.png").exists()
    assert sorted(p.name for p in out.iterdir()) == ["audio", "images", "info.json", "manifest.jsonl", "vocab.json",
                                                    "voices.json"]


def test_a_run_that_publishes_between_the_check_and_the_lock_is_not_replaced_without_force(tmp_path: Path,
                                                                                          monkeypatch) -> None:
    """Run B checks OUT (none yet), run A publishes OUT, then B takes the free lock: B re-checks OUT under the
    lock and is refused, instead of replacing A's output at its own publish."""
    from trainer.synth import generate as gen
    from trainer.synth.voices import SynthError

    out = tmp_path / "o"
    real_lock = gen._lock

    def lock_after_another_run_published(tmp: Path, out_: Path) -> None:
        (out_ / "images").mkdir(parents=True)  # run A's finished output appears now
        (out_ / "info.json").write_text("{}")
        real_lock(tmp, out_)

    monkeypatch.setattr(gen, "_lock", lock_after_another_run_published)
    with pytest.raises(SynthError, match="not empty"):
        gen._prepare_dir(out, force=False)
    assert (out / "info.json").read_text() == "{}" and not out.with_name("o.partial").exists()
