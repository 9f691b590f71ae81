"""The epoch plan: which sample numbers each rank reads, in what order (no data read)."""

from __future__ import annotations

import numpy as np
import pytest

from nishard.stream.order import Order, batches, buffer_shuffle, n_batches

COUNTS = np.array([4, 4, 3, 4, 2])  # 17 samples in 5 shards, the last ones short


def test_one_pass_without_shuffle_is_the_manifest_order():
    assert Order().epoch_indices(COUNTS, 0).tolist() == list(range(17))


def test_a_shuffled_pass_is_a_permutation_fixed_by_seed_and_epoch():
    order = Order(shuffle=True, seed=5, buffer=4)
    first = order.epoch_indices(COUNTS, 0)
    assert sorted(first.tolist()) == list(range(17))
    assert np.array_equal(first, Order(shuffle=True, seed=5, buffer=4).epoch_indices(COUNTS, 0))
    assert not np.array_equal(first, order.epoch_indices(COUNTS, 1))
    assert not np.array_equal(first, Order(shuffle=True, seed=6, buffer=4).epoch_indices(COUNTS, 0))


@pytest.mark.parametrize("world", [2, 3, 4, 17])
def test_wrap_gives_equal_parts_that_cover_every_sample(world):
    parts = [Order(shuffle=True, seed=1, rank=r, world=world).epoch_indices(COUNTS, 2)
             for r in range(world)]  # fmt: skip
    assert {len(p) for p in parts} == {-(-17 // world)}
    assert set(np.concatenate(parts).tolist()) == set(range(17))


@pytest.mark.parametrize("world", [2, 3, 4, 17])
def test_drop_gives_equal_disjoint_parts(world):
    parts = [Order(shuffle=True, seed=1, rank=r, world=world, remainder="drop")
             .epoch_indices(COUNTS, 2) for r in range(world)]  # fmt: skip
    assert {len(p) for p in parts} == {17 // world}
    joined = np.concatenate(parts).tolist()
    assert len(set(joined)) == len(joined) == world * (17 // world)


def test_drop_with_more_ranks_than_samples_is_an_error():
    with pytest.raises(ValueError, match="cannot give each of 20 ranks"):
        Order(rank=0, world=20, remainder="drop").epoch_indices(COUNTS, 0)


def test_an_epoch_length_walks_through_the_passes():
    order = Order(shuffle=True, seed=2, length=5)
    passes = np.concatenate([order.pass_indices(COUNTS, p) for p in range(3)])  # 51 numbers
    epochs = [order.epoch_indices(COUNTS, e) for e in range(10)]
    assert all(len(e) == 5 for e in epochs)
    assert np.array_equal(np.concatenate(epochs), passes[:50])
    # Each pass is a new permutation of every sample.
    assert sorted(passes[17:34].tolist()) == list(range(17))
    assert not np.array_equal(passes[:17], passes[17:34])


def test_buffer_shuffle_moves_items_within_reach_of_the_buffer():
    items = np.arange(1000)
    out = buffer_shuffle(items, 10, 0)
    assert sorted(out.tolist()) == items.tolist()
    # An item leaves no earlier than 10 places before its position in the input.
    assert (np.argsort(out) >= items - 10).all()
    assert not np.array_equal(out, items)
    assert np.array_equal(out, buffer_shuffle(items, 10, 0))


def test_batches_and_their_count():
    numbers = np.arange(10)
    assert [b.tolist() for b in batches(numbers, 4, False)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b.tolist() for b in batches(numbers, 4, True)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(batches(numbers, None, False)) == n_batches(10, None, False) == 10
    assert n_batches(10, 4, False) == 3 and n_batches(10, 4, True) == 2
