"""Ctrl+C during `python -m core index`: the partial report is printed and the rerun finishes. SIGINT is raised in-process right after a batch is committed,
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


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    return str(save_model(create_model(get_model_config("tiny-test")), tmp_path_factory.mktemp("m") / "tiny"))


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOKENSEARCH_DATADIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOKENSEARCH_CACHEDIR", str(tmp_path / "cache"))
    for i in range(5):
        make_image(tmp_path / "photos" / f"{i}.jpg", i)
    return tmp_path / "photos"


def ctrl_c_after_first_batch(monkeypatch, presses: int = 1) -> None:
    """Press Ctrl+C (SIGINT to this process) `presses` times right after the first batch is committed (once:
    later runs write as usual)."""
    write, pressed = Library.write_embedded, []

    def write_then_ctrl_c(self, images):
        ids = write(self, images)
        if not pressed:
            pressed.append(True)
            for _ in range(presses):
                signal.raise_signal(signal.SIGINT)
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
