"""Run setup helpers: the model config a run trains (name/path + overrides + data vocabulary), and the
per-epoch validation score."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from core.errors import DatasetError
from core.model.config import ModelConfig, get_model_config, load_model_config, model_config_from_dict
from trainer.config import TrainConfig
from trainer.evaluate import evaluate_dataset
from trainer.loop.batches import BatchPreparer, collate_items

logger = logging.getLogger(__name__)


def caption_vocab(texts: list[str]) -> list[int]:
    """Sorted CLIP BPE ids occurring in `texts` (the reduced keyword vocabulary, reference §1.4)."""
    from open_clip.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer()
    ids: set[int] = set()
    for t in set(texts):
        ids.update(tok.encode(t))
    return sorted(ids)


def resolve_model_config(cfg: TrainConfig, train: Dataset, from_checkpoint: dict[str, Any] | None) -> ModelConfig:
    """The ModelConfig to build: the checkpoint's on resume; else cfg.model (a registry name or a JSON
    path) with cfg.model_overrides (nested dicts) and, if cfg.vocab_from_data, the captions' vocabulary."""
    if from_checkpoint is not None:
        return model_config_from_dict(from_checkpoint)
    p = Path(cfg.model)
    base = load_model_config(p) if (cfg.model.endswith(".json") or p.is_file()) else get_model_config(cfg.model)
    overrides: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.model_overrides.items()}
    if cfg.vocab_from_data:
        texts = train.texts() if hasattr(train, "texts") else [train[i]["text"] for i in range(len(train))]
        ids = caption_vocab(texts)
        overrides.setdefault("clip", {})["vocab_ids"] = ids
        logger.info("keyword vocabulary from the training captions: %d CLIP sub-words", len(ids))
    return base.replace(**overrides) if overrides else base


@torch.no_grad()
def validation_loss(model: Any, val: Dataset, cache: Any, loader: Any, batch_size: int) -> float:
    """Mean total loss over the validation set (eval mode, fixed order)."""
    prep = BatchPreparer(model.clip, model.device, cache=cache, loader=loader, frame_s=model.upstream.frame_seconds)
    was = model.training
    model.eval()
    losses = []
    n = len(val)  # type: ignore[arg-type]
    for s in range(0, n, batch_size):
        batch = prep(collate_items([val[i] for i in range(s, min(n, s + batch_size))]))
        losses.append(float(model.compute_loss(batch).total))
    model.train(was)
    return float(np.mean(losses)) if losses else float("nan")


def validation_metrics(model: Any, val: Dataset, cache: Any, loader: Any, cfg: TrainConfig) -> dict[str, Any]:
    """Retrieval + keyword + boundary metrics on the validation set, and `score` (higher is better) by
    cfg.best_metric: recall_mean (mean of R@1/5/10 both ways), recall_mean_10 (mean of R@10 both ways: the
    authors' val_recall_mean_10), r1 (speech->image), val_loss (negated), keyword_hit_rate, content_word_recall."""
    vals = evaluate_dataset(model, val, cache=cache, loader=loader, batch_size=max(1, cfg.batch_size),
                            per_voice=False)
    if vals.get("n_utterances") == 0:
        raise DatasetError(f"the validation set (split {cfg.val_split!r}) is empty: nothing to score; "
                           "pass --val-split='' to train without validation")
    rec = [vals[d][k] for d in ("speech_to_image", "image_to_speech") for k in ("r1", "r5", "r10")]
    vals["recall_mean"] = float(np.mean(rec))
    vals["recall_mean_10"] = float(np.mean([vals[d]["r10"] for d in ("speech_to_image", "image_to_speech")]))
    if cfg.best_metric == "val_loss":
        vals["val_loss"] = validation_loss(model, val, cache, loader, cfg.batch_size)
        vals["score"] = -vals["val_loss"]
    elif cfg.best_metric == "r1":
        vals["score"] = vals["speech_to_image"]["r1"]
    else:
        vals["score"] = float(vals[cfg.best_metric])
    return vals
