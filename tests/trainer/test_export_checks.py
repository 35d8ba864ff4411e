"""`trainer export`: inputs are checked before anything is written, and what export does is said."""

from __future__ import annotations

import json

import pytest
import torch

from core.factory import create_model, save_model
from core.model.config import get_model_config
from trainer.main import main


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A one-step training run (synthetic data): checkpoints/, config.json, log.jsonl."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", "--dataset", "synthetic", "--max-steps", "1", "--batch-size", "4", "--synthetic-size", "8",
                 f"--run-dir={run}", "--tensorboard=false", "--val-split="]) == 0
    return run


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_folder_given_as_model_is_refused_before_anything_is_written(run_folder, tmp_path, capfd):
    model = tmp_path / "model"
    save_model(create_model(get_model_config("tiny-test")), model)
    before = _tree(model)
    assert main(["export", "--model", str(run_folder), "--out", str(model)]) == 1
    err = capfd.readouterr().err
    assert f"{run_folder} is a training run folder" in err and f"use --run {run_folder}" in err
    assert _tree(model) == before  # the model folder at --out is intact
    assert main(["export", "--model", str(run_folder), "--out", str(tmp_path / "new")]) == 1
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob("*.partial"))
    # nor is a run folder replaced when it is the --out of a model folder
    run_before = _tree(run_folder)
    assert main(["export", "--model", str(model), "--out", str(run_folder)]) == 1
    assert "training run folder" in capfd.readouterr().err and _tree(run_folder) == run_before


def test_invalid_settings_leave_the_out_folder_as_it_was(tmp_path, capfd):
    src, out = tmp_path / "src", tmp_path / "out"
    save_model(create_model(get_model_config("tiny-test")), src)
    save_model(create_model(get_model_config("tiny-test")), out)
    (out / "model_card.json").write_text(json.dumps({"name": "mine"}))
    before = _tree(out)
    assert main(["export", "--model", str(src), "--out", str(out), "--retrieval-parallel-weight", "-1"]) == 1
    capfd.readouterr()
    assert _tree(out) == before and not list(tmp_path.glob("*.partial"))


def test_a_split_the_data_lacks_is_skipped_with_an_info_line(tmp_path, capfd):
    from tests.trainer.test_eval import _dataset

    torch.manual_seed(0)
    src, out, data = tmp_path / "model", tmp_path / "out", tmp_path / "data"
    save_model(create_model(get_model_config("tiny-test")), src)
    _dataset(data)  # a user's own data: only a test split, no test_unseen_voice
    assert main(["export", "--model", str(src), "--out", str(out), "--eval-data", str(data)]) == 0
    err = capfd.readouterr().err
    assert "split test_unseen_voice is not in" in err and "--eval-splits" in err
    assert "WARNING" not in err and "--split " not in err
    card = json.loads((out / "model_card.json").read_text())
    assert list(card["metrics"]) == ["test"]


def _train(run, **kw):
    from trainer.config import load_config
    from trainer.train import run_training

    run_training(load_config(None, {"dataset": "synthetic", "synthetic_size": 8, "batch_size": 4, "max_steps": 1,
                                    "run_dir": str(run), "tensorboard": False, "val_split": "", "threads": 1, **kw}))


def test_a_fine_tune_exports_its_source_models_query_settings_and_name(tmp_path, capfd):
    """As README's recipe (--config default.json, whose model is a registry name, --init-from the default): the
    export queries as the source model does, says so, and --name names it."""
    from core.factory import load_model

    torch.set_num_threads(1)
    src = tmp_path / "src"
    save_model(create_model(get_model_config("tiny-test", retrieval_parallel_weight=0.4,
                                             query_speed_ensemble=(0.9, 1.0, 1.1))), src)
    _train(tmp_path / "run", model="tiny-test", init_from=str(src))
    assert main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "a"), "--eval-splits="]) == 0
    err = capfd.readouterr().err
    cfg = load_model(tmp_path / "a").config
    assert cfg.retrieval_parallel_weight == 0.4 and cfg.query_speed_ensemble == (0.9, 1.0, 1.1)
    assert "query settings written: retrieval mean, retrieval_parallel_weight 0.4" in err and "WARNING" not in err
    assert "model name tiny-test is that of its --init-from model" in err and "--name" in err
    assert main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "b"), "--eval-splits=",
                 "--name", "my-photos"]) == 0
    assert load_model(tmp_path / "b").config.name == "my-photos"
    assert json.loads((tmp_path / "b" / "config.json").read_text())["name"] == "my-photos"
    assert (tmp_path / "b" / "model_card.md").read_text().startswith("# Model card: my-photos")
    assert main(["export", "--model", str(tmp_path / "b"), "--out", str(tmp_path / "c"), "--name", "renamed"]) == 0
    assert load_model(tmp_path / "c").config.name == "renamed"
    assert json.loads((tmp_path / "c" / "model_card.json").read_text())["name"] == "renamed"
    capfd.readouterr()
    # a run whose query differs from its source's (set in model_overrides, or trained by an older version): warned
    _train(tmp_path / "own", model="tiny-test", init_from=str(src), model_overrides={"query_speed_ensemble": [1.0]})
    assert main(["export", "--run", str(tmp_path / "own"), "--out", str(tmp_path / "d"), "--eval-splits="]) == 0
    err = capfd.readouterr().err
    assert "WARNING" in err and "To query as it does: --query-speeds 0.9,1,1.1" in err


def test_export_of_a_run_never_writes_into_a_run_or_a_foreign_folder(run_folder, tmp_path, capfd):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "p.jpg").write_bytes(b"mine")
    for out in (run_folder, photos):
        before = _tree(out)
        assert main(["export", "--run", str(run_folder), "--out", str(out)]) == 1
        assert f"--out {out}" in capfd.readouterr().err
        assert _tree(out) == before  # the run's config.json (its resume config) is not replaced by a model's


def test_an_interrupted_export_leaves_the_previous_model_folder_whole(run_folder, tmp_path, monkeypatch, capfd):
    from trainer import export

    out = tmp_path / "model"
    torch.manual_seed(123)  # other weights than the run's
    save_model(create_model(get_model_config("tiny-test")), out)
    (out / "model_card.json").write_text(json.dumps({"name": "the previous export"}))
    before = _tree(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_card", interrupted)  # after the weights and config.json are written
    assert main(["export", "--run", str(run_folder), "--out", str(out)]) == 130
    capfd.readouterr()
    assert _tree(out) == before and not list(tmp_path.glob("*.partial"))


def test_a_model_folder_given_as_run_is_named_as_one(tmp_path, capfd):
    model = save_model(create_model(get_model_config("tiny-test")), tmp_path / "model")
    assert main(["export", "--run", str(model), "--out", str(tmp_path / "out")]) == 1
    assert f"--run {model} is a model folder, not a training run folder" in capfd.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_eval_data_folder_is_refused_before_the_export(run_folder, tmp_path, capfd):
    out = tmp_path / "out"
    assert main(["export", "--run", str(run_folder), "--out", str(out), "--eval-data", str(tmp_path / "nope")]) == 1
    assert f"--eval-data {tmp_path / 'nope'} is not a folder (a dataset root); nothing was written" in capfd.readouterr().err
    assert not out.exists()
