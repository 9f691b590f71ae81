"""Stream.arrays and the offset reader: the arrays the verifying decoders read."""

from __future__ import annotations

import shutil
import weakref

import numpy as np
import pytest

import nishard as ns
from nishard import stream
from nishard.archives.decoders import DecodeError
from nishard.stream import reader
from nishard.stream.catalog import open_catalog
from tests.stream.conftest import decoded


def _manifest_order(folder, split, format="webdataset"):
    manifest = ns.archives.read_manifest(folder)
    return [k for s in manifest["shards"] if s["split"] == split and s["format"] == format
            for k in s["keys"]]  # fmt: skip


@pytest.mark.parametrize("format", ["webdataset", "tfrecord", "hdf5"])
def test_arrays_equal_the_decoders_in_every_format(shards, format):
    for split in ("train", "test"):
        expected = decoded(shards, split, format)
        got = list(stream.open(shards, split, format=format).fields(float32=False).arrays())
        assert [s["__key__"] for s in got] == list(expected)
        for sample in got:
            reference = expected[sample["__key__"]]
            assert sample["__meta__"] == reference.meta
            assert set(sample) - {"__key__", "__meta__"} == set(reference.arrays)
            for name, array in reference.arrays.items():
                assert sample[name].dtype == array.dtype
                np.testing.assert_array_equal(sample[name], array)


def test_every_split_in_manifest_order_without_a_split(shards):
    keys = [s["__key__"] for s in stream.open(shards, "*").keys("regions").arrays()]
    assert keys == _manifest_order(shards, "train") + _manifest_order(shards, "test")


def test_float16_comes_back_as_float32_when_asked(shards):
    stored = {k: s.arrays["connectivity"] for k, s in decoded(shards, "train").items()}
    assert next(iter(stored.values())).dtype == np.float16
    for sample in stream.open(shards, "train").keys("connectivity").arrays():
        assert sample["connectivity"].dtype == np.float32
        np.testing.assert_array_equal(sample["connectivity"], stored[sample["__key__"]])
        assert set(sample) == {"__key__", "__meta__", "connectivity"}


def test_keys_select_products_and_an_unknown_key_is_named(shards):
    sample = next(iter(stream.open(shards, "test").keys().arrays()))
    assert set(sample) == {"__key__", "__meta__"}
    with pytest.raises(KeyError, match=r"no key \['nope'\].*they hold \['bold'"):
        stream.open(shards).keys("nope").arrays()


def test_arrays_are_the_callers_own(shards):
    first, second = list(stream.open(shards, "test").keys("bold").arrays())[:2]
    assert first["bold"].flags.writeable and first["bold"].flags.owndata
    assert not np.shares_memory(first["bold"], second["bold"])


@pytest.mark.parametrize("format", ["webdataset", "tfrecord"])
def test_large_samples_read_straight_into_place_give_the_same_arrays(shards, format, monkeypatch):
    # Every sample above the "small" size: tar member headers or the Example's protobuf
    # framing walked by window, arrays preadv'd into place.
    expected = decoded(shards, "train", format)
    monkeypatch.setattr(reader, "SMALL", 0)
    monkeypatch.setattr(reader, "WINDOW", 512)

    def in_memory(*args):
        raise AssertionError("a large sample parsed in memory")

    monkeypatch.setattr(reader, "_tar_in_memory", in_memory)
    monkeypatch.setattr(reader, "_tfrecord_in_memory", in_memory)
    for sample in stream.open(shards, "train", format=format).fields(float32=False).arrays():
        for name, array in expected[sample["__key__"]].arrays.items():
            np.testing.assert_array_equal(sample[name], array)
        assert sample["__meta__"] == expected[sample["__key__"]].meta


def test_large_tfrecord_arrays_are_left_in_the_file_for_one_read(shards, monkeypatch):
    # The bold array (3,360 bytes) does not fit a 64-byte window: located, not read.
    monkeypatch.setattr(reader, "WINDOW", 64)
    catalog = open_catalog(shards, ["bold"], "train", "tfrecord")
    expected = decoded(shards, "train", "tfrecord")
    shard = reader.ShardReader(catalog, small=0)
    try:
        for position in range(len(catalog.shards[0].keys)):
            located = shard.locate(0, position, frozenset(["bold"]), meta=True)
            found = located.fields["bold"]
            assert found.array is None and found.offset > 0
            out = np.empty(found.shape, np.float32)
            shard.fill(located, "bold", out)
            np.testing.assert_array_equal(out, expected[located.key].arrays["bold"])
            assert located.meta == expected[located.key].meta
    finally:
        shard.close()


def _damaged(shards, tmp_path, change):
    copy = shutil.copytree(shards, tmp_path / "copy")
    path = sorted(copy.glob("train-*.tfrecord"))[0]
    path.write_bytes(change(path.read_bytes()))
    return copy


@pytest.mark.parametrize("small", [0, reader.SMALL])
def test_damaged_tfrecord_framing_is_refused_on_both_paths(shards, tmp_path, small, monkeypatch):
    monkeypatch.setattr(reader, "SMALL", small)
    length_crc = _damaged(shards, tmp_path / "crc", lambda d: d[:8] + bytes([d[8] ^ 1]) + d[9:])
    with pytest.raises(DecodeError, match="length is damaged"):
        list(stream.open(length_crc, "train", format="tfrecord").arrays())
    # bold/shape [120, 7] -> [120, 6]: the array's bytes no longer match its shape.
    shape = b"bold/shape\x12\x06\x1a\x04\x0a\x02\x78\x07"
    assert shape in (sorted(shards.glob("train-*.tfrecord"))[0]).read_bytes()
    wrong = _damaged(shards, tmp_path / "shape", lambda d: d.replace(shape, shape[:-1] + b"\x06"))
    with pytest.raises(DecodeError, match="bytes for"):
        list(stream.open(wrong, "train", format="tfrecord").arrays())


def test_shuffled_arrays_are_a_seeded_permutation(shards):
    order = _manifest_order(shards, "train")
    train = stream.open(shards, "train").keys()
    one = [s["__key__"] for s in train.shuffle(seed=3).arrays()]
    two = [s["__key__"] for s in train.shuffle(seed=3).arrays()]
    other = [s["__key__"] for s in train.shuffle(seed=4).arrays()]
    assert one == two and sorted(one) == sorted(order)
    assert one != order and other != one


def test_a_shard_that_is_not_the_manifests_is_refused(shards, tmp_path):
    copy = shutil.copytree(shards, tmp_path / "copy")
    names = sorted(p.name for p in copy.glob("train-*.tar"))
    (copy / names[0]).write_bytes((copy / names[1]).read_bytes())  # same size, other samples
    with pytest.raises(DecodeError, match="not the one the manifest"):
        list(stream.open(copy, "train").arrays())


def test_arrays_let_go_of_are_reused_and_held_ones_never_are(shards):
    expected = {k: s.arrays["bold"] for k, s in decoded(shards, "train").items()}
    shapes = {a.shape for a in expected.values()}
    held, seen, reused = None, [], 0
    for sample in stream.open(shards, "train").keys("bold").arrays():
        array = sample["bold"]
        reused += any(ref() is array for ref in seen)  # the very array handed out before
        seen.append(weakref.ref(array))
        held = held or sample  # the first is kept; the rest are let go of in turn
        del array
    # Fresh: the first of each shape, and the two after the held first (the loop's name
    # still holds the last sample while the next is read); every other one reused.
    assert len(expected) > 6 and reused >= len(expected) - len(shapes) - 2
    np.testing.assert_array_equal(held["bold"], expected[held["__key__"]])


def test_a_pool_that_keeps_no_unfit_array_lets_go_before_allocating():
    from nishard.stream.memory import BufferPool

    pool = BufferPool(capacity=3, keep_unfit=False)
    long = pool.empty((1200, 10), np.float32)
    del long
    short = pool.empty((600, 10), np.float32)  # the free long one is let go first
    assert len(pool) == 1 and short.shape == (600, 10)
    del short
    again = pool.empty((600, 10), np.float32)
    assert len(pool) == 1 and again.shape == (600, 10)
    kept = BufferPool(capacity=3)  # the default keeps it, for when that shape comes back
    other = kept.empty((1200, 10), np.float32)
    del other
    kept.empty((600, 10), np.float32)
    assert len(kept) == 2
