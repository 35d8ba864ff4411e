"""SpeechClipModel on the tiny random config: branches, gradients, padding, overfitting, inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.model.config import MODEL_TYPES

B = 4
SR = 16000


def _batch(seed: int = 0, embed_dim: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor([SR, 12000, 9000, SR])
    wav = torch.randn(B, SR, generator=g) * 0.1
    wav[torch.arange(SR)[None, :] >= lens[:, None]] = 0.0
    feats = torch.nn.functional.normalize(torch.randn(B, embed_dim, generator=g), dim=-1)
    return {"wav": wav, "wav_lens": lens, "image_ids": torch.tensor([0, 1, 0, 2]), "image_feats": feats}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_branch_forward_backward_and_frozen_parts_get_no_grad(make_tiny_model, model_type: str) -> None:
    model = make_tiny_model(model_type)
    model.train()
    assert not model.upstream.backbone.training and not model.clip.model.training  # frozen stay in eval
    batch = _batch()
    batch["images"] = torch.randn(B, 3, 32, 32)
    del batch["image_feats"]
    loss = model.compute_loss(batch)
    assert torch.isfinite(loss.total)
    cfg = model.config
    assert ("parallel" in loss.parts) == cfg.has_parallel and ("cascaded" in loss.parts) == cfg.has_cascaded
    assert ("quantity" in loss.parts) == cfg.uses_cif
    loss.total.backward()
    for name, p in model.upstream.backbone.named_parameters():
        assert p.grad is None, name
    for name, p in model.clip.model.named_parameters():
        assert p.grad is None, name
    assert model.upstream.weighted_sum.weights.grad is not None
    head = [p for n, p in model.branch.named_parameters()]
    assert head and all(p.grad is not None for p in head if p.requires_grad)
    assert sum(float(p.grad.abs().sum()) for p in head) > 0
    # only the weighted sum is trainable in a frozen upstream
    up_trainable = [n for n, p in model.upstream.named_parameters() if p.requires_grad]
    assert up_trainable == ["weighted_sum.weights"]
    out = model(batch["wav"], batch["wav_lens"])
    assert out.query.shape == (B, 32)
    torch.testing.assert_close(out.query.norm(dim=-1), torch.ones(B))


def test_cascaded_gradient_reaches_the_heads_through_vq_and_frozen_text_encoder(make_tiny_model) -> None:
    model = make_tiny_model("cascaded_plus")
    model.train()
    loss = model.compute_loss(_batch())
    model.zero_grad()
    loss.parts["cascaded"].backward()
    proj = model.branch.head.proj.weight.grad
    alpha_w = model.branch.cif.weight.proj.weight.grad
    assert proj is not None and proj.abs().sum() > 0
    assert alpha_w is not None and alpha_w.abs().sum() > 0  # CIF weights learn from the contrastive loss


@pytest.mark.parametrize("model_type", ["hybrid_plus", "parallel", "cascaded"])
def test_a_few_steps_overfit_a_tiny_batch(make_tiny_model, model_type: str) -> None:
    model = make_tiny_model(model_type)
    model.train()
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
    batch = _batch(1)
    batch["image_ids"] = torch.arange(B)
    t = torch.arange(SR) / SR  # four tones: inputs a frozen random upstream can tell apart
    tones = torch.stack([torch.sin(2 * torch.pi * f * t) * 0.1 for f in (200, 500, 1200, 3000)])
    batch["wav"] = tones * (torch.arange(SR)[None, :] < batch["wav_lens"][:, None])
    losses = []
    for _ in range(20):
        loss = model.compute_loss(batch)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        losses.append(float(loss.total.detach()))
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses


@pytest.mark.parametrize("model_type", ["hybrid_plus", "hybrid", "cascaded_plus", "parallel"])
def test_padding_does_not_change_an_items_output(make_tiny_model, model_type: str) -> None:
    model = make_tiny_model(model_type).eval()
    g = torch.Generator().manual_seed(3)
    short = torch.randn(1, 11000, generator=g) * 0.1
    long = torch.randn(1, SR, generator=g) * 0.1
    wav = torch.zeros(2, SR)
    wav[0, :11000] = short[0]
    wav[1] = long[0]
    with torch.no_grad():
        both = model(wav, torch.tensor([11000, SR]))
        alone = model(short, torch.tensor([11000]))
    for name in ("parallel", "cascaded", "query"):
        a, b = getattr(alone, name), getattr(both, name)
        if a is not None:
            torch.testing.assert_close(a[0], b[0], atol=2e-5, rtol=1e-4)
    if alone.cif is not None:
        n = int(alone.frame_lens[0])
        torch.testing.assert_close(alone.alpha[0, :n], both.alpha[0, :n], atol=2e-5, rtol=1e-4)
        assert (both.alpha[0, n:] == 0).all()
        assert int(alone.cif.lengths[0]) == int(both.cif.lengths[0])


def test_infer_keywords_decode_to_strings_and_segments_lie_inside_the_audio(tiny_model) -> None:
    wav = (np.random.default_rng(0).standard_normal(int(2.3 * SR)) * 0.1).astype(np.float32)
    q = tiny_model.infer(wav)
    assert q.duration_s == pytest.approx(2.3)
    assert q.query_vector.shape == (32,) and q.query_vector.dtype == np.float32
    assert abs(float(np.linalg.norm(q.query_vector)) - 1) < 1e-5
    assert q.parallel_vector is not None and q.cascaded_vector is not None
    assert len(q.alpha) == 114 and (q.alpha > 0).all()  # 2.3 s -> 114 frames of 20 ms
    assert q.units and len(q.units) == len(q.segments)
    for u in q.units:
        assert len(u.candidates) == tiny_model.config.keyword_top_k
        assert all(isinstance(t, str) and t for t, _ in u.candidates)
        scores = [s for _, s in u.candidates]
        assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
        assert u.token.replace("</w>", "") == u.candidates[0][0]
        assert tiny_model.clip.decode_token(u.token_id) == u.candidates[0][0]
    prev_end = 0.0
    for s in q.segments:
        assert 0.0 <= s.start_s <= s.end_s <= q.duration_s
        assert s.start_s == pytest.approx(prev_end)
        prev_end = s.end_s
    assert q.keywords and all(isinstance(k.text, str) and k.text and "</w>" not in k.text for k in q.keywords)
    for k in q.keywords:
        assert 0.0 <= k.start_s <= k.end_s <= q.duration_s


def test_infer_batch_equals_infer_one_by_one(tiny_model) -> None:
    rng = np.random.default_rng(1)
    wavs = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (SR, 27000, 9000)]
    batch = tiny_model.infer_batch(wavs)
    for w, qb in zip(wavs, batch, strict=True):
        q1 = tiny_model.infer(w)
        np.testing.assert_allclose(q1.query_vector, qb.query_vector, atol=3e-5)
        assert [u.token for u in q1.units] == [u.token for u in qb.units]
        assert [(s.start_s, s.end_s) for s in q1.segments] == [(s.start_s, s.end_s) for s in qb.segments]


def test_infer_restores_training_mode(tiny_model) -> None:
    tiny_model.train()
    tiny_model.infer(np.zeros(SR, np.float32))
    assert tiny_model.training and tiny_model.branch.training


def test_cls_models_have_units_without_time(make_tiny_model) -> None:
    model = make_tiny_model("hybrid").eval()
    q = model.infer((np.random.default_rng(2).standard_normal(SR) * 0.1).astype(np.float32))
    assert len(q.units) == model.config.branch.num_cls and q.segments == []
    assert all(u.frame == -1 and u.start_s == 0.0 and u.end_s == q.duration_s for u in q.units)
    assert len(q.keywords) == len(q.units) and (q.alpha == 0).all()


def test_set_step_turns_scaling_off(tiny_model) -> None:
    tiny_model.train()
    batch = _batch()
    target = torch.round(tiny_model.upstream.frame_lengths(batch["wav_lens"]) / 20).clamp_min(1)
    out = tiny_model(batch["wav"], batch["wav_lens"])
    assert out.cif.lengths.tolist() == target.long().tolist()
    tiny_model.set_step(10**6)
    out = tiny_model(batch["wav"], batch["wav_lens"])
    assert out.cif.lengths.tolist() != target.long().tolist()  # random alpha ~0.5 per frame fires far more


def test_trainable_upstream_gets_gradients(make_tiny_model) -> None:
    model = make_tiny_model("parallel", speech={"trainable": True})
    model.train()
    assert model.upstream.backbone.training
    model.compute_loss(_batch()).total.backward()
    # masked_spec_embed is only used by SpecAugment (mask_time_prob = 0 in tiny-test); the stable-layer-norm
    # encoder's final layer_norm only feeds last_hidden_state, not the hidden states the weighted sum reads
    unused = ("masked_spec_embed", "encoder.layer_norm.weight", "encoder.layer_norm.bias")
    grads = {n: p.grad for n, p in model.upstream.backbone.named_parameters() if n not in unused}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    assert sum(float(g.abs().sum()) for g in grads.values()) > 0


def test_very_short_input_still_gives_a_query(tiny_model) -> None:
    q = tiny_model.infer(np.zeros(100, np.float32))
    assert q.duration_s == pytest.approx(100 / SR) and np.isfinite(q.query_vector).all()
    assert all(s.end_s <= q.duration_s for s in q.segments)


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # inside transformers' WavLM
@pytest.mark.parametrize("source", ["wav2vec2", "wavlm"])
def test_other_upstream_families_build_and_run(make_tiny_model, tiny_config, source: str) -> None:
    hf = dict(tiny_config.speech.hf_config)
    if source == "wavlm":
        hf["num_buckets"] = 32
        hf["max_bucket_distance"] = 64
    model = make_tiny_model("parallel", speech={"source": source, "hf_config": hf}).eval()
    assert type(model.upstream.backbone).__name__.lower().startswith(source)
    q = model.infer((np.random.default_rng(4).standard_normal(SR) * 0.1).astype(np.float32))
    assert q.query_vector.shape == (32,) and np.isfinite(q.query_vector).all()


def test_text_token_targets_and_auxiliary_keyword_loss(make_tiny_model) -> None:
    model = make_tiny_model("hybrid_plus", aux_keyword_loss_weight=0.5, cif={"target": "text_tokens"})
    model.train()
    captions = ["a red dog", "two cats on the grass", "a tree", "blue sky"]
    tokens = model.clip.tokenize(captions)
    rows, counts = model.caption_token_rows(tokens)
    assert counts.tolist() == [3, 5, 2, 2]
    batch = _batch()
    batch.update(target_counts=counts, token_ids=tokens)
    loss = model.compute_loss(batch)
    out = model(batch["wav"], batch["wav_lens"], counts)
    assert out.cif.lengths.tolist() == [3, 5, 2, 2]  # scaling fires exactly the caption's token count
    assert torch.isfinite(loss.parts["keyword_ce"]) and float(loss.parts["keyword_ce"].detach()) > 0
    assert (rows[0, :3] >= 0).all()
    model.zero_grad()
    loss.parts["keyword_ce"].backward()
    assert model.branch.head.proj.weight.grad.abs().sum() > 0
    without = make_tiny_model("hybrid_plus").compute_loss(batch)
    assert "keyword_ce" not in without.parts
