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

    With `lengths` and `batch_size`, each run of `bucket_chunk` batches of this rank's shard is sorted by
    length and cut into batches whose order is then shuffled (less padding, same randomness per epoch);
    the order stays a pure function of (seed, epoch, rank), so resuming mid-epoch is exact.

    `epoch_samples` (> 0) ends each epoch after that many indices of the (bucketed) order: the trainer passes
    the samples of its whole accumulation windows, so an incomplete window's micro-batches are never loaded.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = True, lengths: list[float] | None = None,
                 batch_size: int = 0, bucket_chunk: int = 32, epoch_samples: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.epoch_samples = min(epoch_samples, self.num_samples) if epoch_samples > 0 else self.num_samples
        self._start = 0
        self.lengths = lengths
        self.batch_size = batch_size
        self.bucket_chunk = bucket_chunk

    def _bucketed(self, indices: list[int]) -> list[int]:
        if not self.lengths or self.batch_size < 2:
            return indices
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 101 + self.rank)
        span = self.batch_size * self.bucket_chunk
        out: list[int] = []
        for c in range(0, len(indices), span):
            chunk = sorted(indices[c:c + span], key=lambda i: self.lengths[i])  # type: ignore[index]
            batches = [chunk[b:b + self.batch_size] for b in range(0, len(chunk), self.batch_size)]
            full = [b for b in batches if len(b) == self.batch_size]
            rest = [i for b in batches if len(b) < self.batch_size for i in b]
            order = torch.randperm(len(full), generator=g).tolist()
            out.extend(i for j in order for i in full[j])
            out.extend(rest)
        return out

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self._start = 0

    def set_position(self, epoch: int, start_batch: int, batch_size: int) -> None:
        super().set_epoch(epoch)
        self._start = start_batch * batch_size

    def __iter__(self) -> Iterator[int]:
        indices = self._bucketed(list(super().__iter__()))[:self.epoch_samples]
        return iter(indices[self._start:])

    def __len__(self) -> int:
        return max(0, self.epoch_samples - self._start)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order DistributedSampler uses for `epoch` (for tests and debugging)."""
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    return torch.randperm(n, generator=g)
