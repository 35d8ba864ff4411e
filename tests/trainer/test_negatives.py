"""bank_negatives: speech->image negatives from the cached features of the training images."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from core.errors import ConfigError
from tests.trainer.test_train_resume import _cfg
from trainer.checkpoint import load_checkpoint
from trainer.loop.batches import BatchPreparer, collate_items
from trainer.loop.negatives import NegativeBank
from trainer.main import main
from trainer.train import run_training


def _cache(keys):
    feats = torch.arange(len(keys), dtype=torch.float32)[:, None].repeat(1, 3)  # row r holds r
    row = {k: r for r, k in enumerate(keys)}
    return SimpleNamespace(lookup=lambda ks: feats[[row[k] for k in ks]])


KEYS = [f"img{i:02d}" for i in range(10)]


def test_the_bank_leaves_out_the_batchs_images() -> None:
    bank = NegativeBank(_cache(KEYS), KEYS, -1)
    got = bank.draw(["img03", "img07", "img03", "elsewhere"])  # repeats and keys outside the bank are fine
    assert sorted(got[:, 0].int().tolist()) == [0, 1, 2, 4, 5, 6, 8, 9]


def test_a_drawn_subset_depends_on_the_batch_only() -> None:
    a = NegativeBank(_cache(KEYS), KEYS, 4, seed=1)
    b = NegativeBank(_cache(KEYS), KEYS, 4, seed=1)
    first = a.draw(["img00", "img01"])
    assert first.shape == (4, 3) and not {0, 1} & set(first[:, 0].int().tolist())
    torch.testing.assert_close(b.draw(["img00", "img01"]), first)  # a resumed run draws the same
    draws = {tuple(a.draw([k]).flatten().tolist()) for k in KEYS}
    assert len(draws) > 1  # another batch, another subset
    assert NegativeBank(_cache(KEYS), KEYS, 50).draw(["img00"]).shape == (9, 3)  # at most the bank


@pytest.mark.parametrize("count", [0, -2])
def test_a_bad_count_is_refused(count) -> None:
    with pytest.raises(ConfigError, match="bank_negatives"):
        NegativeBank(_cache(KEYS), KEYS, count)


def test_the_preparer_adds_the_negatives(tiny_config) -> None:
    from core.model.clip_tower import ClipTower

    clip = ClipTower(tiny_config.clip)
    items = [{"wav": torch.zeros(800), "image_id": i, "image_key": KEYS[i], "text": "a red circle"} for i in (2, 5)]
    prep = BatchPreparer(clip, torch.device("cpu"), cache=_cache(KEYS), negatives=NegativeBank(_cache(KEYS), KEYS, -1))
    out = prep(collate_items(items))
    assert out["negative_feats"].shape == (8, 3) and "image_feats" in out


def test_under_ddp_the_bank_leaves_out_every_ranks_images(tiny_config) -> None:
    from core.model.clip_tower import ClipTower

    clip = ClipTower(tiny_config.clip)
    items = [{"wav": torch.zeros(800), "image_id": i, "image_key": KEYS[i], "text": "a red circle"} for i in (2, 5)]
    other_rank = ["img07", "img08"]  # what trainer.distributed.gather_keys adds from the other process
    prep = BatchPreparer(clip, torch.device("cpu"), cache=_cache(KEYS), negatives=NegativeBank(_cache(KEYS), KEYS, -1),
                         global_keys=lambda keys: keys + other_rank)
    got = prep(collate_items(items))["negative_feats"][:, 0].int().tolist()
    assert sorted(got) == [0, 1, 3, 4, 6, 9]


def test_training_with_bank_negatives_runs_and_differs(tmp_path) -> None:
    torch.set_num_threads(1)
    kw = {"max_steps": 3, "val_split": "", "synthetic_size": 32}
    run_training(_cfg(tmp_path / "plain", **kw))
    run_training(_cfg(tmp_path / "bank", bank_negatives=-1, **kw))
    a = load_checkpoint(tmp_path / "plain" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "bank" / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the extra negatives changed the gradients
    # the model card says so (an auxiliary signal beyond the paper, and how to switch it off)
    assert main(["export", "--run", str(tmp_path / "bank"), "--out", str(tmp_path / "model"), "--eval-splits="]) == 0
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["auxiliary_signals"]["bank_negatives"] == -1 and "bank_negatives=0" in card["auxiliary_signals"]["switch_off"]
    assert "every training image beyond the batch" in (tmp_path / "model" / "model_card.md").read_text()


@pytest.mark.parametrize("over", [{"bank_negatives": -3}, {"bank_negatives": -1, "cache_image_features": False}])
def test_bank_negatives_without_a_cache_fail_before_training(tmp_path, over) -> None:
    with pytest.raises(ConfigError, match="bank_negatives"):
        run_training(_cfg(tmp_path, **over))
    assert not (tmp_path / "checkpoints" / "last.pt").exists()
