"""Train N steps straight == N/2 steps, killed, then --resume latest for the rest (identical weights);
and a smoke run through main() per STYLE rule 19."""

from __future__ import annotations

import json

import pytest
import torch

from trainer.checkpoint import load_checkpoint
from trainer.config import load_config
from trainer.main import main
from trainer.train import run_training


class _Killed(Exception):
    pass


def _cfg(run_dir, **kw):
    base = {"dataset": "synthetic", "synthetic_size": 16, "batch_size": 4, "max_steps": 6, "warmup_steps": 2,
            "lr": 1e-3, "save_every_steps": 1, "run_dir": str(run_dir), "tensorboard": False,
            "model_overrides": {"branch": {"dropout": 0.2}}, "val_split": "val", "threads": 1}
    base.update(kw)
    return load_config(None, base)


def _kill_at(step):
    def hook(s):
        if s == step:
            raise _Killed

    return hook


def _killed_and_resumed_equals_straight(tmp_path, kill_at, **kw):
    """Run a straight through, b killed at step `kill_at` then resumed: their last weights are equal."""
    run_training(_cfg(tmp_path / "a", **kw))
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path / "b", **kw), on_step=_kill_at(kill_at))
    run_training(_cfg(tmp_path / "b", **kw), resume="latest")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_killed_run_resumes_exactly(tmp_path):
    torch.set_num_threads(1)
    straight = run_training(_cfg(tmp_path / "a"))
    assert straight.step == 6 and straight.epoch == 1  # 4 steps per epoch: the resume crosses an epoch end
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path / "b"), on_step=_kill_at(3))
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["step"] == 3
    resumed = run_training(_cfg(tmp_path / "b"), resume="latest")
    assert resumed.step == 6
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    # the logs hold training records and a validation record; the resolved config was saved with the run
    records = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert "val" in [r["kind"] for r in records]
    # where the resumed part starts: records after the marker redo the steps after 3
    assert [(r["step"], r["from"]) for r in records if r["kind"] == "resume"] == [
        (3, str(tmp_path / "b" / "checkpoints" / "last.pt"))]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["max_steps"] == 6


def test_resume_refuses_a_config_that_changes_the_data_stream(tmp_path):
    from core.errors import ConfigError

    torch.set_num_threads(1)
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, max_steps=4), on_step=_kill_at(2))
    with pytest.raises(ConfigError, match="batch_size: checkpoint 4, now 2.*seed: checkpoint 7122, now 1"):
        run_training(_cfg(tmp_path, max_steps=4, batch_size=2, seed=1), resume="latest")
    assert run_training(_cfg(tmp_path, max_steps=4, lr=5e-4), resume="latest").step == 4  # lr may change


def test_killed_init_from_run_resumes_exactly(tmp_path):
    """A warm restart (--init-from a model whose image tower is not the seeded random one) killed and resumed:
    the image-feature cache must be built from the checkpoint's tower, not a fresh random one (it was)."""
    from core.factory import create_model, save_model
    from core.model.config import get_model_config

    torch.set_num_threads(1)
    source = create_model(get_model_config("tiny-test", branch={"dropout": 0.2}))
    with torch.no_grad():
        for p in source.clip.model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    save_model(source, tmp_path / "src")
    _killed_and_resumed_equals_straight(tmp_path, 3, init_from=str(tmp_path / "src"))


def test_an_incomplete_accumulation_window_is_never_loaded_and_resume_stays_exact(tmp_path, monkeypatch):
    from trainer.loop import synthetic_data

    torch.set_num_threads(1)
    loaded = []
    real = synthetic_data.SyntheticSpeechImageDataset.__getitem__

    def counting(self, i):
        if self.split == "train":
            loaded.append(i)
        return real(self, i)

    monkeypatch.setattr(synthetic_data.SyntheticSpeechImageDataset, "__getitem__", counting)
    # 40 utterances / batch 4 = 10 micro-batches an epoch; grad_accum 3 -> 3 steps (9 micro-batches) an epoch
    kw = {"synthetic_size": 40, "grad_accum": 3, "max_steps": 7, "val_split": ""}
    straight = run_training(_cfg(tmp_path / "straight", **kw))
    assert straight.epoch == 2 and len(loaded) == 7 * 3 * 4  # only what was trained on
    _killed_and_resumed_equals_straight(tmp_path, 4, **kw)


def test_torn_checkpoint_temp_file_does_not_break_resume(tmp_path):
    torch.set_num_threads(1)
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, max_steps=4), on_step=_kill_at(2))
    # a save that was killed half-way leaves only the .tmp file; last.pt is still the previous good one
    (tmp_path / "checkpoints" / "last.pt.tmp").write_bytes(b"\x00garbage")
    res = run_training(_cfg(tmp_path, max_steps=4), resume="latest")
    assert res.step == 4


def test_main_synthetic_smoke_and_export(tmp_path, capfd):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--max-steps", "2", "--batch-size", "4",
                 "--synthetic-size", "8", f"--run-dir={run}", "--tensorboard=false"]) == 0
    # a validation is one readable console line (it was the whole metrics dict, ~1500 characters); log.jsonl has all
    val_lines = [line for line in capfd.readouterr().err.splitlines() if "INFO trainer.train: validation at" in line]
    assert val_lines and all(len(line) < 300 and "speech->image R@1/5/10 " in line for line in val_lines), val_lines
    assert val_lines[0].endswith("(best so far)")
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "config.json").is_file()
    extra = tmp_path / "card.json"
    extra.write_text(json.dumps({"_comment": "a note for whoever edits the file", "training_time": "two steps"}))
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "model"), f"--card-extra=@{extra}"]) == 0
    from core.factory import load_model

    model = load_model(tmp_path / "model")
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["step"] == 2 and card["architecture"] == model.config.branch.model_type
    assert card["training_time"] == "two steps" and "_comment" not in card
    md = (tmp_path / "model" / "model_card.md").read_text()
    assert md.startswith("# Model card") and "Training time: two steps" in md


def test_export_card_extra_errors_name_the_problem(tmp_path, capfd):
    out = tmp_path / "never"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for value, words in ((f"@{bad}", "not valid JSON"), (f"@{tmp_path / 'missing.json'}", "cannot be read"),
                         ("[1, 2]", "must be a JSON object")):
        assert main(["export", "--run", str(tmp_path / "no-run"), "--out", str(out), f"--card-extra={value}"]) == 1
        assert words in capfd.readouterr().err
    assert not out.exists()


def test_unknown_override_fails_with_valid_keys(tmp_path, capfd):
    assert main(["train", "--dataset", "synthetic", "--no-such-key=1", f"--run-dir={tmp_path}"]) == 1
    err = capfd.readouterr().err
    assert "valid keys" in err and "no_such_key" in err


@pytest.mark.parametrize("broken", ["missing", "no_weights"])
def test_bad_init_from_fails_before_the_run_folder_is_written(tmp_path, broken):
    from core.errors import ModelNotFoundError

    source = tmp_path / "src"
    if broken == "no_weights":
        run_training(_cfg(tmp_path / "a", max_steps=1))
        main(["export", "--run", str(tmp_path / "a"), "--out", str(source), "--eval-splits", ""])
        (source / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="--init-from"):
        run_training(_cfg(tmp_path / "b", init_from=str(source)))
    assert not (tmp_path / "b").exists()


def test_a_refused_resume_leaves_config_json_as_it_was(tmp_path):
    from core.errors import ConfigError

    torch.set_num_threads(1)
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, ema_decay=0.9, max_steps=4), on_step=_kill_at(2))
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(ConfigError, match="ema_decay"):
        run_training(_cfg(tmp_path, ema_decay=0.0, lr=5e-2, max_steps=999), resume="latest")
    assert (tmp_path / "config.json").read_text() == before


def test_a_resume_that_changes_the_trainable_parameters_is_refused_before_config_json(tmp_path):
    from core.errors import CheckpointError, ConfigError

    torch.set_num_threads(1)
    mo = {"branch": {"dropout": 0.2}, "speech": {"trainable": True}}
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, model_overrides=mo, max_steps=4), on_step=_kill_at(2))
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(ConfigError, match="freeze_feature_layers: checkpoint 0, now 2"):
        run_training(_cfg(tmp_path, model_overrides=mo, max_steps=4, freeze_feature_layers=2), resume="latest")
    assert (tmp_path / "config.json").read_text() == before
    # a checkpoint of an older version (no parameter names): the optimiser's count is compared instead
    last = tmp_path / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    del ckpt["trainable"]
    torch.save(ckpt, last)
    with pytest.raises(ConfigError, match="freeze_feature_layers"):
        run_training(_cfg(tmp_path, model_overrides=mo, max_steps=4, freeze_feature_layers=2), resume="latest")
    # an optimiser state that does not load is a CheckpointError naming the file
    ckpt["optimizer"]["param_groups"][0]["params"] = ckpt["optimizer"]["param_groups"][0]["params"][:-1]
    ckpt["optimizer"]["param_groups"].append({**ckpt["optimizer"]["param_groups"][0], "params": [10_000]})
    torch.save(ckpt, last)
    with pytest.raises(CheckpointError, match="last.pt: its optimiser"):
        run_training(_cfg(tmp_path, model_overrides=mo, max_steps=4), resume="latest")


def test_a_resume_on_other_data_is_refused_and_a_moved_data_folder_is_not(tmp_path, caplog):
    import shutil

    from core.errors import ConfigError
    from tests.trainer.fixtures.data_layouts import make_manifest

    torch.set_num_threads(1)
    make_manifest(tmp_path / "dataA", n_images=12)
    make_manifest(tmp_path / "dataB", n_images=12, captions_per_image=3)
    kw = {"dataset": "manifest", "batch_size": 2, "max_steps": 6, "val_split": ""}
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path / "run", data_dir=str(tmp_path / "dataA"), **kw), on_step=_kill_at(2))
    before = (tmp_path / "run" / "config.json").read_text()
    with pytest.raises(ConfigError, match="the training set is not the run's .*8 utterances.*now 12"):
        run_training(_cfg(tmp_path / "run", data_dir=str(tmp_path / "dataB"), **kw), resume="latest")
    assert (tmp_path / "run" / "config.json").read_text() == before
    shutil.move(tmp_path / "dataA", tmp_path / "moved")
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    assert run_training(_cfg(tmp_path / "run", data_dir=str(tmp_path / "moved"), stop_at_step=3, **kw),
                        resume="latest").step == 3
    # a checkpoint of an older version (no fingerprint) still resumes, with a note
    del ckpt["train_data"]
    torch.save(ckpt, last)
    with caplog.at_level("INFO", logger="trainer"):
        assert run_training(_cfg(tmp_path / "run", data_dir=str(tmp_path / "moved"), **kw), resume="latest").step == 6
    assert "predates training-set fingerprints" in caplog.text


def test_a_resume_with_other_model_settings_warns_and_records_the_runs_own(tmp_path, caplog):
    torch.set_num_threads(1)
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, max_steps=4), on_step=_kill_at(2))
    new = {"branch": {"dropout": 0.2}, "aux_keyword_loss_weight": 5.0}
    with caplog.at_level("WARNING", logger="trainer"):
        run_training(_cfg(tmp_path, max_steps=4, model_overrides=new), resume="latest")
    assert "model_overrides changed" in caplog.text and "aux_keyword_loss_weight" in caplog.text
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["model_cfg"]["aux_keyword_loss_weight"] == 0.0
    own = {"branch": {"dropout": 0.2}}
    assert ckpt["config"]["model_overrides"] == own
    assert json.loads((tmp_path / "config.json").read_text())["model_overrides"] == own


def test_tensorboard_of_a_resumed_run_has_each_step_once(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.set_num_threads(1)
    with pytest.raises(_Killed):  # killed after step 5's record, with the checkpoint of step 3 the last kept
        run_training(_cfg(tmp_path, tensorboard=True, save_every_steps=3, log_every_steps=1), on_step=_kill_at(5))
    run_training(_cfg(tmp_path, tensorboard=True, save_every_steps=3, log_every_steps=1), resume="latest")
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tag = next(t for t in events.Tags()["scalars"] if t.startswith("train/"))
    steps = [e.step for e in events.Scalars(tag)]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # steps 4-5 of the killed part are hidden, not doubled


def test_a_resume_past_the_end_of_the_schedule_is_refused_before_anything_is_written(tmp_path):
    """A checkpoint at step 5 resumed with max_steps=2 (or epochs that end sooner) trained nothing, saved last.pt
    again and said "training finished": now a ConfigError naming the step and the fix, the run left as it was."""
    from core.errors import ConfigError

    torch.set_num_threads(1)
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, max_steps=6), on_step=_kill_at(5))
    before = (tmp_path / "config.json").read_text(), (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"at step 5.*max_steps=2.*--max-steps=6"):
        run_training(_cfg(tmp_path, max_steps=2), resume="latest")
    with pytest.raises(ConfigError, match=r"at step 5.*epochs=1"):  # 16 utterances / batch 4: 4 steps an epoch
        run_training(_cfg(tmp_path, max_steps=6, epochs=1), resume="latest")
    assert ((tmp_path / "config.json").read_text(), (tmp_path / "checkpoints" / "last.pt").read_bytes()) == before
    assert run_training(_cfg(tmp_path, max_steps=6), resume="latest").step == 6  # its own schedule goes on
    assert run_training(_cfg(tmp_path, max_steps=6), resume="latest").step == 6  # a finished run: nothing to do


def test_epochs_shorter_than_the_step_cadence_validate_and_save_on_the_cadence(tmp_path, caplog):
    """A fine-tune on a few pairs: one step an epoch. Validating and saving at each epoch's end meant every step."""
    torch.set_num_threads(1)
    kw = {"synthetic_size": 4, "max_steps": 8, "eval_every_steps": 4, "save_every_steps": 4}
    with caplog.at_level("INFO", logger="trainer"):
        straight = run_training(_cfg(tmp_path / "a", **kw))
    assert straight.epoch == 7  # one step an epoch (the eighth epoch is not closed when the run ends in it)
    assert "an epoch is 1 step: validating every 4 and saving every 4 steps, not at each epoch's end" in caplog.text
    records = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [4, 8]
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path / "b", **kw), on_step=_kill_at(6))
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["step"] == 4
    run_training(_cfg(tmp_path / "b", **kw), resume="latest")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["best_metric"] == b["best_metric"]
