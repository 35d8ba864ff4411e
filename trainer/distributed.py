"""Distributed state from torchrun's environment, and the feature gather of the contrastive loss.

`init_distributed()` reads RANK / LOCAL_RANK / WORLD_SIZE (set by `torchrun`) and returns a small
`DistInfo`; with none set it is a single process and nothing is initialised. Backend: nccl for CUDA,
gloo otherwise (open_clip `dist_backends`).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from core.device import pick_device

logger = logging.getLogger(__name__)

# Rank 0 alone runs the CLIP stage, the image-feature cache and validation while the other ranks wait in a
# barrier: on SpokenCOCO's 25 000 validation utterances that can outlast NCCL's default 10 min timeout.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Set up the process group when launched by torchrun; otherwise a one-process DistInfo."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(0, 0, 1, pick_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = {"cuda": "nccl"}.get(dev.type, "gloo")
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, timeout=COLLECTIVE_TIMEOUT)
        logger.info("process group: backend=%s rank=%d/%d device=%s", backend, rank, world_size, dev)
    return DistInfo(rank, local_rank, world_size, dev)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s object on every rank (identity for one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (no gradient); identity for one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient and returns the local slice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = rank, x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every rank computed the same global loss: sum their gradients
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_features(x: torch.Tensor) -> torch.Tensor:
    """All-gather `x` (B, ...) along dim 0 to (world*B, ...), gradients flowing back to each rank's slice.

    open_clip's `gather_features(gather_with_grad=True)`: every rank computes the same loss over the global
    batch; the backward sums the ranks' gradients w.r.t. each slice, and DDP's averaging then makes the
    update exactly that of one process holding the global batch (local loss terms average as usual).
    Every rank must pass the same B (DistributedSampler + drop_last guarantee it). Integer tensors (ids)
    are gathered without gradient.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    if not x.is_floating_point() or not x.requires_grad:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)
    return _GatherWithGrad.apply(x)


def gather_keys(keys: list[str]) -> list[str]:
    """Every rank's `keys`, concatenated in rank order: the same list on every rank (one process: `keys`)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(keys)
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(keys))
    return [k for part in parts for k in part]
