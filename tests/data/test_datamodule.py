"""The training sampler: one order per (seed, epoch), sharded across DDP processes without loss."""

from __future__ import annotations

from midms.data.datamodule import EpochShuffleSampler


def test_order_depends_only_on_seed_and_epoch():
    a, b = EpochShuffleSampler(10, seed=1), EpochShuffleSampler(10, seed=1)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(10))
    b.set_epoch(1)
    assert list(a) == list(b)  # a resumed run that sets epoch 1 sees epoch 1's order
    assert list(EpochShuffleSampler(10, seed=2)) != first


def test_ranks_share_one_order_and_cover_it():
    single = list(EpochShuffleSampler(16, seed=3))
    shards = [list(EpochShuffleSampler(16, seed=3, rank=r, world=2)) for r in range(2)]
    # step k of the two ranks together is step k of one process with twice the batch
    assert [x for pair in zip(*shards, strict=True) for x in pair] == single
    uneven = [list(EpochShuffleSampler(5, seed=0, rank=r, world=2)) for r in range(2)]
    assert len(uneven[0]) == len(uneven[1]) == 3 and set(uneven[0] + uneven[1]) == set(range(5))


def test_a_resumed_epoch_continues_after_the_samples_already_trained_on():
    sampler = EpochShuffleSampler(12, seed=4)
    sampler.set_epoch(2)
    (epoch2,) = [list(sampler)]
    sampler.set_epoch(3)
    epoch3 = list(sampler)
    resumed = EpochShuffleSampler(12, seed=4)
    resumed.resume_at(2, skip=5)
    resumed.set_epoch(2)  # what Lightning does at the start of the resumed epoch
    assert list(resumed) == epoch2[5:]
    resumed.set_epoch(3)
    assert list(resumed) == epoch3  # the next epoch is whole again
    resumed.set_epoch(2)
    assert list(resumed) == epoch2  # and the skip applied once only
