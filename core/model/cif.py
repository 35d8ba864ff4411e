"""Continuous integrate-and-fire (CIF; Dong & Xu 2020), vectorised over batch and time.

``integrate_and_fire`` follows the parallel cumsum / floor / scatter formulation of torch_cif
(George0828Zhang/torch_cif), which the SpeechCLIP+ code derives from, with the exact semantics of the
sequential algorithm kept as a reference in tests/core/cif_reference.py (see reference §2.3 and §5).
The :class:`CIF` module adds the weight generator, the scaling strategy and the quantity target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.model.config import CifConfig

logger = logging.getLogger(__name__)


@dataclass
class CifOutput:
    """Output of :func:`integrate_and_fire`.

    fired: (B, N, D) integrated states, zero beyond each item's length.
    lengths: (B,) long, units per item.
    fire_frames: (B, N) long, the frame in which each unit fired, -1 on padding.
    """

    fired: torch.Tensor
    lengths: torch.Tensor
    fire_frames: torch.Tensor


def integrate_and_fire(
    hidden: torch.Tensor,
    alpha: torch.Tensor,
    threshold: float = 1.0,
    *,
    target_lengths: torch.Tensor | None = None,
    tail_threshold: float = 0.5,
    max_units: int | None = None,
    min_units: int = 0,
) -> CifOutput:
    """Integrate ``alpha``-weighted frames and fire a unit each time the weight reaches ``threshold``.

    Args:
        hidden: (B, T, D) frame states.
        alpha: (B, T) non-negative weights, already zero on padded frames.
        threshold: firing threshold beta.
        target_lengths: (B,) long. When given, alpha is scaled to sum to target * beta and exactly
            ``target`` units fire; a remainder left by rounding fires as the last unit at the last frame
            with nonzero weight.
        tail_threshold: without a target, a leftover weight >= this fires one more unit, scaled to full
            weight (state * beta / leftover), at the last frame with nonzero weight; smaller is dropped.
        max_units: optional cap on the number of units (CLIP's 75 keyword positions).
        min_units: 0 or 1, without a target only. 1 is SpeechCLIP+'s count clip (reference §2.3: floor(sum/beta)
            clipped to [1, 75]): an item whose weight never reaches ``threshold`` still gives one unit, its
            integrated state as it is (unscaled, whatever the leftover), at the last frame with nonzero weight.
            0 is the CIF paper's algorithm: such an item gives a unit only through the tail rule.

    Returns:
        CifOutput(fired (B, N, D), lengths (B,), fire_frames (B, N)).

    Vectorised: one float64 cumsum, floor, and index_add into (item, unit) slots; the only Python loop runs
    over the largest number of extra fires inside one frame (non-zero only when a scaled alpha exceeds beta).
    Differentiable with respect to ``hidden`` and ``alpha`` (through the split weights and the scaling).
    """
    assert hidden.dim() == 3 and alpha.shape == hidden.shape[:2], (hidden.shape, alpha.shape)
    B, T, D = hidden.shape
    device = hidden.device
    beta = float(threshold)
    a = alpha.to(torch.float64)
    if target_lengths is not None:
        target = target_lengths.to(device=device, dtype=torch.float64)
        total = a.sum(1, keepdim=True)
        a = a * (target[:, None] * beta / total.clamp_min(1e-12))
    csum = torch.cumsum(a, dim=1)  # (B, T) weight integrated up to and including frame t
    right = torch.floor(csum / beta).long()  # units completed up to frame t
    left = torch.zeros_like(right)
    left[:, 1:] = right[:, :-1]  # units completed before frame t
    n_fire = right - left
    extra = (n_fire - 1).clamp_min(0)
    w_right = torch.where(n_fire > 0, csum - right.to(torch.float64) * beta, torch.zeros_like(csum))
    w_left = a - w_right - extra.to(torch.float64) * beta
    fired_full = right[:, -1] if T > 0 else torch.zeros(B, dtype=torch.long, device=device)
    leftover = (csum[:, -1] - fired_full.to(torch.float64) * beta) if T > 0 else torch.zeros(B, device=device)

    # Slots: 0 .. max(fired_full); slot fired_full collects the leftover (tail / remainder).
    n_slots = int(fired_full.max().item()) + 1 if B > 0 else 1
    # Boundaries come from the float64 cumsum; the states accumulate in the input precision (float32 for
    # half inputs), with weights computed in float64 first.
    acc = torch.float32 if hidden.dtype in (torch.float16, torch.bfloat16) else hidden.dtype
    flat = hidden.new_zeros(B * n_slots, D, dtype=acc)  # (B * slots, D): one index_add per contribution kind
    h = hidden.to(acc).reshape(B * T, D)
    base = (torch.arange(B, device=device) * n_slots)[:, None]
    flat.index_add_(0, (base + left).reshape(-1), h * w_left.to(acc).reshape(-1, 1))
    fires = (n_fire > 0).reshape(-1).nonzero().squeeze(1)  # only frames that fire spill into the next slot
    if fires.numel():
        flat.index_add_(0, (base + right).reshape(-1)[fires], h[fires] * w_right.reshape(-1, 1)[fires].to(acc))
    max_extra = int(extra.max().item()) if extra.numel() else 0
    for e in range(1, max_extra + 1):  # frames that fire more than once: whole beta-units in between
        multi = (extra >= e).reshape(-1).nonzero().squeeze(1)
        flat.index_add_(0, (base + left + e).reshape(-1)[multi], h[multi] * beta)
    out = flat.view(B, n_slots, D)

    # Fire frame of unit k = first frame with right >= k + 1.
    ks = torch.arange(n_slots, device=device).unsqueeze(0).expand(B, n_slots).contiguous()
    fire_frames = torch.searchsorted(right.contiguous(), ks + 1, side="left")
    nonzero = a > 0
    idx = torch.arange(T, device=device).expand(B, T)
    last_nonzero = torch.where(nonzero, idx, torch.full_like(idx, -1)).max(1).values.clamp_min(0) if T > 0 \
        else torch.zeros(B, dtype=torch.long, device=device)

    rows = torch.arange(B, device=device)
    if target_lengths is not None:
        lengths = target_lengths.to(device=device, dtype=torch.long).clone()
        # A remainder from rounding: slot fired_full is the last unit (unscaled), at the last nonzero frame.
        short = fired_full < lengths
        fire_frames[rows[short], fired_full[short]] = last_nonzero[short]
    else:
        if min_units not in (0, 1):
            raise ValueError(f"min_units must be 0 or 1, not {min_units}")
        lone = (fired_full == 0) if min_units else torch.zeros_like(fired_full, dtype=torch.bool)
        tail = (leftover >= tail_threshold) & (leftover > 0) & ~lone
        lengths = fired_full + (tail | lone).long()
        scale = torch.ones(B, dtype=torch.float64, device=device)
        scale[tail] = beta / leftover[tail]
        out[rows, fired_full] = out[rows, fired_full] * scale[:, None].to(acc)
        fire_frames[rows[tail | lone], fired_full[tail | lone]] = last_nonzero[tail | lone]
    if max_units is not None:
        lengths = lengths.clamp_max(max_units)
    n_out = int(lengths.max().item()) if B > 0 else 0
    if n_out > n_slots:  # only when a target asks for more units than the weight allows (all-zero alpha)
        out = F.pad(out, (0, 0, 0, n_out - n_slots))
        fire_frames = F.pad(fire_frames, (0, n_out - n_slots), value=0)
        pad_cols = torch.arange(n_out, device=device) >= n_slots
        fire_frames[:, pad_cols] = last_nonzero[:, None]
    valid = torch.arange(n_out, device=device)[None, :] < lengths[:, None]
    fired = (out[:, :n_out] * valid.unsqueeze(-1)).to(hidden.dtype)
    fire_frames = torch.where(valid, fire_frames[:, :n_out].clamp_max(max(T - 1, 0)),
                              torch.full_like(fire_frames[:, :n_out], -1))
    return CifOutput(fired=fired, lengths=lengths, fire_frames=fire_frames)


class CifWeightGenerator(nn.Module):
    """alpha = sigmoid(Linear(dropout([ReLU(dropout(Conv1d_w(x)))] x L))), zero on padded frames.

    (The authors apply Dropout before ReLU; the two commute.)
    """

    def __init__(self, dim: int, width: int = 3, num_layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, width, padding=width // 2) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D), mask: (B, T) True on valid frames -> alpha: (B, T) in [0, 1], 0 on padding."""
        m = mask.unsqueeze(1).to(x.dtype)
        h = x.transpose(1, 2) * m  # zero padded frames so they do not leak into the conv window
        for conv in self.convs:
            h = self.dropout(F.relu(conv(h))) * m
        alpha = torch.sigmoid(self.proj(self.dropout(h.transpose(1, 2)))).squeeze(-1)
        return alpha * mask.to(alpha.dtype)


@dataclass
class CifModuleOutput:
    """fired (B,N,D), lengths (B,), fire_frames (B,N), alpha (B,T) unscaled, quantity (B,) = sum alpha,
    target (B,) long: the count the quantity loss pushes towards."""

    fired: torch.Tensor
    lengths: torch.Tensor
    fire_frames: torch.Tensor
    alpha: torch.Tensor
    quantity: torch.Tensor
    target: torch.Tensor


class CIF(nn.Module):
    """Weight generator + integrate-and-fire with the scaling strategy (reference §2.3)."""

    def __init__(self, dim: int, cfg: CifConfig, max_units: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.max_units = min(cfg.max_units, max_units or cfg.max_units)
        self.weight = CifWeightGenerator(dim, cfg.weight_conv_width, cfg.num_conv_layers, cfg.dropout)
        self.step = 0  # set by SpeechClipModel.set_step; scaling is on while step < cfg.scaling_steps

    def target_counts(self, frame_lens: torch.Tensor) -> torch.Tensor:
        """N* = round(frames / frames_per_unit) clamped to [1, max_units]. frame_lens: (B,) -> (B,) long."""
        n = torch.round(frame_lens.to(torch.float64) / self.cfg.frames_per_unit).long()
        return n.clamp(1, self.max_units)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                target_counts: torch.Tensor | None = None) -> CifModuleOutput:
        """x: (B, T, D), mask: (B, T) valid frames, target_counts: (B,) long or None."""
        alpha = self.weight(x, mask)
        quantity = alpha.sum(1)  # before scaling: the quantity loss teaches the unscaled count
        if target_counts is None or self.cfg.target == "frames":
            target = self.target_counts(mask.sum(1))
        else:
            target = target_counts.to(x.device).long().clamp(1, self.max_units)
        scaling = self.training and self.step < self.cfg.scaling_steps
        # After the scaling phase (and at inference) units fire on the raw alpha with tail handling; the
        # authors drop the tail during training instead, we keep one rule for training and inference.
        out = integrate_and_fire(
            x, alpha, self.cfg.threshold,
            target_lengths=target if scaling else None,
            tail_threshold=self.cfg.tail_threshold,
            max_units=self.max_units,
            min_units=1,  # the method's count clip: a short or quiet query still gives one keyword
        )
        return CifModuleOutput(out.fired, out.lengths, out.fire_frames, alpha, quantity, target)
