"""Image features of the frozen CLIP image tower, computed once and cached on disk.

The authors run the frozen image encoder on every batch (reference §1.6). Its output never changes while
it is frozen, so we encode each unique image once: the cache file is keyed by the tower's identity
(sha256 of its config + image weights) and, inside, by the image key (its path, or `synthetic:<id>`).
A different tower gets a different file; new images are added incrementally.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from core.errors import DatasetError
from trainer.checkpoint import save_checkpoint
from trainer.distributed import DistInfo, barrier

logger = logging.getLogger(__name__)

# image key -> PIL image or a preprocessed (3, H, W) tensor
ImageLoader = Callable[[str], Any]


def load_image(key: str) -> Any:
    """Default loader: the key is a file path."""
    from PIL import Image

    try:
        with Image.open(key) as im:
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:  # truncated, corrupt, or not an image at all
        raise DatasetError(f"cannot decode the image {key}: {exc}. Fix: replace or remove it") from exc


def preprocess_images(clip: Any, keys: Sequence[str], loader: ImageLoader = load_image) -> torch.Tensor:
    """Keys -> (B, 3, H, W) preprocessed with the tower's own transform (tensors pass through)."""
    out = []
    for k in keys:
        img = loader(k)
        out.append(img if isinstance(img, torch.Tensor) else clip.preprocess(img))
    return torch.stack(out)


class ImageFeatureCache:
    """Features (N, E) float32 of a frozen ClipTower for a set of image keys, persisted in `cache_dir`."""

    def __init__(self, clip: Any, cache_dir: str | Path, loader: ImageLoader = load_image) -> None:
        self.clip = clip
        self.loader = loader
        self.path = Path(cache_dir) / f"image_feats-{clip.identity[:16]}.pt"
        self.index: dict[str, int] = {}
        self.feats = torch.zeros(0, 0)
        if self.path.is_file():
            blob = torch.load(self.path, map_location="cpu", weights_only=True)
            self.index = {k: i for i, k in enumerate(blob["keys"])}
            self.feats = blob["feats"].float()

    def __len__(self) -> int:
        return len(self.index)

    @torch.no_grad()
    def ensure(self, keys: Sequence[str], dist: DistInfo | None = None, batch_size: int = 64,
               device: torch.device | None = None) -> int:
        """Encode the keys not cached yet (rank 0 only; the others wait and reload). Returns #new."""
        missing = sorted({k for k in keys if k not in self.index})
        distributed = dist is not None and dist.distributed
        if not missing and not distributed:
            return 0
        # Under DDP every rank reaches the barrier below, whatever it found: a rank that built this cache
        # object after rank 0 had saved the file sees nothing missing, and skipping the barrier deadlocked.
        if missing and (dist is None or dist.is_main):
            dev = device or next(self.clip.parameters()).device
            was_training = self.clip.training
            self.clip.eval()
            new = []
            for i in range(0, len(missing), batch_size):
                chunk = missing[i:i + batch_size]
                new.append(self.clip.encode_image(preprocess_images(self.clip, chunk, self.loader).to(dev)).cpu())
            self.clip.train(was_training)
            feats = torch.cat(new).float()
            start = len(self.index)
            self.feats = feats if start == 0 else torch.cat([self.feats, feats])
            for j, k in enumerate(missing):
                self.index[k] = start + j
            keys_sorted = sorted(self.index, key=self.index.__getitem__)
            save_checkpoint({"keys": keys_sorted, "feats": self.feats, "identity": self.clip.identity}, self.path)
            logger.info("cached image features of %d images in %s", len(missing), self.path)
        if distributed:
            barrier()
            if not dist.is_main:
                blob = torch.load(self.path, map_location="cpu", weights_only=True)
                self.index = {k: i for i, k in enumerate(blob["keys"])}
                self.feats = blob["feats"].float()
        return len(missing)

    def lookup(self, keys: Sequence[str]) -> torch.Tensor:
        """(B, E) float32 features of `keys` (all must have been ensure()d)."""
        idx = [self.index[k] for k in keys]
        return self.feats[idx]
