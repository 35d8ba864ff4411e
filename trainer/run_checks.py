"""The checks a training run makes before it writes anything: a resume against its checkpoint (data stream,
training data, step, model, trainable parameters), the run folder (a run already there, another program's
files), the data files; and what `--overwrite=true` deletes."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import torch

from core.errors import ConfigError, DatasetError
from trainer.checkpoint import BEST, LAST, checkpoint_dir
from trainer.config import TrainConfig
from trainer.distributed import DistInfo, broadcast_object
from trainer.loop.utterance_data import check_datasets
from trainer.train_setup import resolve_model_config

logger = logging.getLogger(__name__)


# What fixes the data stream (order, batches, position): a resume with another value would continue at the
# wrong place of another permutation. lr, max_steps, stop_at_step, evaluation and logging may change.
RESUME_FIXED = ("dataset", "train_split", "train_voices", "exclude_voices", "max_train_utterances",
                "batch_size", "grad_accum", "seed", "bucket_by_length", "synthetic_size")


def check_resume_config(ckpt: dict[str, Any], cfg: TrainConfig, world_size: int, path: object) -> None:
    saved = ckpt.get("config") or {}
    diffs = [f"{k}: checkpoint {saved[k]!r}, now {getattr(cfg, k)!r}" for k in RESUME_FIXED
             if k in saved and saved[k] != getattr(cfg, k)]
    ranks = len(ckpt.get("rng") or [])
    if ranks and ranks != world_size:
        diffs.append(f"processes: checkpoint {ranks}, now {world_size}")
    if diffs:
        raise ConfigError(f"--resume {path} cannot continue exactly with a different data stream ("
                          + "; ".join(diffs) + "). Resume with the run's own values (its config.json), "
                          "or start a new run with --init-from a model exported from it")
    if bool(cfg.ema_decay) != bool(ckpt.get("ema")):
        raise ConfigError(f"--resume {path}: the run was saved with ema_decay "
                          f"{(ckpt.get('ema') or {}).get('decay', 0)}, this config has {cfg.ema_decay}; "
                          "resume with the run's own ema_decay")


def check_train_data(ckpt: dict[str, Any], now: dict[str, Any], cfg: TrainConfig, path: object) -> None:
    """A resume must train on the same utterances (data_dir itself may move)."""
    saved = ckpt.get("train_data")
    if saved is None:
        logger.info("--resume %s: the checkpoint predates training-set fingerprints; its data is not checked", path)
    elif saved != now:
        raise ConfigError(
            f"--resume {path}: the training set is not the run's (checkpoint: {saved['utterances']} utterances, "
            f"fingerprint {saved['sha256'][:12]}; now {now['utterances']}, {now['sha256'][:12]} from data_dir "
            f"{cfg.data_dir!r}); the run would continue at the wrong place of another data stream. Point "
            "data_dir at the run's data (its config.json), or start a new run")


def check_resume_step(ckpt: dict[str, Any], cfg: TrainConfig, steps_per_epoch: int, path: object) -> None:
    """A checkpoint past the end of this config's schedule would train nothing, save last.pt again and report a
    finished run: refuse it (a checkpoint exactly at the end is a finished run, resumed as a no-op)."""
    max_steps = cfg.epochs * steps_per_epoch if cfg.epochs else cfg.max_steps
    if ckpt["step"] <= max_steps:
        return
    end = (f"epochs={cfg.epochs} ({steps_per_epoch} steps an epoch) end it at step {max_steps}" if cfg.epochs
           else f"max_steps={cfg.max_steps} ends before it")
    saved = ckpt.get("config") or {}
    own = (f"--epochs={saved['epochs']}" if saved.get("epochs") else
           f"--max-steps={saved['max_steps']}" if saved.get("max_steps") else "")
    raise ConfigError(
        f"--resume {path} is at step {ckpt['step']}, but {end}: nothing would be trained. Resume with the run's "
        "own schedule" + (f" ({own}, its config.json)" if own else "") + " or a longer one, or export the "
        "checkpoint as it is (python -m trainer export --checkpoint FILE)")


def resumed_best(ckpt: dict[str, Any], best_path: Path) -> float | None:
    """The best score so far: last.pt's, or that of the run's best.pt when better (a best.pt saved after the
    newest last.pt would otherwise be replaced by the next validation, even a worse one)."""
    scores = [ckpt.get("best_metric")]
    if best_path.is_file():
        try:
            best = torch.load(best_path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:
            logger.warning("%s cannot be read (%s); the next validation may replace it", best_path, exc)
            best = {}
        if _same_run(best, ckpt):
            scores.append(best.get("best_metric"))
        elif best:
            logger.warning("%s is not from the resumed run; the next validation replaces it", best_path)
    finite = [float(v) for v in scores if isinstance(v, (int, float)) and math.isfinite(v)]
    return max(finite) if finite else None


def _same_run(other: dict[str, Any], ckpt: dict[str, Any]) -> bool:
    """Whether two checkpoints come from one run: by run_id, or (checkpoints of older versions) by the settings
    that fix the data stream and the model."""
    if ckpt.get("run_id") or other.get("run_id"):
        return other.get("run_id") == ckpt.get("run_id")
    a, b = other.get("config") or {}, ckpt.get("config") or {}
    return bool(a) and all(a.get(k) == b.get(k) for k in RESUME_FIXED) and other.get("model_cfg") == ckpt.get("model_cfg")


MODEL_KEYS = ("model", "model_overrides", "vocab_from_data")  # what builds the model of a new run


def keep_checkpoint_model(ckpt: dict[str, Any], cfg: TrainConfig, train: Any, path: object) -> TrainConfig:
    """A resume trains the checkpoint's model whatever this config says: warn when it says otherwise, and
    return the config with the run's own model settings (config.json and later checkpoints tell the truth)."""
    saved = ckpt.get("config") or {}
    changed = [k for k in MODEL_KEYS if k in saved and saved[k] != getattr(cfg, k)]
    if not changed:
        return cfg
    try:  # which model-config fields the new settings would have changed
        wanted = resolve_model_config(cfg, train, None).to_dict()
        fields = _diff_keys(ckpt["model_cfg"], wanted)
    except Exception as exc:  # e.g. a model config file that no longer exists: the keys above still say enough
        fields = [f"? ({type(exc).__name__}: {exc})"]
    logger.warning("--resume %s: %s changed, but a resumed run trains the checkpoint's model (model config "
                   "fields that differ: %s); those settings are ignored and config.json keeps the run's own. "
                   "Start a new run with --init-from an export of this one to change the model",
                   path, ", ".join(changed), ", ".join(fields) or "none")
    return dataclasses.replace(cfg, **{k: saved[k] for k in changed})


def check_data_files(cfg: TrainConfig, model_cfg: Any, train: Any, val: Any, dist: DistInfo) -> None:
    """The up-front check of both splits' files (on rank 0; every rank raises its error). Images are decoded in
    it unless the frozen image tower's features are cached -- the cache build decodes each image once and lists
    those that fail -- as they would otherwise fail one at a time mid-training (or in the CLIP stage)."""
    cached = cfg.cache_image_features and not model_cfg.clip.trainable and cfg.clip_train_steps == 0
    error = None
    if dist.is_main:
        try:
            check_datasets(cfg, train, val, decode_images=not cached)
        except DatasetError as exc:
            error = str(exc)
    error = broadcast_object(error)
    if error:
        raise DatasetError(error)


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [prefix.rstrip(".") or "(all)"] if a != b else []
    return [k for key in sorted(set(a) | set(b)) for k in _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")]


RUN_FILES = ("checkpoints", "log.jsonl", "tensorboard", "clip_stage")  # what --overwrite=true deletes


def existing_run(run_dir: Path) -> str | None:
    """'step N' of the run whose checkpoints `run_dir` holds (last.pt, else best.pt), None when it holds none."""
    for name in (LAST, BEST):
        path = checkpoint_dir(run_dir) / name
        if path.is_file():
            try:
                return f"step {torch.load(path, map_location='cpu', weights_only=True, mmap=True)['step']}"
            except Exception:  # unreadable: still a run not to overwrite
                return f"{name} unreadable"
    return None


def check_run_dir(run_dir: Path, existing: str | None, resume: str, resuming: bool, overwrite: bool) -> None:
    """A new run must not silently replace (or mix with) the run already in its folder."""
    blocker = next((p for p in (run_dir, *run_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:  # found now, not when the first file is written
        raise ConfigError(f"run_dir {run_dir}: {blocker} is a file, not a folder; choose another --run-dir")
    foreign = _foreign_config(run_dir)
    if foreign:
        raise ConfigError(f"run_dir {run_dir} is {foreign}: the run would replace its config.json; choose another "
                          "--run-dir (a fine-tune names a model folder with --init-from)")
    if overwrite and resuming:
        raise ConfigError(f"--overwrite=true would delete the run that --resume {resume} continues; drop one of them")
    if existing and not resume and not overwrite:
        how = ("pass --resume latest to continue it" if not existing.endswith("unreadable") else
               f"pass --resume {checkpoint_dir(run_dir) / BEST} to continue from its best checkpoint if that one reads")
        raise ConfigError(f"run folder {run_dir} already holds a run ({existing}); {how}, or choose another --run-dir "
                          "(--overwrite=true deletes it first)")
    if resume and not resuming and not existing:  # say so: a mistyped --run-dir would start over unnoticed
        logger.info("--resume %s: no checkpoint in %s yet; starting a new run", resume, checkpoint_dir(run_dir))
    if existing and resume and not resuming and not overwrite:
        logger.warning("%s holds best.pt but no last.pt (a run stopped before its first save): starting afresh",
                       run_dir)


def _foreign_config(run_dir: Path) -> str | None:
    """What run_dir is when its config.json is not a training run's (save_config would replace it): "a model
    folder", "a folder with another program's config.json"; None when it has none or a run's."""
    path = run_dir / "config.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if isinstance(meta, dict) and "model_cfg" in meta:
        return "a model folder"
    if isinstance(meta, dict) and {"run_dir", "dataset", "max_steps", "lr"} <= set(meta):  # what save_config writes
        return None
    return "a folder with another program's config.json"


def clear_run(run_dir: Path) -> None:
    """--overwrite=true: delete the previous run's checkpoints, logs and CLIP stage (the image cache stays)."""
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    logger.warning("--overwrite=true: deleted the previous run's %s in %s", ", ".join(RUN_FILES), run_dir)


def trainable_names(model: Any, clip_stage: bool) -> list[str]:
    """Names of the parameters the optimiser will hold, in its order (the CLIP stage ends with the tower frozen)."""
    clip = {id(p) for p in model.clip.parameters()} if clip_stage else set()
    return [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in clip]


def check_trainable(ckpt: dict[str, Any], names: list[str], cfg: TrainConfig, path: object) -> None:
    """The resumed optimiser state must belong to the same trainable parameters (freeze_feature_layers and the
    model's `trainable` flags decide them)."""
    saved = ckpt.get("trainable")  # absent in checkpoints of older versions: compare the optimiser's count
    n_saved = len(saved) if saved is not None else sum(len(g["params"]) for g in ckpt["optimizer"]["param_groups"])
    if (saved is not None and saved != names) or n_saved != len(names):
        was = (ckpt.get("config") or {}).get("freeze_feature_layers", 0)
        changed = [n for n in (saved or []) if n not in names] + [n for n in names if n not in (saved or [])]
        raise ConfigError(
            f"--resume {path}: the run trained {n_saved} parameter tensors, this config would train {len(names)}"
            + (f" (e.g. {', '.join(changed[:3])})" if changed else "")
            + f"; its optimiser state does not fit. freeze_feature_layers: checkpoint {was}, now "
            f"{cfg.freeze_feature_layers}. Resume with the run's own config.json")
