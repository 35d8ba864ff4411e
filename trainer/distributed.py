"""Distributed state from torchrun's environment, and the feature gather of the contrastive loss.

`init_distributed()` reads RANK / LOCAL_RANK / WORLD_SIZE (set by `torchrun`) and returns a small
`DistInfo`; with none set it is a single process and nothing is initialised. Backend: nccl for CUDA,
gloo otherwise (open_clip `dist_backends`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


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


def pick_device(pref: str = "auto") -> torch.device:
    """"auto" -> cuda if available, else mps, else cpu; anything else is passed to torch.device."""
    if pref != "auto":
        return torch.device(pref)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
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


def gather_features(x: torch.Tensor) -> torch.Tensor:
    """All-gather `x` (B, ...) along dim 0 to (world*B, ...), keeping the local rank's gradient.

    As open_clip's `gather_features(local_loss=False, gather_with_grad=False)`: the other ranks'
    features are constants, the local slice is the original tensor, so each rank's backward reaches its
    own encoder and DDP's gradient averaging makes the update equal to the single-process one on the
    global batch. Every rank must pass the same B (DistributedSampler + drop_last guarantee it).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)
