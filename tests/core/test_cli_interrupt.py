"""Ctrl+C during `python -m core index`: the partial report is printed and the rerun finishes; `search` says
which photos an interrupted run left unsearchable. SIGINT is raised in-process right after a batch is committed,
so the moment is exact (the real signal, the real handler)."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from libfakes import make_image

from core.__main__ import main
from core.factory import create_model, save_model
from core.library.library import Library
from core.model.config import get_model_config


@pytest.fixture(autouse=True)
def sigint_default():
    """Ctrl+C as in a terminal's foreground job, even when the test run itself was started with SIGINT ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler), signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, before[0])
    signal.signal(signal.SIGTERM, before[1])


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSEARCH_DATADIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOKENSEARCH_CACHEDIR", str(tmp_path / "cache"))
    for i in range(5):
        make_image(tmp_path / "photos" / f"{i}.jpg", i)
    return tmp_path / "photos"


def ctrl_c_after_first_batch(monkeypatch, presses: int = 1, signum: int = signal.SIGINT) -> None:
    """Press Ctrl+C (SIGINT to this process; or send `signum`) `presses` times right after the first batch is
    committed (once: later runs write as usual)."""
    write, pressed = Library.write_embedded, []

    def write_then_ctrl_c(self, images):
        ids = write(self, images)
        if not pressed:
            pressed.append(True)
            for _ in range(presses):
                signal.raise_signal(signum)
        return ids

    monkeypatch.setattr(Library, "write_embedded", write_then_ctrl_c)


def index(argv, capsys):
    rc = main(["index", *argv, "--no-progress", "--batch-size", "2"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_an_interrupted_index_prints_what_it_did_and_the_rerun_finishes(photos, model_dir, capsys, monkeypatch):
    handler = signal.getsignal(signal.SIGINT)
    ctrl_c_after_first_batch(monkeypatch)
    rc, out, err = index([str(photos), "--model", model_dir, "--json"], capsys)
    assert rc == 130 and "interrupted: what was committed is kept; run the same command to resume" in err
    rep = json.loads(out)  # one JSON object: the normal report's keys, and "interrupted"
    assert {"added", "updated", "moved", "removed", "total", "skipped", "elapsed_s", "cancelled", "waiting"} < set(rep)
    assert (rep["interrupted"], rep["cancelled"], rep["added"]) == (True, True, 2)
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl+C is the default again once the run is over
    rc, out, _ = index([str(photos), "--model", model_dir, "--json"], capsys)
    rep = json.loads(out)
    assert rc == 0 and (rep["added"], rep["total"], rep["interrupted"]) == (3, 5, False)


def test_an_interrupted_index_says_so_in_words(photos, model_dir, capsys, monkeypatch):
    ctrl_c_after_first_batch(monkeypatch)
    rc, out, _ = index([str(photos), "--model", model_dir], capsys)
    assert rc == 130
    assert out.splitlines()[0].startswith("interrupted (Ctrl+C) before the end: 2 added, 0 updated, 0 moved")


def test_a_second_ctrl_c_stops_at_once(photos, model_dir, capsys, monkeypatch):
    ctrl_c_after_first_batch(monkeypatch, presses=2)
    rc, out, err = index([str(photos), "--model", model_dir, "--json"], capsys)
    assert rc == 130 and out == "" and "what was committed is kept" in err


def search(argv, capsys):
    rc = main(["search", "--text", "a dog", *argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out, [line for line in out.err.splitlines() if line.startswith("note: ")]


def test_search_names_the_folder_an_interrupted_index_did_not_finish(photos, model_dir, capsys, monkeypatch):
    ctrl_c_after_first_batch(monkeypatch)
    assert index([str(photos), "--model", model_dir], capsys)[0] == 130
    out, notes = search(["--model", model_dir, "--json"], capsys)
    assert len(json.loads(out)["hits"]) == 2  # stdout stays one JSON object
    assert len(notes) == 1 and f"the last indexing of {photos} did not finish" in notes[0]
    assert f"python -m core index {photos} --model {model_dir}" in notes[0]
    assert index([str(photos), "--model", model_dir], capsys)[0] == 0
    out, notes = search(["--model", model_dir], capsys)
    assert notes == [] and out.count(str(photos)) == 5


def test_search_counts_the_photos_an_interrupted_reindex_left_waiting(photos, model_dir, capsys, monkeypatch,
                                                                      tmp_path_factory):
    other = photos.parent / "other"
    for i in range(3):
        make_image(other / f"o{i}.png", 20 + i)
    assert index([str(photos), str(other), "--model", model_dir], capsys)[0] == 0
    torch.manual_seed(1)  # another CLIP image tower: --reindex drops every vector
    model2 = str(save_model(create_model(get_model_config("tiny-test")), tmp_path_factory.mktemp("m2") / "tiny"))
    ctrl_c_after_first_batch(monkeypatch)
    rc, out, _ = index([str(photos), "--reindex", "--model", model2, "--json"], capsys)
    rep = json.loads(out)
    assert rc == 130 and rep["interrupted"] and rep["updated"] == 2
    waiting = {w["folder"]: w["photos"] for w in rep["waiting"]}
    assert sum(waiting.values()) == 6  # 8 photos, 2 embedded again before Ctrl+C
    out, notes = search(["--model", model2], capsys)
    assert len(notes) == 1 and "6 photos in" in notes[0] and "are not searchable yet" in notes[0]
    assert f"python -m core index {other} {photos} --model {model2}" in notes[0]
    out, notes = search(["--model", model2, "--library", str(other)], capsys)  # only that folder's
    n = waiting[str(other)]  # "1 photo … is", "2 photos … are"
    said = f"{n} photo{'s' if n != 1 else ''} in {other} {'is' if n == 1 else 'are'} not searchable yet"
    assert len(notes) == 1 and said in notes[0]


def test_a_run_started_with_ctrl_c_ignored_keeps_ignoring_it(photos, model_dir, capsys, monkeypatch):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a script's background job, or nohup
    ctrl_c_after_first_batch(monkeypatch)
    rc, out, _ = index([str(photos), "--model", model_dir, "--json"], capsys)
    rep = json.loads(out)
    assert rc == 0 and (rep["added"], rep["interrupted"]) == (5, False)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_sigterm_stops_a_run_as_ctrl_c_does_with_exit_143(photos, model_dir, capsys, monkeypatch):
    ctrl_c_after_first_batch(monkeypatch, signum=signal.SIGTERM)  # `kill`, or a service manager's stop
    rc, out, err = index([str(photos), "--model", model_dir], capsys)
    assert rc == 143 and "what was committed is kept" in err
    assert out.splitlines()[0].startswith("interrupted (SIGTERM) before the end: 2 added")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # a kill after the run is a kill again
    rc, out, _ = index([str(photos), "--model", model_dir, "--json"], capsys)
    assert rc == 0 and json.loads(out)["added"] == 3


def test_a_second_sigterm_stops_at_once(photos, model_dir, capsys, monkeypatch):
    ctrl_c_after_first_batch(monkeypatch, presses=2, signum=signal.SIGTERM)
    rc, out, err = index([str(photos), "--model", model_dir, "--json"], capsys)
    assert rc == 143 and out == "" and "what was committed is kept" in err
