"""Reading the learners' samples past the page cache (``O_DIRECT``).

The shards' samples (300 x 3,666 float32, 4.4 MB) are read directly once the threshold
is lowered to 1 MiB; every test checks the bytes against the page cache's read.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import shutil
import weakref

import numpy as np
import pytest

from nishard.archives.decoders import DecodeError
from nishard.learn import CanICA
from nishard.learn.source import Shards
from nishard.stream import direct

pytestmark = pytest.mark.skipif(not direct.available(), reason="no O_DIRECT on this platform")


@pytest.fixture
def counted(monkeypatch):
    """Arrays of 1 MiB or more read directly; the spans read so, counted."""
    monkeypatch.setattr(direct, "MIN_BYTES", 1 << 20)
    spans = []
    original = direct.read_middle

    def read_middle(fd, out, offset):
        span = original(fd, out, offset)
        if span is not None:
            spans.append(span)
        return span

    monkeypatch.setattr(direct, "read_middle", read_middle)
    return spans


def arrays(folder, **options) -> dict[str, np.ndarray]:
    return {identity: data for identity, data, _ in Shards(folder, **options).arrays()}


def empty(shape, dtype, offset) -> np.ndarray:
    return direct.at_phase(np.empty(direct.padded(shape, dtype), np.uint8), shape, dtype, offset)


def test_the_address_of_an_array_is_at_its_file_offsets_place_in_a_block():
    for offset in (0, 512 + 128, 3 * 4096 + 4000, 10**9 + 64):
        raw = np.empty(direct.padded((5, 300), np.float32), np.uint8)
        array = direct.at_phase(raw, (5, 300), np.float32, offset)
        assert array.base is raw
        assert array.ctypes.data % direct.ALIGN == offset % direct.ALIGN
        assert array.shape == (5, 300) and array.dtype == np.float32
        assert array.flags.c_contiguous and array.flags.writeable


def test_direct_reads_give_the_bytes_of_buffered_ones(networks, counted):
    buffered = arrays(networks.shards, direct=False)
    assert counted == []
    read = arrays(networks.shards, direct=True)
    assert len(counted) == len(buffered) == 12
    nbytes = next(iter(buffered.values())).nbytes
    # Nearly all of each array read directly: under a block at each end through the cache.
    assert all(stop - start > nbytes - 2 * direct.ALIGN for start, stop in counted)
    assert read.keys() == buffered.keys()
    for identity, data in buffered.items():
        assert read[identity].tobytes() == data.tobytes(), identity


def test_memory_read_into_directly_is_reused_once_let_go_of(networks, counted):
    buffered = arrays(networks.shards, direct=False)
    seen, reused = [], 0
    for identity, data, _ in Shards(networks.shards, direct=True).arrays():
        raw = data.base  # the block-padded memory the array is placed in
        assert raw.dtype == np.uint8 and raw.size == data.nbytes + direct.ALIGN
        reused += any(ref() is raw for ref in seen)
        seen.append(weakref.ref(raw))
        assert data.tobytes() == buffered[identity].tobytes()
        del data, raw
    assert len(counted) == 12 and reused >= 12 - 2


def test_arrays_under_the_threshold_are_never_read_directly(networks, counted, monkeypatch):
    monkeypatch.setattr(direct, "MIN_BYTES", 100 << 20)
    arrays(networks.shards, direct=True)
    assert counted == []


def test_more_data_than_available_memory_is_read_directly(networks, counted, monkeypatch):
    shards = Shards(networks.shards)
    assert not shards.reads_direct  # 53 MB: the cache keeps it for the next pass
    assert (
        0 < direct.available_memory() < 2 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    )
    monkeypatch.setattr(direct, "available_memory", lambda: shards.total_bytes - 1)
    assert shards.reads_direct


@pytest.mark.parametrize("meminfo", [b"MemTotal: 100 kB\n", b"MemAvailable: lots\n", b""])
def test_an_unreadable_meminfo_falls_back_to_the_free_pages(monkeypatch, meminfo):
    def fake_open(path, mode="r"):
        assert path == "/proc/meminfo"
        return io.BytesIO(meminfo)

    monkeypatch.setattr(direct, "open", fake_open, raising=False)
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert direct.available_memory() == pytest.approx(free, rel=0.2)


def test_canica_fits_the_same_maps_reading_directly(networks, counted, monkeypatch):
    def fit():
        model = CanICA(n_components=5, n_init=1, random_state=0, score=False)
        return model.fit(networks.shards).components_

    cached = fit()
    assert counted == []
    monkeypatch.setattr(direct, "available_memory", lambda: 0)
    past_the_cache = fit()
    assert len(counted) == 12
    np.testing.assert_array_equal(past_the_cache, cached)


def test_a_file_system_that_refuses_direct_reads_is_read_through_the_cache(
    networks, counted, monkeypatch
):
    opened = os.open

    def refusing(path, flags, *args):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return opened(path, flags, *args)

    buffered = arrays(networks.shards, direct=False)
    monkeypatch.setattr(os, "open", refusing)
    read = arrays(networks.shards, direct=True)
    assert counted == []
    for identity, data in buffered.items():
        assert read[identity].tobytes() == data.tobytes()


def test_direct_reads_refused_after_opening_fall_back_for_that_file(networks, counted, monkeypatch):
    # Some network file systems accept the O_DIRECT flag and refuse the reads.
    calls = []

    def refused(fd, out, offset):
        calls.append(fd)
        raise OSError(errno.EINVAL, "Invalid argument")

    buffered = arrays(networks.shards, direct=False)
    monkeypatch.setattr(direct, "read_middle", refused)
    read = arrays(networks.shards, direct=True)
    for identity, data in buffered.items():
        assert read[identity].tobytes() == data.tobytes()
    # Asked once per shard file (4 samples each), then never again for that file.
    assert len(calls) == 3


def test_a_truncated_shard_is_named(networks, counted, tmp_path):
    folder = tmp_path / "shards"
    shutil.copytree(networks.shards, folder)
    shards = Shards(folder)
    victim = shards.samples[1]
    path = folder / victim.shard
    os.truncate(path, path.stat().st_size - 3 * 1024 * 1024)  # into its last sample
    with pytest.raises(DecodeError, match="the file ends") as caught:
        arrays(folder, direct=True)
    assert victim.shard in str(caught.value)


@pytest.mark.parametrize("past_the_cache", [True, False])
def test_a_disk_error_names_the_shard_and_the_sample(
    networks, counted, monkeypatch, past_the_cache
):
    shards = Shards(networks.shards, direct=past_the_cache)
    first = shards.samples[0]
    failed = []

    def failing(fd, buffers, offset):  # the disk fails the first array's read
        failed.append(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "preadv", failing)
    with pytest.raises(DecodeError) as caught:
        next(iter(shards.arrays()))
    assert failed == [os.O_DIRECT if past_the_cache else 0]
    err = caught.value
    assert err.sample == first.key and err.expected.startswith(f"{first.shard}: {shards.key}'s ")
    assert str(err).endswith("found an I/O error (Input/output error)")
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.EIO


def test_a_direct_read_stops_where_the_file_ends(tmp_path):
    path = tmp_path / "short.bin"
    values = np.random.default_rng(0).integers(0, 255, 3 * direct.ALIGN + 100, np.uint8)
    path.write_bytes(values.tobytes())
    offset = 1000  # the array's bytes start inside the first block
    out = empty((6 * direct.ALIGN,), np.uint8, offset)
    fd = direct.open_file(path)
    if fd is None:
        pytest.skip("this file system refuses O_DIRECT")
    try:
        start, stop = direct.read_middle(fd, out, offset)
    finally:
        os.close(fd)
    assert (start, stop) == (direct.ALIGN - offset, 3 * direct.ALIGN + 100 - offset)
    np.testing.assert_array_equal(out[start:stop], values[offset + start : offset + stop])
