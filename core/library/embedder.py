"""Image embedders: what the indexer feeds decoded pixels to.

`ImageEmbedder` is the small protocol the library needs (so tests can use a fast fake);
`ClipImageEmbedder` is the real one over the model's CLIP tower (core.model.clip_tower.ClipTower).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's defaults, used when the tower has none
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@runtime_checkable
class ImageEmbedder(Protocol):
    """Turns decoded pixels into L2-normalised vectors.

    image_size: side S of the square crops `embed` takes; identity: a string that changes whenever the
    vectors would (the CLIP tower's hash); dim: E.
    """

    image_size: int
    identity: str
    dim: int

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """pixels: (B, S, S, 3) uint8 RGB -> (B, E) float32, rows L2-normalised."""
        ...


class ClipImageEmbedder:
    """The CLIP image tower as an ImageEmbedder: normalises with the tower's mean/std and runs
    `encode_image` in batches, in half-precision autocast on CUDA (core.device) and float32 on CPU.
    """

    def __init__(self, clip: Any, device: Any = None) -> None:
        import torch

        self.clip = clip
        self.device = torch.device(device) if device is not None else _module_device(clip)
        self.image_size = int(clip.image_size)
        self.identity = str(clip.identity)
        mean = getattr(clip, "image_mean", None) or OPENAI_MEAN
        std = getattr(clip, "image_std", None) or OPENAI_STD
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1) * 255.0
        dim = getattr(clip, "embed_dim", None)
        self.dim = int(dim) if dim else int(self.embed(np.zeros((1, self.image_size, self.image_size, 3), np.uint8)).shape[1])

    def to_tensor(self, pixels: np.ndarray) -> Any:
        """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 on the device, normalised as CLIP expects."""
        import torch

        arr = np.ascontiguousarray(pixels)
        if not arr.flags.writeable:  # e.g. a decoded image's read-only view: torch warns about those
            arr = arr.copy()
        x = torch.from_numpy(arr).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float()
        return (x - self._mean) / self._std

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """pixels: (B, S, S, 3) uint8 RGB -> (B, E) float32, L2-normalised."""
        import torch

        from core.device import autocast_for

        if pixels.ndim != 4 or pixels.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"pixels must be (B, {self.image_size}, {self.image_size}, 3); got {pixels.shape}")
        x = self.to_tensor(pixels)
        with torch.inference_mode(), autocast_for(self.device):  # fp16/bf16 on CUDA, float32 on CPU
            feats = self.clip.encode_image(x)
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)


def _module_device(module: Any) -> Any:
    import torch

    try:
        return next(module.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")



def embed_decoded(embedder: ImageEmbedder, decoded: Sequence[Any]) -> list[np.ndarray]:
    """Decoded photos and videos (core.library.decode.DecodedImage) -> each one's frame vectors (K, E) float32,
    rows L2-normalised: one row for a photo, one per frame for a video. The frames of every item go through
    the encoder in one batch."""
    frames = [d.all_frames for d in decoded]
    if not frames:
        return []
    vecs = embedder.embed(np.concatenate(frames) if len(frames) > 1 else frames[0])
    bounds = np.cumsum([0] + [len(f) for f in frames])
    return [vecs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def pooled(frame_vectors: np.ndarray) -> np.ndarray:
    """(K, E) frame vectors -> (E,) their mean, L2-normalised: a video's one vector (a photo's is its own)."""
    if len(frame_vectors) == 1:
        return frame_vectors[0]
    mean = frame_vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
