"""Utterance records (any reader in trainer/data) -> training items, and the dataset builder by type."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from core.audio import SAMPLE_RATE, load_audio
from core.errors import ConfigError, DatasetError
from trainer.config import TrainConfig
from trainer.data.augment import SpeechAugment

logger = logging.getLogger(__name__)


class UtteranceDataset(Dataset):
    """Items `{"wav", "image_id", "image_key", "text", "words", "voice"}` for `trainer.loop.batches`.

    Training items longer than `max_audio_s` are randomly cropped (the authors' `random_crop_max_length`),
    drawing from torch's global RNG (checkpointed, so a resumed run crops identically with 0 workers).
    """

    def __init__(self, utterances: Sequence[Any], *, max_audio_s: float = 0.0, train: bool = False,
                 augment: SpeechAugment | None = None, whole_words: bool = False) -> None:
        self.utts = list(utterances)
        self.whole_words = whole_words
        self.augment = augment if (augment is not None and augment.enabled and train) else None
        self.max_samples = int(max_audio_s * SAMPLE_RATE) if max_audio_s > 0 else 0
        self.train = train

    def __len__(self) -> int:
        return len(self.utts)

    def image_keys(self) -> list[str]:
        return sorted({str(u.image_path) for u in self.utts})

    def lengths(self) -> list[float] | None:
        """Approximate durations (s) from the word times (end of the last word), None without them."""
        if any(not u.words for u in self.utts):
            return None
        return [u.words[-1].end_s for u in self.utts]

    def texts(self) -> list[str]:
        return [u.text for u in self.utts]

    def __getitem__(self, i: int) -> dict[str, Any]:
        u = self.utts[i]
        wav = load_audio(u.audio_path)
        words = None if u.words is None else [{"word": w.word, "start_s": w.start_s, "end_s": w.end_s}
                                               for w in u.words]
        text = u.text
        if self.augment is not None:
            wav, words = self.augment(wav, words)
        if self.train and self.max_samples and wav.shape[0] > self.max_samples:
            start = int(torch.randint(0, wav.shape[0] - self.max_samples + 1, ()).item())
            end = start + self.max_samples
            if words and self.whole_words:
                start, end = whole_word_window(words, start, end)
            wav = wav[start:end]
            if words is not None:  # keep the words inside the crop, on its clock
                t0, t1 = start / SAMPLE_RATE, end / SAMPLE_RATE
                kept = [{**w, "start_s": round(w["start_s"] - t0, 4), "end_s": round(w["end_s"] - t0, 4)}
                        for w in words if w["start_s"] >= t0 and w["end_s"] <= t1]
                if len(kept) < len(words):
                    # the text targets (CIF unit count, keyword tokens) must describe the audio that is left,
                    # not the whole caption (our synthetic captions run up to 15 s against 6.4 s crops).
                    # Without word times the full caption stays the target of a crop: nothing tells what is left.
                    text = " ".join(w["word"] for w in kept)
                words = kept
        return {"wav": torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), "image_id": int(u.image_id),
                "image_key": str(u.image_path), "text": text, "words": words, "voice": u.voice}


def whole_word_window(words: Sequence[dict[str, Any]], start: int, end: int) -> tuple[int, int]:
    """The crop [start, end) (samples) with its edges moved into pauses: a start inside a word moves back to
    that word's onset, then an end inside a word moves back to that word's onset (the window only shrinks
    past `end`'s word, never grows beyond `end - start`). Same random draw, no partial word at either edge."""
    length = end - start
    for w in words:
        a, b = int(w["start_s"] * SAMPLE_RATE), int(w["end_s"] * SAMPLE_RATE)
        if a < start < b:
            start = a
            break
    end = start + length
    for w in words:
        a, b = int(w["start_s"] * SAMPLE_RATE), int(w["end_s"] * SAMPLE_RATE)
        if a < end < b:
            end = max(a, start + 1)
            break
    return start, end


def read_utterances(dataset: str, data_dir: str, split: str, *, check: bool = True) -> list[Any]:
    """The reader of `dataset` (manifest | flickr8k | spokencoco) for one split (`all` = every split); `check`:
    its up-front file check (else check_utterances, e.g. once over several splits)."""
    which = None if split == "all" else split
    if dataset == "manifest":
        from trainer.data.manifest import read_manifest

        return read_manifest(data_dir, which, check=check)
    if dataset == "flickr8k":
        from trainer.data.flickr8k import read_flickr8k

        return read_flickr8k(data_dir, which, check=check)
    if dataset == "spokencoco":
        from trainer.data.spokencoco import read_spokencoco

        return read_spokencoco(data_dir, which, check=check)
    raise ConfigError(f"dataset {dataset!r} has no reader; use manifest, flickr8k, spokencoco or synthetic")


def check_utterances(dataset: str, data_dir: str, utts: Sequence[Any], *, decode_images: bool = False) -> None:
    """The up-front file check of `dataset`'s reader over utterances read with check=False: one DatasetError
    listing every missing or unreadable file among them (`decode_images`: every image decoded too)."""
    if dataset == "manifest":
        from trainer.data.manifest import check_manifest_files as check
    elif dataset == "flickr8k":
        from trainer.data.flickr8k import check_flickr8k_files as check
    elif dataset == "spokencoco":
        from trainer.data.spokencoco import check_spokencoco_files as check
    else:
        raise ConfigError(f"dataset {dataset!r} has no reader; use manifest, flickr8k, spokencoco or synthetic")
    check(list(utts), data_dir, decode_images=decode_images)


def check_datasets(cfg: TrainConfig, train: Dataset, val: Dataset | None, *, decode_images: bool = False) -> None:
    """check_utterances over the files of the datasets of build_datasets(cfg, check=False) (synthetic: none)."""
    if cfg.dataset == "synthetic":
        return
    utts = list(getattr(train, "utts", [])) + (list(getattr(val, "utts", [])) if val is not None else [])
    check_utterances(cfg.dataset, cfg.data_dir, utts, decode_images=decode_images)


def filter_voices(utts: list[Any], keep: Sequence[str], exclude: Sequence[str]) -> list[Any]:
    out = [u for u in utts if (not keep or u.voice in keep) and u.voice not in set(exclude)]
    present = ", ".join(sorted({str(u.voice) for u in utts}))
    if utts and not out:
        raise DatasetError(f"no utterance left after the voice filter (train_voices={list(keep)}, "
                           f"exclude_voices={list(exclude)}); fix the voice names (the split's voices: {present})")
    absent = [v for v in keep if v not in {u.voice for u in utts}]
    if absent:  # a typo would otherwise train on the other voices unnoticed
        logger.warning("train_voices %s are not in the training split (its voices: %s): trained without them",
                       absent, present)
    return out


def training_fingerprint(dataset: Dataset, data_dir: str) -> dict[str, Any]:
    """{"utterances": N, "sha256": hash of the sorted (audio path relative to data_dir, text) pairs}: which data a
    run trains on, the same for the data folder moved elsewhere (synthetic data: its image keys)."""
    utts = getattr(dataset, "utts", None)
    if utts is None:
        items = sorted(dataset.image_keys())  # type: ignore[attr-defined]
    else:
        root = os.path.abspath(data_dir or ".")
        items = sorted(f"{os.path.relpath(os.path.abspath(u.audio_path), root)}\t{u.text}" for u in utts)
    digest = hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()
    return {"utterances": len(dataset), "sha256": digest}  # type: ignore[arg-type]


def word_time_count(dataset: Dataset) -> dict[str, int] | None:
    """{"utterances": N, "with_word_times": K} of a training set (None for the synthetic tensors, which carry no
    utterance list): what the auxiliary boundary loss and whole-word crops can use."""
    utts = getattr(dataset, "utts", None)
    if utts is None:
        return None
    return {"utterances": len(utts), "with_word_times": sum(1 for u in utts if u.words)}


def _read_split(cfg: TrainConfig, split: str, option: str) -> list[Any]:
    """read_utterances, with a missing manifest split named by the training option that chose it."""
    from trainer.data.manifest import SplitNotFound, read_manifest

    try:
        return read_utterances(cfg.dataset, cfg.data_dir, split, check=False)  # build_datasets checks once
    except SplitNotFound:
        present = sorted({u.split for u in read_manifest(cfg.data_dir, check=False)})
        hint = " (or --val-split='' to train without validation)" if option == "--val-split" else ""
        raise DatasetError(f"{cfg.data_dir}: no line of its manifest has \"split\": {json.dumps(split)} ({option}="
                           f"{split}); its splits: {', '.join(present)}. Fix: pass {option}=ONE_OF_THEM{hint}, or "
                           f"give some lines \"split\": {json.dumps(split)}") from None


def build_datasets(cfg: TrainConfig, *, check: bool = True) -> tuple[Dataset, Dataset | None]:
    """(train, val or None) datasets of the configured type. The files of both (those left after the voice
    filters and size limits) are checked in one go: one error lists every missing or unreadable file of
    either split (`check=False`: the caller runs check_datasets)."""
    if cfg.dataset == "synthetic":
        from trainer.loop.synthetic_data import SyntheticSpeechImageDataset

        train = SyntheticSpeechImageDataset(cfg.synthetic_size, seed=cfg.seed, split="train")
        val = SyntheticSpeechImageDataset(max(8, cfg.synthetic_size // 4), seed=cfg.seed, split="val")
        return train, (val if cfg.val_split else None)
    train_utts = filter_voices(_read_split(cfg, cfg.train_split, "--train-split"), cfg.train_voices,
                               cfg.exclude_voices)
    if cfg.max_train_utterances:
        train_utts = train_utts[: cfg.max_train_utterances]
    val = None
    val_utts: list[Any] = []
    if cfg.val_split:
        val_utts = _read_split(cfg, cfg.val_split, "--val-split")
        val_utts = [u for u in val_utts if u.voice not in set(cfg.exclude_voices)]
        if not val_utts:  # validation would have nothing to score (and every run would stop at its first one)
            raise DatasetError(f"val split {cfg.val_split!r} has no utterance left after exclude_voices="
                               f"{list(cfg.exclude_voices)}; validate on another split (--val-split) or "
                               "without validation (--val-split=''), or exclude fewer voices")
        if cfg.val_max_utterances:
            val_utts = val_utts[: cfg.val_max_utterances]
        val = UtteranceDataset(val_utts)
    if check:
        check_utterances(cfg.dataset, cfg.data_dir, train_utts + val_utts)
    logger.info("dataset %s: %d training utterances, %d validation", cfg.dataset, len(train_utts),
                len(val) if val is not None else 0)
    augment = SpeechAugment(speed=(float(cfg.augment_speed[0]), float(cfg.augment_speed[1])),
                            tilt_p=cfg.augment_tilt_p, noise_p=cfg.augment_noise_p, eq_p=cfg.augment_eq_p,
                            reverb_p=cfg.augment_reverb_p,
                            reverb_rt60=(float(cfg.augment_reverb_rt60[0]), float(cfg.augment_reverb_rt60[1])),
                            snr_db=(float(cfg.augment_snr_db[0]), float(cfg.augment_snr_db[1])),
                            gain_db=(float(cfg.augment_gain_db[0]), float(cfg.augment_gain_db[1])))
    if augment.enabled:
        logger.info("training augmentation: %s", augment)
    return UtteranceDataset(train_utts, max_audio_s=cfg.max_audio_s, train=True, augment=augment,
                            whole_words=cfg.crop_whole_words), val
