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
                    speech_offset: int = 0) -> torch.Tensor:
    """Symmetric InfoNCE; negatives with the same image id as the positive are removed, the positive kept.

    Args:
        speech: (Bs, E) L2-normalised speech vectors (the local batch, or a gathered set).
        image: (Bi, E) L2-normalised image vectors; row ``speech_offset + i`` is the positive of speech i.
        speech_ids: (Bs,) image id of each utterance; image_ids: (Bi,) id of each image row.
        logit_scale: s = 1 / temperature (tensor when learnable).
        speech_offset: where the speech rows' positives start in ``image`` (rank * local batch when the
            image set is gathered and speech is local); 0 when both sets are the same size.

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
    loss_s2i = F.cross_entropy(masked, pos)
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


def boundary_alignment_loss(alpha: torch.Tensor, boundary_frames: torch.Tensor) -> torch.Tensor:
    """Auxiliary alignment: the running sum of alpha should reach k at the k-th word boundary.

    alpha: (B, T) unscaled CIF weights (zero on padding); boundary_frames: (B, W) long, the frame whose end is
    closest to the boundary after word k (k = 1..W), -1 where absent. Returns mean |cumsum(alpha)[f_k] - k|
    over the valid boundaries, so that CIF fires (cumsum crossing k) at the end of word k.
    """
    B, T = alpha.shape
    W = boundary_frames.shape[1]
    valid = (boundary_frames >= 0) & (boundary_frames < T)
    if W == 0 or not bool(valid.any()):
        return alpha.sum() * 0.0
    csum = torch.cumsum(alpha, dim=1)
    picked = torch.gather(csum, 1, boundary_frames.clamp(0, max(T - 1, 0)))
    target = torch.arange(1, W + 1, device=alpha.device, dtype=alpha.dtype).expand(B, W)
    return (picked - target).abs()[valid].mean()
