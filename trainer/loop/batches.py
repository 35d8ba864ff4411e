"""From dataset items to the batch dict `SpeechClipModel.compute_loss` takes.

Items (one utterance) are dicts: `wav` (S,) float tensor 16 kHz, `image_id` int, `image_key` str (image
path or `synthetic:...`), `text` str, optional `words` / `voice`. `collate_items` pads them;
`BatchPreparer` adds the image side (cached features, or images to encode every step; optionally more
negatives from the cache, `negative_feats`) and the CIF / keyword targets from the caption (`target_counts`,
`token_ids`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

from core.model.upstream import FRAME_SECONDS
from trainer.data.image_file import load_image
from trainer.loop.feature_cache import ImageFeatureCache, ImageLoader, preprocess_images
from trainer.loop.negatives import NegativeBank

logger = logging.getLogger(__name__)


def collate_items(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad waveforms: -> {"wav": (B, S), "wav_lens": (B,), "image_ids": (B,), "image_keys", "texts", "words"}."""
    lens = torch.tensor([int(it["wav"].shape[0]) for it in items], dtype=torch.long)
    wav = torch.zeros(len(items), int(lens.max()) if len(items) else 0)
    for i, it in enumerate(items):
        wav[i, : lens[i]] = torch.as_tensor(it["wav"], dtype=torch.float32)
    return {
        "wav": wav,
        "wav_lens": lens,
        "image_ids": torch.tensor([int(it["image_id"]) for it in items], dtype=torch.long),
        "image_keys": [str(it["image_key"]) for it in items],
        "texts": [str(it["text"]) for it in items],
        "words": [it.get("words") for it in items],
        "voices": [it.get("voice") for it in items],
    }


def caption_tokens(clip: Any, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (token_ids (B, 77) long: `clip.tokenize` output [SOT, ids..., EOT, 0...]; counts (B,) long: the
    number of caption tokens between SOT and EOT (the known unit count, CIF target `text_tokens`))."""
    tok = clip.tokenize(list(texts)).cpu()
    eot = int(clip.orig_to_tower[clip.eot_id])
    counts = ((tok == eot).long().argmax(dim=1) - 1).clamp_min(0)
    return tok, counts


def word_boundary_frames(words: Sequence[Sequence[dict[str, Any]] | None], frame_s: float = FRAME_SECONDS) -> torch.Tensor | None:
    """-> (B, W) long: for word k of each utterance, the frame whose end is closest to the word's end (where CIF
    should fire; what `trainer eval` scores), -1 where absent. None when no utterance has word times. Target of
    the auxiliary boundary loss (`aux_boundary_loss_weight`)."""
    if not any(words):
        return None
    width = max(len(w or ()) for w in words)
    out = torch.full((len(words), width), -1, dtype=torch.long)
    for b, ws in enumerate(words):
        for k, w in enumerate(ws or ()):
            out[b, k] = max(round(float(w["end_s"]) / frame_s) - 1, 0)
    return out


def word_start_frames(words: Sequence[Sequence[dict[str, Any]] | None], frame_s: float = FRAME_SECONDS) -> torch.Tensor | None:
    """-> (B,) long: the frame in which each utterance's first word starts (0 without word times); None when no
    utterance has word times. Where the auxiliary boundary loss starts integrating."""
    if not any(words):
        return None
    return torch.tensor([int(float(ws[0]["start_s"]) // frame_s) if ws else 0 for ws in words], dtype=torch.long)


class BatchPreparer:
    """Adds `image_feats` (from the cache) or `images` (encoded by the model each step), and the caption
    targets, then moves tensors to `device`."""

    def __init__(self, clip: Any, device: torch.device, *, cache: ImageFeatureCache | None,
                 loader: ImageLoader = load_image, with_text_targets: bool = True,
                 frame_s: float = FRAME_SECONDS, negatives: NegativeBank | None = None,
                 global_keys: Callable[[list[str]], list[str]] | None = None) -> None:
        self.clip = clip
        self.negatives = negatives  # more speech->image negatives (TrainConfig.bank_negatives)
        # DDP: the loss contrasts every rank's utterances with the bank, so the bank must leave out every
        # rank's images, and all ranks must draw the same one (trainer.distributed.gather_keys)
        self.global_keys = global_keys
        self.frame_s = frame_s  # seconds per upstream frame: where the word-boundary targets fall
        self.device = device
        self.cache = cache
        self.loader = loader
        self.with_text_targets = with_text_targets

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        if self.cache is not None:
            out["image_feats"] = self.cache.lookup(batch["image_keys"])
        else:
            out["images"] = preprocess_images(self.clip, batch["image_keys"], self.loader)
        if self.negatives is not None:
            keys = list(batch["image_keys"])
            out["negative_feats"] = self.negatives.draw(self.global_keys(keys) if self.global_keys else keys)
        if self.with_text_targets:
            out["token_ids"], out["target_counts"] = caption_tokens(self.clip, batch["texts"])
        frames = word_boundary_frames(batch.get("words") or [], self.frame_s)
        if frames is not None:
            out["boundary_frames"] = frames
            out["boundary_start_frames"] = word_start_frames(batch.get("words") or [], self.frame_s)
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in out.items()}
