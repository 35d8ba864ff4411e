"""The authors' trained heads (``parallel_branch.*`` / ``cascaded_branch.*``, ``criterion.temperature``,
``audio_encoder.weightedsum_layer.weights``) -> our SpeechClipModel names (core/model/branches.py).

| authors (official_ckpt.md §2.6)                          | ours                                   |
|----------------------------------------------------------|----------------------------------------|
| parallel_branch.cls                                      | branch.cls                             |
| parallel_branch.self_att.model.layers.0.*                | branch.encoder.*                       |
| parallel_branch.self_att.model.norm.*                    | branch.norm.*                          |
| parallel_branch.linear_proj.*                            | branch.proj.*                          |
| cascaded_branch.cls (cascaded K CLS / hybrid+ parallel)  | branch.cls                             |
| cascaded_branch.parallel_cls ++ cascaded_cls (hybrid)    | branch.cls (concatenated, CLS_p first) |
| cascaded_branch.self_att.multihead_attn_layer.*          | branch.attn.layers.0.attn.*            |
| cascaded_branch.self_att.attentionBlock_Norm.*           | branch.attn.layers.0.norm.*            |
| cascaded_branch.self_att.model.layers.0.* / model.norm.* | branch.attn.encoder.* / attn.norm.*    |
|   (TransformerEncoder block, SpeechCLIP+ Large COCO hybrid)                                       |
| cascaded_branch.linear_proj.* (Linear or MLPLayers)      | branch.head.proj.*                     |
| cascaded_branch.bn_layer.bn_layer.*                      | branch.head.bn.bn.* (K-slot BN reordered |
|                                                          | from (dim, K) to (K, dim) flattening)  |
| cascaded_branch.downsampling.conv.{3i}.*                 | branch.cif.weight.convs.{i}.*          |
| cascaded_branch.downsampling.weight_proj.1.*             | branch.cif.weight.proj.*               |
| cascaded_branch.parallel_proj.*                          | branch.proj.*                          |
| cascaded_branch.vector_quantizer.curr_temp               | (checked = VQ temperature, dropped)    |
| criterion.temperature (log 1/T, SpeechCLIP+ only)         | log_logit_scale                        |
| criterion.eye_mat / neg_eye_mat / eye_mat_fl             | (loss buffers, dropped)                |
"""

from __future__ import annotations

import logging
import math
import re

import torch

from core.errors import CheckpointError
from core.official.hparams import OfficialSettings

logger = logging.getLogger(__name__)

_LOSS_BUFFERS = ("criterion.eye_mat", "criterion.neg_eye_mat", "criterion.eye_mat_fl")


def _rules(model_type: str) -> list[tuple[re.Pattern[str], str]]:
    if model_type == "parallel":
        pairs = [(r"^parallel_branch\.cls$", "branch.cls"),
                 (r"^parallel_branch\.self_att\.model\.layers\.0\.(.+)$", r"branch.encoder.\1"),
                 (r"^parallel_branch\.self_att\.model\.norm\.(weight|bias)$", r"branch.norm.\1"),
                 (r"^parallel_branch\.linear_proj\.(weight|bias)$", r"branch.proj.\1")]
    else:
        pairs = [(r"^cascaded_branch\.self_att\.multihead_attn_layer\.(.+)$", r"branch.attn.layers.0.attn.\1"),
                 (r"^cascaded_branch\.self_att\.model\.layers\.0\.(.+)$", r"branch.attn.encoder.\1"),
                 (r"^cascaded_branch\.self_att\.model\.norm\.(weight|bias)$", r"branch.attn.norm.\1"),
                 (r"^cascaded_branch\.self_att\.attentionBlock_Norm\.(weight|bias)$", r"branch.attn.layers.0.norm.\1"),
                 (r"^cascaded_branch\.linear_proj\.(weight|bias)$", r"branch.head.proj.\1"),
                 (r"^cascaded_branch\.linear_proj\.[A-Za-z_]+\.(\d+)\.(weight|bias)$", r"branch.head.proj.\1.\2"),
                 (r"^cascaded_branch\.bn_layer\.bn_layer\.(.+)$", r"branch.head.bn.bn.\1"),
                 (r"^cascaded_branch\.downsampling\.weight_proj\.1\.(weight|bias)$", r"branch.cif.weight.proj.\1"),
                 (r"^cascaded_branch\.parallel_proj\.(weight|bias)$", r"branch.proj.\1"),
                 (r"^cascaded_branch\.parallel_proj\.[A-Za-z_]+\.(\d+)\.(weight|bias)$", r"branch.proj.\1.\2")]
        if model_type in ("cascaded", "hybrid_plus"):
            pairs.append((r"^cascaded_branch\.cls$", "branch.cls"))
    return [(re.compile(a), b) for a, b in pairs]


def _permute_keyword_bn(out: dict[str, torch.Tensor], k: int) -> None:
    """The authors' Kw_BatchNorm (eachKw, parallel) flattens (B, K, D) as (B, D, K): feature d*K + k.
    Ours flattens (B, K, D): feature k*D + d. Reorder weight, bias and running statistics accordingly."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        key = f"branch.head.bn.bn.{name}"
        if key in out:
            t = out[key]
            if t.numel() % k:
                raise CheckpointError(f"keyword BatchNorm has {t.numel()} features, not a multiple of K={k}")
            out[key] = t.reshape(t.numel() // k, k).t().reshape(-1).contiguous()


def convert_heads(heads: dict[str, torch.Tensor], s: OfficialSettings) -> dict[str, torch.Tensor]:
    """Map the head tensors (keys with the authors' prefixes, alias and backbones already removed).

    Raises:
        CheckpointError: listing every key no rule consumes, or inconsistent values (VQ temperature).
    """
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    rules = _rules(s.model_type)
    for key, value in heads.items():
        if key in _LOSS_BUFFERS:
            continue
        if key == "criterion.temperature":
            out["log_logit_scale"] = value.detach().float().reshape(())
            continue
        if key == "audio_encoder.weightedsum_layer.weights":
            out["upstream.weighted_sum.weights"] = value
            continue
        if key == "cascaded_branch.vector_quantizer.curr_temp":
            if abs(float(value.reshape(-1)[0]) - s.vq_temperature) > 1e-6:
                raise CheckpointError(f"VQ temperature buffer is {float(value.reshape(-1)[0])} but the config says "
                                      f"fixed={s.vq_temperature}; the checkpoint is inconsistent")
            continue
        if key in ("cascaded_branch.parallel_cls", "cascaded_branch.cascaded_cls") and s.model_type == "hybrid":
            continue  # concatenated below
        m = re.match(r"^cascaded_branch\.downsampling\.conv\.(\d+)\.(weight|bias)$", key)
        if m and s.model_type in ("cascaded_plus", "hybrid_plus"):
            idx = int(m.group(1))
            if idx % 3:  # Sequential([Conv1d, Dropout, ReLU] x n): convs sit at 0, 3, 6, ...
                unknown.append(key)
            else:
                out[f"branch.cif.weight.convs.{idx // 3}.{m.group(2)}"] = value
            continue
        for pattern, repl in rules:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            unknown.append(key)
    if s.model_type in ("cascaded", "hybrid"):
        _permute_keyword_bn(out, s.num_keywords)
    if s.model_type == "hybrid":
        try:
            out["branch.cls"] = torch.cat([heads["cascaded_branch.parallel_cls"], heads["cascaded_branch.cascaded_cls"]], 1)
        except KeyError as exc:
            raise CheckpointError(f"hybrid checkpoint lacks {exc.args[0]}") from exc
    if unknown:
        raise CheckpointError(f"unknown key(s) in the {s.model_type} checkpoint's heads: {unknown[:20]}"
                              f"{' ...' if len(unknown) > 20 else ''} ({len(unknown)} in all); this layout "
                              "(e.g. a TransformerEncoder cascaded block or extra layers) is not supported")
    if "log_logit_scale" not in out:  # SpeechCLIP base: fixed temperature, a buffer in our model
        out["log_logit_scale"] = torch.tensor(math.log(1.0 / s.temperature_init))
    return out
