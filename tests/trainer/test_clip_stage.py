"""Stage 1 of the default model: the CLIP tower trained on the dataset's captions (+ extra synthetic scenes)."""

from __future__ import annotations

import json

import numpy as np
import torch

from trainer.clip_stage import clip_stage_path
from trainer.config import load_config
from trainer.synth.extra_scenes import extra_scenes
from trainer.synth.vocab import COLOURS, SHAPES
from trainer.train import run_training


def test_extra_scenes_are_deterministic_and_captioned_with_their_objects() -> None:
    a = extra_scenes(3, seed=5, image_size=32)
    b = extra_scenes(3, seed=5, image_size=32)
    assert [c for _, c in a] == [c for _, c in b]
    assert np.array_equal(np.asarray(a[0][0]), np.asarray(b[0][0])) and a[0][0].size == (32, 32)
    assert extra_scenes(1, seed=6, image_size=32)[0][1] != a[0][1]
    for _, caps in a:
        assert len(caps) == 3
        for c in caps:
            words = c.split()
            assert any(w in COLOURS for w in words) and any(w in SHAPES for w in words)


def test_clip_stage_trains_the_tower_on_captions_and_extra_scenes_then_freezes_it(tmp_path) -> None:
    torch.set_num_threads(1)
    cfg = load_config(None, {
        "dataset": "synthetic", "synthetic_size": 8, "batch_size": 4, "max_steps": 1, "warmup_steps": 0,
        "run_dir": str(tmp_path / "run"), "tensorboard": False, "val_split": "", "threads": 1,
        "model_overrides": {"clip": {"trainable": False}},
        "clip_train_steps": 3, "clip_batch_size": 8, "clip_warmup_steps": 1, "clip_extra_scenes": 4,
        "clip_extra_image_size": 32})
    run_training(cfg)
    saved = torch.load(clip_stage_path(cfg.run_dir), map_location="cpu", weights_only=True)
    from core.factory import create_model
    from core.model.clip_tower import ClipTower

    with torch.random.fork_rng():  # the stage's starting point: a tower drawn from the run's seed
        torch.manual_seed(cfg.seed)
        init = ClipTower(create_model(cfg.model).clip.cfg).model.state_dict()
    assert saved["model"].keys() == init.keys()
    changed = [k for k, v in saved["model"].items() if not torch.equal(v, init[k])]
    assert len(changed) > len(init) // 2  # the stage trained the tower
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "clip" for r in log) >= 2


def _stage_cfg(run_dir, **kw):
    return load_config(None, {
        "dataset": "synthetic", "synthetic_size": 8, "batch_size": 4, "max_steps": 4, "warmup_steps": 0,
        "run_dir": str(run_dir), "tensorboard": False, "val_split": "", "threads": 1, "save_every_steps": 100,
        "model_overrides": {"clip": {"trainable": False}}, "clip_train_steps": 2, "clip_batch_size": 8,
        "clip_warmup_steps": 1, **kw})


class _Killed(Exception):
    pass


def _kill(step):
    if step == 1:
        raise _Killed


def test_the_clip_stage_is_reused_only_with_its_own_settings_and_always_by_a_resume(tmp_path, caplog) -> None:
    import pytest

    torch.set_num_threads(1)
    run = tmp_path / "run"
    path = clip_stage_path(run)
    with pytest.raises(_Killed):  # killed after the CLIP stage, before the first checkpoint
        run_training(_stage_cfg(run), on_step=_kill)
    first = path.read_bytes()
    assert json.loads((path.parent / "settings.json").read_text())["clip_train_steps"] == 2
    with pytest.raises(_Killed):  # the same settings: reused as it is
        run_training(_stage_cfg(run), on_step=_kill)
    assert path.read_bytes() == first
    with caplog.at_level("WARNING", logger="trainer.clip_stage"), pytest.raises(_Killed):
        run_training(_stage_cfg(run, clip_train_steps=3, clip_lr=1e-2), on_step=_kill)  # a new run, new settings
    assert "trained with other clip_lr, clip_train_steps; training the stage again" in caplog.text
    second = path.read_bytes()
    assert second != first and json.loads((path.parent / "settings.json").read_text())["clip_train_steps"] == 3
    # a resumed run keeps its stage whatever the settings say now
    with pytest.raises(_Killed):
        run_training(_stage_cfg(tmp_path / "b", save_every_steps=1), on_step=_kill)
    kept = clip_stage_path(tmp_path / "b").read_bytes()
    caplog.clear()
    with caplog.at_level("WARNING", logger="trainer.clip_stage"):
        run_training(_stage_cfg(tmp_path / "b", save_every_steps=1, clip_lr=1e-2), resume="latest")
    assert "a resumed run keeps it" in caplog.text and clip_stage_path(tmp_path / "b").read_bytes() == kept


def test_the_clip_stage_trains_a_resnet_image_tower_with_batch_statistics(tmp_path) -> None:
    """The CLIP is frozen (eval mode) until its stage: a ResNet's BatchNorms must learn running statistics there,
    or the tower trains without normalisation and is scored with its initial statistics."""
    import copy

    from core.model.config import get_model_config

    torch.set_num_threads(1)
    clip = copy.deepcopy(get_model_config("tiny-test").clip.model_cfg)
    clip["vision_cfg"] = {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8}
    cfg = _stage_cfg(tmp_path / "run", clip_extra_scenes=4, clip_extra_image_size=32, max_steps=1,
                     model_overrides={"clip": {"trainable": False, "model_cfg": clip}})
    run_training(cfg)
    saved = torch.load(clip_stage_path(cfg.run_dir), map_location="cpu", weights_only=True)["model"]
    means = [v for k, v in saved.items() if k.startswith("visual.") and k.endswith("running_mean")]
    assert means and all(bool(m.abs().sum() > 0) for m in means)  # updated from batches: not the zeros they start at


def test_a_later_stage_card_names_the_clip_stage_of_its_init_from_model(tmp_path) -> None:
    """A speech stage started from an earlier stage's export trains no CLIP of its own: its card names the CLIP
    stage that made its (frozen) CLIP, from that model's card, instead of "0 steps"."""
    from trainer.main import main

    torch.set_num_threads(1)
    run_training(_stage_cfg(tmp_path / "a", max_steps=1))
    assert main(["export", "--run", str(tmp_path / "a"), "--out", str(tmp_path / "a-export"), "--eval-splits="]) == 0
    first = json.loads((tmp_path / "a-export" / "model_card.json").read_text())["clip_stage"]
    assert first["steps"] == 2 and "from" not in first
    run_training(_stage_cfg(tmp_path / "b", max_steps=1, clip_train_steps=0, init_from=str(tmp_path / "a-export")))
    assert main(["export", "--run", str(tmp_path / "b"), "--out", str(tmp_path / "b-export"), "--eval-splits="]) == 0
    card = json.loads((tmp_path / "b-export" / "model_card.json").read_text())
    assert card["clip_stage"] == {**first, "from": str(tmp_path / "a-export")}
    assert card["training"]["config"]["clip_train_steps"] == 0  # the run's own settings stay as they were
    md = (tmp_path / "b-export" / "model_card.md").read_text()
    assert "- CLIP stage: 2 steps on the training captions" in md and f"the CLIP of `{tmp_path / 'a-export'}`" in md
    # a source model without a card (or moved since): no steps are claimed
    (tmp_path / "a-export" / "model_card.json").unlink()
    assert main(["export", "--run", str(tmp_path / "b"), "--out", str(tmp_path / "c-export"), "--eval-splits="]) == 0
    assert json.loads((tmp_path / "c-export" / "model_card.json").read_text())["clip_stage"]["steps"] == 0


def _counting_loss(monkeypatch, at, action):
    """masked_info_nce of the CLIP stage, doing `action()` in its call number `at` (step at-1)."""
    import trainer.clip_stage as stage

    real, calls = stage.masked_info_nce, []

    def loss(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            action()
        return real(*args, **kwargs)

    monkeypatch.setattr(stage, "masked_info_nce", loss)
    return real


def _same_weights(a_run, b_run):
    a = torch.load(clip_stage_path(a_run), map_location="cpu", weights_only=True)["model"]
    b = torch.load(clip_stage_path(b_run), map_location="cpu", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    from trainer.checkpoint import load_checkpoint

    sa = load_checkpoint(a_run / "checkpoints" / "last.pt")["model"]
    sb = load_checkpoint(b_run / "checkpoints" / "last.pt")["model"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_a_clip_stage_killed_part_way_continues_from_its_progress_exactly(tmp_path, monkeypatch) -> None:
    """It trained the stage from its start again (the 1-hour recipe's stage: ~10 min on the 2-core CPU)."""
    import pytest

    torch.set_num_threads(1)
    kw = {"clip_train_steps": 6, "save_every_steps": 2, "max_steps": 2}
    run_training(_stage_cfg(tmp_path / "a", **kw))

    def kill():
        raise _Killed

    real = _counting_loss(monkeypatch, 5, kill)  # killed in step 4: progress.pt holds step 4
    with pytest.raises(_Killed):
        run_training(_stage_cfg(tmp_path / "b", **kw))
    progress = clip_stage_path(tmp_path / "b").parent / "progress.pt"
    assert torch.load(progress, weights_only=True)["step"] == 4
    import trainer.clip_stage as stage

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(stage, "masked_info_nce", counted)
    run_training(_stage_cfg(tmp_path / "b", **kw), resume="latest")
    assert len(calls) == 2 and not progress.exists()  # steps 4 and 5 only; the finished stage drops it
    _same_weights(tmp_path / "a", tmp_path / "b")


def test_a_signal_in_the_clip_stage_saves_its_step_and_stops(tmp_path, monkeypatch) -> None:
    import os
    import signal

    from trainer.loop.stop import StopSignals

    torch.set_num_threads(1)
    kw = {"clip_train_steps": 6, "save_every_steps": 100, "max_steps": 2}
    run_training(_stage_cfg(tmp_path / "a", **kw))
    real = _counting_loss(monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGTERM))  # during step 2
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with StopSignals() as stop:
            result = run_training(_stage_cfg(tmp_path / "b", **kw), stop=stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (result.stopped_by, result.step, result.stopped_in) == (
        signal.SIGTERM, 0, "in the CLIP stage after its step 3 of 6")
    assert torch.load(result.saved, weights_only=True)["step"] == 3 and not clip_stage_path(tmp_path / "b").exists()
    import trainer.clip_stage as stage

    monkeypatch.setattr(stage, "masked_info_nce", real)
    run_training(_stage_cfg(tmp_path / "b", **kw), resume="latest")
    log = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["kind"] == "clip_resume"] == [3]
    _same_weights(tmp_path / "a", tmp_path / "b")


def test_clip_stage_progress_of_other_settings_or_unreadable_is_not_continued(tmp_path, monkeypatch, caplog) -> None:
    import pytest

    torch.set_num_threads(1)

    def kill():
        raise _Killed

    real = _counting_loss(monkeypatch, 4, kill)
    with pytest.raises(_Killed):
        run_training(_stage_cfg(tmp_path / "b", clip_train_steps=6, save_every_steps=2, max_steps=2))
    import trainer.clip_stage as stage

    monkeypatch.setattr(stage, "masked_info_nce", real)
    progress = clip_stage_path(tmp_path / "b").parent / "progress.pt"
    assert progress.exists()
    caplog.set_level("INFO", logger="trainer")  # whatever an earlier test left the root logger at
    run_training(_stage_cfg(tmp_path / "b", clip_train_steps=5, save_every_steps=2, max_steps=2), resume="latest")
    assert "saved with other settings; training the stage from its start" in caplog.text
    log = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert not any(r["kind"] == "clip_resume" for r in log)
    progress.parent.joinpath("clip.pt").unlink()  # as if killed again part-way, its progress file torn
    progress.write_bytes(b"torn")
    run_training(_stage_cfg(tmp_path / "b", clip_train_steps=5, save_every_steps=2, max_steps=2), resume="latest")
    assert "cannot be continued (unreadable, perhaps cut short" in caplog.text
    assert clip_stage_path(tmp_path / "b").exists()
    assert "use another checkpoint" not in caplog.text  # load_checkpoint's advice is not the choice here


def test_a_signal_in_the_clip_stages_validation_stops_before_the_speech_stage(tmp_path, monkeypatch) -> None:
    import os
    import signal

    import trainer.clip_stage as stage
    from trainer.loop.stop import StopSignals

    torch.set_num_threads(1)
    real = stage.text_to_image_r1

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(stage, "text_to_image_r1", signalled)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with StopSignals() as stop:
            result = run_training(_stage_cfg(tmp_path / "r", val_split="val"), stop=stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (result.stopped_by, result.stopped_in, result.saved) == (
        signal.SIGTERM, "after the CLIP stage", clip_stage_path(tmp_path / "r"))
    assert result.saved.exists() and not (tmp_path / "r" / "checkpoints").exists()
    monkeypatch.setattr(stage, "text_to_image_r1", real)
    assert run_training(_stage_cfg(tmp_path / "r", val_split="val"), resume="latest").step == 4
