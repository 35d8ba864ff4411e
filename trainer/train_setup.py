"""Run setup helpers: the model config a run trains (name/path + overrides + data vocabulary), and the
per-epoch validation score."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
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
    """The ModelConfig to build: the checkpoint's on resume; else cfg.model (a registry name, a JSON path or a
    model folder; "": the --init-from folder's) with cfg.model_overrides (nested dicts) and the keyword vocabulary: the --init-from model's when
    there is one, else, if cfg.vocab_from_data, the captions'."""
    if from_checkpoint is not None:
        return model_config_from_dict(from_checkpoint)
    base = base_model_config(cfg.model or cfg.init_from or "tiny-test")
    overrides: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.model_overrides.items()}
    if cfg.init_from:
        from core.factory import read_model_folder_config

        source, _ = read_model_folder_config(cfg.init_from)
        _keep_source_vocab(cfg, train, overrides, source)
        _keep_source_query(cfg, base, overrides, source)
    elif cfg.vocab_from_data:
        ids = caption_vocab(_texts(train))
        overrides.setdefault("clip", {})["vocab_ids"] = ids
        logger.info("keyword vocabulary from the training captions: %d CLIP sub-words", len(ids))
    return base.replace(**overrides) if overrides else base


def base_model_config(spec: str) -> ModelConfig:
    """TrainConfig.model: a registry name, a model config JSON, or a model folder (or its config.json, e.g. one
    written by `trainer import-official` or `trainer export`): that model's architecture. A folder that bundles
    its backbones (standalone) rebuilds them without their original sources: --init-from fills them in."""
    from core.factory import read_model_folder_config

    p = Path(spec)
    folder = p if p.is_dir() else p.parent if p.is_file() and _is_model_folder_config(p) else None
    if folder is not None:
        cfg, meta = read_model_folder_config(folder)
        if meta.get("standalone"):
            cfg = cfg.replace(speech={"pretrained": None}, clip={"pretrained": None})
        return cfg
    return load_model_config(p) if (spec.endswith(".json") or p.is_file()) else get_model_config(spec)


def _is_model_folder_config(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # load_model_config names the problem
    return isinstance(meta, dict) and "model_cfg" in meta


def _texts(train: Dataset) -> list[str]:
    return train.texts() if hasattr(train, "texts") else [train[i]["text"] for i in range(len(train))]


def _keep_source_query(cfg: TrainConfig, base: ModelConfig, overrides: dict[str, Any], source: ModelConfig) -> None:
    """A fine-tune queries as its source model does (retrieval, parallel weight, speed ensemble, keyword top-k):
    validation scores that query, and export writes it. model_overrides that set them still win."""
    from core.factory import INFERENCE_SETTINGS

    kept = {k: getattr(source, k) for k in INFERENCE_SETTINGS
            if k not in overrides and getattr(source, k) != getattr(base, k)}
    if kept:
        overrides.update({k: list(v) if isinstance(v, tuple) else v for k, v in kept.items()})
        logger.info("query settings of --init-from %s kept (the model config %s says otherwise): %s", cfg.init_from,
                    base.name, ", ".join(f"{k} {list(v) if isinstance(v, tuple) else v}" for k, v in kept.items()))


def _keep_source_vocab(cfg: TrainConfig, train: Dataset, overrides: dict[str, Any], source: ModelConfig) -> None:
    """A fine-tune (--init-from) keeps its source model's keyword vocabulary: vocab_from_data is not applied
    (the captions of a small fine-tuning set would drop every other word from typed queries and keywords, and a
    compact CLIP text tower has no embedding for a word outside its vocabulary). Caption words the kept
    vocabulary lacks are named in a warning. An explicit model_overrides clip.vocab_ids still wins."""
    from core.model.clip_tower import resolve_vocab

    clip = overrides.setdefault("clip", {})
    if "vocab_ids" in clip:
        return
    clip["vocab_ids"] = source.clip.vocab_ids
    kept = resolve_vocab(source.clip.vocab_ids, 0, 0)
    if not cfg.vocab_from_data:
        return
    if kept is None:
        logger.info("vocab_from_data: the keyword vocabulary of --init-from %s (its full CLIP vocabulary) is kept",
                    cfg.init_from)
        return
    ids = caption_vocab(_texts(train))
    outside = sorted(set(ids) - set(kept))
    if not outside:
        logger.info("vocab_from_data: the keyword vocabulary of --init-from %s (%d CLIP sub-words) is kept; it "
                    "holds every sub-word of the training captions", cfg.init_from, len(kept))
        return
    from open_clip.tokenizer import SimpleTokenizer

    decoder = SimpleTokenizer().decoder
    words = [decoder.get(i, str(i)).replace("</w>", "") for i in outside]
    logger.warning("vocab_from_data: a fine-tune keeps the keyword vocabulary of --init-from %s (%d CLIP "
                   "sub-words), not the training captions' own (%d); %d caption sub-word(s) are outside it and "
                   "cannot become keywords or be typed: %s%s. To use another vocabulary, train from scratch or set "
                   "--model-overrides='{\"clip\": {\"vocab_ids\": [...]}}' (a compact CLIP text tower cannot "
                   "embed new words)", cfg.init_from, len(kept), len(ids), len(outside), ", ".join(words[:20]),
                   f" ... (+{len(words) - 20})" if len(words) > 20 else "")


class ValidationCut(Exception):
    """A stop request (Ctrl+C, SIGTERM) came while validating: the figures are not computed."""


@torch.no_grad()
def validation_loss(model: Any, val: Dataset, cache: Any, loader: Any, batch_size: int,
                    check: Callable[[], None] | None = None) -> float:
    """Mean total loss over the validation set (eval mode, fixed order); `check()` before each batch."""
    prep = BatchPreparer(model.clip, model.device, cache=cache, loader=loader, frame_s=model.upstream.frame_seconds)
    was = model.training
    model.eval()
    losses = []
    n = len(val)  # type: ignore[arg-type]
    try:
        for s in range(0, n, batch_size):
            if check is not None:
                check()
            batch = prep(collate_items([val[i] for i in range(s, min(n, s + batch_size))]))
            losses.append(float(model.compute_loss(batch).total))
    finally:
        model.train(was)
    return float(np.mean(losses)) if losses else float("nan")


def validation_metrics(model: Any, val: Dataset, cache: Any, loader: Any, cfg: TrainConfig,
                       should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Retrieval + keyword + boundary metrics on the validation set, and `score` (higher is better) by
    cfg.best_metric: recall_mean (mean of R@1/5/10 both ways), recall_mean_10 (mean of R@10 both ways: the
    authors' val_recall_mean_10), r1 (speech->image), val_loss (negated), keyword_hit_rate, content_word_recall.
    ValidationCut when `should_stop()` turns true between batches (a long validation outlasts a preemption's
    grace period)."""

    def check(*_: int) -> None:
        if should_stop is not None and should_stop():
            raise ValidationCut

    vals = evaluate_dataset(model, val, cache=cache, loader=loader, batch_size=max(1, cfg.batch_size),
                            per_voice=False, progress=check)
    if vals.get("n_utterances") == 0:
        raise DatasetError(f"the validation set (split {cfg.val_split!r}) is empty: nothing to score; "
                           "pass --val-split='' to train without validation")
    rec = [vals[d][k] for d in ("speech_to_image", "image_to_speech") for k in ("r1", "r5", "r10")]
    vals["recall_mean"] = float(np.mean(rec))
    vals["recall_mean_10"] = float(np.mean([vals[d]["r10"] for d in ("speech_to_image", "image_to_speech")]))
    if cfg.best_metric == "val_loss":
        vals["val_loss"] = validation_loss(model, val, cache, loader, cfg.batch_size, check)
        vals["score"] = -vals["val_loss"]
    elif cfg.best_metric == "r1":
        vals["score"] = vals["speech_to_image"]["r1"]
    else:
        vals["score"] = float(vals[cfg.best_metric])
    return vals
