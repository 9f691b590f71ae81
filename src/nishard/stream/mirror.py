"""A remote shard folder's files, fetched whole as the stream needs them: into memory,
or into a local cache folder.

Streaming from a server is reading shards, not samples: each shard is fetched in one
sequential request, checked against the manifest (its size, and each sample's CRC-32C,
or the shard's sha256 where the manifest lists no CRCs: a byte changed in transit or on
the server is an error naming the shard and the sample, never training data), and only
then read. The shards the epoch reads next are fetched ahead by a few threads (a bounded
number of requests at once).

Two places to hold them:

- **Memory** (:meth:`ShardMirror.hold`; the stream's way when no cache folder is asked
  for and one process reads its shards: ``num_workers=0``, a JAX stream, each DDP rank).
  A shard is received into one of a few reused buffers and read from there by copies,
  so streaming costs the transfer and one copy into the batch, and no disk: writing
  each shard to a file and reading it back took a third more of the client's CPU
  (``benchmarks/remote.py``: 0.70 against 0.53 s at 1 GB). The buffers are the shards
  in flight, the one being read and the one read last, then reused.
- **A cache folder** (:meth:`ShardMirror.fetch`; with ``cache=`` or ``cache_limit=``,
  for DataLoader workers, for random access and HDF5/Zarr shards). What LitData and
  Mosaic streaming do: later epochs read the local copy, and with a size limit the least
  recently used shards are removed as new ones arrive. The folder is shared by the
  processes that read it (DataLoader workers, ranks on one node): a shard is written
  under a temporary name and renamed when checked, so a process finds a shard complete
  or not at all.

A fetch whose connection fails or drops (a server restarting, a network blip: a
:class:`~nishard.errors.StorageUnavailableError`) is tried again from its first byte,
:data:`TRIES` times in all with a doubling wait between tries (about half a minute in
all), then fails naming the shard's URL. A partly fetched file is never read: only a
whole, checked file gets the shard's name. A missing object, refused credentials or
changed bytes are not tried again.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import count
from pathlib import Path

import crc32c
import numpy as np

from ..archives.storage import Stat, Storage
from ..archives.verify import sample_ranges
from ..errors import MissingFileError, StorageError, StorageUnavailableError

log = logging.getLogger(__name__)

#: Shards fetched at once, ahead of the reader: 2 measured best on a 2-core machine
#: sharing its cores with the server (benchmarks/remote.py: 4 contend with the reader).
REQUESTS = 2

#: Bytes per read of a fetch (the request itself is one sequential stream).
CHUNK = 1 << 22

#: Tries of a fetch whose connection failed or dropped, and the wait after the first
#: failure in seconds, doubled after each (up to :data:`LONGEST_WAIT`): 1 + 2 + 4 + 8 +
#: 10 s of waiting, with botocore's own quick retries of each request besides: enough for
#: a server to restart, bounded to about half a minute.
TRIES = 6
FIRST_WAIT = 1.0
LONGEST_WAIT = 10.0


def default_cache(url: str) -> Path:
    """``$NISHARD_CACHE`` (or ``~/.cache/nishard``) ``/shards/<hash of the URL>``."""
    root = os.environ.get("NISHARD_CACHE") or Path.home() / ".cache" / "nishard"
    return Path(root) / "shards" / hashlib.sha256(url.encode()).hexdigest()[:16]


class Held:
    """A shard received into memory, held by its readers until they :meth:`release` it.

    Read by copies only (:meth:`pread`, :meth:`readinto`): no view of the buffer
    leaves it, so a released buffer can take the next shard.
    """

    __slots__ = ("_mirror", "buffer", "name", "refs", "size", "used")

    def __init__(self, name: str, buffer: np.ndarray, size: int, mirror: ShardMirror):
        self.name, self.buffer, self.size, self._mirror = name, buffer, size, mirror
        self.refs, self.used = 0, -1  # used: -1 until first held (never given up unread)

    def pread(self, n: int, offset: int) -> bytes:
        """Up to ``n`` bytes from ``offset`` (fewer at the end), as ``os.pread``."""
        return self.buffer[offset : min(offset + n, self.size)].tobytes()

    def readinto(self, out: np.ndarray, offset: int) -> int:
        """Copy bytes from ``offset`` into ``out`` (uint8); how many (fewer at the end)."""
        n = max(0, min(out.size, self.size - offset))
        out[:n] = self.buffer[offset : offset + n]
        return n

    def release(self) -> None:
        self._mirror._release(self)


class ShardMirror:
    """A remote storage's files, read through memory or a local cache folder.

    Parameters
    ----------
    remote : Storage
        Where the files are (an :class:`~nishard.archives.storage.HttpStorage`).
    folder : Path
        The cache folder.
    expected : dict
        File name to its manifest entry (``bytes``, ``sha256``, and for tar and TFRecord
        shards ``keys``, ``offsets``, ``sizes``, ``crc32c``); a fetched file that differs
        is refused. Files it does not name (statistics side files) are not checked.
    limit : int, optional
        Bytes the cache may hold; past it, the least recently used files go (a shard
        open in a reader stays readable: its descriptor outlives the file's name).
    requests : int
        Files fetched at once.
    memory : bool
        Whether a process reading alone may hold the shards in memory
        (:meth:`hold`) rather than in ``folder``: True when no cache was asked for.
    """

    def __init__(self, remote: Storage, folder: Path, expected: dict[str, dict],
                 limit: int | None = None, requests: int = REQUESTS,
                 memory: bool = False):  # fmt: skip
        self.remote, self.folder, self.expected = remote, Path(folder), dict(expected)
        self.limit, self.requests, self.memory = limit, requests, memory
        self._largest = max((int(e.get("bytes", 0)) for e in self.expected.values()), default=0)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()  # set: fetches waiting to try again give up
        # Memory: shards received (by name), shards being received, free buffers.
        self._held: dict[str, Held] = {}
        self._receiving: dict[str, Future] = {}
        self._spare: list[np.ndarray] = []
        self._clock = count()

    def __getstate__(self) -> dict:  # DataLoader workers get a copy without threads
        state = dict(self.__dict__)
        state.update(_pool=None, _pending={}, _lock=None, _closing=None, _held={},
                     _receiving={}, _spare=[], _clock=None)  # fmt: skip
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._clock = count()

    # The Storage methods the stream uses: names, small files, the local path.

    @property
    def url(self) -> str:
        return self.remote.url

    def join(self, name: str) -> str:
        return self.remote.join(name)

    def read_bytes(self, name: str) -> bytes:
        return self.remote.read_bytes(name)

    def stat(self, name: str) -> Stat | None:
        return self.remote.stat(name)

    def path(self, name: str) -> Path:
        """Where the file ``name`` is (or will be) in the cache."""
        return self.folder / name

    # Fetching.

    def fetch(self, name: str) -> Path:
        """The local copy of ``name``, fetched (and checked) first if not there yet.

        Raises
        ------
        StorageError
            When the server fails or the fetched bytes are not the manifest's.
        """
        local = self.path(name)
        if local.is_file():
            os.utime(local)  # most recently used
            return local
        with self._lock:
            future = self._pending.get(name)
        if future is not None:
            future.result()
            return local
        self._fetch(name)
        return local

    def prefetch(self, names: list[str], memory: bool = False) -> None:
        """Start fetching ``names`` (in order) in the background, ``requests`` at once:
        into memory (for :meth:`hold`) or into the cache folder (for :meth:`fetch`)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.requests, thread_name_prefix="nishard-fetch")
            for name in names:
                if memory:
                    if name not in self._held and name not in self._receiving:
                        self._receiving[name] = self._pool.submit(self._receive, name)
                elif name not in self._pending and not self.path(name).is_file():
                    self._pending[name] = self._pool.submit(self._fetch, name)

    def close(self) -> None:
        """Stop fetching ahead: fetches not started are cancelled, those waiting to try
        again give up, and those under way end first. Shards in memory no reader holds
        are let go; their buffers are kept for the next epoch."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._pending.clear()
        if pool is not None:
            self._closing.set()
            pool.shutdown(wait=True, cancel_futures=True)
            self._closing.clear()
        with self._lock:
            self._receiving.clear()
            for name, held in list(self._held.items()):
                if held.refs == 0:
                    del self._held[name]
                    self._spare.append(held.buffer)
            del self._spare[self.requests + 2 :]

    # Memory.

    def hold(self, name: str) -> Held:
        """Shard ``name`` in memory, received (and checked) first if need be; the caller
        calls :meth:`Held.release` when done with it.

        Raises
        ------
        StorageError
            When the server fails or the received bytes are not the manifest's.
        """
        while True:
            with self._lock:
                held = self._held.get(name)
                if held is not None:
                    held.refs += 1
                    held.used = next(self._clock)
                    return held
                future = self._receiving.get(name)
            if future is None:
                self.prefetch([name], memory=True)
            else:
                future.result()  # a failed fetch raises here

    def _release(self, held: Held) -> None:
        with self._lock:
            held.refs -= 1

    def _receive(self, name: str) -> Held:
        entry = self.expected.get(name)
        if not entry:
            raise StorageError(f"{self.join(name)}: not a shard of the manifest")
        size = int(entry["bytes"])
        buffer = self._buffer(size)
        received = [0]  # bytes in the buffer so far: a try goes on from the last one's end
        try:
            self._retrying(name, lambda: self._download_into(name, entry, buffer, received))
        except BaseException:
            with self._lock:
                self._spare.append(buffer)
                self._receiving.pop(name, None)
            raise
        held = Held(name, buffer, size, self)
        with self._lock:
            self._held[name] = held
            self._receiving.pop(name, None)
        return held

    def _buffer(self, size: int) -> np.ndarray:
        """A buffer of at least ``size`` bytes: a spare one, one whose shard has been read
        and is not held (the least recently used first; the last one is kept), or
        a new one the size of the largest shard (so that it fits any other later), and a
        byte more: room to see an object longer than the manifest says."""
        with self._lock:
            for i, spare in enumerate(self._spare):
                if spare.size > size:
                    return self._spare.pop(i)
            done = sorted((h for h in self._held.values() if h.refs == 0 and h.used >= 0),
                          key=lambda h: h.used)  # fmt: skip
            # Keep the last one read: a shuffle buffer's window may go back to it.
            for held in done[:-1]:
                if held.buffer.size > size:
                    del self._held[held.name]
                    return held.buffer
        # np.empty: numpy asks the kernel for huge pages, which halves the cost of
        # touching a new buffer's memory the first time.
        return np.empty(max(size, self._largest) + 1, np.uint8)

    def _download_into(
        self, name: str, entry: dict, buffer: np.ndarray, received: list[int]
    ) -> None:
        """Receive ``name`` into ``buffer`` and check it; the first ``received[0]`` bytes
        are there already (a range request for the rest)."""
        ranges = sample_ranges(entry)
        digest = hashlib.sha256() if ranges is None else None
        want, size = int(entry["bytes"]), received[0]
        view = memoryview(buffer)
        if digest is not None:
            digest.update(view[:size])
        with self.remote.open(name, size) as source:
            # One byte of room past the manifest's size: a longer object is seen.
            while got := source.readinto(view[size : min(size + CHUNK, want + 1)]):
                if digest is not None:
                    digest.update(view[size : size + got])
                size += got
                received[0] = size
                if size > want:
                    raise StorageError(
                        f"{self.join(name)}: more than the manifest's {want} bytes: the "
                        "shard changed on the server; not read"
                    )
        self._check(name, entry, size, digest, ranges, view[:size])

    def _fetch(self, name: str) -> None:
        local = self.path(name)
        local.parent.mkdir(parents=True, exist_ok=True)
        temporary = local.with_name(f".{local.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            self._retrying(name, lambda: self._download(name, temporary))
            os.replace(temporary, local)
        finally:
            temporary.unlink(missing_ok=True)
            with self._lock:
                self._pending.pop(name, None)
        self._evict(keep=local)

    def _retrying(self, name: str, download: Callable[[], None]) -> None:
        """``download()`` of ``name``, tried again while the store is unavailable
        (:data:`TRIES` times in all, waiting longer each time)."""
        began = time.monotonic()
        for attempt in range(1, TRIES + 1):
            try:
                download()
                return
            except StorageUnavailableError as err:
                if attempt == TRIES:
                    raise StorageUnavailableError(
                        f"{self.join(name)}: not fetched after {TRIES} tries in "
                        f"{time.monotonic() - began:.0f} s; the last failed: {err}"
                    ) from err
                # Jittered: the workers of a loader that lost the server at once do not
                # all come back at once.
                wait = min(FIRST_WAIT * 2 ** (attempt - 1), LONGEST_WAIT)
                wait *= random.uniform(0.75, 1.0)
                log.warning("%s; trying again in %.1f s (try %d of %d)", err, wait,
                            attempt + 1, TRIES)  # fmt: skip
                if self._closing.wait(wait):
                    raise StorageError(f"{self.join(name)}: fetch given up, the stream "
                                       f"closed; the last try failed: {err}") from err  # fmt: skip

    def _download(self, name: str, temporary: Path) -> None:
        """Fetch ``name`` into ``temporary`` and check it against the manifest. What a
        failed try left there is kept, and the fetch goes on from its end (a range
        request): the check covers the whole file all the same."""
        entry = self.expected.get(name, {})
        ranges = sample_ranges(entry) if entry else None
        # The sha256 only where no per-sample CRC-32C is listed: hashing costs a core
        # about as long as the transfer; the CRCs, hardware-computed, a tenth of it.
        digest = hashlib.sha256() if entry and ranges is None else None
        size = temporary.stat().st_size if entry and temporary.exists() else 0
        if size >= int(entry.get("bytes", 0)):
            size = 0  # (nothing to go on from, or more than the shard: start over)
        if digest is not None and size:
            with open(temporary, "rb") as kept:
                while chunk := kept.read(CHUNK):
                    digest.update(chunk)
        with (
            self.remote.open(name, size) as source,
            open(temporary, "r+b" if size else "wb") as out,
        ):
            out.seek(size)
            out.truncate()
            while chunk := source.read(CHUNK):
                if digest is not None:
                    digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if digest is not None or not ranges or size != int(entry.get("bytes", -1)):
            self._check(name, entry, size, digest, ranges, None)
            return
        with (
            open(temporary, "rb") as file,
            mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        ):
            view = memoryview(mm)
            try:
                self._check(name, entry, size, digest, ranges, view)
            finally:
                view.release()

    def _check(self, name, entry, size, digest, ranges, data: memoryview | None) -> None:
        """Size, then the sha256 (``digest``) or each sample's CRC-32C over ``data``."""
        if not entry:
            return
        changed = "the shard changed on the server or in transit; not read"
        if size != int(entry["bytes"]):
            raise StorageError(
                f"{self.join(name)}: fetched {size} bytes, the manifest lists "
                f"{entry['bytes']}: {changed}"
            )
        if digest is not None:
            want = str(entry.get("sha256", "")).removeprefix("sha256:")
            if digest.hexdigest() != want:
                raise StorageError(
                    f"{self.join(name)}: fetched sha256 {digest.hexdigest()[:16]}..., the "
                    f"manifest lists {want[:16]}...: {changed}"
                )
            return
        if not ranges or size == 0 or data is None:
            return
        for key, start, stop, want_crc in ranges:
            found = crc32c.crc32c(data[start:stop])
            if found != want_crc:
                raise StorageError(
                    f"{self.join(name)} [{key}]: fetched CRC-32C {found:08x}, the "
                    f"manifest lists {want_crc:08x}: {changed}"
                )

    def _evict(self, keep: Path) -> None:
        if self.limit is None:
            return
        with self._lock:  # one eviction at a time in this process
            files = [p for p in self.folder.rglob("*")
                     if p.is_file() and not p.name.startswith(".")]  # fmt: skip
            files.sort(key=lambda p: p.stat().st_mtime)
            # The newest are the shards being read or about to be: never theirs.
            recent = set(files[-(self.requests + 1) :]) | {keep}
            total = sum(p.stat().st_size for p in files)
            for path in files:
                if total <= self.limit:
                    break
                if path in recent:
                    continue
                size = path.stat().st_size
                path.unlink(missing_ok=True)  # a reader holding it open still reads it
                total -= size

    def open_fd(self, name: str) -> int:
        """A descriptor of the local copy of ``name``, fetched first if need be; fetched
        again should another process's eviction remove it between the two."""
        for _ in range(3):
            try:
                return os.open(self.fetch(name), os.O_RDONLY | getattr(os, "O_BINARY", 0))
            except MissingFileError:  # also a FileNotFoundError: the object is not there
                raise
            except FileNotFoundError:
                continue
        raise StorageError(f"{self.join(name)}: evicted from the cache as soon as fetched; "
                           "raise cache_limit above a few shards")  # fmt: skip


def local_path(storage, name: str) -> Path:
    """The local path of a shard folder's file: fetched first from a mirrored remote."""
    if isinstance(storage, ShardMirror):
        return storage.fetch(name)
    return storage.path(name)
