"""Model parts: CLIP keyword encoding, reduced vocabularies, VQ, keyword BN, losses, upstream, sub-word merging."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from core.model.cif import integrate_and_fire
from core.model.clip_tower import ClipTower
from core.model.inference import Unit, merge_subwords, segments_from_fire_frames
from core.model.losses import keyword_token_loss, masked_info_nce, quantity_loss
from core.model.upstream import SpeechUpstream, WeightedSumLayer, normalize_waveform
from core.model.vq import CosineVectorQuantizer, DynamicKeywordBatchNorm, KeywordBatchNorm


def test_encode_keywords_with_caption_token_embeddings_equals_encode_text(tiny_config) -> None:
    torch.manual_seed(0)
    clip = ClipTower(tiny_config.clip)
    texts = ["a red dog on the grass", "two cats", "a"]
    tokens = clip.tokenize(texts)
    emb = clip.model.token_embedding.weight
    eot = int(clip.orig_to_tower[clip.eot_id])
    lengths = (tokens == eot).int().argmax(1) - 1
    kw = torch.zeros(len(texts), int(lengths.max()), emb.shape[1])
    for i, n in enumerate(lengths.tolist()):
        kw[i, :n] = emb[tokens[i, 1 : 1 + n]]
    got = F.normalize(clip.encode_keywords(kw, lengths), dim=-1)
    torch.testing.assert_close(got, clip.encode_text(texts), atol=1e-5, rtol=1e-5)
    # keywords beyond an item's length are ignored
    kw2 = kw.clone()
    kw2[2, 1:] = 5.0
    torch.testing.assert_close(F.normalize(clip.encode_keywords(kw2, lengths), dim=-1), got, atol=1e-6, rtol=1e-6)


def test_compact_vocab_maps_ids_both_ways_and_decodes(tiny_config) -> None:
    clip = ClipTower(tiny_config.clip)
    orig = clip.table_orig_ids
    assert clip.compact and clip.model.token_embedding.weight.shape[0] == len(orig)
    assert orig.tolist() == sorted(orig.tolist()) and int(orig[-1]) == clip.eot_id  # EOT largest (argmax pool)
    assert (clip.orig_to_tower[orig] == torch.arange(len(orig))).all()
    assert (clip.tower_to_row[torch.arange(len(orig))] == torch.arange(len(orig))).all()
    assert int(clip.special_mask.sum()) == 3
    toks = clip.tokenize(["a dog", "a zyzzyva dog"])  # an out-of-vocabulary word is dropped
    assert toks[0].tolist()[:4] == toks[1].tolist()[:4]
    words = [clip.decode_token(int(orig[r])) for r in toks[0, 1:3].tolist()]
    assert words == ["a", "dog"]
    assert clip.table_texts()[int(toks[0, 2])] == "dog</w>"


def test_preprocess_gives_the_image_tower_input(tiny_config) -> None:
    from PIL import Image

    clip = ClipTower(tiny_config.clip)
    x = clip.preprocess(Image.new("L", (80, 50), 128))
    assert x.shape == (3, 32, 32) and clip.image_size == 32
    assert clip.encode_image(x[None]).shape == (1, 32)
    ident = clip.identity
    assert len(ident) == 64 and clip.identity == ident
    with torch.no_grad():
        clip.model.visual.proj.add_(0.01)
    clip.set_trainable(False)  # resets the cached identity
    assert clip.identity != ident


def test_reduced_table_on_a_full_vocab_tower(tiny_config) -> None:
    from core.model.config import ClipConfig

    cfg = ClipConfig(model_cfg=tiny_config.clip.model_cfg, vocab_ids=[320, 1929, 2368], compact_text_vocab=False)
    clip = ClipTower(cfg)
    assert not clip.compact and clip.model.token_embedding.weight.shape[0] == 49408
    assert clip.keyword_table.shape == (6, 32)  # 3 ids + pad, SOT, EOT
    torch.testing.assert_close(clip.keyword_table[1], clip.model.token_embedding.weight[320])
    assert int(clip.tower_to_row[1929]) == 2 and int(clip.tower_to_row[1000]) == -1


def test_vq_picks_cosine_nearest_non_special_row_and_is_straight_through() -> None:
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    special = torch.tensor([False, False, False, True])
    vq = CosineVectorQuantizer(0.1).train()
    x = torch.tensor([[[10.0, 0.5], [-3.0, 0.0]]], requires_grad=True)
    out = vq(x, table, special)
    assert out.ids.tolist() == [[0, 1]]  # row 3 is closest to the second vector but is masked
    torch.testing.assert_close(out.embeds.detach(), table[[0, 1]].unsqueeze(0))
    out.embeds.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # softmax(s / tau) carries the gradient
    vq.eval()
    ev = vq(x, table, special, torch.nn.functional.normalize(table, dim=-1))
    assert ev.ids.tolist() == [[0, 1]]
    torch.testing.assert_close(ev.embeds, out.embeds.detach())  # gather == forward value of the product


def test_normalised_table_cache_follows_in_place_weight_changes(tiny_config) -> None:
    clip = ClipTower(tiny_config.clip)
    a = clip.keyword_table_normed()
    assert a is clip.keyword_table_normed()
    torch.testing.assert_close(a, F.normalize(clip.keyword_table, dim=-1))
    with torch.no_grad():
        clip.model.token_embedding.weight.mul_(-1.0)
    torch.testing.assert_close(clip.keyword_table_normed(), -a)
    clip.set_trainable(True)
    assert clip.keyword_table_normed() is None


def test_normalised_table_first_made_under_inference_mode_serves_training(tiny_config) -> None:
    """Evaluation (inference_mode) may be the first to ask, e.g. a run resumed at an epoch end validates before it
    trains: the cached table must still work in a graph that back-propagates (it raised "Inference tensors
    cannot be saved for backward")."""
    clip = ClipTower(tiny_config.clip)
    with torch.inference_mode():
        clip.keyword_table_normed()
    x = torch.randn(3, clip.keyword_table.shape[1], requires_grad=True)
    (F.normalize(x, dim=-1) @ clip.keyword_table_normed().t()).logsumexp(-1).sum().backward()
    assert x.grad is not None


def test_keyword_batchnorms_init_from_table_and_ignore_padding() -> None:
    table = torch.randn(50, 4) * 3 + 1
    bn = KeywordBatchNorm(2, 4, table)
    torch.testing.assert_close(bn.bn.weight, table.std(0).repeat(2))
    torch.testing.assert_close(bn.bn.bias, table.mean(0).repeat(2))
    assert bn(torch.randn(5, 2, 4)).shape == (5, 2, 4)
    dyn = DynamicKeywordBatchNorm(4, table).train()
    x = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    a = dyn(x, mask)
    x2 = x.clone()
    x2[~mask] = 1000.0  # garbage on padding must not change the statistics
    b = DynamicKeywordBatchNorm(4, table).train()(x2, mask)
    torch.testing.assert_close(a, b)
    assert (a[~mask] == 0).all()
    with_pad = DynamicKeywordBatchNorm(4, table, include_padding=True).train()(x2, mask)
    assert not torch.allclose(with_pad[mask], a[mask])  # the authors' variant (for imported checkpoints)


def test_masked_info_nce_masks_same_image_negatives_only() -> None:
    torch.manual_seed(0)
    s = F.normalize(torch.randn(4, 8), dim=-1)
    i = F.normalize(torch.randn(4, 8), dim=-1)
    ids = torch.tensor([7, 7, 3, 5])
    scale = 10.0
    got = masked_info_nce(s, i, ids, ids, scale)
    logits = scale * s @ i.t()
    mask = (ids[:, None] == ids[None, :]) & ~torch.eye(4, dtype=torch.bool)
    lg = logits.masked_fill(mask, -math.inf)
    want = 0.5 * (F.cross_entropy(lg, torch.arange(4)) + F.cross_entropy(lg.t(), torch.arange(4)))
    torch.testing.assert_close(got, want)
    unmasked = masked_info_nce(s, i, torch.arange(4), torch.arange(4), scale)
    assert not torch.allclose(got, unmasked)


def test_masked_info_nce_with_gathered_images_matches_full_batch_speech_to_image() -> None:
    torch.manual_seed(1)
    s = F.normalize(torch.randn(6, 8), dim=-1)
    i = F.normalize(torch.randn(6, 8), dim=-1)
    ids = torch.tensor([0, 1, 2, 0, 4, 5])
    full_rows = F.cross_entropy((10 * s @ i.t()).masked_fill(
        (ids[:, None] == ids[None, :]) & ~torch.eye(6, dtype=torch.bool), -math.inf), torch.arange(6),
        reduction="none")
    # "rank 1" holds speech rows 3..5 and every image
    local = masked_info_nce(s[3:], i, ids[3:], ids, 10.0, speech_offset=3)
    assert torch.isfinite(local)
    s2i_local = 0.5 * full_rows[3:].mean()
    assert float(local) > float(s2i_local)  # plus the image->speech half


def test_quantity_and_keyword_token_losses() -> None:
    assert float(quantity_loss(torch.tensor([3.0, 5.0]), torch.tensor([4, 5]))) == pytest.approx(0.5)
    logits = torch.full((1, 3, 5), -1.0)
    logits[0, 0, 2] = logits[0, 1, 4] = 1.0
    good = keyword_token_loss(logits, torch.tensor([2]), torch.tensor([[2, 4, 1]]), torch.tensor([2]), 0.1)
    bad = keyword_token_loss(logits, torch.tensor([2]), torch.tensor([[1, 1, 1]]), torch.tensor([2]), 0.1)
    assert float(good) < 0.01 < float(bad)


def test_frozen_upstream_stays_in_eval_without_grad_and_weighted_sum_learns(tiny_config) -> None:
    up = SpeechUpstream(tiny_config.speech)
    up.train()
    assert not up.backbone.training and up.training
    wav = torch.randn(2, 8000)
    feats, lens = up(wav, torch.tensor([8000, 5000]))
    assert feats.shape == (2, 24, 32) and lens.tolist() == [24, 15]
    feats.sum().backward()
    assert up.weighted_sum.weights.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in up.backbone.parameters())


def test_the_last_state_is_the_last_layers_raw_output_not_layer_normed(tiny_config) -> None:
    # fairseq's layer_results (reference section 1.2) hold each layer's raw output; transformers 4.x put the
    # final LayerNorm into the last hidden state of stable-layer-norm (pre-LN) models such as HuBERT Large
    # and the default: another feature for the same weights (pyproject asks for transformers >= 5)
    up = SpeechUpstream(tiny_config.speech)
    assert up.backbone.config.do_stable_layer_norm
    layer_out, summed = [], []
    up.backbone.encoder.layers[-1].register_forward_hook(
        lambda m, i, o: layer_out.append(o if isinstance(o, torch.Tensor) else o[0]))
    up.weighted_sum.register_forward_pre_hook(lambda m, args: summed.append(args[0]))
    up(torch.randn(1, 8000), torch.tensor([8000]))
    assert torch.equal(summed[0][-1], layer_out[0].float())


def test_trainable_upstream_trains_its_convs_without_a_gradient_for_the_raw_wave(tiny_config) -> None:
    up = SpeechUpstream(dataclasses.replace(tiny_config.speech, trainable=True))
    up.train()
    seen = []
    first = up.backbone.feature_extractor.conv_layers[0].conv
    handle = first.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].requires_grad))
    feats, _ = up(torch.randn(2, 8000), torch.tensor([8000, 5000]))
    handle.remove()
    assert seen == [False]  # transformers would mark the wave as requiring grad: a wasted conv backward
    feats.sum().backward()
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_weighted_sum_starts_as_the_mean_and_normalize_waveform_ignores_padding() -> None:
    states = [torch.randn(2, 3, 4) for _ in range(3)]
    torch.testing.assert_close(WeightedSumLayer(3)(states), torch.stack(states).mean(0))
    ln = WeightedSumLayer(3, layer_norm=True)(states)
    torch.testing.assert_close(ln, torch.stack([F.layer_norm(s, (4,)) for s in states]).mean(0))
    wav = torch.randn(2, 100) * 5 + 2
    wav[1, 60:] = 0.0
    out = normalize_waveform(wav, torch.tensor([100, 60]))
    assert (out[1, 60:] == 0).all()
    torch.testing.assert_close(out[1, :60], F.layer_norm(wav[1:2, :60], (60,))[0], atol=1e-5, rtol=1e-4)


def _unit(i: int, token: str, start: float, end: float, score: float = 0.5) -> Unit:
    return Unit(i, i, start, end, [(token.replace("</w>", ""), score)], token, 0)


def test_subwords_merge_into_words_with_times() -> None:
    units = [_unit(0, "sky", 0.0, 0.2, 0.4), _unit(1, "scraper</w>", 0.2, 0.5, 0.6), _unit(2, "red</w>", 0.5, 0.9),
             _unit(3, "bal", 0.9, 1.0)]
    words = merge_subwords(units, timed=True)
    assert [(w.text, w.start_s, w.end_s) for w in words] == [("skyscraper", 0.0, 0.5), ("red", 0.5, 0.9),
                                                             ("bal", 0.9, 1.0)]
    assert words[0].score == pytest.approx(0.5)
    assert [w.text for w in merge_subwords(units, timed=False)] == ["sky", "scraper", "red", "bal"]


def test_segments_from_fire_frames_are_contiguous_and_clipped() -> None:
    segs = segments_from_fire_frames([3, 10, 60], duration_s=1.0)
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 0.08), (0.08, 0.22), (0.22, 1.0)]


def test_units_firing_in_one_frame_share_it() -> None:
    alpha = torch.tensor([[0.3, 0.4, 0.9]])  # a full fire and the tail, both in the last frame
    out = integrate_and_fire(torch.ones(1, 3, 4), alpha, 1.0, tail_threshold=0.5)
    frames = out.fire_frames[0, : int(out.lengths[0])].tolist()
    assert frames == [2, 2]
    segs = segments_from_fire_frames(frames, duration_s=0.06, frame_s=0.02)
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 0.05), (0.05, 0.06)]


def test_keyword_bn_reinit_after_the_clip_tower_changed(make_tiny_model) -> None:
    model = make_tiny_model("hybrid")
    with torch.no_grad():
        model.clip.model.token_embedding.weight.mul_(3.0).add_(1.0)
    model.init_keyword_bn_from_table()
    table = model.clip.keyword_table
    bn = model.branch.head.bn.bn
    torch.testing.assert_close(bn.weight, table.std(0).repeat(model.config.branch.num_cls))
    torch.testing.assert_close(bn.bias, table.mean(0).repeat(model.config.branch.num_cls))


def test_masked_info_nce_extra_negatives_join_the_speech_to_image_side_only() -> None:
    torch.manual_seed(2)
    s = F.normalize(torch.randn(4, 8), dim=-1)
    i = F.normalize(torch.randn(4, 8), dim=-1)
    neg = F.normalize(torch.randn(5, 8), dim=-1)
    ids = torch.tensor([0, 1, 2, 2])
    scale = 10.0
    lg = (scale * s @ i.t()).masked_fill((ids[:, None] == ids[None, :]) & ~torch.eye(4, dtype=torch.bool), -math.inf)
    s2i = F.cross_entropy(torch.cat([lg, scale * s @ neg.t()], dim=1), torch.arange(4))
    want = 0.5 * (s2i + F.cross_entropy(lg.t(), torch.arange(4)))
    torch.testing.assert_close(masked_info_nce(s, i, ids, ids, scale, extra_negatives=neg), want)
    # none (or an empty set) is the paper's in-batch loss; a negative that looks like a positive costs more
    plain = masked_info_nce(s, i, ids, ids, scale)
    torch.testing.assert_close(masked_info_nce(s, i, ids, ids, scale, extra_negatives=neg[:0]), plain)
    aligned = masked_info_nce(s, s, ids, ids, scale)  # each utterance on its own image
    hard = masked_info_nce(s, s, ids, ids, scale, extra_negatives=s.clone())  # copies of the positives
    easy = masked_info_nce(s, s, ids, ids, scale, extra_negatives=-s)
    assert hard > easy > aligned


def test_min_samples_is_the_conv_stacks_receptive_field_and_shorter_queries_are_padded(tiny_config) -> None:
    import numpy as np

    from core.factory import create_model

    hf = {**tiny_config.speech.hf_config, "conv_kernel": [20, 8, 4, 4], "conv_stride": [10, 4, 4, 4],
          "conv_dim": [16, 16, 16, 16]}  # the default's 25 Hz stack
    cfg = tiny_config.replace(speech=dataclasses.replace(tiny_config.speech, hf_config=hf))
    model = create_model(cfg).eval()
    n = model.upstream.min_samples
    lens = model.upstream.frame_lengths(torch.tensor([n - 1, n]))
    assert n == 690 and lens.tolist() == [0, 1]
    q = model.infer(np.random.default_rng(0).standard_normal(500).astype(np.float32) * 0.1)  # 400 < 500 < n
    assert q.query_vector.shape == (cfg.clip.model_cfg["embed_dim"],)
    assert SpeechUpstream(tiny_config.speech).min_samples == 400  # HuBERT Base's 25 ms


def test_attention_block_is_the_methods_unless_output_dropout_is_asked_for(tiny_config) -> None:
    """Reference §1.4: MHA (its own dropout) + residual + LayerNorm. With the MHA's dropout off, the method's block
    is deterministic in training; the output dropout (the embedded default's setting) is not."""
    from core.model.branches import AttentionAndNorm
    from core.model.config import get_model_config

    torch.manual_seed(0)
    x, pad = torch.randn(2, 7, 16), torch.zeros(2, 7, dtype=torch.bool)
    for output_dropout, deterministic in ((False, True), (True, False)):
        block = AttentionAndNorm(16, 2, 0.5, output_dropout)
        block.attn.dropout = 0.0
        block.eval()
        ref = block(x, pad)
        block.train()
        assert torch.allclose(block(x, pad), ref) is deterministic
    assert tiny_config.branch.attention_output_dropout is False  # the default is the method
    assert get_model_config("default-small").branch.attention_output_dropout is True  # as its runs had it


def test_a_training_batch_of_clips_shorter_than_the_conv_stack_or_a_time_mask_trains(tiny_config) -> None:
    """A batch whose longest clip is shorter than the receptive field (conv error), or, with a trainable
    upstream's SpecAugment, than one time mask (transformers' "`mask_length` has to be smaller than
    `sequence_length`"), stopped a training run mid-way; the wave is now zero-padded to what the backbone
    accepts, the lengths kept (as inference pads a short query)."""
    from core.factory import create_model

    hf = {**tiny_config.speech.hf_config, "mask_time_prob": 0.5, "mask_time_length": 10}
    cfg = tiny_config.replace(speech=dataclasses.replace(tiny_config.speech, hf_config=hf, trainable=True))
    torch.manual_seed(0)
    model = create_model(cfg).train()
    assert model.upstream.min_samples == 400
    dim = cfg.clip.model_cfg["embed_dim"]
    for n in (1, 300, 2000):  # 2000 samples: 5 frames, half a time mask
        batch = {"wav": 0.1 * torch.randn(2, n), "wav_lens": torch.tensor([n, max(1, n // 2)]),
                 "image_ids": torch.tensor([0, 1]), "image_feats": F.normalize(torch.randn(2, dim), dim=-1),
                 "target_counts": torch.tensor([2, 1])}
        loss = model.compute_loss(batch).total
        assert torch.isfinite(loss), n
        loss.backward()
    model.eval()
    feats, frame_lens = model.upstream(0.1 * torch.randn(1, 300), torch.tensor([300]))
    assert feats.shape[1] == 1 and frame_lens.tolist() == [1]  # eval: one receptive field, no mask
