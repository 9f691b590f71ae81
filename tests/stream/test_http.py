"""Streaming from an HTTP server (issue [4/6], item 2): the real urllib client against
Python's real file server; shards fetched whole into a cache, checked against the
manifest, the same batches as from the local folder."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from nishard import stream
from nishard.archives.manifest import read_manifest
from nishard.archives.storage import HttpStorage
from nishard.errors import MissingFileError, StorageError

pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


class _Ranged(_Quiet):
    """Python's file server with ``Range: bytes=a-b`` (or ``a-``) answered by 206, as
    web servers and object stores answer it; it counts the ranges it served."""

    served: ClassVar[list[str]] = []

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, last = int(match.group(1)), int(match.group(2) or size - 1)
        last = min(last, size - 1)
        handle = open(path, "rb")
        handle.seek(first)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        self.served.append(f"{path.name}:{first}-{last}")
        return _Limited(handle, last - first + 1)


class _Limited:
    """A file read no further than ``length`` bytes (what copyfile sends of a range)."""

    def __init__(self, handle, length: int):
        self.handle, self.left = handle, length

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.handle.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()


@pytest.fixture
def serve():
    """``serve(folder, ranges=False)``: its URL on a real HTTP server (stopped after the
    test); with ranges, one that answers range requests (Python's own ignores them)."""
    servers = []

    def start(folder: Path, ranges: bool = False) -> str:
        handler = functools.partial(_Ranged if ranges else _Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/shards"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _flip_a_sample_byte(folder: Path, shard: Path) -> str:
    """Change one byte in the middle of the shard's last sample; that sample's key."""
    entry = next(s for s in read_manifest(folder)["shards"] if s["name"] == shard.name)
    start, size = entry["offsets"][-1], entry["sizes"][-1]
    data = bytearray(shard.read_bytes())
    data[start + size // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    return entry["keys"][-1]


@pytest.fixture
def site(shards, tmp_path):
    """A copy of the shard folder under ``site/shards`` that a test may break."""
    shutil.copytree(shards, tmp_path / "site" / "shards")
    return tmp_path / "site"


def _batches(source, workers=0, **options) -> list[dict]:
    dataset = (stream.open(source, "train", **options).keys("bold").shuffle(seed=2, buffer=4)
               .batch(3).normalize().torch())  # fmt: skip
    return list(dataset.loader(num_workers=workers))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_url_streams_the_same_batches_as_the_folder(shards, site, serve, tmp_path, workers):
    url = serve(site)
    cache = tmp_path / "cache"
    remote = _batches(url, workers, cache=cache)
    local = _batches(shards, workers)
    assert [b["__key__"] for b in remote] == [b["__key__"] for b in local]
    for got, want in zip(remote, local, strict=True):
        assert torch.equal(got["bold"], want["bold"])
    fetched = sorted(p.name for p in cache.iterdir())
    assert "train.stats.npz" in fetched and any(n.startswith("train-") for n in fetched)
    assert not [n for n in fetched if n.startswith(".")]  # no partial download left


def test_a_shard_changed_on_the_server_is_refused_naming_it(site, serve, tmp_path):
    url = serve(site)
    shard = sorted((site / "shards").glob("train-*.tar"))[0]
    key = _flip_a_sample_byte(site / "shards", shard)
    with pytest.raises(StorageError, match=rf"{shard.name} \[{key}\]: fetched CRC-32C .* changed"):
        _batches(url, cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / shard.name).exists()  # never kept, never read


def test_a_cache_limit_keeps_the_cache_small_and_the_batches_right(shards, site, serve, tmp_path):
    url = serve(site)
    from nishard.stream.mirror import REQUESTS

    sizes = [p.stat().st_size for p in (site / "shards").glob("train-*.tar")]
    limit = max(sizes)
    cache = tmp_path / "cache"
    remote = _batches(url, cache=cache, cache_limit=limit)
    assert [b["__key__"] for b in remote] == [b["__key__"] for b in _batches(shards)]
    # Past the limit only the newest few stay (those being read or fetched ahead).
    kept = [p for p in cache.iterdir() if p.name.startswith("train-")]
    assert len(kept) <= REQUESTS + 1 < len(sizes), (len(kept), len(sizes))


def test_missing_and_unreachable_servers_are_named(site, serve, tmp_path):
    url = serve(site)
    with pytest.raises(MissingFileError, match=r"/nothing-here/manifest.json: no such file"):
        stream.open(url.replace("/shards", "/nothing-here")).torch()
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:9/shards.*cannot reach the server"):
        stream.open("http://127.0.0.1:9/shards").torch()
    with pytest.raises(StorageError, match="object storage"):
        stream.open("gs://bucket/shards")  # a store not supported yet
    # The manifest alone tells the length: no shard is fetched for it.
    assert len(stream.open(url, cache=tmp_path / "c").torch()) == len(
        stream.open(site / "shards").torch()
    )
    assert not (tmp_path / "c").exists()


def test_verify_reads_a_url_and_finds_a_changed_shard(site, serve, capsys):
    from nishard.cli import main

    url = serve(site)
    assert main(["verify", url, "--no-progress"]) == 0
    shard = sorted((site / "shards").glob("train-*.tar"))[0]
    _flip_a_sample_byte(site / "shards", shard)
    assert main(["verify", url, "--no-progress"]) != 0
    assert f"{shard.name}" in capsys.readouterr().out


@pytest.mark.parametrize("ranges", [True, False])
def test_a_fetch_goes_on_from_a_byte_with_or_without_range_support(site, serve, ranges):
    url = serve(site, ranges=ranges)
    storage = HttpStorage(url)
    name = read_manifest(site / "shards")["shards"][0]["name"]
    data = (site / "shards" / name).read_bytes()
    _Ranged.served.clear()
    for start in (0, 1, len(data) // 2, len(data) - 1):
        with storage.open(name, start) as body:
            assert body.read() == data[start:]
    assert storage.read_range(name, 10, 20) == data[10:30]
    # With support, the server sent the ranges asked for, not the whole file each time.
    want = [f"{name}:{s}-{len(data) - 1}" for s in (1, len(data) // 2, len(data) - 1)]
    assert _Ranged.served == ([*want, f"{name}:10-29"] if ranges else [])
