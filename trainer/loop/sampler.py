"""A DistributedSampler that can start mid-epoch, so a resumed run sees exactly the batches it missed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, DistributedSampler

logger = logging.getLogger(__name__)


class ResumableDistributedSampler(DistributedSampler):
    """torch's DistributedSampler (shuffle with seed + epoch, one shard per rank, drop_last) plus
    `set_position(epoch, start_batch, batch_size)`: the next iteration of that epoch skips the first
    `start_batch * batch_size` indices of this rank's shard. The skip lasts one epoch; `set_epoch`
    (called at every epoch start) clears it.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self._start = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self._start = 0

    def set_position(self, epoch: int, start_batch: int, batch_size: int) -> None:
        super().set_epoch(epoch)
        self._start = start_batch * batch_size

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self._start:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self._start)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order DistributedSampler uses for `epoch` (for tests and debugging)."""
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    return torch.randperm(n, generator=g)
