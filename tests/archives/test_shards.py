"""The tar size model that byte limits rely on, checked against real tar files; shards
synced and renamed behind the writer."""

import threading

import pytest

from nishard.archives import WebDataset, parse_bytes
from nishard.archives import storage as storage_module
from nishard.archives.shards import ShardSpec, ShardWriter, by_count


@pytest.mark.parametrize("key_length", [10, 95, 150])
@pytest.mark.parametrize("payload", [0, 1, 511, 512, 20_000])
def test_predicted_tar_size_is_the_real_one(tmp_path, key_length, payload):
    fmt = WebDataset()
    key = "k" * key_length  # over 100 characters with its extension: a PAX header
    fields = {"bold.npy": b"x" * payload, "json": b"{}"}
    shard = fmt.open(str(tmp_path / "a.tar"))
    shard.add(key, fields)
    shard.add(key + "b", fields)
    shard.close()
    content = fmt.sample_size(key, fields) + fmt.sample_size(key + "b", fields)
    assert fmt.file_size(content) == (tmp_path / "a.tar").stat().st_size


def test_sizes_and_limits_are_checked():
    assert parse_bytes("512MB") == 512_000_000
    assert parse_bytes("1GiB") == 2**30
    assert parse_bytes(4096) == 4096
    with pytest.raises(ValueError, match="a size like"):
        parse_bytes("lots")
    with pytest.raises(ValueError, match="a shard limit"):
        ShardSpec(max_samples=None, max_bytes=None)
    with pytest.raises(ValueError, match="max_samples must be a positive integer"):
        ShardSpec(max_samples="3")


def test_shards_are_synced_and_renamed_behind_the_writer(tmp_path, monkeypatch):
    """The writer goes on while a shard is synced; the journal hook runs only once the
    shard is under its name; close waits for every one."""
    gate, events = threading.Event(), []

    def slow_sync(path):
        if path.name.endswith(".tmp"):
            assert gate.wait(10), "the writer waited for the sync"
        events.append(("synced", path.name))

    monkeypatch.setattr(storage_module, "sync", slow_sync)

    def finished(info):
        events.append(("finished", info.name))  # in the writer's thread, at once
        return lambda: events.append(("on disk", info.name, (tmp_path / info.name).is_file()))

    writer = ShardWriter(tmp_path, "all", WebDataset(), by_count(1), on_finish=finished)
    writer.add("a", {"json": b"{}"})
    writer.add("b", {"json": b"{}"})  # finishes all-000000 while its sync is held
    assert events == [("finished", "all-000000.tar")]
    assert (tmp_path / "all-000001.tar.tmp").is_file()  # the next shard is being written
    gate.set()
    infos = writer.close()
    assert [i.name for i in infos] == ["all-000000.tar", "all-000001.tar"]
    assert ("on disk", "all-000000.tar", True) in events
    assert ("on disk", "all-000001.tar", True) in events
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all-000000.tar", "all-000001.tar"]


def test_an_error_syncing_a_shard_is_raised_by_the_writer(tmp_path, monkeypatch):
    def broken(path):
        raise OSError("disk gone")

    monkeypatch.setattr(storage_module, "sync", broken)
    writer = ShardWriter(tmp_path, "all", WebDataset(), by_count(1))
    writer.add("a", {"json": b"{}"})
    writer.add("b", {"json": b"{}"})
    with pytest.raises(OSError, match="disk gone"):
        writer.close()
