"""A disk that fails a read (``EIO``) mid-stream: the error names the shard and the bytes
it was reading, as a DecodeError whose cause is the system's OSError.

The learners' large arrays (read by ``fill``, through the cache and past it) are tested
in ``tests/learn/test_direct_read.py``; here the small samples of a stream, read ahead in
runs of a shard or located one by one.
"""

from __future__ import annotations

import errno
import json
import os

import pytest

import nishard as ns
from nishard.archives.decoders import DecodeError


def fail(monkeypatch, call: str) -> list[int]:
    """Make ``os.<call>`` fail with EIO from now on; the descriptors it was asked for."""
    asked = []

    def failing(fd, *args):
        asked.append(fd)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, call, failing)
    return asked


def train_tars(folder) -> set[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {
        s["name"]
        for s in manifest["shards"]
        if s["split"] == "train" and s["format"] == "webdataset"
    }


def check(caught, folder, what: str) -> None:
    err = caught.value
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.EIO
    assert "an I/O error (Input/output error)" in str(err)
    assert what in err.expected
    assert any(err.expected.startswith(f"{name}: ") for name in train_tars(folder)), err.expected


def test_a_failed_read_of_a_run_of_samples_names_the_shard(shards, monkeypatch):
    stream = ns.stream.open(shards, "train", format="webdataset").batch(4).arrays()
    fail(monkeypatch, "pread")
    with pytest.raises(DecodeError) as caught:
        next(iter(stream))
    check(caught, shards, "bytes at offset 0")


def test_a_failed_read_of_one_sample_names_the_shard(shards, monkeypatch):
    stream = ns.stream.open(shards, "train", format="webdataset").arrays()
    asked = fail(monkeypatch, "pread")
    with pytest.raises(DecodeError) as caught:
        next(iter(stream))
    assert asked  # the sample's header was asked of the disk, not found in memory
    check(caught, shards, "a sample at offset 0")
