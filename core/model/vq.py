"""Keyword BatchNorms and the cosine vector quantiser onto CLIP's token table (reference §1.4 steps 4-6)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


def _init_from_table(bn: nn.BatchNorm1d, table: torch.Tensor | None, repeat: int) -> None:
    """gamma = per-dim std, beta = per-dim mean of the token table (tiled ``repeat`` times)."""
    if table is None:
        return
    with torch.no_grad():
        t = table.detach().float()
        bn.weight.copy_(t.std(0).repeat(repeat))
        bn.bias.copy_(t.mean(0).repeat(repeat))


class KeywordBatchNorm(nn.Module):
    """K fixed keyword slots: one BatchNorm1d(K * dim), separate statistics per slot and dim."""

    def __init__(self, num_slots: int, dim: int, table: torch.Tensor | None = None) -> None:
        super().__init__()
        self.num_slots, self.dim = num_slots, dim
        self.bn = nn.BatchNorm1d(num_slots * dim)
        _init_from_table(self.bn, table, num_slots)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, K, dim) -> (B, K, dim). ``mask`` is ignored (every slot is valid)."""
        B = x.shape[0]
        y = _bn(self.bn, x.reshape(B, -1))
        return y.reshape(B, self.num_slots, self.dim)


class DynamicKeywordBatchNorm(nn.Module):
    """A variable number of keywords: one BatchNorm1d(dim) shared by all positions.

    Statistics use valid positions only; the authors' Kw_BatchNorm_dynamic includes padded positions,
    which ``include_padding=True`` reproduces for imported checkpoints.
    """

    def __init__(self, dim: int, table: torch.Tensor | None = None, include_padding: bool = False) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.include_padding = include_padding
        _init_from_table(self.bn, table, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, N, dim), mask: (B, N) True on valid positions -> (B, N, dim), zero on padding."""
        B, N, D = x.shape
        if mask is None or self.include_padding:
            y = _bn(self.bn, x.reshape(B * N, D)).reshape(B, N, D)
            return y if mask is None else y * mask.unsqueeze(-1)
        out = x.new_zeros(B, N, D)
        flat = mask.reshape(-1)
        if bool(flat.any()):
            out = out.reshape(B * N, D).index_put((flat.nonzero().squeeze(1),),
                                                  _bn(self.bn, x.reshape(B * N, D)[flat]))
            out = out.reshape(B, N, D)
        return out


def _bn(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm that falls back to running statistics when a training batch has a single row."""
    if bn.training and x.shape[0] < 2:
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return bn(x)


@dataclass
class VQOutput:
    """embeds (B, N, W) chosen token embeddings (straight-through in training), logits (B, N, V) cosines,
    ids (B, N) long rows of the keyword table."""

    embeds: torch.Tensor
    logits: torch.Tensor
    ids: torch.Tensor


class CosineVectorQuantizer(nn.Module):
    """Nearest CLIP sub-word by cosine; hard one-hot forward, straight-through softmax(s / tau) backward."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, x: torch.Tensor, table: torch.Tensor, special_mask: torch.Tensor,
                table_normed: torch.Tensor | None = None) -> VQOutput:
        """x: (B, N, W), table: (V, W) frozen token embeddings, special_mask: (V,) True = never chosen,
        table_normed: optional precomputed L2-normalised table (a cache for frozen tables)."""
        tn = F.normalize(table, dim=-1) if table_normed is None else table_normed
        logits = F.normalize(x, dim=-1) @ tn.t().to(x.dtype)  # cosine similarity (B, N, V)
        masked = logits.masked_fill(special_mask, float("-inf"))
        ids = masked.argmax(-1)
        if self.training:
            hard = F.one_hot(ids, table.shape[0]).to(x.dtype)
            soft = torch.softmax(masked / self.temperature, dim=-1)
            embeds = (hard + soft - soft.detach()) @ table.to(x.dtype)  # straight-through softmax
        else:
            embeds = table[ids].to(x.dtype)  # the hard one-hot product, as a gather
        return VQOutput(embeds=embeds, logits=logits, ids=ids)
