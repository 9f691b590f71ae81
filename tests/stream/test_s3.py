"""Streaming from S3 (issue [4/6], item 2): a real SeaweedFS server and boto3; the same
batches as the local folder, a changed object refused, the storage's own operations."""

from __future__ import annotations

import boto3
import pytest
import torch

from nishard import stream
from nishard.archives.manifest import read_manifest
from nishard.archives.storage import S3Storage, storage_for
from nishard.errors import MissingFileError, StorageError
from tests.seaweedfs import seaweedfs, upload

pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


@pytest.fixture(scope="module")
def bucket(shards, tmp_path_factory):
    """The shard folder uploaded to ``s3://nishard-test/shards`` on a running server."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="nishard-test")
        upload(shards, "s3://nishard-test/shards")
        yield "s3://nishard-test/shards"


def _keys_and_bold(source, workers=0, **options):
    dataset = (stream.open(source, "train", **options).keys("bold").shuffle(seed=4, buffer=4)
               .batch(3).normalize().torch())  # fmt: skip
    batches = list(dataset.loader(num_workers=workers))
    return [b["__key__"] for b in batches], [b["bold"] for b in batches]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("through", ["memory", "folder"])
def test_an_s3_url_streams_the_same_batches_as_the_folder(
    shards, bucket, tmp_path, monkeypatch, workers, through
):
    # No cache asked for: one process streams through memory, workers share the default
    # cache folder (here under tmp_path).
    monkeypatch.setenv("NISHARD_CACHE", str(tmp_path / "default"))
    cache = tmp_path / "cache" if through == "folder" else None
    keys, bold = _keys_and_bold(bucket, workers, cache=cache)
    want_keys, want_bold = _keys_and_bold(shards, workers)
    assert keys == want_keys
    assert all(torch.equal(a, b) for a, b in zip(bold, want_bold, strict=True))
    on_disk = [p for p in tmp_path.rglob("*.tar")]
    assert bool(on_disk) == (through == "folder" or workers > 0)


def test_the_storage_lists_stats_and_reads_ranges(shards, bucket):
    storage = storage_for(bucket)
    assert storage == S3Storage("nishard-test", "shards")
    local = sorted(p.relative_to(shards).as_posix() for p in shards.rglob("*") if p.is_file())
    assert storage.list() == local
    tar = next(n for n in local if n.endswith(".tar"))
    data = (shards / tar).read_bytes()
    assert storage.stat(tar).size == len(data) and storage.stat("nothing") is None
    assert storage.read_range(tar, 1000, 600) == data[1000:1600]
    with pytest.raises(MissingFileError, match=r"s3://nishard-test/shards/nothing: no such"):
        storage.read_bytes("nothing")


def _last_sample(folder, shard) -> tuple[str, int]:
    """The key of the shard's last sample and a byte in its middle."""
    entry = next(s for s in read_manifest(folder)["shards"] if s["name"] == shard.name)
    return entry["keys"][-1], entry["offsets"][-1] + entry["sizes"][-1] // 2


@pytest.mark.parametrize("through", ["memory", "folder"])
def test_a_changed_object_is_refused_naming_it(shards, bucket, tmp_path, through):
    tar = sorted(p for p in shards.glob("train-*.tar"))[0]
    data, key = bytearray(tar.read_bytes()), _last_sample(shards, tar)
    data[key[1]] ^= 0xFF
    cache = tmp_path / "cache" if through == "folder" else None
    client = boto3.client("s3")
    client.put_object(Bucket="nishard-test", Key=f"shards/{tar.name}", Body=bytes(data))
    try:
        with pytest.raises(StorageError, match=rf"{bucket}/{tar.name} \[{key[0]}\]: fetched"):
            _keys_and_bold(bucket, cache=cache)
        # Longer than the manifest says (the same samples, a block more): refused too.
        longer = tar.read_bytes() + bytes(512)
        client.put_object(Bucket="nishard-test", Key=f"shards/{tar.name}", Body=longer)
        with pytest.raises(StorageError, match=rf"{bucket}/{tar.name}: (more than|fetched)"):
            _keys_and_bold(bucket, cache=cache)
    finally:
        client.put_object(Bucket="nishard-test", Key=f"shards/{tar.name}", Body=tar.read_bytes())


def test_verify_and_inspect_take_the_url(bucket, capsys):
    from nishard.cli import main

    assert main(["verify", bucket, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "problem" not in out and f"in {bucket}" in out
    assert main(["inspect", bucket]) == 0
    assert "train" in capsys.readouterr().out


def test_a_stream_from_s3_resumes_mid_epoch(bucket, tmp_path):
    def loader():
        return (stream.open(bucket, "train", cache=tmp_path / "cache").keys("bold")
                .shuffle(seed=6, buffer=4).batch(2).torch().loader(num_workers=2))  # fmt: skip

    expected = [b["__key__"] for b in loader()]
    first, head = loader(), []
    for batch in first:
        head.append(batch["__key__"])
        if len(head) == 2:
            break
    again = loader()
    again.load_state_dict(first.state_dict())
    assert head + [b["__key__"] for b in again] == expected
