"""Published-file layouts beyond the five Base variants: HuBERT Large + the kw_projection MLP (Large c+), and
the TransformerEncoder hybrid block (SpeechCLIP+ Large COCO hybrid). Same checks as test_official_import."""

from __future__ import annotations

from pathlib import Path

import torch

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
    wav = torch.randn(1, 16000, generator=torch.Generator().manual_seed(10)) * 0.3
    with torch.no_grad():
        theirs = ref.authors_forward(sd, "hybrid", wav, normalize_waveform=True, heads=1)
        ours = model(wav, torch.tensor([16000]))
    torch.testing.assert_close(ours.parallel, theirs["parallel"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.cascaded, theirs["cascaded"], rtol=1e-5, atol=1e-5)
