"""The SpeechCLIP / SpeechCLIP+ branches (reference §1.3, §1.4, §2.2, §2.4).

Every branch takes upstream features (B, T, D) with a validity mask (B, T) and returns a
:class:`BranchOutput`; vectors are unnormalised (the model normalises them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from core.model.cif import CIF, CifModuleOutput
from core.model.clip_tower import ClipTower
from core.model.config import BranchConfig, CifConfig
from core.model.vq import CosineVectorQuantizer, DynamicKeywordBatchNorm, KeywordBatchNorm

logger = logging.getLogger(__name__)


@dataclass
class KeywordOutput:
    """Cascaded path: embeds (B, N, W) quantised keywords, logits (B, N, V) cosines to the table,
    ids (B, N) table rows, lengths (B,) keywords per item, pre_vq (B, N, W) after BN."""

    embeds: torch.Tensor
    logits: torch.Tensor
    ids: torch.Tensor
    lengths: torch.Tensor
    pre_vq: torch.Tensor


@dataclass
class BranchOutput:
    parallel: torch.Tensor | None = None  # (B, E)
    cascaded: torch.Tensor | None = None  # (B, E)
    keywords: KeywordOutput | None = None
    cif: CifModuleOutput | None = None
    # (B, N) frame index per keyword: CIF fire frames, or -1 for CLS slots (no time position)
    unit_frames: torch.Tensor | None = None


class AttentionAndNorm(nn.Module):
    """MultiheadAttention + residual + LayerNorm, no FFN (the authors' MultiheadAttentionAndNorm). `output_dropout`:
    also drop out the attention output before the residual (not in the method; see BranchConfig)."""

    def __init__(self, dim: int, nhead: int, dropout: float, output_dropout: bool = False) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, nhead, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout) if output_dropout else nn.Identity()

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), pad: (B, L) True on padding -> (B, L, D)."""
        y, _ = self.attn(x, x, x, key_padding_mask=pad, need_weights=False)
        return self.norm(x + self.dropout(y))


class AttentionStack(nn.Module):
    def __init__(self, dim: int, nhead: int, dropout: float, layers: int, output_dropout: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(AttentionAndNorm(dim, nhead, dropout, output_dropout) for _ in range(layers))

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, pad)
        return x


class TransformerBlock(nn.Module):
    """One TransformerEncoderLayer (post-LN, GELU) + LayerNorm: the authors' TransformerEncoder used as the
    cascaded / hybrid block (``cfg.cascaded_block == "transformer"``)."""

    def __init__(self, dim: int, nhead: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(dim, nhead, ffn_dim, dropout, activation="gelu", batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), pad: (B, L) True on padding -> (B, L, D)."""
        return self.norm(self.encoder(x, src_key_padding_mask=pad))


def _attention_block(cfg: BranchConfig, dim: int) -> nn.Module:
    if cfg.cascaded_block == "transformer":
        return TransformerBlock(dim, cfg.cascaded_nhead, cfg.ffn_dim, cfg.dropout)
    return AttentionStack(dim, cfg.cascaded_nhead, cfg.dropout, cfg.attention_layers, cfg.attention_output_dropout)


def _projection(cfg: BranchConfig, d_in: int, d_out: int) -> nn.Module:
    return nn.Linear(d_in, d_out) if cfg.projection == "linear" else _mlp(cfg.projection_dims, d_in, d_out, cfg.dropout)


def _mlp(hidden: list[int], d_in: int, d_out: int, dropout: float) -> nn.Module:
    """[Linear -> ReLU -> Dropout] per hidden width, then Linear (the authors' MLPLayers, same indices)."""
    layers: list[nn.Module] = []
    prev = d_in
    for width in hidden:
        layers += [nn.Linear(prev, width), nn.ReLU(), nn.Dropout(dropout)]
        prev = width
    layers.append(nn.Linear(prev, d_out))
    return nn.Sequential(*layers)


def _with_prefix(prefix: torch.Tensor, feats: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepend learned tokens (1, P, D) -> sequence (B, P+T, D) and padding mask (B, P+T)."""
    B = feats.shape[0]
    x = torch.cat([prefix.expand(B, -1, -1).to(feats.dtype), feats], dim=1)
    pad = torch.cat([torch.zeros(B, prefix.shape[1], dtype=torch.bool, device=feats.device), ~mask], dim=1)
    return x, pad


class CascadedHead(nn.Module):
    """projection -> keyword BN -> cosine VQ onto CLIP's token table -> CLIP text encoder."""

    def __init__(self, cfg: BranchConfig, d_in: int, clip: ClipTower, num_slots: int | None) -> None:
        super().__init__()
        width = clip.token_width
        table = clip.keyword_table if cfg.bn_init_from_table else None
        self.proj = _projection(cfg, d_in, width)
        self.bn: nn.Module
        if num_slots is None:
            self.bn = DynamicKeywordBatchNorm(width, table, include_padding=cfg.bn_include_padding)
        else:
            self.bn = KeywordBatchNorm(num_slots, width, table)
        self.vq = CosineVectorQuantizer(cfg.vq_temperature)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, clip: ClipTower) -> tuple[torch.Tensor, KeywordOutput]:
        """x: (B, N, D), lengths: (B,) -> (cascaded (B, E), KeywordOutput)."""
        N = x.shape[1]
        mask = torch.arange(N, device=x.device)[None, :] < lengths[:, None]
        h = self.bn(self.proj(x), mask)
        q = self.vq(h, clip.keyword_table, clip.special_mask, clip.keyword_table_normed())
        embeds = q.embeds * mask.unsqueeze(-1)
        vec = clip.encode_keywords(embeds, lengths)
        return vec, KeywordOutput(embeds, q.logits, q.ids, lengths, h)


class ParallelBranch(nn.Module):
    """CLS + 1 TransformerEncoderLayer + LayerNorm; CLS output -> Linear -> CLIP image space."""

    def __init__(self, cfg: BranchConfig, dim: int, embed_dim: int) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.encoder = nn.TransformerEncoderLayer(dim, cfg.nhead, cfg.ffn_dim, cfg.dropout, activation="gelu",
                                                  batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, embed_dim)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, clip: ClipTower,
                target_counts: torch.Tensor | None = None) -> BranchOutput:
        x, pad = _with_prefix(self.cls, feats, mask)
        x = self.norm(self.encoder(x, src_key_padding_mask=pad))
        return BranchOutput(parallel=self.proj(x[:, 0]))


def _slot_keywords(head: CascadedHead, slots: torch.Tensor, clip: ClipTower) -> tuple[torch.Tensor, KeywordOutput]:
    """The K CLS outputs (B, K, D) of a CLS-token cascaded branch, every one a keyword unit, through `head`."""
    lengths = torch.full((slots.shape[0],), slots.shape[1], dtype=torch.long, device=slots.device)
    return head(slots, lengths, clip)


class CascadedBranch(nn.Module):
    """K CLS tokens + MHA/LN over [CLS x K; frames] -> K keywords -> CLIP text encoder."""

    def __init__(self, cfg: BranchConfig, dim: int, clip: ClipTower) -> None:
        super().__init__()
        self.k = cfg.num_cls
        self.cls = nn.Parameter(torch.randn(1, cfg.num_cls, dim))
        self.attn = _attention_block(cfg, dim)
        self.head = CascadedHead(cfg, dim, clip, cfg.num_cls)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, clip: ClipTower,
                target_counts: torch.Tensor | None = None) -> BranchOutput:
        x, pad = _with_prefix(self.cls, feats, mask)
        vec, kw = _slot_keywords(self.head, self.attn(x, pad)[:, : self.k], clip)
        return BranchOutput(cascaded=vec, keywords=kw, unit_frames=torch.full_like(kw.ids, -1))


class CascadedPlusBranch(nn.Module):
    """MHA/LN over the frames -> CIF -> keywords -> CLIP text encoder (Cascaded SpeechCLIP+)."""

    def __init__(self, cfg: BranchConfig, cif_cfg: CifConfig, dim: int, clip: ClipTower) -> None:
        super().__init__()
        self.attn = _attention_block(cfg, dim)
        self.cif = CIF(dim, cif_cfg, max_units=clip.context_length - 2)
        self.head = CascadedHead(cfg, dim, clip, None)

    def cascade(self, frames: torch.Tensor, mask: torch.Tensor, clip: ClipTower,
                target_counts: torch.Tensor | None) -> BranchOutput:
        c = self.cif(frames, mask, target_counts)
        vec, kw = self.head(c.fired, c.lengths, clip)
        return BranchOutput(cascaded=vec, keywords=kw, cif=c, unit_frames=c.fire_frames)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, clip: ClipTower,
                target_counts: torch.Tensor | None = None) -> BranchOutput:
        return self.cascade(self.attn(feats, ~mask), mask, clip, target_counts)


class HybridBranch(nn.Module):
    """One attention block over [CLS_p; CLS_c x K; frames]: CLS_p -> parallel, CLS_c -> cascaded."""

    def __init__(self, cfg: BranchConfig, dim: int, embed_dim: int, clip: ClipTower) -> None:
        super().__init__()
        self.k = cfg.num_cls
        self.cls = nn.Parameter(torch.randn(1, 1 + cfg.num_cls, dim))
        self.attn = _attention_block(cfg, dim)
        self.proj = _mlp(cfg.parallel_projection_dims, dim, embed_dim, cfg.dropout) if cfg.parallel_projection_dims \
            else nn.Linear(dim, embed_dim)
        self.head = CascadedHead(cfg, dim, clip, cfg.num_cls)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, clip: ClipTower,
                target_counts: torch.Tensor | None = None) -> BranchOutput:
        x, pad = _with_prefix(self.cls, feats, mask)
        x = self.attn(x, pad)
        vec, kw = _slot_keywords(self.head, x[:, 1 : 1 + self.k], clip)
        return BranchOutput(parallel=self.proj(x[:, 0]), cascaded=vec, keywords=kw,
                            unit_frames=torch.full_like(kw.ids, -1))


class HybridPlusBranch(CascadedPlusBranch):
    """One MHA/LN over [CLS_p; frames]: CLS_p -> Linear -> parallel; frames -> CIF -> cascaded."""

    def __init__(self, cfg: BranchConfig, cif_cfg: CifConfig, dim: int, embed_dim: int, clip: ClipTower) -> None:
        super().__init__(cfg, cif_cfg, dim, clip)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.proj = nn.Linear(dim, embed_dim)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, clip: ClipTower,
                target_counts: torch.Tensor | None = None) -> BranchOutput:
        x, pad = _with_prefix(self.cls, feats, mask)
        x = self.attn(x, pad)
        out = self.cascade(x[:, 1:], mask, clip, target_counts)
        out.parallel = self.proj(x[:, 0])
        return out


def build_branch(cfg: BranchConfig, cif_cfg: CifConfig, dim: int, embed_dim: int, clip: ClipTower) -> nn.Module:
    """The branch module named by ``cfg.model_type``."""
    t = cfg.model_type
    if t == "parallel":
        return ParallelBranch(cfg, dim, embed_dim)
    if t == "cascaded":
        return CascadedBranch(cfg, dim, clip)
    if t == "cascaded_plus":
        return CascadedPlusBranch(cfg, cif_cfg, dim, clip)
    if t == "hybrid":
        return HybridBranch(cfg, dim, embed_dim, clip)
    if t == "hybrid_plus":
        return HybridPlusBranch(cfg, cif_cfg, dim, embed_dim, clip)
    raise ValueError(f"unknown model_type {t!r}")
