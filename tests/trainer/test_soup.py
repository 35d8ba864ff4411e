"""`trainer export --run A --run B`: the average of runs fine-tuned from one model (trainer/soup.py)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from trainer.checkpoint import load_checkpoint
from trainer.config import load_config
from trainer.main import main
from trainer.train import run_training


def _cfg(run_dir, **kw):
    base = {"dataset": "synthetic", "synthetic_size": 8, "batch_size": 4, "max_steps": 2, "warmup_steps": 1,
            "lr": 1e-2, "run_dir": str(run_dir), "tensorboard": False, "val_split": "val", "threads": 1}
    base.update(kw)
    return load_config(None, base)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A source model and three runs from it: seeds 1 and 2, and one of another configuration."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("soup")
    run_training(_cfg(root / "src-run", max_steps=1))
    assert main(["export", "--run", str(root / "src-run"), "--out", str(root / "src"), "--eval-splits="]) == 0
    init = str(root / "src")
    run_training(_cfg(root / "a", init_from=init, seed=1))
    run_training(_cfg(root / "b", init_from=init, seed=2))
    run_training(_cfg(root / "other", init_from=init, seed=3, model_overrides={"branch": {"dropout": 0.3}}))
    return root


def test_two_runs_export_their_average(runs, tmp_path):
    out = tmp_path / "soup"
    assert main(["export", "--run", str(runs / "a"), "--run", str(runs / "b"), "--out", str(out),
                 "--eval-splits="]) == 0
    a = load_checkpoint(runs / "a" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(runs / "b" / "checkpoints" / "last.pt")["model"]
    weights = load_file(out / "model.safetensors")
    changed = [k for k in weights if k in a and a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert changed, "the two seeds trained to identical weights: the test would not see an average"
    for k in changed:
        torch.testing.assert_close(weights[k], (a[k] + b[k]) / 2)
    card = json.loads((out / "model_card.json").read_text())
    assert [s["seed"] for s in card["weight_average"]] == [1, 2]
    assert "average of 2 runs" in (out / "model_card.md").read_text()
    from core.factory import load_model

    load_model(out)  # a loadable model folder (its weights' checksum recorded)


@pytest.mark.parametrize("pair, words", [(("a", "src-run"), "same model"), (("a", "other"), "different config")])
def test_runs_that_cannot_be_averaged_are_refused(runs, tmp_path, capfd, pair, words):
    out = tmp_path / "never"
    argv = ["export", "--out", str(out), "--eval-splits="]
    for name in pair:
        argv += ["--run", str(runs / name)]
    assert main(argv) == 1
    assert words in capfd.readouterr().err
    assert not out.exists()


def test_the_same_run_twice_is_exported_once_with_a_warning(runs, tmp_path, capfd):
    out = tmp_path / "once"
    assert main(["export", "--run", str(runs / "a"), "--run", str(runs / "a" / "."), "--out", str(out),
                 "--eval-splits="]) == 0
    assert "is given more than once: it is used once" in capfd.readouterr().err
    card = json.loads((out / "model_card.json").read_text())
    assert "weight_average" not in card and "average of" not in (out / "model_card.md").read_text()
