"""The CLIP stage's re-fit of an --init-from model's CLIP (clip_refit) and its short captions (clip_partial_captions).

A re-fit must leave the token-embedding table as it was: the speech side's keywords are rows of it."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from core.errors import ConfigError
from core.factory import create_model, load_model, save_model
from core.model.config import get_model_config
from tests.trainer.test_train_resume import _cfg
from trainer.clip_stage import clip_stage_path
from trainer.synth.extra_scenes import extra_scenes
from trainer.synth.vocab import COLOURS, SHAPES
from trainer.train import run_training

TABLE = "token_embedding.weight"


def test_short_captions_come_after_the_whole_ones_and_name_objects_of_their_scene() -> None:
    whole = extra_scenes(4, seed=3, image_size=32)
    both = extra_scenes(4, seed=3, image_size=32, short_captions_per_image=2)
    for (_, w), (_, b) in zip(whole, both, strict=True):
        assert b[:3] == w and len(b) == 5  # the whole captions are the same with or without short ones
        scene_words = {x for c in w for x in c.split()}
        for short in b[3:]:
            words = short.split()
            assert any(x in COLOURS for x in words) and any(x in SHAPES for x in words)
            assert {x for x in words if x in COLOURS or x in SHAPES} <= scene_words


def _source(tmp_path):
    torch.manual_seed(0)
    save_model(create_model(get_model_config("tiny-test")), tmp_path / "src")
    return tmp_path / "src"


def _clip_overrides(**vision):
    clip = copy.deepcopy(get_model_config("tiny-test").clip.model_cfg)
    clip["vision_cfg"].update(vision)
    return {"clip": {"trainable": False, "model_cfg": clip}}


def _refit_cfg(tmp_path, **kw):
    return _cfg(tmp_path / "run", init_from=str(tmp_path / "src"), clip_refit=True, clip_train_steps=3,
                clip_batch_size=8, clip_warmup_steps=1, clip_extra_scenes=4, clip_extra_image_size=32,
                clip_partial_captions=1, max_steps=1, val_split="", **kw)


def test_a_refit_trains_both_towers_from_the_source_and_keeps_its_token_table(tmp_path) -> None:
    torch.set_num_threads(1)
    src = load_model(_source(tmp_path), device="cpu").clip.model.state_dict()
    run_training(_refit_cfg(tmp_path, model_overrides={"clip": {"trainable": False}}))
    fitted = torch.load(clip_stage_path(tmp_path / "run"), map_location="cpu", weights_only=True)["model"]
    assert torch.equal(fitted[TABLE], src[TABLE])
    text_changed = [k for k in src if k.startswith("transformer.") and not torch.equal(fitted[k], src[k])]
    vision_changed = [k for k in src if k.startswith("visual.") and not torch.equal(fitted[k], src[k])]
    assert text_changed and vision_changed
    settings = json.loads((clip_stage_path(tmp_path / "run").parent / "settings.json").read_text())
    assert settings["clip_refit"] is True and settings["clip_partial_captions"] == 1
    assert len(settings["refit_of_sha256"]) == 64  # another source model is another stage result


def test_a_refit_may_change_the_vision_tower_and_only_it(tmp_path, caplog) -> None:
    torch.set_num_threads(1)
    src = load_model(_source(tmp_path), device="cpu").clip.model.state_dict()
    with caplog.at_level("INFO"):
        run_training(_refit_cfg(tmp_path, model_overrides=_clip_overrides(patch_size=8)))
    fitted = torch.load(clip_stage_path(tmp_path / "run"), map_location="cpu", weights_only=True)["model"]
    assert fitted["visual.conv1.weight"].shape[-1] == 8 != src["visual.conv1.weight"].shape[-1]
    assert torch.equal(fitted[TABLE], src[TABLE])
    assert "vision tensors differ" in caplog.text and "start from the seed" in caplog.text


def test_without_refit_a_changed_vision_tower_is_refused_and_a_changed_text_tower_always(tmp_path) -> None:
    _source(tmp_path)
    with pytest.raises(ConfigError, match="does not fit this run's model"):
        run_training(_cfg(tmp_path / "a", init_from=str(tmp_path / "src"), max_steps=1, val_split="",
                          model_overrides=_clip_overrides(patch_size=8)))
    text = copy.deepcopy(get_model_config("tiny-test").clip.model_cfg)
    text["text_cfg"]["width"] = 48
    with pytest.raises(ConfigError, match="does not fit this run's model"):
        run_training(_cfg(tmp_path / "b", init_from=str(tmp_path / "src"), clip_refit=True, clip_train_steps=2,
                          max_steps=1, val_split="", model_overrides={"clip": {"trainable": False, "model_cfg": text}}))


def test_refit_needs_a_source_model_and_a_clip_stage(tmp_path) -> None:
    with pytest.raises(ConfigError, match="clip_refit .* needs --init-from=MODEL_DIR and clip_train_steps > 0"):
        _cfg(tmp_path / "run", clip_refit=True, clip_train_steps=2)
    _source(tmp_path)
    with pytest.raises(ConfigError, match="clip_refit .* needs"):
        _cfg(tmp_path / "run", clip_refit=True, init_from=str(tmp_path / "src"))
    with pytest.raises(ConfigError, match="--clip-refit=true"):  # a CLIP stage on a source model says how
        run_training(_cfg(tmp_path / "run", init_from=str(tmp_path / "src"), clip_train_steps=2))
    with pytest.raises(ConfigError, match="clip_partial_captions=-1 must be >= 0"):
        _cfg(tmp_path / "run", clip_partial_captions=-1)
