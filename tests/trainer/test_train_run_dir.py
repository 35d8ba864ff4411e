"""A new run never silently replaces, or mixes with, the run already in its folder: it is refused (nothing
written) unless --overwrite=true deletes the old run first; a diverged run only points at its own checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from core.errors import ConfigError
from tests.trainer.test_train_resume import _cfg, _kill_at, _Killed
from trainer import train as train_mod
from trainer.checkpoint import load_checkpoint
from trainer.loop.guard import TrainingDiverged
from trainer.main import main
from trainer.train import run_training


def _records(run):
    return [(r["kind"], r["step"]) for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())]


def test_a_new_run_in_a_folder_holding_a_run_is_refused_before_writing_anything(tmp_path):
    torch.set_num_threads(1)
    run_training(_cfg(tmp_path, max_steps=6))
    files = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    with pytest.raises(ConfigError, match=r"already holds a run \(step 6\); pass --resume latest to continue it"):
        run_training(_cfg(tmp_path, max_steps=6, seed=1))
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == files
    # through the CLI: the message, exit code 1
    assert main(["train", "--dataset=synthetic", "--synthetic-size=16", "--batch-size=4", f"--run-dir={tmp_path}",
                 "--tensorboard=false"]) == 1


def test_overwrite_deletes_the_old_run_first_and_is_not_recorded(tmp_path):
    torch.set_num_threads(1)
    run_training(_cfg(tmp_path, max_steps=6))
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, max_steps=6, seed=1, eval_every_epochs=0, overwrite=True, log_every_steps=1),
                     on_step=_kill_at(1))
    assert not (tmp_path / "checkpoints" / "best.pt").exists()  # run A's best.pt is gone with its last.pt
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["config"]["seed"] == 1
    assert _records(tmp_path) == [("train", 1)]  # run A's records are gone
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["seed"] == 1 and saved["overwrite"] is False
    with pytest.raises(ConfigError, match="--overwrite=true would delete the run"):
        run_training(_cfg(tmp_path, max_steps=6, seed=1, eval_every_epochs=0, overwrite=True), resume="latest")
    assert run_training(_cfg(tmp_path, max_steps=6, seed=1, eval_every_epochs=0), resume="latest").step == 6


def test_a_diverged_run_names_only_a_checkpoint_of_its_own(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    run_training(_cfg(tmp_path, max_steps=6))

    def diverge(*a, step=0, **k):
        raise TrainingDiverged(f"loss is nan at step {step}")

    monkeypatch.setattr(train_mod, "optimizer_step", diverge)
    with pytest.raises(TrainingDiverged, match="before its first checkpoint"):
        run_training(_cfg(tmp_path, max_steps=6, seed=5, overwrite=True))
    monkeypatch.undo()
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path / "b", max_steps=6), on_step=_kill_at(2))
    monkeypatch.setattr(train_mod, "optimizer_step", diverge)
    with pytest.raises(TrainingDiverged, match=r"continue with --resume .*b/checkpoints/last\.pt"):
        run_training(_cfg(tmp_path / "b", max_steps=6), resume="latest")


@pytest.mark.parametrize("below", ["", "run"])
def test_a_run_dir_that_is_or_lies_under_a_file_is_refused_before_training(tmp_path, capfd, below):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    run_dir = notes / below if below else notes
    assert main(["train", "--dataset=synthetic", "--synthetic-size=8", "--batch-size=4", "--max-steps=1",
                 f"--run-dir={run_dir}", "--tensorboard=false"]) == 1
    assert f"{notes} is a file, not a folder; choose another --run-dir" in capfd.readouterr().err
    assert notes.read_text() == "mine"


def test_a_damaged_last_checkpoint_points_at_the_runs_best_one(tmp_path):
    from core.errors import CheckpointError

    torch.set_num_threads(1)
    run_training(_cfg(tmp_path, max_steps=4))
    last, best = tmp_path / "checkpoints" / "last.pt", tmp_path / "checkpoints" / "best.pt"
    last.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=f"{last} cannot be read .*; .*: use {best} \\(--resume {best}"):
        run_training(_cfg(tmp_path, max_steps=6), resume="latest")
    with pytest.raises(ConfigError, match=f"\\(last.pt unreadable\\); pass --resume {best} to continue"):
        run_training(_cfg(tmp_path, max_steps=6))
    assert run_training(_cfg(tmp_path, max_steps=6), resume=str(best)).step == 6


def test_resume_latest_without_a_checkpoint_says_it_starts_a_new_run(tmp_path, caplog):
    torch.set_num_threads(1)
    with caplog.at_level("INFO", logger="trainer"):
        assert run_training(_cfg(tmp_path, max_steps=1), resume="latest").step == 1
    assert f"--resume latest: no checkpoint in {tmp_path / 'checkpoints'} yet; starting a new run" in caplog.text


def test_a_model_folder_or_an_empty_run_dir_is_refused_before_anything_is_written(tmp_path, capfd):
    from core.factory import create_model, save_model
    from core.model.config import get_model_config

    model = save_model(create_model(get_model_config("tiny-test")), tmp_path / "model")
    other = tmp_path / "project"
    other.mkdir()
    (other / "config.json").write_text('{"theme": "dark"}')
    for folder, what in ((model, "a model folder"), (other, "a folder with another program's config.json")):
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert main(["train", "--dataset=synthetic", "--synthetic-size=8", "--batch-size=4", "--max-steps=1",
                     f"--run-dir={folder}", "--tensorboard=false"]) == 1
        assert f"run_dir {folder} is {what}: the run would replace its config.json" in capfd.readouterr().err
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(ConfigError, match="run_dir is empty"):
        _cfg("")
