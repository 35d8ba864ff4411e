"""DDP's find_unused_parameters is on exactly where a training step can leave a trainable parameter without a
gradient (trainer.loop.step.unused_parameters_reason): measured here on one step of the tiny model for every
branch type. The 2-process run that fails without the flag is in test_ddp.py."""

from __future__ import annotations

import pytest
import torch

from core.factory import create_model
from core.model.config import get_model_config
from trainer.loop.step import LossModule, unused_parameters_reason

BRANCHES = ["parallel", "cascaded", "cascaded_plus", "hybrid", "hybrid_plus"]
RETRIEVAL = {"parallel": "parallel", "cascaded": "cascaded", "cascaded_plus": "cascaded"}


def _model(model_type: str, **overrides):
    torch.manual_seed(0)
    branch = {"model_type": model_type, **overrides.pop("branch", {})}
    cfg = get_model_config("tiny-test").replace(branch=branch, retrieval=RETRIEVAL.get(model_type, "mean"),
                                                **overrides)
    model = create_model(cfg)
    model.train()
    return model


def _batch(model, images: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    lens = torch.tensor([16000, 12000, 14000, 9000])
    batch = {"wav": torch.randn(4, 16000, generator=g) * (torch.arange(16000)[None] < lens[:, None]),
             "wav_lens": lens, "image_ids": torch.tensor([0, 1, 0, 2]), "target_counts": torch.tensor([3, 2, 3, 4]),
             "token_ids": model.clip.tokenize(["a red ball", "a dog", "a red ball on grass", "two cats"]),
             "boundary_frames": torch.tensor([[10, 20, -1], [15, -1, -1], [8, 16, 30], [12, 25, -1]]),
             "boundary_start_frames": torch.tensor([2, 3, 1, 2])}
    if images:
        batch["images"] = torch.randn(4, 3, 32, 32, generator=g)
    else:
        batch["image_feats"] = torch.nn.functional.normalize(torch.randn(4, 32, generator=g), dim=-1)
    return batch


def _unused_after_one_step(model, images: bool = False) -> list[str]:
    loss, _ = LossModule(model)(_batch(model, images))
    loss.backward()
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("branch", BRANCHES)
def test_heads_only_reach_every_parameter_so_ddp_needs_no_search(branch):
    # loss weights at zero, the auxiliary keyword and boundary losses on, CIF past its scaling phase: all still
    # reach every trainable parameter of the heads (the paper's setup: frozen HuBERT and CLIP)
    for overrides, step in [({}, 0),
                            ({"branch": {"parallel_loss_weight": 0.0, "cascaded_loss_weight": 0.0},
                              "cif": {"quantity_loss_weight": 0.0}, "aux_keyword_loss_weight": 0.1,
                              "aux_boundary_loss_weight": 0.1}, 10**6)]:
        model = _model(branch, **overrides)
        model.set_step(step)
        assert _unused_after_one_step(model) == [], (branch, overrides)
        assert unused_parameters_reason(model) is None


@pytest.mark.parametrize("branch", ["parallel", "hybrid_plus"])
def test_a_training_backbone_can_miss_the_loss_and_turns_the_search_on(branch):
    clip = _model(branch, clip={"trainable": True})
    missed = _unused_after_one_step(clip, images=True)
    assert "clip.model.logit_scale" in missed  # open_clip's own temperature: the loss uses the model's
    assert any(n.startswith("clip.model.transformer.") for n in missed) == (branch == "parallel")
    assert "CLIP tower" in unused_parameters_reason(clip)
    upstream = _model(branch, speech={"trainable": True})  # tiny-test is pre-LN: its final LayerNorm is left out
    assert "upstream.backbone.encoder.layer_norm.weight" in _unused_after_one_step(upstream)
    assert "speech upstream" in unused_parameters_reason(upstream)
