"""Stream.torch and the map-style dataset through the real torch DataLoader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

import nishard as ns
from nishard import stream
from nishard.stream import reader, shared
from tests.stream.conftest import decoded

# The JAX tests of this folder leave JAX's threads running in this process; the DataLoader
# workers forked here never use JAX, so its fork warning does not apply to them.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


def _manifest_keys(folder, split):
    manifest = ns.archives.read_manifest(folder)
    return [k for s in manifest["shards"] if s["split"] == split and s["format"] == "webdataset"
            for k in s["keys"]]  # fmt: skip


def _epoch(dataset, workers=2):
    return list(DataLoader(dataset, batch_size=None, num_workers=workers))


def test_one_epoch_with_two_workers_yields_each_sample_exactly_once(shards):
    expected = decoded(shards, "train")
    dataset = (stream.open(shards, "train").keys("bold", "connectivity").shuffle(seed=0)
               .batch(5).torch())  # fmt: skip
    batches = _epoch(dataset, workers=2)
    keys = [k for b in batches for k in b["__key__"]]
    assert sorted(keys) == sorted(_manifest_keys(shards, "train")) and len(keys) == 12
    assert len(batches) == len(dataset) == 3
    for batch in batches:
        assert batch["bold"].dtype == torch.float32 and batch["bold"].shape[1:] == (120, 7)
        for row, key in enumerate(batch["__key__"]):
            np.testing.assert_array_equal(batch["bold"][row].numpy(), expected[key].arrays["bold"])
            np.testing.assert_array_equal(  # float16 in the shards, float32 out
                batch["connectivity"][row].numpy(), expected[key].arrays["connectivity"]
            )


def test_batches_come_in_the_same_order_whatever_the_number_of_workers(shards):
    dataset = stream.open(shards, "train").keys("bold").shuffle(seed=7).batch(3).torch()
    runs = [_epoch(dataset, workers) for workers in (0, 1, 2)]
    for other in runs[1:]:
        assert [b["__key__"] for b in other] == [b["__key__"] for b in runs[0]]
        for a, b in zip(runs[0], other, strict=True):
            assert torch.equal(a["bold"], b["bold"])


@pytest.mark.parametrize(("world", "remainder"), [(2, "wrap"), (5, "wrap"), (5, "drop")])
def test_simulated_ranks_get_equal_batch_counts_and_their_own_samples(shards, world, remainder):
    per_rank = []
    for rank in range(world):
        dataset = (stream.open(shards, "train").keys().shuffle(seed=1)
                   .shard(rank, world, remainder).batch(2).torch())  # fmt: skip
        batches = _epoch(dataset, workers=2)
        assert len(batches) == len(dataset)
        per_rank.append([k for b in batches for k in b["__key__"]])
    assert len({len(keys) for keys in per_rank}) == 1  # same samples, same batches per rank
    every = [k for keys in per_rank for k in keys]
    if remainder == "drop" or 12 % world == 0:
        assert len(set(every)) == len(every)  # disjoint
    if remainder == "wrap":
        assert set(every) == set(_manifest_keys(shards, "train"))
    if world == 2:
        assert len(per_rank[0]) == 6 and not set(per_rank[0]) & set(per_rank[1])


def test_a_fixed_seed_gives_the_same_order_and_epochs_reshuffle(shards):
    def order(seed, epoch):
        dataset = stream.open(shards, "train").keys().shuffle(seed, buffer=4).torch()
        dataset.set_epoch(epoch)
        return [b["__key__"] for b in _epoch(dataset, workers=2)]

    first = order(3, 0)
    assert first == order(3, 0)
    assert sorted(first) == sorted(_manifest_keys(shards, "train"))
    assert order(3, 1) != first and order(4, 0) != first
    unshuffled = stream.open(shards, "train").keys().torch()
    assert [b["__key__"] for b in _epoch(unshuffled, 0)] == _manifest_keys(shards, "train")


def test_normalize_uses_the_training_split_statistics(shards):
    train = np.concatenate([s.arrays["bold"] for s in decoded(shards, "train").values()])
    mean, std = train.mean(axis=0), train.std(axis=0)
    expected = decoded(shards, "test")
    dataset = stream.open(shards, "test").keys("bold", "volumes").batch(4).normalize().torch()
    (batch,) = _epoch(dataset, workers=0)
    assert batch["volumes"].dtype == torch.int32  # integers are not normalised
    for row, key in enumerate(batch["__key__"]):
        want = (expected[key].arrays["bold"] - mean) / std
        np.testing.assert_allclose(batch["bold"][row].numpy(), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError, match="no statistics file for split 'nope'"):
        stream.open(shards, "test").keys("bold").normalize(stats_split="nope").torch()
    with pytest.raises(KeyError, match="not among the keys read"):
        stream.open(shards, "test").keys("bold").normalize("connectivity").torch()


def test_float16_stays_float16_unless_asked_and_metadata_comes_as_asked(shards):
    expected = decoded(shards, "test")
    dataset = (stream.open(shards, "test").keys("connectivity").batch(4)
               .fields(float32=False, meta=["age", "diagnosis", "missing"]).torch())  # fmt: skip
    (batch,) = _epoch(dataset, workers=2)
    assert batch["connectivity"].dtype == torch.float16
    keys = batch["__key__"]
    assert batch["diagnosis"] == [expected[k].meta["diagnosis"] for k in keys]
    assert batch["age"].dtype == torch.float64
    assert batch["age"].tolist() == [expected[k].meta["age"] for k in keys]
    assert batch["missing"] == [None] * 4
    (whole,) = _epoch(stream.open(shards, "test").keys().batch(4).torch(), workers=0)
    assert whole["__meta__"] == [expected[k].meta for k in whole["__key__"]]


def test_one_sample_at_a_time_without_a_batch_size(shards):
    expected = decoded(shards, "test")
    samples = _epoch(stream.open(shards, "test").keys("regions").torch(), workers=2)
    assert [s["__key__"] for s in samples] == list(expected)
    for sample in samples:
        assert sample["regions"].shape == (7,)
        assert sample["__meta__"] == expected[sample["__key__"]].meta


def test_tfrecord_shards_give_the_tar_batches(shards):
    def epoch(format):
        dataset = (stream.open(shards, "train", format=format).keys("bold", "connectivity")
                   .shuffle(seed=2).batch(4).torch())  # fmt: skip
        return _epoch(dataset, workers=2)

    for tar, tfrecord in zip(epoch("webdataset"), epoch("tfrecord"), strict=True):
        assert tar["__key__"] == tfrecord["__key__"] and tar["__meta__"] == tfrecord["__meta__"]
        assert torch.equal(tar["bold"], tfrecord["bold"])
        assert torch.equal(tar["connectivity"], tfrecord["connectivity"])


def test_an_epoch_length_sets_the_batches_per_epoch(shards):
    dataset = stream.open(shards, "train").keys().batch(4).epoch(length=20).shuffle().torch()
    assert len(dataset) == 5
    keys = [k for b in _epoch(dataset) for k in b["__key__"]]
    assert len(keys) == 20 and set(keys) == set(_manifest_keys(shards, "train"))


def test_held_batches_are_never_refilled_and_released_ones_are_reused(shards):
    # In the main process batches come from a pool of reused buffers.
    expected = decoded(shards, "train")
    dataset = stream.open(shards, "train").keys("bold").batch(2).torch(threads=2)
    held = list(dataset)  # every batch kept: each needs its own memory
    assert len({b["bold"].data_ptr() for b in held}) == len(held) == 6
    for batch in held:
        for row, key in enumerate(batch["__key__"]):
            np.testing.assert_array_equal(batch["bold"][row].numpy(), expected[key].arrays["bold"])
    del held, batch
    pointers = set()
    for batch in dataset:  # each batch let go before the next but one: two buffers suffice
        pointers.add(batch["bold"].data_ptr())
    assert len(pointers) <= 4


def test_large_samples_read_by_threads_give_the_same_batches(shards, monkeypatch):
    bold = stream.open(shards, "train").keys("bold").batch(4)
    small = _epoch(bold.torch(threads=0), 0)
    monkeypatch.setattr(reader, "SMALL", 0)  # every array preadv'd into its row
    large = _epoch(bold.torch(threads=2), 0)
    for a, b in zip(small, large, strict=True):
        assert a["__key__"] == b["__key__"] and torch.equal(a["bold"], b["bold"])


def test_map_dataset_serves_a_random_sampler(shards):
    expected = decoded(shards, "test")
    dataset = (stream.open(shards, "test").keys("bold", "connectivity")
               .fields(meta=["diagnosis"]).map_dataset())  # fmt: skip
    assert len(dataset) == 4
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(0))
    batches = list(DataLoader(dataset, batch_size=3, sampler=sampler, num_workers=2))
    keys = [k for b in batches for k in b["__key__"]]
    assert sorted(keys) == sorted(expected) and keys != list(expected)
    for batch in batches:
        for row, key in enumerate(batch["__key__"]):
            np.testing.assert_array_equal(batch["bold"][row].numpy(), expected[key].arrays["bold"])
            assert batch["diagnosis"][row] == expected[key].meta["diagnosis"]
    assert dataset[-1]["__key__"] == list(expected)[-1]
    with pytest.raises(IndexError):
        dataset[4]


def test_importing_nishard_imports_neither_torch_nor_jax():
    code = ("import sys, nishard, nishard.stream; "
            "print(sorted(m for m in ('torch', 'jax', 'grain') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _segments():
    return {p.name for p in Path("/dev/shm").glob("psm_*")} if Path("/dev/shm").is_dir() else set()


def test_worker_batches_travel_in_reused_shared_memory_and_never_change_while_held(shards):
    expected = decoded(shards, "train")
    before = _segments()
    dataset = stream.open(shards, "train").keys("bold").batch(1).torch()
    # Kept: 12 batches from one worker, more than its ring's slots; the rest come in fresh
    # shared memory, and none is overwritten.
    held = list(DataLoader(dataset, batch_size=None, num_workers=1))
    for batch in held:
        np.testing.assert_array_equal(batch["bold"][0].numpy(),
                                      expected[batch["__key__"][0]].arrays["bold"])  # fmt: skip
    assert len({b["bold"].data_ptr() for b in held}) == 12
    del held, batch
    # Let go of each batch: the slots are refilled, a handful of addresses recur.
    pointers = [b["bold"].data_ptr() for b in DataLoader(dataset, batch_size=None, num_workers=1)]
    assert len(set(pointers)) <= shared.SLOTS < len(pointers)
    assert _segments() <= before  # each worker unlinked its segments when it exited
