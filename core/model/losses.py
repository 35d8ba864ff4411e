"""Losses: symmetric InfoNCE with same-image negatives masked (reference §1.5), CIF quantity loss, and the
optional auxiliary keyword loss. Functions take already-gathered features so a DDP trainer can gather
across ranks first (open_clip's gather_features) and pass the larger sets here.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def masked_info_nce(speech: torch.Tensor, image: torch.Tensor, speech_ids: torch.Tensor,
                    image_ids: torch.Tensor, logit_scale: torch.Tensor | float,
                    speech_offset: int = 0, extra_negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE; negatives with the same image id as the positive are removed, the positive kept.

    Args:
        speech: (Bs, E) L2-normalised speech vectors (the local batch, or a gathered set).
        image: (Bi, E) L2-normalised image vectors; row ``speech_offset + i`` is the positive of speech i.
        speech_ids: (Bs,) image id of each utterance; image_ids: (Bi,) id of each image row.
        logit_scale: s = 1 / temperature (tensor when learnable).
        speech_offset: where the speech rows' positives start in ``image`` (rank * local batch when the
            image set is gathered and speech is local); 0 when both sets are the same size.
        extra_negatives: (Bn, E) L2-normalised image vectors that are negatives of every speech row (none of
            them the image of an utterance here: the caller leaves those out), added to the speech->image side
            only. Not in the paper (in-batch negatives); see TrainConfig.bank_negatives.

    Returns: scalar loss = mean of the speech->image and image->speech cross-entropies.
    """
    Bs, Bi = speech.shape[0], image.shape[0]
    assert speech.shape[1] == image.shape[1] and speech_ids.shape == (Bs,) and image_ids.shape == (Bi,)
    logits = logit_scale * speech @ image.t()  # (Bs, Bi)
    pos = torch.arange(Bs, device=speech.device) + speech_offset
    same = speech_ids[:, None].to(image_ids.device) == image_ids[None, :]
    keep_pos = torch.zeros_like(same)
    keep_pos[torch.arange(Bs, device=speech.device), pos] = True
    masked = logits.masked_fill(same & ~keep_pos, float("-inf"))
    s2i = masked
    if extra_negatives is not None and extra_negatives.shape[0] > 0:
        s2i = torch.cat([masked, logit_scale * speech @ extra_negatives.to(speech.dtype).t()], dim=1)
    loss_s2i = F.cross_entropy(s2i, pos)
    if Bs == Bi:
        loss_i2s = F.cross_entropy(masked.t(), torch.arange(Bi, device=speech.device))
    else:  # image -> speech over the image rows that have their speech row here
        rows = masked[:, pos].t()  # (Bs, Bs): image pos[j] against local speech
        loss_i2s = F.cross_entropy(rows, torch.arange(Bs, device=speech.device))
    return 0.5 * (loss_s2i + loss_i2s)


def quantity_loss(quantity: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between sum(alpha) (B,) and the target count (B,), averaged over the batch."""
    return F.l1_loss(quantity, target.to(quantity.dtype))


def keyword_token_loss(logits: torch.Tensor, lengths: torch.Tensor, token_rows: torch.Tensor,
                       token_lengths: torch.Tensor, temperature: float) -> torch.Tensor:
    """Auxiliary CE: unit i's cosine logits (scaled by 1/temperature) against the caption's i-th token.

    logits: (B, N, V) cosines to the keyword table; lengths: (B,) units; token_rows: (B, L) table rows of
    the caption tokens (SOT/EOT removed, -1 where absent); token_lengths: (B,). Pairs i < min(n, l) count.
    """
    B, N, V = logits.shape
    L = token_rows.shape[1]
    M = min(N, L)
    if M == 0:
        return logits.sum() * 0.0
    idx = torch.arange(M, device=logits.device)
    valid = (idx[None] < lengths[:, None]) & (idx[None] < token_lengths[:, None]) & (token_rows[:, :M] >= 0)
    if not bool(valid.any()):
        return logits.sum() * 0.0
    lg = logits[:, :M][valid] / temperature
    return F.cross_entropy(lg, token_rows[:, :M][valid])


def boundary_target_cumsum(boundary_frames: torch.Tensor, start_frames: torch.Tensor | None, T: int,
                           edge: float = 0.5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, T) target running sum of alpha for words ending in `boundary_frames` (B, W) (-1 = absent).

    Unit k is spread as (1 - edge) uniformly over word k's frames, plus `edge` concentrated in the frame in which
    word k ends, shared half and half with the next unit (the first unit's other half sits in the first word's
    first frame, the last unit's in the last word's last frame). The sum is k - edge/2 just before the end of
    word k and k + edge/2 at its last frame, so CIF fires (crosses k) in that frame even when the learned sum is
    off by up to edge/2 - a pure ramp would let a small error move the fire by many frames.
    """
    B, W = boundary_frames.shape
    dev = boundary_frames.device
    valid = boundary_frames >= 0
    e = boundary_frames.to(dtype)
    start = start_frames.to(dev, dtype) if start_frames is not None else torch.zeros(B, device=dev, dtype=dtype)
    left = torch.cat([start[:, None], e[:, :-1]], dim=1)  # ramp of unit k over frames (left_k, right_k]
    right = torch.where(valid, e - 1.0, left)
    t = torch.arange(T, device=dev, dtype=dtype)[None, :, None]  # (1, T, 1)
    width = (right - left).clamp_min(1.0)[:, None, :]
    vmask = valid[:, None, :].to(dtype)
    ramps = ((t - left[:, None, :]) / width).clamp(0.0, 1.0) * vmask
    n_words = valid.sum(1)
    is_last = (torch.arange(W, device=dev)[None, :] == (n_words - 1)[:, None]) & valid
    spike = torch.where(is_last, edge / 2, edge) * valid.to(dtype)  # (B, W): weight in word k's last frame
    steps = (t >= e[:, None, :]).to(dtype) * spike[:, None, :]
    first = (t[..., 0] >= start[:, None]).to(dtype) * (edge / 2) * (n_words > 0)[:, None].to(dtype)
    return (1.0 - edge) * ramps.sum(-1) + steps.sum(-1) + first


def boundary_alignment_loss(alpha: torch.Tensor, boundary_frames: torch.Tensor,
                            start_frames: torch.Tensor | None = None, tail_frames: int = 5,
                            edge: float = 0.5, crossing_weight: float = 0.0) -> torch.Tensor:
    """Auxiliary alignment: CIF's running sum of alpha should follow the words, crossing k at the end of word k.

    alpha: (B, T) unscaled CIF weights (zero on padding); boundary_frames: (B, W) long, the frame in which word k
    ends (k = 1..W), -1 where absent; start_frames: (B,) long, the frame in which the first word starts (0 when
    not given). Returns the mean |cumsum(alpha)_t - target_t| (target: :func:`boundary_target_cumsum`) over every
    frame up to ``tail_frames`` past the last word; with ``crossing_weight``, plus that weight times a hinge on
    the crossing itself (sum below k - edge/4 just before word k ends, at least k + edge/4 where it ends).
    """
    B, T = alpha.shape
    valid = (boundary_frames >= 0) & (boundary_frames < T)
    if boundary_frames.shape[1] == 0 or T == 0 or not bool(valid.any()):
        return alpha.sum() * 0.0
    bf = torch.where(valid, boundary_frames, torch.full_like(boundary_frames, -1))
    target = boundary_target_cumsum(bf, start_frames, T, edge, alpha.dtype)
    n_words = valid.sum(1)
    last = torch.gather(bf.clamp_min(0), 1, (n_words - 1).clamp_min(0)[:, None]).squeeze(1)
    t = torch.arange(T, device=alpha.device)[None, :]
    frame_ok = (t <= (last + tail_frames)[:, None]) & (n_words > 0)[:, None]
    csum = torch.cumsum(alpha, dim=1)
    dense = (csum - target).abs()[frame_ok].mean()
    if crossing_weight <= 0:
        return dense
    # the decision itself: the sum must still be below k (by a margin) in the frame before word k ends and reach
    # k (by the margin; the last word: exactly) in the frame where it ends, so CIF fires there
    k = torch.arange(1, bf.shape[1] + 1, device=alpha.device, dtype=alpha.dtype)[None, :].expand_as(bf)
    margin = edge / 4
    before = torch.gather(csum, 1, (bf - 1).clamp(0, T - 1))
    at = torch.gather(csum, 1, bf.clamp(0, T - 1))
    is_last = torch.arange(bf.shape[1], device=alpha.device)[None, :] == (n_words - 1)[:, None]
    need = torch.where(is_last, k, k + margin)
    hinge = F.relu(before - (k - margin)) + F.relu(need - at)
    return dense + crossing_weight * hinge[valid & (bf >= 1)].mean()
