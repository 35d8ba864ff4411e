"""Training stops cleanly on a non-finite gradient; a checkpoint saved at a validation step carries that
validation's best metric (a resumed run must not replace best.pt with a worse model); the explosion guard's
recent losses travel with the checkpoint (a resumed run is watched from its first step)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.trainer.test_train_resume import _cfg as _resume_cfg
from tests.trainer.test_train_resume import _kill_at, _Killed
from trainer import train as train_mod
from trainer.checkpoint import load_checkpoint
from trainer.loop.guard import LossGuard, TrainingDiverged
from trainer.run_checks import resumed_best
from trainer.train import run_training


def _cfg(run_dir, **kw):
    return _resume_cfg(run_dir, **{"eval_every_steps": 2, **kw})


def _finite(ckpt) -> bool:
    return all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_an_inf_gradient_with_a_finite_loss_stops_before_the_weights_change(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    real = train_mod.optimizer_step

    def inf_grad_at_step_1(loss_module, group, optimizer, *a, step=0, **k):
        hooks = []
        if step == 1:
            p = next(p for p in loss_module.model.parameters() if p.requires_grad)
            hooks.append(p.register_hook(lambda g: torch.full_like(g, math.inf)))
        try:
            return real(loss_module, group, optimizer, *a, step=step, **k)
        finally:
            for h in hooks:
                h.remove()

    monkeypatch.setattr(train_mod, "optimizer_step", inf_grad_at_step_1)
    with pytest.raises(TrainingDiverged, match="gradient norm is (inf|nan) at step 1") as err:
        run_training(_cfg(tmp_path))
    assert "last.pt" in str(err.value)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["step"] == 1 and _finite(last)


def test_the_checkpoint_of_a_validation_step_carries_its_best_metric(tmp_path):
    torch.set_num_threads(1)
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, save_every_steps=2), on_step=_kill_at(2))
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert last["step"] == best["step"] == 2
    assert last["best_metric"] is not None and last["best_metric"] == best["best_metric"]


def test_a_resumed_run_guards_with_the_losses_before_the_kill(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    seen: list[list[float]] = []

    class Recording(LossGuard):
        def check(self, loss, step):
            seen.append(list(self.recent))
            super().check(loss, step)

    monkeypatch.setattr(train_mod, "LossGuard", Recording)
    run_training(_cfg(tmp_path / "a", eval_every_steps=0))
    straight = list(seen)
    seen.clear()
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path / "b", eval_every_steps=0), on_step=_kill_at(3))
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["loss_guard"] == [straight[3]]
    seen.clear()
    run_training(_cfg(tmp_path / "b", eval_every_steps=0), resume="latest")
    assert len(straight[3]) == 3 and seen == straight[3:]


def test_a_non_finite_validation_score_never_becomes_the_best(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    real = train_mod.validation_metrics
    calls = []

    def first_nan(*a, **k):
        vals = real(*a, **k)
        calls.append(vals)
        if len(calls) == 1:
            vals["score"] = float("nan")
        return vals

    monkeypatch.setattr(train_mod, "validation_metrics", first_nan)
    res = run_training(_cfg(tmp_path, max_steps=6))
    assert len(calls) >= 2 and math.isnan(calls[0]["score"])
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["step"] > 2 and math.isfinite(best["best_metric"]) and res.best_metric == best["best_metric"]
    assert max(v["score"] for v in calls[1:]) == best["best_metric"]


def test_one_validation_per_step_when_eval_every_steps_lands_on_an_epoch_end(tmp_path):
    import json

    torch.set_num_threads(1)
    run_training(_cfg(tmp_path, max_steps=8, eval_every_steps=2))  # 4 steps per epoch
    steps = [r["step"] for r in map(json.loads, (tmp_path / "log.jsonl").read_text().splitlines())
             if r["kind"] == "val"]
    assert steps == [2, 4, 6, 8]


def test_a_resumed_run_knows_the_score_of_a_best_pt_saved_after_its_last_pt(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    kw = {"synthetic_size": 32, "max_steps": 8, "save_every_steps": 2, "eval_every_steps": 3, "eval_every_epochs": 0}
    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, **kw), on_step=_kill_at(3))  # last.pt at step 2, best.pt at step 3
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["step"] == 3 and load_checkpoint(tmp_path / "checkpoints" / "last.pt")["best_metric"] is None
    real = train_mod.validation_metrics

    def worse(*a, **k):  # the replayed step 3 scores lower (another lr, workers: not a bit-exact replay)
        vals = real(*a, **k)
        vals["score"] = best["best_metric"] - 0.1
        return vals

    monkeypatch.setattr(train_mod, "validation_metrics", worse)
    res = run_training(_cfg(tmp_path, stop_at_step=3, **kw), resume="latest")
    after = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert after["best_metric"] == best["best_metric"] == res.best_metric
    assert all(torch.equal(after["model"][k], best["model"][k]) for k in best["model"])


def test_the_best_pt_of_another_run_or_a_non_finite_score_is_not_taken(tmp_path):
    path = tmp_path / "best.pt"
    ckpt = {"run_id": "a", "best_metric": 0.5}
    torch.save({"run_id": "b", "best_metric": 0.9}, path)
    assert resumed_best(ckpt, path) == 0.5
    torch.save({"run_id": "a", "best_metric": 0.9}, path)
    assert resumed_best(ckpt, path) == 0.9
    assert resumed_best({"run_id": "a", "best_metric": float("nan")}, tmp_path / "none.pt") is None
