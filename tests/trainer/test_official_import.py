"""Import of checkpoints in the authors' exact layout (one per branch type): every tensor lands where it should,
and the imported model computes what the authors' code computes (references written from raw tensors)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.factory import load_model
from core.official.importer import import_official
from tests.trainer import official_reference as ref
from tests.trainer.official_fixtures import VARIANTS, reduced_vocab_ids, write_official_checkpoint

HEADS = {"hybrid_plus": 8, "cascaded_plus": 1, "hybrid": 1, "cascaded": 1, "parallel": 8}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, torch.Tensor], object, Path]]:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("official")
    out = {}
    for i, v in enumerate(VARIANTS):
        ckpt = root / f"{v}.ckpt"
        written = write_official_checkpoint(ckpt, v, seed=i)
        folder = import_official(ckpt, root / f"model_{v}")
        out[v] = (dict(written), load_model(folder, device="cpu"), folder)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_derived_from_hyper_parameters(imported, variant: str) -> None:
    _sd, model, folder = imported[variant]
    cfg = model.config
    assert cfg.branch.model_type == variant
    assert cfg.retrieval == {"hybrid_plus": "parallel", "cascaded_plus": "cascaded", "hybrid": "cascaded",
                             "parallel": "parallel", "cascaded": "cascaded"}[variant]
    assert cfg.branch.cascaded_nhead == (8 if variant == "hybrid_plus" else 1)
    assert cfg.branch.num_cls == 8
    assert cfg.speech.normalize_waveform == (variant not in ("parallel", "cascaded"))  # SCP base: dataset flag
    assert cfg.speech.hf_config["num_hidden_layers"] == 2 and cfg.speech.hf_config["hidden_size"] == 128
    assert cfg.cif.dropout == 0.5 and cfg.branch.bn_include_padding
    if variant in ("hybrid_plus", "cascaded_plus"):  # the quirks reach the modules that use them
        assert model.branch.cif.weight.dropout.p == 0.5 and model.branch.head.bn.include_padding
    assert cfg.temperature_trainable == (variant not in ("parallel", "cascaded"))
    card = json.loads((folder / "model_card.json").read_text())
    assert card["variant"] == variant and card["epoch"] == 81
    vocab = json.loads((folder / "vocab.json").read_text())
    assert vocab == cfg.clip.vocab_ids
    assert sorted(vocab) == sorted(reduced_vocab_ids(VARIANTS.index(variant)).tolist())


@pytest.mark.parametrize("variant", VARIANTS)
def test_upstream_equals_fairseq_computation(imported, variant: str) -> None:
    sd, model, _ = imported[variant]
    wav = torch.randn(2, 6400, generator=torch.Generator().manual_seed(1))
    backbone = model.upstream.backbone
    with torch.no_grad():
        conv0 = backbone.feature_extractor.conv_layers[0](wav[:, None, :])
        torch.testing.assert_close(conv0, ref.conv0_output(sd, wav), rtol=0, atol=1e-6)
        states = backbone(wav, output_hidden_states=True).hidden_states
        expected = ref.fairseq_hubert_states(sd, wav)
        assert len(states) == len(expected) == 3
        for ours, theirs in zip(states, expected, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.upstream.weighted_sum(list(states)), ref.weighted_sum(sd, expected),
                                   rtol=1e-5, atol=1e-5)


def test_integrate_and_fire_equals_authors_also_below_one_unit_of_weight() -> None:
    """A short or quiet query (sum of alpha < 1): the authors' count clip gives one unscaled unit, as the CIF
    module does (min_units=1); sums above 1 with and without a tail agree too."""
    from core.model.cif import integrate_and_fire

    g = torch.Generator().manual_seed(5)
    x = torch.randn(5, 6, 3, generator=g)
    alpha = torch.tensor([[0.05, 0.1, 0.1, 0.05, 0.0, 0.0], [0.2, 0.3, 0.2, 0.0, 0.0, 0.0],
                          [0.4, 0.5, 0.4, 0.0, 0.0, 0.0], [0.5, 0.6, 0.6, 0.0, 0.0, 0.0], [0.0] * 6])
    ours = integrate_and_fire(x, alpha, min_units=1)
    theirs, lengths = ref.authors_integrate_and_fire(x, alpha)
    assert ours.lengths.tolist() == lengths.tolist() == [1, 1, 1, 2, 1]
    torch.testing.assert_close(ours.fired, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["hybrid_plus", "cascaded_plus"])
def test_cif_weights_equal_authors_alpha(imported, variant: str) -> None:
    sd, model, _ = imported[variant]
    x = torch.randn(2, 30, 128, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, 30, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(model.branch.cif.weight(x, mask), ref.cif_alpha(sd, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["hybrid_plus", "cascaded_plus", "hybrid", "cascaded"])
def test_projection_batchnorm_and_vq_equal_authors(imported, variant: str) -> None:
    sd, model, _ = imported[variant]
    n = 8
    x = torch.randn(3, n, 128, generator=torch.Generator().manual_seed(3))
    keyword_bn = variant in ("hybrid", "cascaded")
    head = model.branch.head
    with torch.no_grad():
        z_ref, ids_ref = ref.project_and_quantize(sd, x, keyword_bn)
        z = head.bn(head.proj(x), torch.ones(3, n, dtype=torch.bool))
        torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5)
        q = head.vq(z, model.clip.keyword_table, model.clip.special_mask)
    vocab = reduced_vocab_ids(VARIANTS.index(variant))
    assert model.clip.table_orig_ids[q.ids].tolist() == vocab[ids_ref.numpy()].tolist()
    # the keyword table is exactly the checkpoint's reduced table (rows in our sorted-id order)
    order = np.argsort(vocab)
    assert torch.equal(model.clip.keyword_table, sd["clip.model.token_embedding.weight"][torch.as_tensor(order)])


@pytest.mark.parametrize("variant", ["hybrid_plus", "hybrid", "parallel"])
def test_parallel_projection_and_temperature(imported, variant: str) -> None:
    sd, model, _ = imported[variant]
    x = torch.randn(4, 128, generator=torch.Generator().manual_seed(4))
    key = "parallel_branch.linear_proj" if variant == "parallel" else "cascaded_branch.parallel_proj"
    with torch.no_grad():
        torch.testing.assert_close(model.branch.proj(x), ref.cls_parallel_vector(sd, x, key), rtol=1e-6, atol=1e-6)
    assert math.isclose(float(model.log_logit_scale.detach()), ref.log_temperature(sd), rel_tol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_whole_model_equals_authors_forward(imported, variant: str) -> None:
    """End to end on single utterances: waveform layer-norm, HuBERT, weighted sum, attention, CIF firing with
    tail handling, BN, VQ, CLIP text tower over [SOT, keywords, EOT]: same vectors and keywords as the authors'."""
    sd, model, _ = imported[variant]
    vocab = reduced_vocab_ids(VARIANTS.index(variant))
    for length in (16000, 23456):
        wav = torch.randn(1, length, generator=torch.Generator().manual_seed(length)) * 0.3
        with torch.no_grad():
            theirs = ref.authors_forward(sd, variant, wav, normalize_waveform=model.config.speech.normalize_waveform,
                                         heads=HEADS[variant])
            ours = model(wav, torch.tensor([length]))
        for name in ("parallel", "cascaded"):
            if name in theirs:
                torch.testing.assert_close(getattr(ours, name), theirs[name], rtol=1e-5, atol=1e-5)
            else:
                assert getattr(ours, name) is None
        if "reduced_ids" in theirs:
            n = int(theirs["lengths"][0])
            assert int(ours.keywords.lengths[0]) == n
            got = model.clip.table_orig_ids[ours.keywords.ids[0, :n]].tolist()
            assert got == vocab[theirs["reduced_ids"][0, :n].numpy()].tolist()
        if "alpha" in theirs:
            torch.testing.assert_close(ours.alpha, theirs["alpha"], rtol=1e-5, atol=1e-6)


def test_image_tower_equals_openai_computation(imported) -> None:
    sd, model, _ = imported["hybrid_plus"]
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model.clip.encode_image(images), ref.openai_encode_image(sd, images),
                                   rtol=1e-5, atol=1e-5)


def test_keywords_decode_to_the_recovered_words(imported) -> None:
    _sd, model, _ = imported["cascaded_plus"]
    vocab = reduced_vocab_ids(VARIANTS.index("cascaded_plus"))
    assert sorted(model.config.clip.vocab_ids) == sorted(vocab.tolist())
    q = model.infer(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    allowed = {model.clip.decode_token(int(i)) for i in vocab}
    assert q.units and all(c[0] in allowed for u in q.units for c in u.candidates)

