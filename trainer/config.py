"""TrainConfig: every knob of a training run, loaded from JSON with type-checked `--key=value` overrides.

The rules are nanoGPT's configurator without `exec`: a JSON file sets fields, then each CLI override
`--key=value` / `--key value` (dashes or underscores) is parsed by the field's declared type; unknown keys
raise ConfigError listing the valid ones. Cross-field checks live in `validate()`. The resolved config is
written to `<run_dir>/config.json` and embedded in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.paths import missing_resources, model_dir, resource_path, resources_dir

logger = logging.getLogger(__name__)

DATASET_TYPES = ("manifest", "flickr8k", "spokencoco", "synthetic")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SCHEDULES = ("cosine", "linear", "constant")
MIN_CROP_S = 0.1  # shortest max_audio_s: a few frames (a crop below a conv stack's receptive field is an error)


@dataclass
class TrainConfig:
    # --- model -----------------------------------------------------------------------------------
    # model config name (resources/configs/models), a path to a config JSON, or a model folder (or its config.json:
    # that model's architecture); "" = the init_from model's architecture, else tiny-test
    model: str = ""
    model_overrides: dict = field(default_factory=dict)  # nested dict merged into the model config
    freeze_feature_layers: int = 0  # keep the first N conv layers of a trainable upstream at their init (speed)
    # model folder whose weights initialise the model ("" = none; every tensor must fit: with model "" its own
    # architecture is trained); needs clip_train_steps=0 unless clip_refit
    init_from: str = ""
    # set clip.vocab_ids to the CLIP BPE ids of the training captions (not with init_from: a fine-tune keeps its
    # source model's vocabulary, and a warning names the caption words outside it)
    vocab_from_data: bool = False
    # --- data ------------------------------------------------------------------------------------
    dataset: str = "manifest"  # manifest | flickr8k | spokencoco | synthetic (random tensors, smoke tests)
    data_dir: str = ""  # dataset root (manifest: the folder holding manifest.jsonl)
    train_split: str = "train"
    val_split: str = "val"  # "" = no validation
    train_voices: list = field(default_factory=list)  # keep only these voices for training ([] = all)
    exclude_voices: list = field(default_factory=list)  # voices never trained on (held out)
    max_train_utterances: int = 0  # use only the first N training utterances (0 = all; quick experiments)
    max_audio_s: float = 6.4  # random crop of longer training utterances (authors: 102400 samples)
    # crop edges moved into the pauses so no word is cut (with word times); not in the paper: its crop cuts words
    crop_whole_words: bool = False
    # on-the-fly training augmentation (trainer.data.augment; the defaults switch it off)
    augment_speed: list = field(default_factory=lambda: [1.0, 1.0])  # resampling factor range (tempo+pitch)
    augment_tilt_p: float = 0.0  # chance of a random first-order spectral tilt
    augment_eq_p: float = 0.0  # chance of 1-3 random peaking filters (another vocal tract / microphone colour)
    augment_reverb_p: float = 0.0  # chance of a synthetic room (RT60 in augment_reverb_rt60 seconds)
    augment_reverb_rt60: list = field(default_factory=lambda: [0.15, 0.6])
    augment_noise_p: float = 0.0  # chance of white noise at an SNR in augment_snr_db
    augment_snr_db: list = field(default_factory=lambda: [15.0, 40.0])
    augment_gain_db: list = field(default_factory=lambda: [0.0, 0.0])
    bucket_by_length: bool = True  # batches of similar length (less padding); order still seeded per epoch
    num_workers: int = 0  # DataLoader workers (0 = in-process; resume is bit-exact only with 0)
    synthetic_size: int = 64  # number of random utterances of the `synthetic` dataset
    cache_image_features: bool = True  # frozen image tower: encode each image once, cache on disk
    feature_cache_dir: str = ""  # "" = <run_dir>/feature_cache
    # speech->image negatives beyond the batch, from the cached features of the training images (not in the
    # paper, whose negatives are the batch's): 0 = off, -1 = every training image, N = N drawn per batch
    bank_negatives: int = 0
    # --- optimisation ----------------------------------------------------------------------------
    batch_size: int = 32  # per process and micro-step; global batch = batch_size * world * grad_accum
    # micro-steps per optimiser step (DDP gradient sync only on the last); an epoch ends with its last whole
    # window (its leftover utterances, logged at start-up, are not loaded)
    grad_accum: int = 1
    max_steps: int = 1000  # optimiser steps in total (the schedule's length)
    stop_at_step: int = 0  # > 0: save and stop after this step, schedule unchanged (continue with --resume)
    epochs: int = 0  # > 0: max_steps = epochs * steps_per_epoch (overrides max_steps)
    lr: float = 1e-4  # peak learning rate (authors: Adam 1e-4)
    min_lr: float = 1e-8  # learning rate at the end of the decay
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    schedule: str = "linear"  # decay after warm-up: linear (authors) | cosine | constant
    optimizer: str = "adamw"  # adamw | adam
    weight_decay: float = 1e-6
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 4.0  # max global grad norm (0 = off); authors: 4
    ema_decay: float = 0.0  # > 0: validate and export an EMA of the trainable weights (trainer.loop.ema; e.g. 0.999)
    precision: str = "auto"  # auto (bf16 on a GPU that has it, else fp16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    seed: int = 7122  # authors' seed
    threads: int = 0  # torch CPU threads (0 = torch's default)
    # --- stage 1 (the default model only): train the small CLIP before the speech model ----------
    clip_train_steps: int = 0  # > 0: train the CLIP tower on the dataset's images + captions first
    clip_lr: float = 1e-3
    clip_batch_size: int = 128
    clip_warmup_steps: int = 100
    clip_extra_scenes: int = 0  # > 0: also train the CLIP stage on this many extra synthetic scenes (no speech)
    clip_extra_image_size: int = 128  # their rendered size (match the dataset's images)
    # short search-style captions ("a blue cross", trainer.synth.scenes.query_text) added per extra scene: a
    # CLIP trained on whole captions only learns to answer whole captions
    clip_partial_captions: int = 0
    # with init_from: the CLIP stage re-fits that model's CLIP instead of a fresh one. It starts from its weights
    # where they fit (a vision tower whose config changed starts from the seed) and keeps the token-embedding
    # table frozen, so the model's keywords (rows of that table) keep their meaning for the speech side
    clip_refit: bool = False
    # --- bookkeeping -----------------------------------------------------------------------------
    run_dir: str = "runs/run"
    # a new run (no --resume) in a run_dir that holds one is refused; true: first delete that run's checkpoints,
    # log.jsonl, tensorboard/ and clip_stage/ (a one-off: config.json and the checkpoints record false)
    overwrite: bool = False
    log_every_steps: int = 10
    save_every_steps: int = 200  # checkpoint "last.pt" every N optimiser steps (and at each epoch end, if longer)
    eval_every_epochs: int = 1
    eval_every_steps: int = 0  # also validate every N optimiser steps (0 = only at epoch ends); epochs shorter
    # than N steps are not validated at their ends (a few dozen pairs: an epoch of one step)
    val_max_utterances: int = 0  # cap on validation utterances (0 = all)
    # recall_mean | recall_mean_10 | r1 | val_loss | keyword_hit_rate | content_word_recall
    best_metric: str = "recall_mean"
    explode_factor: float = 20.0  # stop when loss > factor x running median (0 = off); NaN/inf always stop
    tensorboard: bool = True

    def validate(self) -> None:
        """Cross-field checks; raises ConfigError naming the field and the fix."""
        errors: list[str] = []
        if self.dataset not in DATASET_TYPES:
            errors.append(f"dataset={self.dataset!r}: choose one of {', '.join(DATASET_TYPES)}")
        if not self.run_dir.strip():  # Path("") is the current folder
            errors.append("run_dir is empty: name the run's folder, e.g. --run-dir=runs/mine")
        if self.dataset != "synthetic" and not self.data_dir:
            errors.append(f"dataset={self.dataset!r} needs data_dir (the dataset root folder)")
        if self.precision not in PRECISIONS:
            errors.append(f"precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.schedule not in SCHEDULES:
            errors.append(f"schedule={self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.optimizer not in ("adamw", "adam"):
            errors.append(f"optimizer={self.optimizer!r}: choose adamw or adam")
        for name in ("batch_size", "grad_accum", "max_steps", "log_every_steps", "save_every_steps"):
            if getattr(self, name) < 1:
                errors.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.epochs < 0 or self.warmup_steps < 0 or self.clip_train_steps < 0 or self.clip_extra_scenes < 0:
            errors.append("epochs, warmup_steps, clip_train_steps and clip_extra_scenes must be >= 0")
        if self.clip_partial_captions < 0:
            errors.append(f"clip_partial_captions={self.clip_partial_captions} must be >= 0")
        if self.clip_refit and not (self.init_from and self.clip_train_steps > 0):
            errors.append("clip_refit re-fits the CLIP of init_from in the CLIP stage: it needs --init-from=MODEL_DIR "
                          "and clip_train_steps > 0")
        if self.clip_extra_image_size < 8:
            errors.append(f"clip_extra_image_size={self.clip_extra_image_size} must be >= 8")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            errors.append(f"need lr > 0 and 0 <= min_lr <= lr (lr={self.lr}, min_lr={self.min_lr})")
        if not 0.0 <= self.ema_decay < 1.0:
            errors.append(f"ema_decay={self.ema_decay} must be in [0, 1) (0 = off; e.g. 0.999)")
        if not (math.isfinite(self.max_audio_s) and self.max_audio_s >= MIN_CROP_S):  # shorter: the conv stack fails
            errors.append(f"max_audio_s={self.max_audio_s} must be a finite number >= {MIN_CROP_S} (seconds)")
        for name in ("stop_at_step", "max_train_utterances", "val_max_utterances", "num_workers", "threads",
                     "eval_every_steps", "eval_every_epochs", "clip_warmup_steps", "freeze_feature_layers"):
            if getattr(self, name) < 0:
                errors.append(f"{name}={getattr(self, name)} must be >= 0 (0 = off / all / default)")
        for name in ("synthetic_size", "clip_batch_size"):
            if getattr(self, name) < 1:
                errors.append(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("lr", "clip_lr"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                errors.append(f"{name}={getattr(self, name)} must be a finite number > 0")
        for name in ("weight_decay", "grad_clip", "explode_factor"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                errors.append(f"{name}={getattr(self, name)} must be a finite number >= 0")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                errors.append(f"{name}={getattr(self, name)} must be in [0, 1)")
        for name in ("augment_speed", "augment_snr_db", "augment_gain_db", "augment_reverb_rt60"):
            r = getattr(self, name)
            try:  # "--augment-speed=0.85,1.15" arrives as strings
                lo, hi = (float(v) for v in r)
            except (TypeError, ValueError):
                errors.append(f"{name}={r!r} must be a range [low, high] of two numbers")
                continue
            setattr(self, name, [lo, hi])
            if not (math.isfinite(lo) and math.isfinite(hi)):  # a NaN gain failed mid-step, a NaN speed silently
                errors.append(f"{name}={r!r} must be a range [low, high] of two finite numbers")
                continue
            positive = name in ("augment_speed", "augment_reverb_rt60")
            if lo > hi or (positive and lo <= 0):
                errors.append(f"{name}={r!r} needs low <= high" + (" and low > 0" if positive else ""))
        for name in ("augment_tilt_p", "augment_noise_p", "augment_eq_p", "augment_reverb_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                errors.append(f"{name}={getattr(self, name)} must be a probability in [0, 1]")
        if set(self.train_voices) & set(self.exclude_voices):
            errors.append("a voice is both in train_voices and exclude_voices")
        if self.best_metric not in ("recall_mean", "recall_mean_10", "r1", "val_loss", "keyword_hit_rate",
                                    "content_word_recall"):
            errors.append(f"best_metric={self.best_metric!r} is not a known validation metric")
        if errors:
            raise ConfigError("invalid training config:\n  " + "\n  ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _field_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    return {name: hints[name] for name in field_names()}


def _coerce(key: str, value: Any, typ: type, *, from_cli: bool) -> Any:
    """Convert `value` to the field type `typ`; raise ConfigError naming key, value and expected type."""
    bad = ConfigError(f"config key {key!r}: {value!r} is not a valid {typ.__name__}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if from_cli and isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise bad
    if typ in (int, float):  # a float key takes an int; an int key no float (nor a bool, an int to Python)
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int) or (typ is float and isinstance(value, float)):
            number = typ(value)
        elif from_cli and isinstance(value, str):
            try:
                number = typ(value)
            except ValueError:
                raise bad from None
        else:
            raise bad
        if not math.isfinite(number):  # --lr=nan (or NaN in a JSON file) would only show as a NaN loss
            raise bad
        return number
    if typ is str:
        if isinstance(value, str):
            return value
        raise bad
    if typ is list:
        if isinstance(value, list):
            return value
        if from_cli and isinstance(value, str):
            if value.startswith("["):
                try:
                    parsed = json.loads(value)
                except json.JSONDecodeError:
                    raise bad from None
                return _coerce(key, parsed, list, from_cli=False)
            return [v for v in value.split(",") if v]
        raise bad
    if typ is dict:
        if isinstance(value, dict):
            return value
        if from_cli and isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                raise bad from None
            return _coerce(key, parsed, dict, from_cli=False)
        raise bad
    raise bad


def _check_keys(keys: Sequence[str], where: str) -> None:
    valid = field_names()
    unknown = [k for k in keys if k not in valid]
    if unknown:
        dotted = next((k for k in unknown if "." in k), None)  # --cif.threshold=2: a model setting
        hint = "" if dotted is None else (
            f"; a model setting goes in model_overrides, e.g. --model-overrides='{_nested_example(dotted)}'")
        raise ConfigError(
            f"unknown training config key(s) {', '.join(map(repr, unknown))} in {where}{hint}; "
            f"valid keys: {', '.join(sorted(valid))}"
        )


def _nested_example(dotted: str) -> str:
    """`model_overrides.cif.threshold` -> `{"cif": {"threshold": ...}}`."""
    parts = [p for p in dotted.split(".") if p and p != "model_overrides"] or ["..."]
    return "".join(f'{{"{p}": ' for p in parts) + "..." + "}" * len(parts)


def config_from_dict(d: dict[str, Any], where: str = "config") -> TrainConfig:
    """Build a TrainConfig from a dict (JSON values), type-checked; unknown keys raise ConfigError."""
    _check_keys(list(d), where)
    types = _field_types()
    try:
        return TrainConfig(**{k: _coerce(k, v, types[k], from_cli=False) for k, v in d.items()})
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in {where})" if where != "config" else str(exc)) from None


def parse_overrides(argv: Sequence[str]) -> dict[str, Any]:
    """`["--lr=3e-4", "--batch-size", "16", "--tensorboard"]` -> typed {key: value}.

    A boolean flag with no value means true. Dashes in keys become underscores.
    """
    types = _field_types()
    out: dict[str, Any] = {}
    i = 0
    argv = list(argv)
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise ConfigError(f"unexpected argument {token!r}: overrides look like --key=value")
        key, sep, value = token[2:].partition("=")
        key = key.replace("-", "_")
        _check_keys([key], "command-line overrides")
        if not sep:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if types[key] is bool and (nxt is None or nxt.startswith("--")):
                value = "true"
            elif nxt is None:
                raise ConfigError(f"--{key} needs a value")
            else:
                value = nxt
                i += 1
        out[key] = _coerce(key, value, types[key], from_cli=True)
        i += 1
    return out


def load_config(path: str | Path | None = None, overrides: Sequence[str] | dict[str, Any] = ()) -> TrainConfig:
    """Defaults <- JSON file (if any) <- overrides; then validate(). Raises ConfigError."""
    base: dict[str, Any] = {}
    if path:
        p = resource_path(path)  # resources/configs/train/x.json from any folder, with an installed package too
        if not p.is_file():
            what = "is not a file" if p.exists() else "does not exist"
            where = missing_resources() or f"see {resources_dir() / 'configs' / 'train'} for examples"
            raise ConfigError(f"training config {p} {what}; {where}")
        try:
            base = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"training config {p} is not valid JSON (UTF-8 text): {exc}") from None
        except OSError as exc:
            raise ConfigError(f"training config {p} cannot be read: {exc.strerror or exc}") from None
        if not isinstance(base, dict):
            raise ConfigError(f"training config {p} must be a JSON object ({{\"key\": value, ...}}), "
                              f"not a {type(base).__name__}")
        base.pop("_comment", None)
    cfg = config_from_dict(base, where=str(path) if path else "config")
    extra = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    if isinstance(overrides, dict):
        _check_keys(list(extra), "overrides")
        types = _field_types()
        extra = {k: _coerce(k, v, types[k], from_cli=False) for k, v in extra.items()}
    # a dict override (model_overrides) is merged into the file's, so --model-overrides='{"cif": {...}}' changes
    # only what it names
    extra = {k: _deep_merge(getattr(cfg, k), v) if isinstance(v, dict) and isinstance(getattr(cfg, k), dict) else v
             for k, v in extra.items()}
    cfg = dataclasses.replace(cfg, **extra)
    if extra.get("data_dir") and cfg.dataset == "synthetic":  # asked for, it would be silently not read
        raise ConfigError(f"data_dir={cfg.data_dir!r} is not read: dataset='synthetic' trains on random tensors. "
                          f"Fix: add --dataset={' or --dataset='.join(d for d in DATASET_TYPES if d != 'synthetic')} "
                          "(a folder from `python -m trainer synth` or your own manifest.jsonl is a manifest)")
    if cfg.init_from:  # "default" or the README's resources/models/default, from any folder: recorded resolved
        cfg = dataclasses.replace(cfg, init_from=str(model_dir(cfg.init_from)))
    if not cfg.model:  # recorded as resolved, so config.json and the checkpoints name the architecture
        cfg = dataclasses.replace(cfg, model=cfg.init_from or "tiny-test")
    cfg.validate()
    return cfg


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def save_config(cfg: TrainConfig, path: Path) -> None:
    """Write the resolved config as JSON (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    tmp.replace(path)
