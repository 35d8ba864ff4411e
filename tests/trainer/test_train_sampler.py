"""The resumable sampler: shards, length buckets, and a mid-epoch restart that yields the rest exactly."""

from __future__ import annotations

from trainer.loop.sampler import ResumableDistributedSampler


def _sampler(rank=0, world=1, lengths=None):
    return ResumableDistributedSampler(list(range(40)), num_replicas=world, rank=rank, seed=3,
                                       lengths=lengths, batch_size=4, bucket_chunk=3)


def test_mid_epoch_position_continues_the_same_order():
    lengths = [float((i * 7) % 11) for i in range(40)]
    s = _sampler(lengths=lengths)
    s.set_epoch(2)
    full = list(s)
    s.set_position(2, start_batch=3, batch_size=4)
    assert list(s) == full[12:]
    s.set_epoch(3)  # the skip lasts one epoch
    assert len(list(s)) == 40 and list(s) != full


def test_buckets_group_similar_lengths_and_shards_are_disjoint():
    lengths = [float(i) for i in range(40)]
    s = _sampler(lengths=lengths)
    s.set_epoch(0)
    order = list(s)
    assert sorted(order) == list(range(40))
    batches = [order[i:i + 4] for i in range(0, 40, 4)]
    # within a chunk of 3 batches, the batches hold disjoint length ranges (sorted, then cut)
    for c in range(0, 9, 3):
        spans = sorted((min(b), max(b)) for b in batches[c:c + 3])
        assert all(spans[j][1] < spans[j + 1][0] for j in range(len(spans) - 1))
    assert sum(max(b) - min(b) for b in batches) < sum(max(b) - min(b) for b in _plain_batches())
    r0, r1 = _sampler(0, 2, lengths), _sampler(1, 2, lengths)
    assert set(r0).isdisjoint(set(r1)) and len(list(r0)) == len(list(r1)) == 20


def _plain_batches():
    s = _sampler()
    s.set_epoch(0)
    order = list(s)
    return [order[i:i + 4] for i in range(0, 40, 4)]


def test_epoch_samples_end_the_epoch_early_and_a_mid_epoch_restart_still_matches():
    lengths = [float((i * 7) % 11) for i in range(40)]
    full = _sampler(lengths=lengths)
    cut = ResumableDistributedSampler(list(range(40)), seed=3, lengths=lengths, batch_size=4, bucket_chunk=3,
                                      epoch_samples=24)
    full.set_epoch(1)
    cut.set_epoch(1)
    assert list(cut) == list(full)[:24] and len(cut) == 24
    cut.set_position(1, start_batch=2, batch_size=4)
    assert list(cut) == list(full)[8:24] and len(cut) == 16
