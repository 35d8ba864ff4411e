"""Direct computations from the raw tensors of an official checkpoint, written from the authors' code paths
(fairseq HuBERT, the authors' CIF weight generator, projection + BatchNorm + cosine VQ, attention blocks),
with torch.nn.functional only. Tests compare our imported model against these.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tests.trainer.official_fixtures import CONV_SPEC

HUB = "audio_encoder.encoder."


def _mha(x: torch.Tensor, sd: dict[str, torch.Tensor], p: str, heads: int,
         key_pad: torch.Tensor | None = None) -> torch.Tensor:
    """fairseq MultiheadAttention with separate q/k/v projections. x: (B, T, D)."""
    b, t, d = x.shape
    hd = d // heads
    q = F.linear(x, sd[p + "q_proj.weight"], sd[p + "q_proj.bias"]) * hd ** -0.5
    k = F.linear(x, sd[p + "k_proj.weight"], sd[p + "k_proj.bias"])
    v = F.linear(x, sd[p + "v_proj.weight"], sd[p + "v_proj.bias"])
    q, k, v = (z.view(b, t, heads, hd).transpose(1, 2) for z in (q, k, v))
    att = q @ k.transpose(-1, -2)
    if key_pad is not None:
        att = att.masked_fill(key_pad[:, None, None, :], float("-inf"))
    out = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return F.linear(out, sd[p + "out_proj.weight"], sd[p + "out_proj.bias"])


def conv0_output(sd: dict[str, torch.Tensor], wav: torch.Tensor) -> torch.Tensor:
    """First conv block of the fairseq extractor (Base: conv -> GroupNorm(C, C) -> GELU). wav: (B, S) -> (B, C, T0)."""
    w = sd[HUB + "feature_extractor.conv_layers.0.0.weight"]
    x = F.conv1d(wav[:, None, :], w, stride=CONV_SPEC[0][1])
    x = F.group_norm(x, w.shape[0], sd[HUB + "feature_extractor.conv_layers.0.2.weight"],
                     sd[HUB + "feature_extractor.conv_layers.0.2.bias"])
    return F.gelu(x)


def fairseq_hubert_states(sd: dict[str, torch.Tensor], wav: torch.Tensor, large: bool = False) -> list[torch.Tensor]:
    """The authors' ``layer_results`` for an unpadded batch: [input of layer 1, output of each layer].

    Base (post-LN): the first state is after ``encoder.layer_norm``. Large (pre-LN, ``layer_norm_first``):
    no layer norm in the first state and none after the last layer (fairseq applies ``encoder.layer_norm``
    to the returned ``x`` only, not to ``layer_results``).
    """
    x = wav[:, None, :]
    c = sd[HUB + "feature_extractor.conv_layers.0.0.weight"].shape[0]
    for i, (_k, s) in enumerate(CONV_SPEC):
        p = HUB + f"feature_extractor.conv_layers.{i}."
        x = F.conv1d(x, sd[p + "0.weight"], sd.get(p + "0.bias"), stride=s)
        if large:
            x = F.layer_norm(x.transpose(1, 2), (c,), sd[p + "2.1.weight"], sd[p + "2.1.bias"]).transpose(1, 2)
        elif i == 0:
            x = F.group_norm(x, c, sd[p + "2.weight"], sd[p + "2.bias"])
        x = F.gelu(x)
    x = F.layer_norm(x.transpose(1, 2), (c,), sd[HUB + "layer_norm.weight"], sd[HUB + "layer_norm.bias"])
    x = F.linear(x, sd[HUB + "post_extract_proj.weight"], sd[HUB + "post_extract_proj.bias"])
    d = x.shape[-1]
    g, v = sd[HUB + "encoder.pos_conv.0.weight_g"], sd[HUB + "encoder.pos_conv.0.weight_v"]
    w = v * (g / v.norm(dim=(0, 1), keepdim=True))  # weight_norm(dim=2)
    k = w.shape[-1]
    xc = F.conv1d(x.transpose(1, 2), w, sd[HUB + "encoder.pos_conv.0.bias"], padding=k // 2, groups=d // w.shape[1])
    if k % 2 == 0:
        xc = xc[:, :, :-1]  # SamePad
    x = x + F.gelu(xc).transpose(1, 2)
    ln = lambda z, name: F.layer_norm(z, (d,), sd[HUB + name + ".weight"], sd[HUB + name + ".bias"])  # noqa: E731
    if not large:
        x = ln(x, "encoder.layer_norm")
    states = [x]
    heads = max(1, d // 64)
    n_layers = len({key.split(".")[4] for key in sd if key.startswith(HUB + "encoder.layers.")})
    for li in range(n_layers):
        p = f"encoder.layers.{li}."
        ffn = lambda z, p=p: F.linear(F.gelu(F.linear(z, sd[HUB + p + "fc1.weight"], sd[HUB + p + "fc1.bias"])),  # noqa: E731
                                      sd[HUB + p + "fc2.weight"], sd[HUB + p + "fc2.bias"])
        if large:
            x = x + _mha(ln(x, p + "self_attn_layer_norm"), sd, HUB + p + "self_attn.", heads)
            x = x + ffn(ln(x, p + "final_layer_norm"))
        else:
            x = ln(x + _mha(x, sd, HUB + p + "self_attn.", heads), p + "self_attn_layer_norm")
            x = ln(x + ffn(x), p + "final_layer_norm")
        states.append(x)
    return states


def weighted_sum(sd: dict[str, torch.Tensor], states: list[torch.Tensor], layer_norm: bool = False) -> torch.Tensor:
    w = sd["audio_encoder.weightedsum_layer.weights"].softmax(0)
    if layer_norm:
        states = [F.layer_norm(s, s.shape[-1:]) for s in states]
    return sum(w[i] * s for i, s in enumerate(states))


def mha_and_norm(sd: dict[str, torch.Tensor], p: str, x: torch.Tensor, heads: int,
                 key_pad: torch.Tensor | None = None) -> torch.Tensor:
    """The authors' MultiheadAttentionAndNorm: LN(MHA(x) + x) with a packed in_proj. x: (B, T, D)."""
    d = x.shape[-1]
    out, _ = F.multi_head_attention_forward(
        x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), d, heads,
        sd[p + "multihead_attn_layer.in_proj_weight"], sd[p + "multihead_attn_layer.in_proj_bias"],
        None, None, False, 0.0, sd[p + "multihead_attn_layer.out_proj.weight"],
        sd[p + "multihead_attn_layer.out_proj.bias"], training=False, key_padding_mask=key_pad, need_weights=False)
    return F.layer_norm(out.transpose(0, 1) + x, (d,), sd[p + "attentionBlock_Norm.weight"], sd[p + "attentionBlock_Norm.bias"])


def cif_alpha(sd: dict[str, torch.Tensor], x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
    """The authors' CIF conv weight generator at eval: sigmoid(Linear(ReLU(Conv1d(x)))), clipped, 0 on padding.
    x: (B, T, D) -> alpha (B, T)."""
    p = "cascaded_branch.downsampling."
    w = sd[p + "conv.0.weight"]
    h = F.relu(F.conv1d(x.transpose(1, 2), w, sd[p + "conv.0.bias"], padding=w.shape[-1] // 2)).transpose(1, 2)
    a = torch.sigmoid(F.linear(h, sd[p + "weight_proj.1.weight"], sd[p + "weight_proj.1.bias"])).clip(0, 1).squeeze(-1)
    if pad is not None:
        a = a.masked_fill(pad, 0.0)
    return a


def project_and_quantize(sd: dict[str, torch.Tensor], x: torch.Tensor, keyword_bn: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """linear_proj -> BatchNorm (eval: running stats) -> cosine to the reduced table -> argmax with ids 0, 2, 3
    (reduced '!', SOT, EOT) excluded. x: (B, N, D) -> (projected+normed (B, N, W), ids (B, N))."""
    p = "cascaded_branch."
    z = F.linear(x, sd[p + "linear_proj.weight"], sd[p + "linear_proj.bias"])
    b, n, wdt = z.shape
    bn = [sd[p + "bn_layer.bn_layer." + k] for k in ("running_mean", "running_var", "weight", "bias")]
    if keyword_bn:  # Kw_BatchNorm eachKw parallel: one BatchNorm1d over (dim, kw) flattened
        flat = z.permute(0, 2, 1).reshape(b, -1)
        z = F.batch_norm(flat, *bn[:2], bn[2], bn[3], False, 0.0, 1e-5).reshape(b, wdt, n).permute(0, 2, 1)
    else:
        z = F.batch_norm(z.permute(0, 2, 1), *bn[:2], bn[2], bn[3], False, 0.0, 1e-5).permute(0, 2, 1)
    table = sd["clip.model.token_embedding.weight"]
    cos = F.cosine_similarity(z[:, :, :, None], table.t()[None, None], dim=2)
    cos[..., [0, 2, 3]] = float("-inf")
    return z, cos.argmax(-1)


def cls_parallel_vector(sd: dict[str, torch.Tensor], attended_cls: torch.Tensor, key: str) -> torch.Tensor:
    return F.linear(attended_cls, sd[key + ".weight"], sd[key + ".bias"])


def log_temperature(sd: dict[str, torch.Tensor]) -> float:
    t = sd.get("criterion.temperature")
    return float(t) if t is not None else math.log(1 / 0.07)
