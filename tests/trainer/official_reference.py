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
    if p + "linear_proj.weight" in sd:
        z = F.linear(x, sd[p + "linear_proj.weight"], sd[p + "linear_proj.bias"])
    else:  # MLPLayers: Linear -> ReLU -> Dropout -> Linear
        q = p + "linear_proj.sequential."
        z = F.linear(F.relu(F.linear(x, sd[q + "0.weight"], sd[q + "0.bias"])), sd[q + "3.weight"], sd[q + "3.bias"])
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
    if key + ".weight" in sd:
        return F.linear(attended_cls, sd[key + ".weight"], sd[key + ".bias"])
    q = key + ".sequential."  # MLPLayers [d, d, out]: Linear -> ReLU -> Dropout -> Linear
    h = F.relu(F.linear(attended_cls, sd[q + "0.weight"], sd[q + "0.bias"]))
    return F.linear(h, sd[q + "3.weight"], sd[q + "3.bias"])


def log_temperature(sd: dict[str, torch.Tensor]) -> float:
    t = sd.get("criterion.temperature")
    return float(t) if t is not None else math.log(1 / 0.07)


# ------------------------------------------------------------------ authors' CIF firing and CLIP, for end-to-end checks
MAX_FEAT_LEN = 75


def authors_integrate_and_fire(x: torch.Tensor, alpha: torch.Tensor, beta: float = 1.0,
                               tail: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' CIF.integrate_and_fire at inference (no target, tail handling on), transcribed from
    avssl/module/cif.py. x: (B, S, C), alpha: (B, S) -> (fired (B, T, C), lengths (B,))."""
    b, s, c = x.shape
    feat_lengths = (alpha.sum(1) / beta).floor().clip(min=1, max=MAX_FEAT_LEN).long()
    t = int(feat_lengths.max())
    csum = alpha.cumsum(-1)
    right_idx = (csum / beta).floor().long().clip(min=0, max=t)
    left_idx = right_idx.roll(1, dims=1)
    left_idx[:, 0] = 0
    fire_num = right_idx - left_idx
    extra_weights = (fire_num - 1).clip(min=0)
    output = x.new_zeros((b, t + 1, c))
    zero = alpha.new_zeros((1,))
    fire_mask = fire_num > 0
    right_weight = torch.where(fire_mask, csum - right_idx.type_as(alpha) * beta, zero)
    output.scatter_add_(1, right_idx.unsqueeze(-1).expand(-1, -1, c), right_weight.unsqueeze(-1) * x)
    left_weight = alpha - right_weight - extra_weights.type_as(alpha) * beta
    output.scatter_add_(1, left_idx.unsqueeze(-1).expand(-1, -1, c), left_weight.unsqueeze(-1) * x)
    if extra_weights.ge(0).any():
        tgt_idx = left_idx
        for _ in range(int(extra_weights.max())):
            tgt_idx = (tgt_idx + 1).clip(max=t)
            output.scatter_add_(1, tgt_idx.unsqueeze(-1).expand(-1, -1, c), x * beta * (extra_weights > 0).unsqueeze(2))
            extra_weights = extra_weights - 1
    r_mask = right_idx == feat_lengths.unsqueeze(1)
    tail_weights = torch.where(r_mask, right_weight, zero).sum(-1)
    l_mask = left_idx == feat_lengths.unsqueeze(1)
    tail_weights = tail_weights + torch.where(l_mask, left_weight, zero).sum(-1)
    extend_mask = tail_weights >= tail
    if extend_mask.any():
        upscale = torch.ones_like(output).scatter(
            1, feat_lengths.view(b, 1, 1).expand(-1, -1, c),
            (beta / tail_weights.masked_fill(~extend_mask, beta).view(b, 1, 1).expand(-1, -1, c)).to(output.dtype))
        output = output * upscale
        feat_lengths = (feat_lengths + extend_mask.long()).clip(max=MAX_FEAT_LEN)
        t = int(feat_lengths.max())
    output = output[:, :t, :]
    output[torch.arange(t)[None, :] >= feat_lengths[:, None]] = 0
    return output, feat_lengths


def _openai_transformer(sd: dict[str, torch.Tensor], p: str, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """OpenAI CLIP ResidualAttentionBlocks (QuickGELU). x: (B, L, W)."""
    w = x.shape[-1]
    heads = max(1, w // 64)
    n = len({k[len(p):].split(".")[0] for k in sd if k.startswith(p)})
    mask = torch.full((x.shape[1], x.shape[1]), float("-inf")).triu(1) if causal else None
    for i in range(n):
        q = f"{p}{i}."
        h = F.layer_norm(x, (w,), sd[q + "ln_1.weight"], sd[q + "ln_1.bias"]).transpose(0, 1)
        a, _ = F.multi_head_attention_forward(h, h, h, w, heads, sd[q + "attn.in_proj_weight"], sd[q + "attn.in_proj_bias"],
                                              None, None, False, 0.0, sd[q + "attn.out_proj.weight"],
                                              sd[q + "attn.out_proj.bias"], training=False, attn_mask=mask,
                                              need_weights=False)
        x = x + a.transpose(0, 1)
        h = F.linear(F.layer_norm(x, (w,), sd[q + "ln_2.weight"], sd[q + "ln_2.bias"]), sd[q + "mlp.c_fc.weight"],
                     sd[q + "mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), sd[q + "mlp.c_proj.weight"], sd[q + "mlp.c_proj.bias"])
    return x


def openai_encode_image(sd: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """OpenAI VisionTransformer from raw ``clip.model.visual.*``. images: (B, 3, H, W) -> (B, E) L2-normalised."""
    p = "clip.model.visual."
    w = sd[p + "conv1.weight"]
    x = F.conv2d(images, w, stride=w.shape[-1]).flatten(2).transpose(1, 2)
    cls = sd[p + "class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], 1) + sd[p + "positional_embedding"]
    x = F.layer_norm(x, (w.shape[0],), sd[p + "ln_pre.weight"], sd[p + "ln_pre.bias"])
    x = _openai_transformer(sd, p + "transformer.resblocks.", x, causal=False)
    x = F.layer_norm(x[:, 0], (w.shape[0],), sd[p + "ln_post.weight"], sd[p + "ln_post.bias"]) @ sd[p + "proj"]
    return F.normalize(x, dim=-1)


def authors_encode_keywords(sd: dict[str, torch.Tensor], keywords: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """ClipModel.encode_keywords with the reduced table: [SOT, kw.., EOT, pad(row 0)...] x 77 through the text
    tower, read at EOT. keywords: (B, N, W), lengths: (B,) -> (B, E) unnormalised."""
    table = sd["clip.model.token_embedding.weight"]  # reduced: row 2 = SOT, row 3 = EOT
    b = keywords.shape[0]
    ctx = sd["clip.model.positional_embedding"].shape[0]
    text = torch.zeros(b, ctx, dtype=torch.long)
    text[:, 0] = 2
    text[torch.arange(b), lengths + 1] = 3
    x = table[text].clone()
    for i in range(b):
        x[i, 1:lengths[i] + 1] = keywords[i, :lengths[i]]
    x = x + sd["clip.model.positional_embedding"]
    x = _openai_transformer(sd, "clip.model.transformer.resblocks.", x, causal=True)
    x = F.layer_norm(x, x.shape[-1:], sd["clip.model.ln_final.weight"], sd["clip.model.ln_final.bias"])
    return x[torch.arange(b), lengths + 1] @ sd["clip.model.text_projection"]


def transformer_encoder_layer(sd: dict[str, torch.Tensor], p: str, x: torch.Tensor, heads: int) -> torch.Tensor:
    """nn.TransformerEncoderLayer (post-LN, GELU) + the final LayerNorm of the authors' TransformerEncoder."""
    d = x.shape[-1]
    h = x.transpose(0, 1)
    a, _ = F.multi_head_attention_forward(h, h, h, d, heads, sd[p + "layers.0.self_attn.in_proj_weight"],
                                          sd[p + "layers.0.self_attn.in_proj_bias"], None, None, False, 0.0,
                                          sd[p + "layers.0.self_attn.out_proj.weight"],
                                          sd[p + "layers.0.self_attn.out_proj.bias"], training=False, need_weights=False)
    ln = lambda z, n: F.layer_norm(z, (d,), sd[p + n + ".weight"], sd[p + n + ".bias"])  # noqa: E731
    x = ln(x + a.transpose(0, 1), "layers.0.norm1")
    ff = F.linear(F.gelu(F.linear(x, sd[p + "layers.0.linear1.weight"], sd[p + "layers.0.linear1.bias"])),
                  sd[p + "layers.0.linear2.weight"], sd[p + "layers.0.linear2.bias"])
    return ln(ln(x + ff, "layers.0.norm2"), "norm")


def authors_forward(sd: dict[str, torch.Tensor], variant: str, wav: torch.Tensor, *, normalize_waveform: bool,
                    heads: int, keywords: int = 8, large: bool = False) -> dict[str, torch.Tensor]:
    """The authors' eval forward for ONE unpadded utterance (B = 1), from raw tensors only.
    Returns L2-normalised 'parallel' / 'cascaded' vectors (those the variant has) and CLIP 'ids' of keywords."""
    if normalize_waveform:
        wav = F.layer_norm(wav, wav.shape[-1:])
    feats = weighted_sum(sd, fairseq_hubert_states(sd, wav, large=large))
    out: dict[str, torch.Tensor] = {}
    if variant == "parallel":
        x = torch.cat([sd["parallel_branch.cls"], feats], 1)
        x = transformer_encoder_layer(sd, "parallel_branch.self_att.model.", x, heads)
        out["parallel"] = F.normalize(F.linear(x[:, 0], sd["parallel_branch.linear_proj.weight"],
                                               sd["parallel_branch.linear_proj.bias"]), dim=-1)
        return out
    p = "cascaded_branch."
    if variant in ("cascaded", "hybrid"):
        cls = sd[p + "cls"] if variant == "cascaded" else torch.cat([sd[p + "parallel_cls"], sd[p + "cascaded_cls"]], 1)
        if p + "self_att.model.norm.weight" in sd:  # TransformerEncoder block (Large COCO hybrid)
            x = transformer_encoder_layer(sd, p + "self_att.model.", torch.cat([cls, feats], 1), heads)
        else:
            x = mha_and_norm(sd, p + "self_att.", torch.cat([cls, feats], 1), heads)
        off = 0 if variant == "cascaded" else 1
        units, lengths, kw_bn = x[:, off:off + keywords], torch.tensor([keywords]), True
        if variant == "hybrid":
            out["parallel"] = F.normalize(cls_parallel_vector(sd, x[:, 0], p + "parallel_proj"), dim=-1)
    else:
        if variant == "hybrid_plus":
            x = mha_and_norm(sd, p + "self_att.", torch.cat([sd[p + "cls"], feats], 1), heads)
            out["parallel"] = F.normalize(cls_parallel_vector(sd, x[:, 0], p + "parallel_proj"), dim=-1)
            frames = x[:, 1:]
        else:
            frames = mha_and_norm(sd, p + "self_att.", feats, heads)
        out["alpha"] = cif_alpha(sd, frames)
        units, lengths = authors_integrate_and_fire(frames, out["alpha"])
        kw_bn = False
    _z, ids = project_and_quantize(sd, units, kw_bn)
    kws = sd["clip.model.token_embedding.weight"][ids]
    out["cascaded"] = F.normalize(authors_encode_keywords(sd, kws, lengths), dim=-1)
    out["reduced_ids"], out["lengths"] = ids, lengths
    return out
