"""Published-file layouts beyond the five Base variants: HuBERT Large + the kw_projection MLP (Large c+), and
the TransformerEncoder hybrid block (SpeechCLIP+ Large COCO hybrid). Same checks as test_official_import."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import CheckpointError, ModelNotFoundError
from core.factory import load_model
from core.official.importer import import_official
from tests.trainer import official_reference as ref
from tests.trainer.official_fixtures import write_official_checkpoint


def test_large_layout_hubert_large_and_mlp_projection(tmp_path: Path) -> None:
    """HuBERT Large layout (LayerNorm in every conv block, conv bias, pre-LN layers, task `normalize`) and the
    Large c+ kw_projection MLP: converted, configured and computing what the authors' code computes."""
    ckpt = tmp_path / "large_c+.ckpt"
    sd = dict(write_official_checkpoint(ckpt, "cascaded_plus", large=True, mlp=True, seed=7))
    assert "cascaded_branch.linear_proj.sequential.3.weight" in sd
    model = load_model(import_official(ckpt, tmp_path / "m"), device="cpu")
    hf = model.config.speech.hf_config
    assert hf["feat_extract_norm"] == "layer" and hf["do_stable_layer_norm"] and hf["conv_bias"]
    assert model.config.speech.normalize_waveform  # fairseq task normalize = True for hubert_large_ll60k
    assert model.config.branch.projection == "mlp" and model.config.branch.projection_dims == [128]
    assert model.config.branch.cascaded_nhead == 8
    wav = torch.randn(1, 16000, generator=torch.Generator().manual_seed(8)) * 0.3
    with torch.no_grad():
        states = model.upstream.backbone(wav, output_hidden_states=True).hidden_states
        for ours, theirs in zip(states, ref.fairseq_hubert_states(sd, wav, large=True), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        theirs = ref.authors_forward(sd, "cascaded_plus", wav, normalize_waveform=True, heads=8, large=True)
        ours = model(wav, torch.tensor([16000]))
    torch.testing.assert_close(ours.cascaded, theirs["cascaded"], rtol=1e-5, atol=1e-5)


def test_hybrid_with_transformer_block(tmp_path: Path) -> None:
    """SpeechCLIP+ Large COCO hybrid: the hybrid block is the authors' TransformerEncoder (with FFN)."""
    ckpt = tmp_path / "hybrid_tf.ckpt"
    sd = dict(write_official_checkpoint(ckpt, "hybrid", transformer_block=True, seed=9))
    model = load_model(import_official(ckpt, tmp_path / "m"), device="cpu")
    assert model.config.branch.cascaded_block == "transformer" and model.config.branch.ffn_dim == 256
    _assert_hybrid_equals_authors(model, sd, seed=10)


def _assert_hybrid_equals_authors(model, sd: dict, seed: int) -> None:
    wav = torch.randn(1, 16000, generator=torch.Generator().manual_seed(seed)) * 0.3
    with torch.no_grad():
        theirs = ref.authors_forward(sd, "hybrid", wav, normalize_waveform=True, heads=1)
        ours = model(wav, torch.tensor([16000]))
    torch.testing.assert_close(ours.parallel, theirs["parallel"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.cascaded, theirs["cascaded"], rtol=1e-5, atol=1e-5)


def test_hybrid_with_an_mlp_parallel_head(tmp_path: Path) -> None:
    """The authors' KW_HybridBranch builds MLPLayers for the parallel head when parallel_branch.projection_config
    is set (their Large Flickr hybrid yaml): imported as branch.parallel_projection_dims, same vectors."""
    from tests.trainer.official_fixtures import TINY, build_config, build_state_dict

    sd = build_state_dict("hybrid", seed=11)
    h, e = TINY.hidden, TINY.embed
    del sd["cascaded_branch.parallel_proj.weight"], sd["cascaded_branch.parallel_proj.bias"]
    g = torch.Generator().manual_seed(12)
    for name, shape in (("0.weight", (h, h)), ("0.bias", (h,)), ("3.weight", (e, h)), ("3.bias", (e,))):
        sd["cascaded_branch.parallel_proj.sequential." + name] = torch.randn(*shape, generator=g) / h ** 0.5
    cfg = build_config("hybrid")
    ms = cfg["model_settings"]
    ms["parallel_branch"]["projection_config"] = {"dropout": 0.1, "dimensions": [h, h, e]}
    ckpt = tmp_path / "hybrid_mlp.ckpt"
    write_official_checkpoint(ckpt, "hybrid", state_dict=sd, config=cfg)
    model = load_model(import_official(ckpt, tmp_path / "m"), device="cpu")
    assert model.config.branch.parallel_projection_dims == [h]
    _assert_hybrid_equals_authors(model, sd, seed=13)
    # the config and the weights must agree
    del ms["parallel_branch"]["projection_config"]
    write_official_checkpoint(ckpt, "hybrid", state_dict=sd, config=cfg)
    with pytest.raises(CheckpointError, match="MLP in the weights but not in the config"):
        import_official(ckpt, tmp_path / "m2")


def test_heads_only_checkpoint_with_supplied_backbones(tmp_path: Path) -> None:
    """A checkpoint stripped of both towers imports from a transformers HuBERT folder + an OpenAI-named CLIP
    state-dict file + the authors' vocabulary .npy, giving the same model as the complete file."""
    import numpy as np
    from safetensors.torch import save_file
    from transformers import HubertConfig, HubertModel

    from core.official.convert_hubert import hubert_config_from_tensors, rename_fairseq_hubert
    from core.official.importer import convert_checkpoint
    from core.official.safe_load import load_official_checkpoint
    from tests.trainer.official_fixtures import build_state_dict, reduced_vocab_ids

    full_sd = build_state_dict("hybrid_plus", seed=3)
    full_ckpt = tmp_path / "full.ckpt"
    write_official_checkpoint(full_ckpt, "hybrid_plus", state_dict=full_sd)
    hub = {k[len("audio_encoder.encoder."):]: v for k, v in full_sd.items() if k.startswith("audio_encoder.encoder.")}
    hf = HubertModel(HubertConfig(**hubert_config_from_tensors(hub, large_hint=False)))
    hf.load_state_dict(rename_fairseq_hubert(hub))
    hf.save_pretrained(tmp_path / "hubert")
    clip = {k[len("clip.model."):]: v.clone() for k, v in full_sd.items() if k.startswith("clip.model.")}
    clip["token_embedding.weight"] = full_sd["clip.original_text_emb_weight"].clone()
    save_file(clip, str(tmp_path / "open_clip_model.safetensors"))
    ids = reduced_vocab_ids(3)
    np.save(tmp_path / "vocab.npy", np.stack([ids, np.arange(len(ids))], 1))

    heads = type(full_sd)((k, v) for k, v in full_sd.items()
                          if not k.startswith(("audio_encoder.encoder.", "clip.", "cascaded_branch.clip.")))
    heads_ckpt = tmp_path / "heads.ckpt"
    write_official_checkpoint(heads_ckpt, "hybrid_plus", state_dict=heads)
    with pytest.raises(ModelNotFoundError, match=r"--hubert DIR.*--clip FILE.*--vocab"):
        import_official(heads_ckpt, tmp_path / "nope")
    _cfg, ref_state, _ = convert_checkpoint(load_official_checkpoint(full_ckpt))
    cfg, state, _ = convert_checkpoint(load_official_checkpoint(heads_ckpt), hubert_dir=tmp_path / "hubert",
                                       clip_file=tmp_path / "open_clip_model.safetensors",
                                       vocab_file=tmp_path / "vocab.npy")
    assert sorted(cfg.clip.vocab_ids) == sorted(ids.tolist())
    assert set(state) == set(ref_state)
    assert all(torch.equal(state[k], ref_state[k]) for k in state)
    model = load_model(import_official(heads_ckpt, tmp_path / "m", hubert_dir=tmp_path / "hubert",
                                       clip_file=tmp_path / "open_clip_model.safetensors",
                                       vocab_file=tmp_path / "vocab.npy"), device="cpu")
    assert model.config.branch.model_type == "hybrid_plus"
