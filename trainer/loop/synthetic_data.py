"""`--dataset synthetic`: random speech-image pairs (open_clip's `--dataset-type synthetic`), so
`main(["train", "--dataset", "synthetic", "--max-steps", "2"])` runs end to end with no files.

Each item is deterministic in (seed, index): a noise waveform whose length follows its caption's word
count, a caption of words from a small closed list (all single CLIP tokens) with word times, and an
image (a random RGB image seeded by the image id, several captions per image).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WORDS = ("red", "blue", "green", "circle", "square", "star", "big", "small", "left", "right")
WORD_S = 0.25  # seconds per synthetic word
PAUSE_S = 0.05


class SyntheticSpeechImageDataset(Dataset):
    """`size` random utterances over `size // captions_per_image` images (image keys `synthetic:<id>`)."""

    def __init__(self, size: int = 64, *, seed: int = 0, captions_per_image: int = 2, image_size: int = 32,
                 split: str = "train") -> None:
        self.size = size
        self.seed = seed + (0 if split == "train" else 10_000)
        self.cpi = captions_per_image
        self.image_size = image_size
        self.split = split

    def __len__(self) -> int:
        return self.size

    def image_keys(self) -> list[str]:
        return sorted({f"synthetic:{self.seed}:{i // self.cpi}" for i in range(self.size)})

    def texts(self) -> list[str]:
        return [self[i]["text"] for i in range(self.size)]

    def load_image(self, key: str) -> Any:
        """`synthetic:<seed>:<id>` -> a random RGB PIL image (the tower's transform resizes it)."""
        from PIL import Image

        image_id = int(key.rsplit(":", 1)[1])
        rng = np.random.default_rng(self.seed * 7919 + image_id)
        return Image.fromarray(rng.integers(0, 256, (self.image_size, self.image_size, 3), dtype=np.uint8))

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng(self.seed * 100_003 + i)
        image_id = i // self.cpi
        # captions of one image share their words, so speech carries the image's identity
        img_rng = np.random.default_rng(self.seed * 31 + image_id)
        words = [WORDS[j] for j in img_rng.choice(len(WORDS), size=int(img_rng.integers(2, 5)), replace=False)]
        spans, t = [], 0.1
        for w in words:
            spans.append({"word": w, "start_s": round(t, 3), "end_s": round(t + WORD_S, 3)})
            t += WORD_S + PAUSE_S
        n = int((t + 0.1) * SAMPLE_RATE)
        wav = rng.standard_normal(n).astype(np.float32) * 0.1
        return {
            "wav": torch.from_numpy(wav),
            "image_id": image_id,
            "image_key": f"synthetic:{self.seed}:{image_id}",
            "text": " ".join(words),
            "words": spans,
            "voice": "noise",
        }
