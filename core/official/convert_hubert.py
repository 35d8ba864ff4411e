"""fairseq HuBERT weights (``audio_encoder.encoder.*`` of an official checkpoint) -> transformers HubertModel.

The name mapping is the one of transformers' own conversion script
(``convert_hubert_original_pytorch_checkpoint_to_pytorch.py``); the weight-normed positional convolution
(fairseq ``weight_g``/``weight_v``) goes to whichever naming the installed transformers uses
(``parametrizations.weight.original0/1`` in transformers >= 4.3x with torch's new weight_norm, or
``weight_g``/``weight_v``). The HubertConfig is derived from tensor shapes; the attention head count is
not stored in any shape and follows HuBERT's width // 64 (Base 768 -> 12, Large 1024 -> 16).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import torch

from core.errors import CheckpointError

logger = logging.getLogger(__name__)

# The only feature-extractor geometry fairseq HuBERT / wav2vec 2.0 checkpoints use (320 samples per frame).
STANDARD_KERNELS = (10, 3, 3, 3, 3, 2, 2)
STANDARD_STRIDES = (5, 2, 2, 2, 2, 2, 2)
# Pretraining-only tensors (k-means label embeddings, final projection, the mask embedding of masked
# prediction): not used by the frozen encoder; our config turns SpecAugment masking off.
PRETRAINING_ONLY = ("label_embs_concat", "final_proj.weight", "final_proj.bias", "mask_emb")

_RULES: list[tuple[re.Pattern[str], str]] = [(re.compile(a), b) for a, b in [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)$", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.(weight|bias)$", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)$",
     r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"^post_extract_proj\.(weight|bias)$", r"feature_projection.projection.\1"),
    (r"^layer_norm\.(weight|bias)$", r"feature_projection.layer_norm.\1"),
    (r"^encoder\.pos_conv\.0\.bias$", "encoder.pos_conv_embed.conv.bias"),
    (r"^encoder\.pos_conv\.0\.(weight_g|parametrizations\.weight\.original0)$", "<G>"),
    (r"^encoder\.pos_conv\.0\.(weight_v|parametrizations\.weight\.original1)$", "<V>"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.(k_proj|v_proj|q_proj|out_proj)\.(weight|bias)$",
     r"encoder.layers.\1.attention.\2.\3"),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$", r"encoder.layers.\1.layer_norm.\2"),
    (r"^encoder\.layers\.(\d+)\.fc1\.(weight|bias)$", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"^encoder\.layers\.(\d+)\.fc2\.(weight|bias)$", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"^encoder\.layer_norm\.(weight|bias)$", r"encoder.layer_norm.\1"),
]]


@functools.lru_cache(maxsize=1)
def pos_conv_names() -> tuple[str, str]:
    """Names of the (g, v) tensors of the positional conv in the installed transformers HubertModel."""
    from transformers import HubertConfig, HubertModel

    tiny = HubertModel(HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=1,
                                    intermediate_size=16, conv_dim=(4,) * 7, num_conv_pos_embeddings=4,
                                    num_conv_pos_embedding_groups=1))
    keys = [k for k in tiny.state_dict() if k.startswith("encoder.pos_conv_embed.conv.") and not k.endswith("bias")]
    g = [k for k in keys if k.endswith(("weight_g", "original0"))]
    v = [k for k in keys if k.endswith(("weight_v", "original1"))]
    if len(g) != 1 or len(v) != 1:
        raise CheckpointError(f"this transformers version has an unexpected positional-conv layout: {keys}")
    return g[0], v[0]


def rename_fairseq_hubert(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fairseq names (without the ``audio_encoder.encoder.`` prefix) -> transformers HubertModel names.

    Raises:
        CheckpointError: listing every key that matches no rule (pretraining-only keys are dropped).
    """
    g_name, v_name = pos_conv_names()
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        if key in PRETRAINING_ONLY:
            continue
        for pattern, repl in _RULES:
            if pattern.match(key):
                new = pattern.sub(repl, key)
                new = {"<G>": g_name, "<V>": v_name}.get(new, new)
                out[new] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"unknown HuBERT key(s) under audio_encoder.encoder.: {unknown[:20]}"
                              f"{' ...' if len(unknown) > 20 else ''} ({len(unknown)} in all)")
    return out


def hubert_config_from_tensors(sd: dict[str, torch.Tensor], *, large_hint: bool) -> dict[str, Any]:
    """A ``transformers.HubertConfig`` kwargs dict matching the fairseq tensors (names without prefix).

    ``large_hint`` (from the checkpoint's ``audio_encoder.name``) selects pre-LN transformer layers
    (``layer_norm_first``, transformers ``do_stable_layer_norm``) as in HuBERT Large; it cannot be read
    from shapes. The conv feature-extractor norm is read from the keys (GroupNorm in block 0 only, or a
    LayerNorm in every block).
    """
    def need(key: str) -> torch.Tensor:
        if key not in sd:
            raise CheckpointError(f"HuBERT weights incomplete: missing audio_encoder.encoder.{key}")
        return sd[key]

    n_conv = len({int(m.group(1)) for k in sd if (m := re.match(r"feature_extractor\.conv_layers\.(\d+)\.0\.weight$", k))})
    kernels = tuple(int(need(f"feature_extractor.conv_layers.{i}.0.weight").shape[-1]) for i in range(n_conv))
    if kernels != STANDARD_KERNELS:
        raise CheckpointError(f"HuBERT conv feature extractor kernels {kernels} are not the standard "
                              f"{STANDARD_KERNELS}; this importer supports HuBERT Base/Large only")
    conv_dim = tuple(int(need(f"feature_extractor.conv_layers.{i}.0.weight").shape[0]) for i in range(n_conv))
    layer_mode = "feature_extractor.conv_layers.0.2.1.weight" in sd
    group_mode = "feature_extractor.conv_layers.0.2.weight" in sd
    if layer_mode == group_mode:
        raise CheckpointError("cannot tell the HuBERT feature-extractor norm (neither GroupNorm nor LayerNorm keys)")
    n_layers = len({int(m.group(1)) for k in sd if (m := re.match(r"encoder\.layers\.(\d+)\.", k))})
    hidden = int(need("post_extract_proj.weight").shape[0])
    v = sd.get("encoder.pos_conv.0.weight_v", sd.get("encoder.pos_conv.0.parametrizations.weight.original1"))
    if v is None:
        raise CheckpointError("HuBERT weights incomplete: missing encoder.pos_conv.0.weight_v")
    return {
        "hidden_size": hidden,
        "num_hidden_layers": n_layers,
        "num_attention_heads": max(1, hidden // 64),
        "intermediate_size": int(need("encoder.layers.0.fc1.weight").shape[0]),
        "conv_dim": list(conv_dim),
        "conv_kernel": list(STANDARD_KERNELS),
        "conv_stride": list(STANDARD_STRIDES),
        "conv_bias": "feature_extractor.conv_layers.0.0.bias" in sd,
        "feat_extract_norm": "layer" if layer_mode else "group",
        "feat_extract_activation": "gelu",
        "hidden_act": "gelu",
        "do_stable_layer_norm": bool(large_hint),
        "feat_proj_layer_norm": "layer_norm.weight" in sd,
        "num_conv_pos_embeddings": int(v.shape[2]),
        "num_conv_pos_embedding_groups": int(hidden // v.shape[1]),
        "layer_norm_eps": 1e-5,
        "apply_spec_augment": False,
        "mask_time_prob": 0.0,
        "layerdrop": 0.0,
    }
