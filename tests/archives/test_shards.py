"""The tar size model that byte limits rely on, checked against real tar files."""

import pytest

from nishard.archives import WebDataset, parse_bytes
from nishard.archives.shards import ShardSpec


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
