"""`python -m core index|search|stats`: JSON shapes, incremental re-runs, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from libfakes import make_image

from core.__main__ import main
from core.factory import create_model, save_model
from core.library.watch import watchdog_available
from core.model.config import get_model_config

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSEARCH_DATADIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOKENSEARCH_CACHEDIR", str(tmp_path / "cache"))
    photos = tmp_path / "photos ü"
    for i in range(5):
        make_image(photos / f"{i}.jpg", i)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "q.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)
    return tmp_path, photos


def run_json(capsys, argv):
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def test_index_json_and_incremental(env, model_dir, capsys):
    tmp, photos = env
    rep = run_json(capsys, ["index", str(photos), "--model", model_dir, "--json", "--no-progress"])
    assert {"added", "updated", "moved", "removed", "total", "skipped"} <= set(rep)
    assert (rep["added"], rep["total"]) == (5, 5)
    assert rep["skipped"] == [{"path": str(photos / "broken.jpg"), "reason": rep["skipped"][0]["reason"]}]
    assert rep["skipped"][0]["reason"]
    assert (tmp / "data" / "library" / "library.sqlite3").is_file()  # under SPOKENSEARCH_DATADIR
    os.rename(photos / "1.jpg", photos / "one.jpg")
    rep2 = run_json(capsys, ["index", str(photos), "--model", model_dir, "--json", "--no-progress"])
    assert (rep2["added"], rep2["moved"], rep2["updated"], rep2["removed"]) == (0, 1, 0, 0)
    assert rep2["skipped_before"] == [str(photos / "broken.jpg")]
    # the text report says how to decode the remembered failure again; --retry-failed does, and says nothing of it
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "not decoded again" in out and "1 of them failed before and is unchanged since: --retry-failed decodes it again" in out
    assert main(["index", str(photos), "--model", model_dir, "--no-progress", "--retry-failed"]) == 0
    out = capsys.readouterr().out
    assert "skipped " + str(photos / "broken.jpg") in out and "not decoded again" not in out and "--retry" not in out


def test_search_json_keys(env, model_dir, capsys):
    tmp, photos = env
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    assert "5 photos indexed: 5 added" in capsys.readouterr().out
    out = run_json(capsys, ["search", "--library", str(photos), "--audio", str(tmp / "q.wav"),
                            "--model", model_dir, "--json"])
    assert {"keywords", "segments", "hits"} <= set(out)
    assert len(out["hits"]) == 5  # no cut-off without --min-score; --top defaults to 10
    assert all(set(h) == {"path", "score"} for h in out["hits"])
    for k in out["keywords"]:
        assert set(k) == {"text", "start_s", "end_s", "score"} and 0 <= k["start_s"] <= k["end_s"] <= 1.0
    for s in out["segments"]:
        assert set(s) == {"start_s", "end_s"} and s["start_s"] <= s["end_s"]
    top = run_json(capsys, ["search", "--library", str(photos), "--audio", str(tmp / "q.wav"), "--text", "a dog",
                            "--top", "2", "--min-score", "-1", "--model", model_dir, "--json"])
    assert len(top["hits"]) == 2
    top_k = run_json(capsys, ["search", "--library", str(photos), "--text", "a dog", "--top-k", "3",  # the alias
                              "--min-score", "-1", "--model", model_dir, "--json"])
    assert len(top_k["hits"]) == 3
    img = run_json(capsys, ["search", "--library", str(photos), "--image", str(photos / "0.jpg"),
                            "--model", model_dir, "--json"])
    # "more like this": the query photo itself is not a result
    assert len(img["hits"]) == 4 and str(photos / "0.jpg") not in [h["path"] for h in img["hits"]]
    assert img["keywords"] == [] and img["unread_words"] == []


def test_typed_words_the_model_cannot_read_are_named_not_dropped_silently(env, model_dir, capsys):
    tmp, photos = env
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "--library", str(photos), "--text", "a red xylophone", "--model", model_dir]) == 0
    assert "not read (outside this model's vocabulary, or past its context): xylophone" in capsys.readouterr().err
    out = run_json(capsys, ["search", "--library", str(photos), "--text", "a red xylophone", "--model", model_dir,
                            "--json"])
    assert out["unread_words"] == ["xylophone"] and len(out["hits"]) == 5
    # nothing readable: the vector would be an empty text's, so an error instead of confident nonsense
    assert main(["search", "--library", str(photos), "--text", "xylophone zebra", "--model", model_dir]) == 1
    err = capsys.readouterr().err
    assert "none of the words of “xylophone zebra” are in this model's vocabulary" in err and "dog" in err


def test_errors_are_one_line_with_the_fix(env, model_dir, capsys):
    tmp, photos = env
    other = tmp / "never"
    other.mkdir()
    assert main(["search", "--library", str(other), "--audio", str(tmp / "q.wav"), "--model", model_dir]) == 1
    err = capsys.readouterr().err
    assert "was never indexed" in err and f"python -m core index {other}" in err and "Traceback" not in err
    assert main(["index", str(photos), "--model", str(tmp / "nope"), "--no-progress"]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["search", "--library", str(photos), "--model", model_dir])
    assert e.value.code == 2
    silent = tmp / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "--library", str(photos), "--audio", str(silent), "--model", model_dir]) == 1
    assert "silent" in capsys.readouterr().err


def test_a_full_disk_while_indexing_is_one_line_not_a_traceback(env, model_dir, capsys, monkeypatch):
    import sqlite3

    from core.library.library import Library

    tmp, photos = env

    def full(self, images):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Library, "write_embedded", full)
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if " WARNING " not in line]  # broken.jpg's skip
    assert len(err) == 1 and err[0].startswith("error: ") and "disk is full" in err[0], err
    assert "run the same command again" in err[0]


def test_a_query_file_that_is_not_there_is_named_before_the_model_loads(env, model_dir, capsys, monkeypatch):
    import core.service

    tmp, photos = env

    def no_model(*a, **kw):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(core.service, "SearchService", no_model)
    for argv, said in [(["--audio", str(tmp / "missing.wav")], f"--audio {tmp / 'missing.wav'} does not exist"),
                       (["--audio", str(photos)], f"--audio {photos} is not a file"),
                       (["--text", "red", "--image", str(tmp / "gone.jpg")], f"--image {tmp / 'gone.jpg'} does not")]:
        assert main(["search", *argv, "--model", model_dir]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {said}") and len(err.splitlines()) == 1, err


def test_a_checkpoint_file_given_as_model_says_how_to_convert_it(env, capsys):
    tmp, _ = env
    fixes = {"epoch=80.ckpt": "python -m trainer import-official {q} --out DIR",
             "best.pt": "python -m trainer export --checkpoint {q} --out DIR",
             "model.safetensors": "pass the folder that holds config.json and model.safetensors"}
    for name, fix in fixes.items():
        path = tmp / name
        path.write_bytes(b"not read")
        assert main(["stats", "--model", str(path)]) == 1
        err = capsys.readouterr().err
        assert f"{path} is a file, not a model folder" in err and fix.format(q=shlex.quote(str(path))) in err
        assert len(err.splitlines()) == 1


def test_subprocess_exit_code_and_no_traceback(env):
    tmp, photos = env
    env_vars = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "core", "search", "--library", str(photos), "--audio",
                        str(tmp / "q.wav"), "--model", str(tmp / "missing-model")],
                       capture_output=True, text=True, cwd=REPO, env=env_vars, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr and p.stderr.startswith("error: ")


def test_output_into_a_closed_pipe_is_quiet(env):
    env_vars = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # `stats --json | head -c 0`: the reader is gone before the CLI (seconds of imports) writes a byte
    p = subprocess.Popen([sys.executable, "-m", "core", "stats", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=REPO, env=env_vars)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_index_of_a_missing_folder_fails_and_indexes_nothing(env, model_dir, capsys):
    tmp, photos = env
    rc = main(["index", str(photos), str(tmp / "no-such-folder"), "--model", model_dir, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "no such folder" in err and "no-such-folder" in err
    assert not (tmp / "data" / "library" / "library.sqlite3").exists()  # nothing indexed, not even the good one
    rc = main(["index", str(photos), str(photos / "0.jpg"), "--model", model_dir, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and f"not a folder: {photos / '0.jpg'}" in err and "unmounted" not in err
    assert not (tmp / "data" / "library" / "library.sqlite3").exists()


@pytest.mark.parametrize("argv", [["index", "PHOTOS", "--batch-size", "-1"], ["index", "PHOTOS", "--workers", "-2"],
                                  ["search", "--library", "PHOTOS", "--text", "a dog", "--top", "-3"],
                                  ["search", "--library", "PHOTOS", "--text", "a dog", "--min-score", "nan"]])
def test_out_of_range_numbers_are_usage_errors(env, model_dir, capsys, argv):
    tmp, photos = env
    with pytest.raises(SystemExit) as e:
        main([str(photos) if a == "PHOTOS" else a for a in argv] + ["--model", model_dir])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "expected a whole number >= 1" in err or "expected a finite number" in err
    assert not (tmp / "data" / "library").exists()  # nothing was opened or indexed


def test_a_symlink_to_an_indexed_folder_searches_that_folder(env, model_dir, capsys):
    tmp, photos = env
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    capsys.readouterr()
    link = tmp / "link"
    link.symlink_to(photos, target_is_directory=True)
    out = run_json(capsys, ["search", "--library", str(link), "--text", "a dog", "--model", model_dir, "--json"])
    assert len(out["hits"]) == 5 and all(h["path"].startswith(str(photos)) for h in out["hits"])


def test_a_file_name_that_is_not_utf8_is_reported_not_a_crash(env, model_dir, capsys):
    tmp, photos = env
    make_image(Path(os.fsdecode(os.path.join(os.fsencode(photos), b"Caf\xe9 Paris.png"))), 9)
    rep = run_json(capsys, ["index", str(photos), "--model", model_dir, "--json", "--no-progress"])
    reasons = {s["path"]: s["reason"] for s in rep["skipped"]}
    assert rep["total"] == 5 and "not valid UTF-8" in reasons[str(photos / "Caf\\xe9 Paris.png")]
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    assert "skipped " + str(photos / "Caf\\xe9 Paris.png") + ": file name is not valid UTF-8" in capsys.readouterr().out


def test_reindex_after_a_model_change_embeds_every_library_folder(env, model_dir, capsys, tmp_path_factory):
    tmp, photos = env
    other = tmp / "other"
    for i in range(3):
        make_image(other / f"o{i}.png", 20 + i)
    rep = run_json(capsys, ["index", str(photos), str(other), "--model", model_dir, "--json", "--no-progress"])
    assert rep["total"] == 8
    torch.manual_seed(1)  # another CLIP image tower: the library's vectors cannot be used with it
    model2 = str(save_model(create_model(get_model_config("tiny-test")), tmp_path_factory.mktemp("m2") / "tiny"))
    rep = run_json(capsys, ["index", str(photos), "--reindex", "--model", model2, "--json", "--no-progress"])
    assert (rep["updated"], rep["total"]) == (8, 8) and rep["waiting"] == []  # the other folder too
    out = run_json(capsys, ["search", "--library", str(other), "--text", "a dog", "--model", model2, "--json"])
    assert len(out["hits"]) == 3
    # a library folder that is not there now stays waiting, and the run says so
    os.rename(other, tmp / "unplugged")
    assert main(["index", str(photos), "--reindex", "--model", model_dir, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"3 photos in {other} still wait to be embedded with this model" in err
    assert f"python -m core index {other}" in err


def test_an_image_query_from_outside_the_library_gives_no_torch_warning(env, model_dir, capsys):
    # decode_image's pixels are a read-only view; torch.from_numpy warned about it (pytest: warnings are errors)
    tmp, photos = env
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    capsys.readouterr()
    outside = tmp / "outside.jpg"
    make_image(outside, 42)
    out = run_json(capsys, ["search", "--library", str(photos), "--image", str(outside), "--model", model_dir,
                            "--json"])
    assert len(out["hits"]) == 5


def test_another_models_library_error_names_that_model_and_the_exact_reindex_command(env, model_dir, capsys,
                                                                                        tmp_path_factory):
    import re
    import shlex

    tmp, photos = env
    other = tmp / "other"
    make_image(other / "o.png", 20)
    lib = tmp / "lib dir"
    run_json(capsys, ["index", str(photos), str(other), "--model", model_dir, "--data-dir", str(lib), "--json",
                      "--no-progress"])
    torch.manual_seed(1)  # another CLIP image tower
    model2 = str(save_model(create_model(get_model_config("tiny-test")), tmp_path_factory.mktemp("m2") / "tiny"))
    assert main(["search", "--library", str(photos), "--text", "a dog", "--model", model2,
                 "--data-dir", str(lib)]) == 1
    err = capsys.readouterr().err
    assert f"indexed with model {model_dir} (CLIP image tower" in err and f"(`--model {model_dir}`)" in err
    assert "SearchService" not in err  # the Python API's remedy is not a command-line one
    command = re.search(r"`(python -m core index [^`]*)`", err).group(1)
    assert command == (f"python -m core index {shlex.quote(str(other))} {shlex.quote(str(photos))} --model {model2} "
                       f"--data-dir {shlex.quote(str(lib))} --reindex")
    # following it literally re-embeds the library with the model the user is using, and the search works
    argv = shlex.split(command)[3:]
    assert run_json(capsys, argv + ["--json", "--no-progress"])["updated"] == 6
    out = run_json(capsys, ["search", "--library", str(photos), "--text", "a dog", "--model", model2,
                            "--data-dir", str(lib), "--json"])
    assert len(out["hits"]) == 5


def test_stats_describes_a_library_indexed_with_another_model_and_names_that_model(env, model_dir, capsys):
    tmp, photos = env
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    capsys.readouterr()
    db = tmp / "data" / "library" / "library.sqlite3"
    before = db.read_bytes()
    # no --model: the embedded default, whose CLIP tower did not make this library
    st = run_json(capsys, ["stats", "--json"])
    assert (st["photos"], st["roots"], st["model_name"], st["library_path"]) == (5, [str(photos)], model_dir, str(db))
    assert st["pending"] == 0 and len(st["model_identity"]) == 64
    main(["stats"])
    out = capsys.readouterr()
    assert f"model_name: {model_dir}" in out.out and "photos: 5" in out.out
    assert f"indexed with model {model_dir}" in out.err and f"search it with `--model {model_dir}`" in out.err
    assert "--reindex" not in out.err + out.out  # a read-only question gets no destructive advice
    assert db.read_bytes() == before  # and changes nothing
    # with the model that made it: as before
    st = run_json(capsys, ["stats", "--json", "--model", model_dir])
    assert (st["photos"], st["model_name"]) == (5, model_dir)


def test_search_covers_the_whole_library_by_default_and_the_union_of_repeated_libraries(env, model_dir, capsys):
    tmp, photos = env
    other, third = tmp / "other", tmp / "third"
    for i in range(3):
        make_image(other / f"o{i}.png", 20 + i)
        make_image(third / f"t{i}.png", 30 + i)
    assert main(["search", "--text", "a dog", "--model", model_dir]) == 1  # nothing indexed yet: say so
    assert "has no photo folder yet" in capsys.readouterr().err
    run_json(capsys, ["index", str(photos), str(other), str(third), "--model", model_dir, "--json", "--no-progress"])

    def folders(argv):
        out = run_json(capsys, ["search", "--text", "a dog", "--top", "20", "--model", model_dir, "--json", *argv])
        return sorted({str(Path(h["path"]).parent) for h in out["hits"]}), len(out["hits"])

    assert folders([]) == (sorted([str(photos), str(other), str(third)]), 11)
    assert folders(["--library", str(photos), "--library", str(other)]) == (sorted([str(photos), str(other)]), 8)
    assert folders(["--library", str(third)]) == ([str(third)], 3)
    assert main(["search", "--library", str(photos), "--library", str(tmp), "--text", "a dog",
                 "--model", model_dir]) == 1
    assert f"{tmp} was never indexed" in capsys.readouterr().err


def test_remove_takes_a_folder_out_of_the_library_even_one_that_is_gone(env, model_dir, capsys):
    tmp, photos = env
    assert main(["remove", str(photos)]) == 1  # no library yet
    assert "there is no library" in capsys.readouterr().err
    other = tmp / "other"
    for i in range(3):
        make_image(other / f"o{i}.png", 20 + i)
    run_json(capsys, ["index", str(photos), str(other), "--model", model_dir, "--json", "--no-progress"])
    # a folder that is gone (an unplugged disk, a move) cannot be indexed; the error says how to remove it
    os.rename(other, tmp / "moved away")
    assert main(["index", str(other), "--model", model_dir, "--no-progress"]) == 1
    assert "`python -m core remove DIR`" in capsys.readouterr().err
    # only whole library folders, checked before anything is removed
    assert main(["remove", str(other), str(photos / "sub")]) == 1
    assert f"it is inside the library folder {photos}" in capsys.readouterr().err
    assert main(["remove", str(tmp / "never")]) == 1
    assert f"library folders: {other}, {photos}" in capsys.readouterr().err
    assert run_json(capsys, ["stats", "--json", "--model", model_dir])["photos"] == 8
    out = run_json(capsys, ["remove", str(other), "--json"])  # no model needed
    assert out == {"removed": [{"folder": str(other), "photos": 3}]}
    st = run_json(capsys, ["stats", "--json", "--model", model_dir])
    assert (st["photos"], st["roots"]) == (5, [str(photos)])
    hits = run_json(capsys, ["search", "--text", "a dog", "--top", "20", "--model", model_dir, "--json"])["hits"]
    assert len(hits) == 5 and all(h["path"].startswith(str(photos)) for h in hits)
    assert main(["remove", str(photos)]) == 0
    assert f"removed {photos}: 5 photos left the library" in capsys.readouterr().out
    assert (photos / "0.jpg").is_file()  # the files are not touched


def test_remove_a_library_folder_that_is_a_link_to_another_removes_that_one(env, model_dir, capsys):
    """Two library folders that are one folder (one reached through a symbolic link): `remove LINK` removes the
    library folder named LINK, not the other one its photos are indexed under."""
    tmp, _ = env
    data = tmp / "data" / "p"
    for i in range(2):
        make_image(data / f"d{i}.png", 40 + i)
    (tmp / "home").mkdir()
    link = tmp / "home" / "link"
    link.symlink_to(data, target_is_directory=True)
    run_json(capsys, ["index", str(data), str(link), "--model", model_dir, "--json", "--no-progress"])
    assert sorted(run_json(capsys, ["stats", "--json", "--model", model_dir])["roots"]) == sorted([str(data),
                                                                                                  str(link)])
    assert run_json(capsys, ["remove", str(link), "--json"]) == {"removed": [{"folder": str(link), "photos": 0}]}
    st = run_json(capsys, ["stats", "--json", "--model", model_dir])
    assert (st["roots"], st["photos"]) == ([str(data)], 2)


def test_since_and_until_keep_the_photos_of_those_days_months_or_years(env, model_dir, capsys):
    import time

    tmp, photos = env
    for i, day in enumerate(((2021, 3, 4), (2022, 12, 31), (2023, 1, 1), (2023, 6, 15), (2024, 2, 29))):
        t = time.mktime((*day, 12, 0, 0, 0, 0, -1))
        os.utime(photos / f"{i}.jpg", (t, t))  # no EXIF date in these: the file's time is their date
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    capsys.readouterr()

    def names(*flags):
        out = run_json(capsys, ["search", "--text", "a dog", "--top", "10", "--model", model_dir, "--json", *flags])
        return sorted(Path(h["path"]).name for h in out["hits"])

    assert names("--since", "2023") == ["2.jpg", "3.jpg", "4.jpg"]
    assert names("--until", "2022") == ["0.jpg", "1.jpg"]  # to the end of 2022: its 31 December included
    assert names("--since", "2022-12-31", "--until", "2023-01") == ["1.jpg", "2.jpg"]
    assert names("--since", "2024-02-29", "--until", "2024-02-29") == ["4.jpg"]
    out = run_json(capsys, ["search", "--text", "a dog", "--since", "2023-06", "--model", model_dir, "--json"])
    assert out["query"]["since"] == "2023-06" and out["query"]["until"] is None


def test_kind_keeps_a_search_to_photos_or_to_videos(env, model_dir, capsys):
    pytest.importorskip("av")
    from videofakes import write_video

    tmp, photos = env
    write_video(photos / "clip.mp4", frames=12, fps=4, size=(64, 48))
    rep = run_json(capsys, ["index", str(photos), "--model", model_dir, "--json", "--no-progress"])
    assert rep["added"] == 6  # five photos and the video

    def names(*flags):
        out = run_json(capsys, ["search", "--text", "a dog", "--top", "10", "--model", model_dir, "--json", *flags])
        return sorted(Path(h["path"]).name for h in out["hits"]), out["query"]["kind"]

    assert names("--kind", "video") == (["clip.mp4"], "video")
    no_videos = run_json(capsys, ["index", str(photos), "--model", model_dir, "--json", "--no-progress", "--no-videos"])
    assert no_videos["removed"] == 1 and names() == ([f"{i}.jpg" for i in range(5)], None)
    run_json(capsys, ["index", str(photos), "--model", model_dir, "--json", "--no-progress"])
    assert names("--kind", "photo") == ([f"{i}.jpg" for i in range(5)], "photo")
    assert names() == ([f"{i}.jpg" for i in range(5)] + ["clip.mp4"], None)
    with pytest.raises(SystemExit) as e:
        main(["search", "--text", "a dog", "--kind", "movie", "--model", model_dir])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_kind_video_in_a_library_without_videos_says_so(env, model_dir, capsys):
    tmp, photos = env
    run_json(capsys, ["index", str(photos), "--model", model_dir, "--json", "--no-progress"])
    assert main(["search", "--text", "a dog", "--kind", "video", "--model", model_dir]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "no video matched"  # not "no photo matched": no photo was asked for
    assert "holds no video" in out.err and str(tmp / "data") in out.err
    assert run_json(capsys, ["search", "--text", "a dog", "--kind", "video", "--model", model_dir,
                             "--json"])["hits"] == []
    assert main(["search", "--text", "a dog", "--kind", "photo", "--model", model_dir]) == 0
    assert "no video" not in capsys.readouterr().err


@pytest.mark.parametrize("flags, words", [(["--since", "2023-13"], "expected a date"),
                                          (["--until", "2023-02-30"], "expected a date"),
                                          (["--since", "23"], "expected a date"),
                                          (["--since", "2024", "--until", "2023"], "no photo can match")])
def test_bad_dates_are_usage_errors(env, model_dir, capsys, flags, words):
    tmp, _ = env
    with pytest.raises(SystemExit) as e:
        main(["search", "--text", "a dog", "--model", model_dir, *flags])
    assert e.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp / "data" / "library").exists()  # refused before the library or the model is opened


@pytest.mark.skipif(not watchdog_available(), reason="watchdog is not installed")
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])  # Ctrl+C, or `kill` / a service manager's stop
def test_index_watch_indexes_new_photos_until_ctrl_c(env, model_dir, stop):
    import signal
    import threading

    _, photos = env
    # A test run started as a shell's background job (no job control) ignores SIGINT, and its children inherit
    # that: Python then installs no KeyboardInterrupt and the watch never saw this test's Ctrl+C (a hang).
    proc = subprocess.Popen([sys.executable, "-m", "core", "index", str(photos), "--model", model_dir, "--json",
                             "--no-progress", "--watch"], cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(json.loads(x) for x in proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not lines and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lines and lines[0]["added"] == 5
        time.sleep(1.0)  # the watcher is set up right after the first report
        make_image(photos / "trip" / "new1.png", 11)
        make_image(photos / "trip" / "new2.jpg", 12)
        (photos / "notes.txt").write_text("not a photo")
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(lines) == 2 and (lines[1]["added"], lines[1]["total"]) == (2, 7)
    finally:
        proc.send_signal(getattr(signal, stop))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "watching 1 folder" in err and "stopped watching" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not watchdog_available(), reason="watchdog is not installed")
def test_index_watch_does_not_add_back_a_folder_removed_from_the_library(env, model_dir, capsys):
    _, photos = env
    proc = subprocess.Popen([sys.executable, "-m", "core", "index", str(photos), "--model", model_dir,
                             "--no-progress", "--watch"], cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None and "5 photos indexed" in proc.stdout.readline()
        deadline = time.monotonic() + 60
        while main(["remove", str(photos)]) != 0:  # refused while the watch's catch-up run holds the lock
            assert time.monotonic() < deadline
            time.sleep(0.2)
        make_image(photos / "after.jpg", 13)  # a change in the removed folder: not indexed, the watch ends
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "no longer watched, removed from the library" in err
    assert "every watched folder left the library" in err and "Traceback" not in err
    capsys.readouterr()
    out = json.loads((main(["stats", "--json"]), capsys.readouterr().out)[1])
    assert out["roots"] == [] and out["photos"] == 0


def test_hear_shows_the_units_and_keywords_with_no_library_and_goes_on_past_a_bad_file(env, model_dir, capsys):
    tmp, photos = env
    out = run_json(capsys, ["hear", str(tmp / "q.wav"), "--model", model_dir, "--top", "2", "--alpha", "--json"])
    assert len(out) == 1 and out[0]["file"] == str(tmp / "q.wav") and out[0]["duration_s"] == pytest.approx(1.0)
    h = out[0]
    assert h["units"] and all(len(u["candidates"]) <= 2 and u["start_s"] <= u["end_s"] <= 1.0 for u in h["units"])
    assert abs(len(h["alpha"]) - round(h["duration_s"] / h["frame_s"])) <= 1
    assert not (tmp / "data").exists()  # no library was opened or made
    # what `search` reports of the same recording: the same inference
    assert main(["index", str(photos), "--model", model_dir, "--no-progress"]) == 0
    capsys.readouterr()
    searched = run_json(capsys, ["search", "--audio", str(tmp / "q.wav"), "--model", model_dir, "--json"])
    assert searched["keywords"] == h["keywords"]
    assert [[s["start_s"], s["end_s"]] for s in searched["segments"]] == [[u["start_s"], u["end_s"]] for u in h["units"]]

    (tmp / "notes.wav").write_text("not audio")
    rc = main(["hear", str(tmp / "notes.wav"), str(tmp / "q.wav"), str(tmp / "gone.wav"), "--model", model_dir])
    text = capsys.readouterr()
    assert rc == 1 and text.out.startswith(f"{tmp / 'q.wav'} (1.00 s, {len(h['units'])} units): ")
    assert "cannot read audio file" in text.err and f"{tmp / 'gone.wav'} does not exist" in text.err
