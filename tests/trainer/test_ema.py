"""The EMA of the trainable weights: its update rule, a killed run resumes it exactly, validation and export use
it, and a resume with another ema_decay is refused."""

from __future__ import annotations

import pytest
import torch

from core.errors import ConfigError
from core.factory import load_model
from trainer.checkpoint import load_checkpoint
from trainer.config import load_config
from trainer.export import export_checkpoint
from trainer.loop.ema import WeightEma, inference_weights
from trainer.train import run_training


class _Killed(Exception):
    pass


def _cfg(run_dir, **kw):
    base = {"dataset": "synthetic", "synthetic_size": 16, "batch_size": 4, "max_steps": 6, "warmup_steps": 2,
            "lr": 1e-3, "save_every_steps": 1, "run_dir": str(run_dir), "tensorboard": False, "ema_decay": 0.9,
            "val_split": "val", "threads": 1}
    base.update(kw)
    return load_config(None, base)


def test_update_follows_the_warmed_up_decay_and_skips_frozen_weights():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[1].requires_grad_(False)
    ema = WeightEma(model, 0.99)
    assert set(ema.shadow) == {"0.weight", "0.bias"}
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update()  # first decay: min(0.99, 1 / 10) = 0.1
    assert torch.allclose(ema.shadow["0.weight"], 0.1 * start + 0.9 * (start + 1.0))
    assert ema.current_decay() == pytest.approx(2 / 11)
    trained = model[0].weight.detach().clone()
    with ema.applied():
        assert torch.equal(model[0].weight, ema.shadow["0.weight"])
    assert torch.equal(model[0].weight, trained)


def test_killed_run_resumes_the_ema_exactly_and_export_writes_it(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    import trainer.train as train_module

    seen = []
    real = train_module.validation_metrics

    def spy(model, *args, **kwargs):
        seen.append({k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "validation_metrics", spy)
    run_training(_cfg(tmp_path / "a"))
    monkeypatch.undo()

    def kill(step):
        if step == 3:
            raise _Killed

    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path / "b"), on_step=kill)
    run_training(_cfg(tmp_path / "b"), resume="latest")
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["ema"]["updates"] == b["ema"]["updates"] == 6
    for k, v in a["ema"]["shadow"].items():
        assert torch.equal(v, b["ema"]["shadow"][k]), k
    assert any(not torch.equal(v, a["model"][k]) for k, v in a["ema"]["shadow"].items())  # it is an average

    card = export_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt", tmp_path / "model")
    assert card["weight_ema"] == {"decay": 0.9, "updates": 6}
    assert "exponential moving average" in (tmp_path / "model" / "model_card.md").read_text()
    exported = load_model(tmp_path / "model", device="cpu").state_dict()
    expected = inference_weights(a)
    name = next(iter(a["ema"]["shadow"]))
    assert torch.equal(exported[name], expected[name]) and torch.equal(expected[name], a["ema"]["shadow"][name])
    # validation scored the averaged weights (the last validation ran after the last update)
    for k, v in a["ema"]["shadow"].items():
        assert torch.equal(seen[-1][k], v), k


def test_resume_with_another_ema_setting_is_refused(tmp_path):
    torch.set_num_threads(1)

    def kill(step):
        if step == 2:
            raise _Killed

    with pytest.raises(_Killed):
        run_training(_cfg(tmp_path, max_steps=4), on_step=kill)
    with pytest.raises(ConfigError, match="ema_decay"):
        run_training(_cfg(tmp_path, max_steps=4, ema_decay=0.0), resume="latest")


def test_ema_decay_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="ema_decay"):
        load_config(None, {"dataset": "synthetic", "ema_decay": 1.0})
