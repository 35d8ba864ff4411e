"""The training run: setup, (stage 1 CLIP for the default), the loop, validation, checkpoints, resume.

    python -m trainer train --config resources/configs/train/tiny.json
    python -m trainer train --config resources/configs/train/default.json --resume latest
    torchrun --standalone --nproc_per_node=2 -m trainer train --config resources/configs/train/x.json

Rank 0 alone logs and saves; every save is followed by a barrier. A checkpoint holds the model, the
optimiser, the AMP scaler, the step / epoch / position in the epoch, every rank's RNG states, the best
metric, the train config and the model config, so `--resume` continues exactly where the run stopped.
A resume is checked against the checkpoint (trainer/run_checks.py: data stream, training-set fingerprint, trainable
parameters; the EMA here) before `config.json` is written; a new run in a folder that holds one is refused unless
`overwrite`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch.utils.data import DataLoader

from core.errors import CheckpointError, ConfigError, DatasetError, ModelNotFoundError
from core.factory import CONFIG_FILE, WEIGHTS_FILE, create_model, read_model_folder_config
from trainer.checkpoint import (
    BEST,
    LAST,
    capture_rng,
    checkpoint_dir,
    load_checkpoint,
    resolve_resume,
    restore_rng,
)
from trainer.checkpoint import save_checkpoint as _save
from trainer.config import TrainConfig, save_config
from trainer.data.image_file import load_image
from trainer.distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    cleanup_distributed,
    gather_keys,
    init_distributed,
)
from trainer.loop.batches import BatchPreparer, collate_items
from trainer.loop.ema import WeightEma
from trainer.loop.feature_cache import CachingStopped, ImageFeatureCache
from trainer.loop.guard import LossGuard, TrainingDiverged
from trainer.loop.logs import RunLogger, validation_line
from trainer.loop.negatives import NegativeBank, check_bank_negatives
from trainer.loop.sampler import ResumableDistributedSampler
from trainer.loop.schedule import get_lr
from trainer.loop.step import LossModule, optimizer_step, resolve_precision, wrap_ddp
from trainer.loop.stop import StopSignals, ignore_stop_signals, signal_name
from trainer.loop.utterance_data import build_datasets, training_fingerprint, word_time_count
from trainer.progress import progress_bar
from trainer.run_checks import (
    check_data_files,
    check_resume_config,
    check_resume_step,
    check_run_dir,
    check_train_data,
    check_trainable,
    clear_run,
    existing_run,
    keep_checkpoint_model,
    resumed_best,
    trainable_names,
)
from trainer.train_setup import ValidationCut, resolve_model_config, validation_metrics

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    best_metric: float | None
    last_val: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_by: int = 0  # the signal (SIGINT, SIGTERM) that stopped the run at `step`, with a checkpoint; 0: not stopped
    stopped_in: str = ""  # where, when not after a speech step: "the CLIP stage after its step 700 of 1500"
    saved: Path | None = None  # the checkpoint a stopped run continues from


@dataclass
class _State:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this rank consumed in the current epoch
    best: float | None = None
    val_step: int = -1  # step of the latest validation (not checkpointed)
    validate_pending: bool = False  # this step's validation was cut short by a stop request: the resume does it


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def run_training(cfg: TrainConfig, *, resume: str = "", on_step: Callable[[int], None] | None = None,
                 stop: StopSignals | None = None) -> TrainResult:
    """Train per `cfg`; `resume` = "" | "latest" | a checkpoint path. `on_step(step)` is called after each
    optimiser step (after any save), e.g. by tests that stop a run mid-way. With `stop` (entered by the caller,
    as `python -m trainer train` does) Ctrl+C / SIGTERM during the steps end the run after the step in flight
    with a checkpoint of it (`stopped_by`); every rank must pass one or none."""
    t_start = time.time()
    dist = init_distributed(cfg.device)
    try:
        return _run(cfg, dist, resume, on_step, t_start, stop)
    finally:
        cleanup_distributed()


def _run(cfg: TrainConfig, dist: DistInfo, resume: str, on_step: Callable[[int], None] | None,
         t_start: float, stop: StopSignals | None) -> TrainResult:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    _seed_everything(cfg.seed)  # the same initial weights on every rank
    run_dir = Path(cfg.run_dir)
    resume_path, existing = broadcast_object((resolve_resume(resume, run_dir), existing_run(run_dir))
                                             if dist.is_main else (None, None))
    ckpt = load_checkpoint(resume_path) if resume_path else None
    if ckpt is not None:
        check_resume_config(ckpt, cfg, dist.world_size, resume_path)
    check_run_dir(run_dir, existing, resume, ckpt is not None, cfg.overwrite)
    if cfg.init_from and ckpt is None:
        _check_init_from(cfg.init_from, cfg.clip_train_steps, cfg.clip_refit)  # before the datasets load and the folder is written
    train_ds, val_ds = build_datasets(cfg, check=False)  # checked below, once the model says how images are used
    steps_per_epoch = _steps_per_epoch(len(train_ds), cfg, dist.world_size)  # before any stage runs
    train_data = training_fingerprint(train_ds, cfg.data_dir)
    if ckpt is not None:
        check_train_data(ckpt, train_data, cfg, resume_path)
        check_resume_step(ckpt, cfg, steps_per_epoch, resume_path)
    # On resume the architecture comes from the checkpoint (nanoGPT), not from today's config files.
    model_cfg = resolve_model_config(cfg, train_ds, ckpt["model_cfg"] if ckpt else None)
    if ckpt is not None:
        cfg = keep_checkpoint_model(ckpt, cfg, train_ds, resume_path)
    check_data_files(cfg, model_cfg, train_ds, val_ds, dist)
    word_times = word_time_count(train_ds)
    if dist.is_main:
        _warn_without_word_times(word_times, model_cfg.aux_boundary_loss_weight, cfg)
    model = create_model(model_cfg)
    # before the CLIP stage, not after it
    check_bank_negatives(cfg.bank_negatives, cached=cfg.cache_image_features and not model.clip.trainable)
    if cfg.freeze_feature_layers:
        _freeze_feature_layers(model, cfg.freeze_feature_layers)
    trainable = trainable_names(model, clip_stage=cfg.clip_train_steps > 0)
    if ckpt is not None:
        check_trainable(ckpt, trainable, cfg, resume_path)
    if cfg.init_from and ckpt is None:  # before config.json: a source that does not fit is refused
        _init_from(model, cfg.init_from, clip_refit=cfg.clip_refit)
    # config.json only once the run is known to start: a refused resume leaves the run's own file as it was
    clear = cfg.overwrite and ckpt is None
    cfg = dataclasses.replace(cfg, overwrite=False)  # a one-off: a later run of this config.json must not clear
    if dist.is_main:
        if clear:
            clear_run(run_dir)
        save_config(cfg, run_dir / "config.json")
    log = RunLogger(run_dir, enabled=dist.is_main, tensorboard=cfg.tensorboard)

    def stopped_before_steps(signum: int, where: str, saved: Path, **record: Any) -> TrainResult:
        """The result of a run stopped by a signal before its steps (in the CLIP stage or the feature cache)."""
        log.log("stopped", ckpt["step"] if ckpt else 0, {"signal": signal_name(signum), **record})
        log.close()
        return TrainResult(run_dir, ckpt["step"] if ckpt else 0, ckpt["epoch"] if ckpt else 0, None, {},
                           time.time() - t_start, signum, where, saved)

    if cfg.clip_train_steps > 0:
        from trainer.clip_stage import PROGRESS_FILE, clip_stage_path, train_clip

        with stop.graceful() if stop is not None else nullcontext():
            clip_stopped = train_clip(model.clip, train_ds, val_ds, cfg, dist, log, resuming=ckpt is not None,
                                      should_stop=(lambda: stop.signum != 0) if stop is not None else None)
        saved = clip_stage_path(run_dir)
        where = "after the CLIP stage"  # a signal during its last step or its validation: before the speech stage
        if clip_stopped is not None:  # rank 0 stopped the stage on a signal, its progress saved
            signum = broadcast_object(stop.signum if stop is not None else 0)
            where = f"in the CLIP stage after its step {clip_stopped} of {cfg.clip_train_steps}"
            saved = saved.parent / PROGRESS_FILE
        else:
            signum = stop.agreed(dist.device) if stop is not None else 0
        if signum:
            return stopped_before_steps(signum, where, saved, clip_stage_step=clip_stopped)
    if ckpt is not None:  # before the image-feature cache, which encodes with (and is keyed by) these weights
        model.load_state_dict(ckpt["model"])
    model.to(dist.device)
    precision = resolve_precision(cfg.precision, dist.device)
    loader_fn = getattr(train_ds, "load_image", load_image)
    cache = None
    if cfg.cache_image_features and not model.clip.trainable:
        cache = ImageFeatureCache(model.clip, cfg.feature_cache_dir or run_dir / "feature_cache", loader_fn)
        keys = list(train_ds.image_keys()) + (list(val_ds.image_keys()) if val_ds is not None else [])
        stopped_in = ""
        with stop.graceful() if stop is not None else nullcontext():
            try:
                cache.ensure(keys, dist, should_stop=(lambda: stop.signum != 0) if stop is not None else None)
            except CachingStopped as exc:
                stopped_in = f"while caching image features ({exc})"
        # a signal to another rank while it waited, or on rank 0 after its last batch: stop before the steps
        signum = stop.agreed(dist.device) if stop is not None else 0
        if signum:
            return stopped_before_steps(signum, stopped_in or "after caching image features", cache.path,
                                        caching=True)
    negatives = None
    if cfg.bank_negatives and cache is not None:
        negatives = NegativeBank(cache, train_ds.image_keys(), cfg.bank_negatives, cfg.seed)
        logger.info("speech->image negatives: the batch's + %s of %d cached training images",
                    "all" if cfg.bank_negatives < 0 else cfg.bank_negatives, len(negatives.keys))
    prepare = BatchPreparer(model.clip, dist.device, cache=cache, loader=loader_fn,
                            frame_s=model.upstream.frame_seconds, negatives=negatives,
                            global_keys=gather_keys if dist.distributed else None)
    params = model.trainable_parameters()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]  # what the checkpoints record
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    loss_module: torch.nn.Module = LossModule(model, gather=dist.distributed)
    if dist.distributed:
        loss_module = wrap_ddp(loss_module, model, dist.device)
    lengths = train_ds.lengths() if cfg.bucket_by_length and hasattr(train_ds, "lengths") else None
    if cfg.bucket_by_length and lengths is None and hasattr(train_ds, "lengths"):
        logger.info("bucket_by_length: not every training utterance has word times (its length is read from them), "
                    "so batches are drawn without grouping by length")
    # an epoch ends after its last whole accumulation window: the micro-batches of a partial one are not loaded
    micro_per_epoch = steps_per_epoch * cfg.grad_accum
    sampler = ResumableDistributedSampler(train_ds, num_replicas=dist.world_size, rank=dist.rank,
                                          seed=cfg.seed, drop_last=True, lengths=lengths, batch_size=cfg.batch_size,
                                          epoch_samples=micro_per_epoch * cfg.batch_size)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_items,
                        num_workers=cfg.num_workers, drop_last=True, worker_init_fn=ignore_stop_signals,
                        generator=torch.Generator().manual_seed(cfg.seed))  # not the global RNG: exact resume
    _seed_everything(cfg.seed + dist.rank)  # from here on each rank draws its own dropout / crops
    max_steps = cfg.epochs * steps_per_epoch if cfg.epochs else cfg.max_steps
    end_step = min(max_steps, cfg.stop_at_step) if cfg.stop_at_step else max_steps
    ema = WeightEma(model, cfg.ema_decay) if cfg.ema_decay else None
    st = _State()
    guard = LossGuard(cfg.explode_factor)  # its recent losses travel with the checkpoint
    if ckpt is not None:
        _load_states(ckpt, optimizer, scaler, ema, resume_path)
        st = _State(ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"],
                    resumed_best(ckpt, checkpoint_dir(run_dir) / BEST),
                    validate_pending=bool(ckpt.get("validate_pending")))
        rngs = ckpt["rng"]
        restore_rng(rngs[dist.rank] if len(rngs) == dist.world_size else rngs[0])
        guards = ckpt.get("loss_guard") or []  # absent in checkpoints of older versions: the guard starts afresh
        guard.load_state_dict(guards[dist.rank] if len(guards) == dist.world_size else None)
        logger.info("resumed from %s at step %d (epoch %d, batch %d)", resume_path, st.step, st.epoch,
                    st.batch_in_epoch)
        log.resumed(st.step, str(resume_path))

    last_good = resume_path  # the checkpoint a diverged run can continue from: this run's own, or its start
    run_id = (ckpt or {}).get("run_id") or uuid.uuid4().hex  # which best.pt belongs to this run

    def save(name: str) -> None:
        nonlocal last_good
        per_rank: list[Any] = [None] * dist.world_size  # (RNG state, explosion-guard history) of every rank
        if dist.distributed:
            tdist.all_gather_object(per_rank, (capture_rng(), guard.state_dict()))
        else:
            per_rank = [(capture_rng(), guard.state_dict())]
        rngs, guards = [r for r, _ in per_rank], [g for _, g in per_rank]
        if dist.is_main:
            _save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                   "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "step": st.step,
                   "epoch": st.epoch, "batch_in_epoch": st.batch_in_epoch, "best_metric": st.best,
                   "rng": rngs, "loss_guard": guards, "config": cfg.to_dict(), "model_cfg": model.config.to_dict(),
                   "trainable": trainable, "train_data": train_data, "run_id": run_id, "word_times": word_times,
                   "validate_pending": st.validate_pending,
                   **({"ema": ema.state_dict()} if ema is not None else {})},
                  checkpoint_dir(run_dir) / name)
        if name == LAST:
            last_good = checkpoint_dir(run_dir) / LAST
        barrier()

    def validate() -> dict[str, Any]:
        """Rank 0 evaluates; every rank joins the best-checkpoint save when the score improved."""
        if val_ds is None:
            return {}
        vals: dict[str, Any] = {}
        improved = cut = False
        if dist.is_main:
            try:
                with ema.applied() if ema is not None else nullcontext():  # score the weights export writes
                    vals = validation_metrics(model, val_ds, cache, loader_fn, cfg,
                                              should_stop=(lambda: stop.signum != 0) if stop is not None else None)
            except ValidationCut:
                cut = True
                logger.warning("validation at step %d cut short by the stop request: the resumed run does it first",
                               st.step)
            else:
                log.log("val", st.step, vals)
                improved = _improves(vals["score"], st.best)
                logger.info("validation at step %d, %s", st.step, validation_line(vals, cfg.best_metric, improved))
                if improved:
                    st.best = vals["score"]
        improved, st.best, st.validate_pending = broadcast_object((improved, st.best, cut))
        st.val_step = st.step  # on every rank: they all take the same validate() calls
        if improved:
            save(BEST)
        return vals

    bar = None
    if dist.is_main:
        bar = progress_bar(total=max_steps, initial=st.step, desc="train", unit="step")
    last_val: dict[str, Any] = {}
    model.train()
    logger.info("training %d steps (%d per epoch, global batch %d), precision %s, device %s", max_steps,
                steps_per_epoch, cfg.batch_size * dist.world_size * cfg.grad_accum, precision, dist.device)
    validate_at_epoch_end, save_at_epoch_end = _epoch_end_work(cfg, steps_per_epoch, dist.is_main)
    left_out = len(train_ds) - micro_per_epoch * cfg.batch_size * dist.world_size
    if left_out and dist.is_main:
        logger.info("each epoch leaves out %d of the %d training utterances (whole global batches only; the "
                    "order changes every epoch)", left_out, len(train_ds))
    t_log, n_utts = time.time(), 0
    stopped_by = 0

    def stop_agreed() -> int:  # a collective under DDP: every rank asks at the same points
        return stop.agreed(dist.device) if stop is not None else 0

    with stop.graceful() if stop is not None else nullcontext():  # until the run's last checkpoint is written
        try:
            if st.validate_pending:  # the step's validation that a stop request cut short
                last_val = validate()
                model.train()
                stopped_by = stop_agreed()
            while not stopped_by and st.step < end_step:
                sampler.set_position(st.epoch, st.batch_in_epoch, cfg.batch_size)
                group: list[dict[str, Any]] = []
                for raw in loader:
                    group.append(raw)
                    if len(group) < cfg.grad_accum:
                        continue
                    model.set_step(st.step)
                    lr = get_lr(st.step, lr=cfg.lr, warmup_steps=cfg.warmup_steps, max_steps=max_steps,
                                min_lr=cfg.min_lr, schedule=cfg.schedule)
                    vals = optimizer_step(loss_module, group, optimizer, scaler, params, lr=lr, grad_clip=cfg.grad_clip,
                                          device=dist.device, precision=precision, guard=guard, step=st.step,
                                          prepare=prepare)
                    if ema is not None:
                        ema.update()
                    n_utts += sum(int(b["wav"].shape[0]) for b in group)
                    st.step += 1
                    st.batch_in_epoch += len(group)
                    group = []
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{vals['loss']:.3f}", lr=f"{lr:.2e}")
                    if st.step % cfg.log_every_steps == 0:
                        dt = time.time() - t_log
                        log.log("train", st.step, {**vals, "epoch": st.epoch,
                                                   "utts_per_s": n_utts * dist.world_size / max(dt, 1e-9)})
                        t_log, n_utts = time.time(), 0
                    if cfg.eval_every_steps and st.step % cfg.eval_every_steps == 0 and st.step < max_steps:
                        last_val = validate()  # before saving: the checkpoint must carry this step's best metric
                        model.train()
                    if st.step % cfg.save_every_steps == 0:
                        save(LAST)
                    if on_step is not None:
                        on_step(st.step)
                    if st.step >= end_step:
                        break
                    if stopped_by := stop_agreed():
                        break  # (a signal at the last step lets the run finish)
                else:  # the epoch ran out
                    st.epoch += 1
                    st.batch_in_epoch = 0
                    # not again when eval_every_steps has just validated these weights
                    if validate_at_epoch_end and st.epoch % cfg.eval_every_epochs == 0 and st.val_step != st.step:
                        last_val = validate()
                        model.train()
                    if save_at_epoch_end:
                        save(LAST)
                    stopped_by = stop_agreed()  # (then the while ends)
                    continue
                break
        except TrainingDiverged as exc:
            last = last_good
            if last is None:
                raise TrainingDiverged(
                    f"{exc}. Training stopped before its first checkpoint (saved every {cfg.save_every_steps} steps); "
                    f"lower lr (now {cfg.lr:g}) or grad_clip and start again") from None
            raise TrainingDiverged(
                f"{exc}. Training stopped; the last good checkpoint is {last} (saved every {cfg.save_every_steps} "
                f"steps{' and at each epoch end' if save_at_epoch_end else ''}). Lower lr (now {cfg.lr:g}) or "
                f"grad_clip, then continue with --resume {last}") from None
        finally:
            if bar is not None:
                bar.close()
        if st.step >= max_steps and st.val_step != st.step:
            last_val = validate()  # not when stopped early by stop_at_step or a signal: the resumed run validates
            if st.validate_pending:  # cut short: the run is not finished (the resume validates, as a no-op run)
                stopped_by = stop_agreed()
        save(LAST)
    if stopped_by:
        log.log("stopped", st.step, {"signal": signal_name(stopped_by)})
    log.close()
    return TrainResult(run_dir, st.step, st.epoch, st.best, last_val, time.time() - t_start, stopped_by,
                       saved=checkpoint_dir(run_dir) / LAST)


def _warn_without_word_times(counts: dict[str, int] | None, boundary_weight: float, cfg: TrainConfig) -> None:
    """The signals that need word times do nothing on data without them: say so at start-up (the checkpoints
    record the counts, and the model card the boundary loss's effective weight)."""
    if counts is None or counts["with_word_times"]:
        return
    off = ([f"the auxiliary boundary loss (aux_boundary_loss_weight={boundary_weight:g})"] if boundary_weight > 0
           else []) + (["crop_whole_words"] if cfg.crop_whole_words else [])
    if off:
        logger.warning("no word times in the training data (none of its %d utterances has \"words\"): %s %s off "
                       "for this run; the model card records it", counts["utterances"], " and ".join(off),
                       "is" if len(off) == 1 else "are")


def _load_states(ckpt: dict[str, Any], optimizer: torch.optim.Optimizer, scaler: Any, ema: WeightEma | None,
                 path: object) -> None:
    """The optimiser, AMP scaler and EMA states of a checkpoint; CheckpointError when they do not fit."""
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"--resume {path}: its optimiser / scaler / EMA state does not fit this model "
                              f"({type(exc).__name__}: {exc}); resume with the run's own config.json, or "
                              "from another checkpoint") from exc


def _improves(score: float, best: float | None) -> bool:
    """Whether a validation score beats the best so far; a non-finite score never does (and never becomes
    the best: every later comparison with NaN would be False)."""
    if not math.isfinite(score):
        logger.warning("validation score %s is not finite: best.pt is kept", score)
        return False
    return best is None or not math.isfinite(best) or score > best


def _steps_per_epoch(n_train: int, cfg: TrainConfig, world_size: int) -> int:
    """Optimiser steps in one epoch (each rank's shard cut into whole micro-batches, whole accumulation
    windows); DatasetError when the training set cannot fill one global batch."""
    steps = n_train // world_size // cfg.batch_size // cfg.grad_accum
    if steps < 1:
        raise DatasetError(
            f"the training set ({n_train} utterances) is smaller than one global batch (batch_size "
            f"{cfg.batch_size} x {world_size} processes x grad_accum {cfg.grad_accum}); lower batch_size or "
            "grad_accum, or use more data")
    return steps


def _epoch_end_work(cfg: TrainConfig, steps_per_epoch: int, say: bool) -> tuple[bool, bool]:
    """Whether each epoch's end validates and saves last.pt. Not where an epoch is shorter than the step cadence
    asked for (eval_every_steps, save_every_steps): a fine-tune on a few dozen pairs has epochs of a step or two,
    and validating and saving at each of their ends made a 1000-step run validate 1000 times."""
    validate = bool(cfg.eval_every_epochs) and not (cfg.eval_every_steps and steps_per_epoch < cfg.eval_every_steps)
    save = steps_per_epoch >= cfg.save_every_steps
    cadence = ([f"validating every {cfg.eval_every_steps}"] if cfg.eval_every_epochs and not validate else []) + \
        ([] if save else [f"saving every {cfg.save_every_steps}"])
    if say and cadence:
        logger.info("an epoch is %d step%s: %s steps, not at each epoch's end", steps_per_epoch,
                    "" if steps_per_epoch == 1 else "s", " and ".join(cadence))
    return validate, save


def _freeze_feature_layers(model: torch.nn.Module, n: int) -> None:
    """Freeze the first `n` conv layers of the upstream's waveform feature encoder (transformers models).

    Their weight gradients are the costliest part of a from-scratch upstream's backward on CPU (one input
    channel at 16 kHz); frozen at their random init they act as a fixed random filterbank.
    """
    layers = model.upstream.backbone.feature_extractor.conv_layers
    for layer in layers[:n]:
        layer.requires_grad_(False)
    logger.info("froze the first %d of %d feature-encoder conv layers", min(n, len(layers)), len(layers))


_REFIT_VISION = "clip.model.visual."  # a re-fit may change the vision tower's config


def _check_init_from(path: str, clip_train_steps: int, clip_refit: bool = False) -> None:
    """A clear error now for an --init-from that is not a complete model folder, or whose CLIP the CLIP stage
    would replace (re-initialised from the seed and retrained: the speech side would lose the tower it was
    aligned to; clip_refit re-fits it instead, its token table kept)."""
    if clip_train_steps > 0 and not clip_refit:
        raise ConfigError(f"--init-from {path} with clip_train_steps={clip_train_steps}: the CLIP stage would "
                          "replace the model's CLIP tower by a new one; pass --clip-train-steps=0 to keep it, or "
                          "--clip-refit=true to re-fit it (its token table, the speech side's keywords, kept)")
    if not (Path(path) / CONFIG_FILE).exists():
        raise ModelNotFoundError(f"--init-from {path}: no model folder there ({CONFIG_FILE} missing); pass a folder "
                                 f"written by `python -m trainer export`")
    read_model_folder_config(path)
    if not (Path(path) / WEIGHTS_FILE).exists():
        raise ModelNotFoundError(f"--init-from {path}: {WEIGHTS_FILE} is missing; the model folder is incomplete")


def _init_from(model: torch.nn.Module, path: str, *, clip_refit: bool = False) -> None:
    """Copy the weights of a model folder; ConfigError unless every tensor of the model is there with its shape
    and every tensor there has its place in the model (another architecture). With `clip_refit` the CLIP's
    vision tower may differ (the CLIP stage trains it from its seeded init); its token table may not."""
    from core.factory import load_model

    source = load_model(path, device="cpu")
    theirs, ours = source.upstream.frame_seconds, model.upstream.frame_seconds
    if abs(theirs - ours) > 1e-9:  # conv strides are not weights: every tensor would copy, into the wrong model
        raise ConfigError(
            f"--init-from {path}: its speech upstream has {theirs * 1000:g} ms frames, this run's model "
            f"{ours * 1000:g} ms (the conv strides differ); pass the source's conv_stride in --model-overrides")
    src = source.state_dict()
    own = model.state_dict()
    same = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    refit = {k for k in set(own) | set(src) if clip_refit and k.startswith(_REFIT_VISION) and k not in same}
    missing = [k for k in own if k not in src and k not in refit]
    shapes = [f"{k}: {tuple(src[k].shape)} there, {tuple(own[k].shape)} here" for k in own
              if k in src and k not in same and k not in refit]
    unused = [k for k in src if k not in own and k not in refit]
    if missing or shapes or unused:  # a subset would leave the rest at its random init, silently
        def some(xs: list[str]) -> str:
            return ", ".join(xs[:3]) + (f" ... (+{len(xs) - 3})" if len(xs) > 3 else "")

        raise ConfigError(
            f"--init-from {path} does not fit this run's model ({model.config.name}, {len(own)} tensors): "
            f"only {len(same)} of them are in {path} ({source.config.name}, {len(src)} tensors) with the same shape"
            + (f"; {len(missing)} are not there (e.g. {some(missing)})" if missing else "")
            + (f"; {len(shapes)} differ in shape (e.g. {some(shapes)})" if shapes else "")
            + (f"; {len(unused)} of its tensors have no place in this model (e.g. {some(unused)})" if unused else "")
            + f". Leave --model unset to fine-tune {path}'s own architecture (or pass --model={path}), or change "
            "the model_overrides that change tensors")
    model.load_state_dict(same, strict=False)
    logger.info("initialised %d of %d tensors from %s", len(same), len(own), path)
    if refit:
        logger.info("CLIP re-fit: %d vision tensors differ from %s's and start from the seed", len(refit), path)
