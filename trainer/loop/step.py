"""One optimiser step: gradient accumulation (DDP sync only on the last micro-step), autocast, AMP
scaler, unscale + clip, step, `zero_grad(set_to_none=True)` (nanoGPT / open_clip)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from core.model.speechclip import batch_negatives
from trainer.distributed import gather_features
from trainer.loop.guard import LossGuard, TrainingDiverged

logger = logging.getLogger(__name__)


class LossModule(nn.Module):
    """`forward(batch) -> (total, parts)`: the model's forward + `loss_from_output`, so DDP wraps one call.

    With `gather=True` (more than one process) the contrastive losses see the speech vectors, image vectors
    and image ids of every rank (`gather_features`: negatives from the whole global batch, same-image pairs
    masked by id, gradients flowing back to each rank's own slice). With one process this is exactly
    `model.compute_loss(batch)`.
    """

    def __init__(self, model: nn.Module, gather: bool = False) -> None:
        super().__init__()
        self.model = model
        self.gather = gather

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m = self.model
        if not self.gather:
            out = m.compute_loss(batch)
            return out.total, out.parts
        if "image_feats" in batch:
            image = torch.nn.functional.normalize(batch["image_feats"].float(), dim=-1)
        else:
            image = m.clip.encode_image(batch["images"])
        ids = batch["image_ids"]
        speech = m(batch["wav"], batch["wav_lens"], batch.get("target_counts"))
        g = gather_features
        par = g(speech.parallel) if speech.parallel is not None else None
        cas = g(speech.cascaded) if speech.cascaded is not None else None
        all_ids = g(ids)
        out = m.loss_from_output(speech, g(image), all_ids, all_ids, token_ids=batch.get("token_ids"),
                                 boundary_frames=batch.get("boundary_frames"),
                                 boundary_start_frames=batch.get("boundary_start_frames"), gathered=(par, cas),
                                 extra_negatives=batch_negatives(batch, image.device))
        return out.total, out.parts


def unused_parameters_reason(model: nn.Module) -> str | None:
    """Why a training step can leave some of `model`'s trainable parameters without a gradient, or None when
    every step reaches all of them. DDP needs `find_unused_parameters=True` in the first case (else the second
    step fails: "Expected to have finished reduction in the prior iteration"); in the second the flag only
    costs an extra traversal of the autograd graph each step (and torch's warning that it found nothing).

    The heads (weighted layer sum, branch, keyword BN, CIF, temperature) are on the loss path in every step, for
    every branch type, with loss weights at zero (a zero weight still multiplies a part of the graph), with the
    auxiliary keyword / boundary losses on or off, and before or after CIF's scaling phase
    (tests/trainer/test_ddp_unused.py measures each). That holds in train mode, where the trainer steps: in eval
    mode the VQ's hard one-hot passes no gradient to the keyword projection and BN. What can be off the loss
    path lives in a backbone that trains:
    - the CLIP tower (ClipConfig.trainable in the speech stage; the CLIP stage itself runs on rank 0 without DDP
      and ends with the tower frozen): open_clip's own logit_scale (the loss uses the model's temperature) and,
      for a parallel model, the whole text tower;
    - the speech upstream (SpeechConfig.trainable): a pre-LN (stable layer norm) HuBERT / wav2vec 2.0's final
      LayerNorm (the weighted sum reads the layers' outputs, as the method's layer_results), the time-mask
      embedding when SpecAugment is off, whole layers under layerdrop. A post-LN upstream with masking on and no
      layerdrop leaves nothing out, but the rule stays one line: the backbone trains, so the flag is on.
    """
    reasons = []
    if any(p.requires_grad for p in model.clip.parameters()):
        reasons.append("the CLIP tower trains (open_clip's logit_scale, and a parallel model's text tower, are "
                       "not in the loss)")
    if any(p.requires_grad for p in model.upstream.backbone.parameters()):
        reasons.append("the speech upstream trains (a pre-LN model's final LayerNorm, the time-mask embedding with "
                       "SpecAugment off and layers under layerdrop can miss the loss)")
    return "; ".join(reasons) or None


def wrap_ddp(loss_module: nn.Module, model: nn.Module, device: torch.device) -> nn.parallel.DistributedDataParallel:
    """`loss_module` under DDP, searching for unused parameters only where `model` can leave some out
    (unused_parameters_reason)."""
    reason = unused_parameters_reason(model)
    logger.debug("DDP find_unused_parameters=%s%s", reason is not None, f": {reason}" if reason else "")
    return nn.parallel.DistributedDataParallel(
        loss_module, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=reason is not None)


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 / fp16 autocast on CUDA; nothing on CPU or for fp32."""
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> bf16 on a CUDA device with bf16, fp16 on other CUDA devices, fp32 elsewhere."""
    if precision != "auto":
        return precision if device.type == "cuda" else "fp32"
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _check_on_every_rank(guard: LossGuard, value: float, step: int, device: torch.device, is_ddp: bool) -> None:
    """guard.check, agreed by all processes: a loss term that is local to one rank (CIF quantity, keyword
    CE) can diverge there alone, and a rank that stopped alone would leave the others waiting in DDP's
    all-reduce until the process-group timeout. Every rank raises TrainingDiverged instead."""
    problem: TrainingDiverged | None = None
    try:
        guard.check(value, step)
    except TrainingDiverged as exc:
        problem = exc
    if is_ddp:
        flag = torch.tensor([0.0 if problem is None else 1.0], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and problem is None:
            problem = TrainingDiverged(f"the loss of another process diverged at step {step}")
    if problem is not None:
        raise problem


def optimizer_step(
    loss_module: nn.Module,
    micro_batches: Sequence[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    params: Sequence[nn.Parameter],
    *,
    lr: float,
    grad_clip: float,
    device: torch.device,
    precision: str,
    guard: LossGuard | None = None,
    step: int = 0,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] = lambda b: b,
) -> dict[str, float]:
    """Accumulate gradients over `micro_batches`, then clip and step. Returns logged values.

    Each micro loss is divided by the number of micro-steps (features gathered across ranks carry their
    gradient back, so DDP's averaging gives the global-batch update, see gather_features). The guard sees every micro loss before its
    backward, so a NaN / exploding loss never reaches the weights.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    n = len(micro_batches)
    is_ddp = isinstance(loss_module, nn.parallel.DistributedDataParallel)
    total = 0.0
    parts_sum: dict[str, float] = {}
    for i, raw in enumerate(micro_batches):
        batch = prepare(raw)
        sync = contextlib.nullcontext() if (not is_ddp or i == n - 1) else loss_module.no_sync()
        with sync:
            with autocast_context(device, precision):
                loss, parts = loss_module(batch)
            value = float(loss.detach())
            if guard is not None:
                _check_on_every_rank(guard, value, step, loss.device, is_ddp)
            scaler.scale(loss / n).backward()
        total += value / n
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + float(v.detach()) / n
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf"))
    if not scaler.is_enabled() and not torch.isfinite(grad_norm):
        # a finite loss can still give an inf / NaN gradient; clipping turns it into NaN, and without fp16's
        # scaler (which skips such steps) it would reach the weights and every checkpoint after them
        optimizer.zero_grad(set_to_none=True)
        raise TrainingDiverged(f"the gradient norm is {float(grad_norm)} at step {step} (the loss was {total:.4g})")
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": total, "lr": lr, "grad_norm": float(grad_norm), **{f"loss_{k}": v for k, v in parts_sum.items()}}
