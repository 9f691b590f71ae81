"""ns.stream.open and its stages: immutable, declarative, checked where they are given."""

from __future__ import annotations

import dataclasses
import pickle
import warnings

import numpy as np
import pytest

from nishard import stream
from nishard.stream import EVERY_SPLIT, Order
from nishard.stream.stages import Batch, Shuffle
from tests.stream.test_golden_orders import SPLITS, make_shards

TRAIN = SPLITS["train"]  # 18 samples in shards of 4, 4, 4, 4, 2


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("compose") / "shards")


def _keys(items) -> list[str]:
    out = []
    for item in items:
        keys = item["__key__"]
        out += [keys] if isinstance(keys, str) else list(keys)
    return out


def test_each_stage_returns_a_new_stream_and_leaves_the_old_one(folder):
    base = stream.open(folder, "train")
    shuffled = base.shuffle(seed=3)
    assert base.stages == () and shuffled.stages == (Shuffle(seed=3),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shuffled.split = "test"
    assert _keys(base.keys().arrays()) == TRAIN  # the base still reads in manifest order


def test_the_order_of_the_calls_does_not_matter_and_a_repeated_stage_keeps_the_last(folder):
    one = stream.open(folder, "train").batch(4).shard(1, 3).shuffle(5, buffer=4)
    two = stream.open(folder, "train").shuffle(5, buffer=4).shard(1, 3).batch(2).batch(4)
    assert one == two
    assert [s for s in two.stages if isinstance(s, Batch)] == [Batch(4)]
    assert one.plan() == two.plan()
    assert repr(one) == (
        f"ns.stream.open({str(folder)!r}, split='train').shuffle(seed=5, buffer=4, "
        "shards=True).shard(rank=1, world_size=3, remainder='wrap').batch(size=4, "
        "drop_last=False)"
    )


def test_a_rank_is_cut_from_the_pass_before_its_samples_are_shuffled(folder):
    # Split by rank first, then shuffle within the rank: the buffer only reorders the
    # rank's own part of the (shard-permuted) pass, whatever the order of the calls.
    for rank in range(3):
        part = stream.open(folder).shuffle(7, buffer=1).shard(rank, 3).plan().indices(0)
        mixed = stream.open(folder).shard(rank, 3).shuffle(7, buffer=50).plan().indices(0)
        assert sorted(mixed.tolist()) == sorted(part.tolist())
        assert not np.array_equal(mixed, part)


def test_shuffling_samples_only_keeps_the_shards_in_place(folder):
    kept = stream.open(folder).shuffle(2, buffer=1, shards=False).plan().indices(0)
    assert kept.tolist() == list(range(18))
    mixed = stream.open(folder).shuffle(2, buffer=3, shards=False).plan().indices(0)
    assert sorted(mixed.tolist()) == list(range(18)) and mixed.tolist() != list(range(18))
    # An item leaves no earlier than 3 places before its place in manifest order.
    assert (np.argsort(mixed) >= np.arange(18) - 3).all()
    order = Order(shuffle=True, seed=2, shards=False, buffer=3)
    assert order.epoch_indices(np.array([4, 4, 4, 4, 2]), 0).tolist() == mixed.tolist()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda s: s.batch(0), ValueError, "batch size must be a positive integer"),
        (lambda s: s.shuffle(buffer=0), ValueError, "buffer must be a positive integer"),
        (lambda s: s.shuffle(seed=-1), ValueError, "seed must be a non-negative"),
        (lambda s: s.shard(3, 2), ValueError, r"rank must be in \[0, 2\)"),
        (lambda s: s.shard(remainder="pad"), ValueError, "remainder is 'wrap' or 'drop'"),
        (lambda s: s.epoch(-1), ValueError, "epoch must be a non-negative"),
        (lambda s: s.epoch(length=0), ValueError, "length must be a positive"),
        (lambda s: s.keys(["bold"]), TypeError, "names are strings"),
        (lambda s: s.fields(meta=[1]), TypeError, "names are strings"),
    ],
)
def test_a_bad_stage_is_refused_by_the_call_that_gave_it(make, error, match):
    with pytest.raises(error, match=match):
        make(stream.open("anywhere"))


def test_one_split_per_reader_and_every_split_for_arrays(folder):
    every = stream.open(folder, EVERY_SPLIT).keys()
    assert _keys(every.arrays()) == TRAIN + SPLITS["test"]
    assert len(every.arrays()) == 23
    both = stream.open(folder, ["test", "train"]).keys()
    assert _keys(both.arrays()) == SPLITS["test"] + TRAIN
    with pytest.raises(ValueError, match="reads one split"):
        every.torch()
    with pytest.raises(KeyError, match=r"no split 'nope'"):
        stream.open(folder, "nope").arrays()


def test_shard_without_arguments_takes_the_rank_from_the_environment(folder, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    sharded = stream.open(folder, "train").shard()
    assert sharded.plan().order.rank == 1 and sharded.plan().order.world == 2
    assert _keys(sharded.arrays()) == TRAIN[9:]
    assert len(sharded.map_dataset()) == 9 and len(sharded.torch()) == 9
    # Without the stage every process reads the whole split.
    assert len(stream.open(folder, "train").torch()) == 18
    # JAX's terminals ask JAX (one process here).
    assert sharded.grain().plan.order.world == 1
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="must be integers"):
        sharded.plan()


def test_arrays_batches_are_fresh_arrays(folder):
    batches = list(stream.open(folder, "train").keys("x").batch(4, drop_last=True).arrays())
    assert [len(b["__key__"]) for b in batches] == [4] * 4
    assert batches[0]["x"].shape == (4, 2, 3) and batches[0]["x"].flags.owndata
    assert not np.shares_memory(batches[0]["x"], batches[1]["x"])
    assert batches[1]["__meta__"] == [{"number": n} for n in range(4, 8)]
    np.testing.assert_array_equal(batches[1]["x"][:, 0, 0], [4, 5, 6, 7])


def test_random_access_items_follow_the_stream_and_survive_pickling(folder):
    composed = stream.open(folder, "train").keys("x").shuffle(1, buffer=5).batch(5).epoch(2)
    torch_order = [b["__key__"] for b in composed.torch()]
    source = composed.grain()
    assert [source[i]["__key__"] for i in range(len(source))] == torch_order
    assert source[-1]["__key__"] == torch_order[-1] and "__meta__" not in source[0]
    with pytest.raises(IndexError, match="batch 4 of split 'train'"):
        source[4]
    copy = pickle.loads(pickle.dumps(source))
    assert copy[0]["__key__"] == torch_order[0]
    source.set_epoch(3)
    assert source[0]["__key__"] != torch_order[0]
    assert "order=Order(" in repr(source)
    ds = composed.map_dataset()
    assert ds[0]["x"].shape == (5, 2, 3) and ds[0]["x"].dtype.is_floating_point


def test_fields_meta_defaults_to_each_terminal(folder):
    train = stream.open(folder, "train").keys("label")
    assert next(iter(train.torch()))["__meta__"] == {"number": 0}
    assert "__meta__" not in train.map_dataset()[0]
    assert train.fields(meta=["number"]).map_dataset()[3]["number"] == 3
    assert "__meta__" not in next(iter(train.fields(meta=False).arrays()))


def test_hdf5_shards_take_no_order_stages(shards):
    hdf5 = stream.open(shards, "test", format="hdf5").keys("regions")
    assert len(list(hdf5.fields(meta=False).arrays())) == 4
    assert all(set(s) == {"__key__", "regions"} for s in hdf5.fields(meta=False).arrays())
    with pytest.raises(ValueError, match="tar and TFRecord shards only, not 'hdf5'"):
        hdf5.shuffle().arrays()
    with pytest.raises(KeyError, match=r"Stream\.arrays\(\) reads the others"):
        hdf5.torch()


def test_the_deprecated_factories_warn_where_they_are_called(folder):
    for name, call in [
        ("torch", lambda: stream.torch(folder, [], "train")),
        ("jax", lambda: stream.jax(folder, [], "train", batch_size=2)),
        ("arrays", lambda: stream.arrays(folder, [], "train")),
    ]:
        with pytest.warns(DeprecationWarning, match=rf"ns\.stream\.{name}\(") as caught:
            call()
        assert caught[0].filename == __file__
        assert "ns.stream.open(path, split)" in str(caught[0].message)


def test_the_composed_api_emits_no_deprecation_warning(folder):
    composed = stream.open(folder, "train").keys("x").shuffle().batch(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert len(list(composed.torch())) == len(list(composed.arrays())) == 6
        source = composed.grain()
        assert len([source[i] for i in range(len(source))]) == 6
