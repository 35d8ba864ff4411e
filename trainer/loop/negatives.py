"""More speech->image negatives from the frozen image tower's cached features (TrainConfig.bank_negatives).

The paper contrasts each utterance with the images of its batch only (reference §1.5). With the image tower
frozen, every training image's feature is already in the cache, so an utterance can also be contrasted with
images beyond its batch at the cost of one small matmul: retrieval at test time ranks hundreds of images, a
batch of 16 offers 15. The batch's own images are left out of the bank (they are positives or in-batch
negatives already). A drawn subset depends only on the batch's keys (crc32), not on a global RNG, so a resumed
run draws what the uninterrupted one drew.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch

from core.errors import ConfigError
from trainer.loop.feature_cache import ImageFeatureCache


def check_bank_negatives(count: int, cached: bool) -> None:
    """ConfigError unless ``count`` (TrainConfig.bank_negatives) is 0, or -1 / > 0 with cached image features."""
    if count < -1:
        raise ConfigError(f"bank_negatives={count}: use -1 (every training image), N > 0 (N a batch) or 0 (off)")
    if count and not cached:
        raise ConfigError(f"bank_negatives={count} needs the cached image features (a frozen image tower and "
                          "cache_image_features true); set bank_negatives=0 otherwise")


class NegativeBank:
    """Cached features of a fixed set of (training) image keys; ``draw(batch_keys)`` -> (Bn, E) negatives."""

    def __init__(self, cache: ImageFeatureCache, keys: Sequence[str], count: int, seed: int = 0) -> None:
        if count == 0:
            raise ConfigError("bank_negatives=0 means no bank: build none")
        check_bank_negatives(count, cached=True)
        self.keys = sorted(set(keys))
        self.feats = cache.lookup(self.keys)
        self.row = {k: i for i, k in enumerate(self.keys)}
        self.count = count
        self.seed = seed

    def draw(self, batch_keys: Sequence[str]) -> torch.Tensor:
        """Features of the bank's images that are not in the batch: all of them, or ``count`` drawn."""
        keep = torch.ones(len(self.keys), dtype=torch.bool)
        own = [self.row[k] for k in batch_keys if k in self.row]
        if own:
            keep[own] = False
        idx = keep.nonzero().squeeze(1)
        if 0 < self.count < idx.numel():
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32("\n".join(batch_keys).encode()))
            idx = idx[torch.randperm(idx.numel(), generator=gen)[: self.count]]
        return self.feats[idx]
