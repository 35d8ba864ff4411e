"""Stage 1 of the default model: train the small CLIP tower on the dataset's images and captions.

No pretrained CLIP exists on this machine, so the default's CLIP is trained here first with the standard
CLIP loss (symmetric InfoNCE; the other captions of the same image are masked out as negatives), then
frozen for the speech stage. The result is written once to `<run_dir>/clip_stage/clip.pt` (the open_clip
state dict), beside `settings.json` (what it was trained with: the clip_* fields, seed, data, the CLIP config).
A later start in that folder loads it instead of training again when the settings match; a new run with other
settings trains it again; a resumed run keeps it (its checkpoint holds the tower the speech side knows).
While it trains, `progress.pt` beside it holds the stage's own state (tower, optimiser, step, sampling and RNG
states) every save_every_steps steps and at a stop request (Ctrl+C, SIGTERM): a killed or stopped stage
continues from there, exactly, when the run starts again with the same settings.

With `clip_refit` the stage re-fits the CLIP of an --init-from model instead (trainer/config.py): from its weights,
its token-embedding table frozen, so the speech side's keywords keep their meaning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from core.errors import CheckpointError
from core.factory import WEIGHTS_FILE, file_sha256
from core.model.losses import masked_info_nce
from trainer.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from trainer.config import TrainConfig
from trainer.data.image_file import load_image
from trainer.distributed import DistInfo, broadcast_object
from trainer.loop.feature_cache import preprocess_images
from trainer.loop.logs import RunLogger
from trainer.loop.schedule import get_lr

logger = logging.getLogger(__name__)


def caption_pairs(dataset: Dataset) -> list[tuple[str, int, str]]:
    """(image key, image id, caption) of every utterance, without loading audio."""
    utts = getattr(dataset, "utts", None)
    if utts is not None:
        return [(str(u.image_path), int(u.image_id), u.text) for u in utts]
    return [(it["image_key"], int(it["image_id"]), it["text"]) for it in (dataset[i] for i in range(len(dataset)))]


def clip_stage_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "clip_stage" / "clip.pt"


SETTINGS_FILE = "settings.json"
PROGRESS_FILE = "progress.pt"  # the state of a stage stopped part-way
CLIP_FIELDS = ("clip_train_steps", "clip_lr", "clip_batch_size", "clip_warmup_steps", "clip_extra_scenes",
               "clip_extra_image_size", "clip_partial_captions", "clip_refit", "seed", "dataset")


def stage_settings(clip: Any, train: Dataset, cfg: TrainConfig) -> dict[str, Any]:
    """What the stage's result depends on, as JSON values: the settings, the CLIP config and the training
    captions (image paths relative to data_dir, so a moved data folder still matches)."""
    root = os.path.abspath(cfg.data_dir) if cfg.data_dir else ""
    pairs = caption_pairs(train)

    def rel(key: str) -> str:
        full = os.path.abspath(key)
        return os.path.relpath(full, root) if root and full.startswith(root + os.sep) else key

    lines = sorted(f"{rel(k)}\t{t}" for k, _, t in pairs)
    out = {k: getattr(cfg, k) for k in CLIP_FIELDS}
    out.update(images=len({k for k, _, _ in pairs}), captions=len(pairs),
               captions_sha256=hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest(),
               clip_config=dataclasses.asdict(clip.cfg))
    if cfg.clip_refit:  # the stage starts from that model's CLIP: another model there is another result
        out["refit_of_sha256"] = file_sha256(Path(cfg.init_from) / WEIGHTS_FILE)
    return json.loads(json.dumps(out))  # tuples as lists: compares equal to the file read back


def _reusable(path: Path, settings: dict[str, Any], resuming: bool) -> bool:
    """Whether the saved stage result at `path` may stand for one trained with `settings`."""
    if not path.is_file():
        return False
    try:
        saved = json.loads((path.parent / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        logger.warning("CLIP stage: %s has no readable record of its settings (an older version wrote it); "
                       "reusing it. Delete %s to train the stage again", path, path.parent)
        return True
    changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
    if not changed:
        logger.info("CLIP stage: reusing %s (same settings)", path)
        return True
    if resuming:
        logger.warning("CLIP stage: %s was trained with other %s; a resumed run keeps it (its checkpoint holds "
                       "the tower the speech side was trained against)", path, ", ".join(changed))
        return True
    logger.warning("CLIP stage: %s was trained with other %s; training the stage again", path, ", ".join(changed))
    return False


@torch.no_grad()
def text_to_image_r1(clip: Any, images: torch.Tensor, image_ids: torch.Tensor, texts: list[str],
                     text_ids: torch.Tensor, batch: int = 256) -> float:
    """Share of captions whose own image is the top match among `images` (a quick stage-1 check)."""
    clip.eval()
    img = torch.cat([clip.encode_image(images[i:i + batch]) for i in range(0, len(images), batch)])
    txt = torch.cat([clip.encode_text(texts[i:i + batch]) for i in range(0, len(texts), batch)])
    best = (txt @ img.T).argmax(dim=1)
    return float((image_ids[best] == text_ids).float().mean())


def train_clip(clip: Any, train: Dataset, val: Dataset | None, cfg: TrainConfig, dist: DistInfo,
               log: RunLogger, *, resuming: bool = False,
               should_stop: Callable[[], bool] | None = None) -> int | None:
    """Train `clip` (a core ClipTower) for cfg.clip_train_steps, or load the stage's saved result when it was
    trained with the same settings (a resumed run: whatever they were). None when done; the step it stopped
    after, its progress saved, when `should_stop()` turned true (rank 0's answer, on every rank)."""
    path = clip_stage_path(cfg.run_dir)
    stopped_at = None
    if dist.is_main:
        settings = stage_settings(clip, train, cfg)
        if not _reusable(path, settings, resuming):
            path.unlink(missing_ok=True)  # a run killed while training it again must not take the old one
            stopped_at = _train(clip, train, val, cfg, dist, log, path, settings, should_stop)
    stopped_at = broadcast_object(stopped_at)  # (the other ranks wait here, as at a barrier)
    if stopped_at is not None:
        return stopped_at
    blob = torch.load(path, map_location="cpu", weights_only=True)
    clip.model.load_state_dict(blob["model"])
    clip.set_trainable(False)
    return None


def _load_progress(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of a stage stopped part-way with these settings; None (and the file removed) otherwise."""
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
        if json.loads(state["settings"]) == settings:
            return state
        logger.info("CLIP stage: %s was saved with other settings; training the stage from its start", path)
    except (CheckpointError, KeyError, ValueError) as exc:
        why = exc.__cause__ or exc  # load_checkpoint's own text advises another checkpoint: not the choice here
        logger.warning("CLIP stage: %s cannot be continued (unreadable, perhaps cut short: %s: %s); training the "
                       "stage from its start", path, type(why).__name__, why)
    path.unlink(missing_ok=True)
    return None


def _train(clip: Any, train: Dataset, val: Dataset | None, cfg: TrainConfig, dist: DistInfo,
           log: RunLogger, path: Path, settings: dict[str, Any], should_stop: Callable[[], bool] | None) -> int | None:
    dev = dist.device
    # The tower's initial weights depend on the seed and the CLIP config only (not on what was built before it);
    # a re-fit's on its --init-from model (and, for a vision tower whose config changed, on the seed).
    from core.model.clip_tower import ClipTower

    if not cfg.clip_refit:  # a re-fit starts from the --init-from model's tower, already in `clip`
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            clip.model.load_state_dict(ClipTower(clip.cfg).model.state_dict())
    pairs = caption_pairs(train)
    keys = sorted({k for k, _, _ in pairs})
    loader = getattr(train, "load_image", load_image)
    logger.info("CLIP stage: %d captions of %d images, %d steps", len(pairs), len(keys), cfg.clip_train_steps)
    clip.set_trainable(True)
    clip.model.train()  # a frozen tower was put in eval mode: a ResNet's BatchNorms must see batches here
    clip.to(dev)
    images = preprocess_images(clip, keys, loader)  # (N, 3, H, W), decoded once
    row = {k: i for i, k in enumerate(keys)}
    cap_img = [row[k] for k, _, _ in pairs]
    cap_ids = [i for _, i, _ in pairs]
    if cfg.clip_extra_scenes:
        from trainer.synth.extra_scenes import extra_scenes

        t = time.time()
        extra = extra_scenes(cfg.clip_extra_scenes, seed=cfg.seed, image_size=cfg.clip_extra_image_size,
                             short_captions_per_image=cfg.clip_partial_captions, workers=max(1, cfg.threads))
        images = torch.cat([images, torch.stack([clip.preprocess(im) for im, _ in extra])])
        next_id = max(cap_ids, default=-1) + 1  # ids of their own, so no caption is masked as a same-image pair
        for j, (_, caps) in enumerate(extra):
            for c in caps:
                pairs.append((f"extra:{j}", next_id + j, c))
                cap_img.append(len(keys) + j)
                cap_ids.append(next_id + j)
        logger.info("CLIP stage: + %d extra synthetic scenes (%d captions) rendered in %.0f s",
                    len(extra), sum(len(c) for _, c in extra), time.time() - t)
    cap_img = torch.tensor(cap_img)
    cap_ids = torch.tensor(cap_ids)
    tokens = clip.tokenize([t for _, _, t in pairs]).cpu()
    table = clip.model.token_embedding.weight
    if cfg.clip_refit:  # the speech side's keywords are rows of this table: they must keep their meaning
        table.requires_grad_(False)
        kept = table.detach().clone()
    params = [p for p in clip.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.clip_lr, weight_decay=0.1, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    m = clip.model
    progress_path = path.parent / PROGRESS_FILE
    start = 0
    state = _load_progress(progress_path, settings)
    if state is not None:
        m.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        g.set_state(state["generator"])
        restore_rng(state["rng"])
        start = int(state["step"])
        logger.info("CLIP stage: continuing from %s at step %d of %d", progress_path, start, cfg.clip_train_steps)
        log.log("clip_resume", start, {"from": str(progress_path)})

    def save_progress(done: int) -> None:
        save_checkpoint({"model": {k: v.detach().cpu() for k, v in m.state_dict().items()},
                         "optimizer": opt.state_dict(), "step": done, "generator": g.get_state(),
                         "rng": capture_rng(), "settings": json.dumps(settings)}, progress_path)

    for step in range(start, cfg.clip_train_steps):
        lr = get_lr(step, lr=cfg.clip_lr, warmup_steps=cfg.clip_warmup_steps, max_steps=cfg.clip_train_steps,
                    min_lr=cfg.clip_lr * 0.01, schedule="cosine")
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randperm(len(pairs), generator=g)[: cfg.clip_batch_size]
        img = torch.nn.functional.normalize(m.encode_image(images[cap_img[idx]].to(dev)), dim=-1)
        txt = torch.nn.functional.normalize(m.encode_text(tokens[idx].to(dev)), dim=-1)
        ids = cap_ids[idx].to(dev)
        loss = masked_info_nce(txt, img, ids, ids, m.logit_scale.exp().clamp(max=100.0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % cfg.log_every_steps == 0 or step == cfg.clip_train_steps - 1:
            log.log("clip", step, {"loss": float(loss.detach()), "lr": lr,
                                  "logit_scale": float(m.logit_scale.detach().exp())})
            logger.info("clip step %d/%d loss %.4f (%.0f s)", step, cfg.clip_train_steps, float(loss.detach()),
                        time.time() - t0)
        done = step + 1
        if done < cfg.clip_train_steps:
            stop = should_stop is not None and should_stop()
            if stop or done % cfg.save_every_steps == 0:
                save_progress(done)
            if stop:
                logger.info("CLIP stage: stopped after step %d of %d; its progress is in %s", done,
                            cfg.clip_train_steps, progress_path)
                return done
    if cfg.clip_refit and not torch.equal(table.detach(), kept):
        raise RuntimeError("CLIP re-fit changed the frozen token-embedding table")  # weight decay or a stray grad
    metrics: dict[str, float] = {"seconds": time.time() - t0}
    if val is not None:
        vp = caption_pairs(val)
        vkeys = sorted({k for k, _, _ in vp})
        vrow = {k: i for i, k in enumerate(vkeys)}
        vimgs = preprocess_images(clip, vkeys, getattr(val, "load_image", load_image)).to(dev)
        metrics["val_text_to_image_r1"] = text_to_image_r1(
            clip, vimgs, torch.arange(len(vkeys), device=dev), [t for _, _, t in vp],
            torch.tensor([vrow[k] for k, _, _ in vp], device=dev))
        log.log("clip_val", cfg.clip_train_steps, metrics)
        logger.info("CLIP stage done: val caption->image R@1 %.3f", metrics["val_text_to_image_r1"])
    clip.set_trainable(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / (SETTINGS_FILE + ".tmp")
    tmp.write_text(json.dumps(settings, indent=2) + "\n")
    tmp.replace(path.parent / SETTINGS_FILE)  # before clip.pt: a clip.pt is never older than its settings
    save_checkpoint({"model": {k: v.cpu() for k, v in m.state_dict().items()}, "metrics": metrics}, path)
    progress_path.unlink(missing_ok=True)
    return None
