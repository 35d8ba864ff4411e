"""The torch Dataset over Utterance records, and the collate that pads a batch.

An item is ``{"wav": (S,) float32 16 kHz, "image_id": int, "image_key": str (the image path), "text": str,
"words": list[dict] | None, "voice": str | None, "n_words": int}`` plus ``"image": (3, H, W)`` when an
image transform is given. ``collate_speech_image`` pads to ``{"wav": (B, S_max), "wav_lens": (B,),
"image_ids": (B,), "target_counts": (B,), "image_keys", "texts", "words"}`` (docs/interfaces.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from core.audio import SAMPLE_RATE, load_audio
from trainer.data.image_file import load_image
from trainer.data.records import Utterance

logger = logging.getLogger(__name__)


class SpeechImageDataset(Dataset):
    """Utterances -> items. `max_audio_s` crops longer audio (randomly when `random_crop`, else the start);
    words outside the crop are dropped and the kept ones shifted, so `n_words` stays the CIF target."""

    def __init__(
        self,
        utterances: Sequence[Utterance],
        *,
        max_audio_s: float | None = None,
        random_crop: bool = True,
        seed: int = 0,
        image_transform: Callable[[Any], torch.Tensor] | None = None,
    ) -> None:
        self.utterances = list(utterances)
        self.max_samples = int(max_audio_s * SAMPLE_RATE) if max_audio_s else None
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = 0
        self.image_transform = image_transform

    def __len__(self) -> int:
        return len(self.utterances)

    def set_epoch(self, epoch: int) -> None:
        """Crops depend on (seed, epoch, index), so a resumed run crops as the original did."""
        self.epoch = epoch

    def image_keys(self) -> list[str]:
        """Every distinct image (its path as a string), sorted: what the feature cache encodes."""
        return sorted({str(u.image_path) for u in self.utterances})

    def image_id_of_key(self) -> dict[str, int]:
        return {str(u.image_path): u.image_id for u in self.utterances}

    load_image = staticmethod(load_image)  # the PIL RGB image of a key (a path)

    def _crop(
        self, wav: np.ndarray, words: list[dict] | None, i: int
    ) -> tuple[np.ndarray, list[dict] | None]:
        if self.max_samples is None or wav.size <= self.max_samples:
            return wav, words
        start = 0
        if self.random_crop:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            start = int(rng.integers(0, wav.size - self.max_samples + 1))
        wav = wav[start : start + self.max_samples]
        if words is not None:
            t0, t1 = start / SAMPLE_RATE, (start + self.max_samples) / SAMPLE_RATE
            words = [
                {
                    "word": w["word"],
                    "start_s": round(w["start_s"] - t0, 4),
                    "end_s": round(w["end_s"] - t0, 4),
                }
                for w in words
                if w["start_s"] >= t0 and w["end_s"] <= t1
            ]
        return wav, words

    def __getitem__(self, i: int) -> dict[str, Any]:
        u = self.utterances[i]
        wav = load_audio(u.audio_path)
        words = (
            [{"word": w.word, "start_s": w.start_s, "end_s": w.end_s} for w in u.words] if u.words else None
        )
        wav, words = self._crop(wav, words, i)
        item: dict[str, Any] = {
            "wav": torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)),
            "image_id": u.image_id,
            "image_key": str(u.image_path),
            "text": u.text,
            "words": words,
            "voice": u.voice,
            "n_words": len(words) if words is not None else u.n_words,
        }
        if self.image_transform is not None:
            item["image"] = self.image_transform(self.load_image(str(u.image_path)))
        return item


def collate_speech_image(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of items into a batch: "wav" (B, S_max) zero-padded, "wav_lens" (B,) long, "image_ids"
    (B,) long, "target_counts" (B,) long (word counts), "images" (B, 3, H, W) when items carry "image"."""
    lens = torch.tensor([int(it["wav"].numel()) for it in items], dtype=torch.long)
    wav = torch.zeros(len(items), int(lens.max()) if len(items) else 0)
    for b, it in enumerate(items):
        wav[b, : lens[b]] = it["wav"]
    batch: dict[str, Any] = {
        "wav": wav,
        "wav_lens": lens,
        "image_ids": torch.tensor([int(it["image_id"]) for it in items], dtype=torch.long),
        "target_counts": torch.tensor([int(it["n_words"]) for it in items], dtype=torch.long),
        "image_keys": [it["image_key"] for it in items],
        "texts": [it["text"] for it in items],
        "words": [it["words"] for it in items],
    }
    if items and "image" in items[0]:
        batch["images"] = torch.stack([it["image"] for it in items])
    return batch
