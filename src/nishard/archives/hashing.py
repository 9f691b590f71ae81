"""A shard file that computes its sha256 (and each sample's CRC-32C) while it is written.

Reading a finished shard back to hash it doubles the bytes a build moves, and hashing on
the writing thread serialises two jobs that can overlap: ``hashlib`` and ``FileIO.write``
both release the GIL on large buffers, so one thread hashes chunk ``i`` while the other
writes chunk ``i + 1``. Buffers go to the file as they are (array views, no copies); small
ones (headers, JSON) are gathered first, so that each system call and each hash update is
worth its overhead.

A second thread computes the CRC-32C of each byte range marked as a sample
(:meth:`HashingFile.begin` ... :meth:`HashingFile.end`): manifest v2 lists them, so that a
reader that fetches one sample by its offset (a range request) can check those bytes
without the rest of the shard.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import crc32c

from ..errors import raise_if_full

#: Buffers below this size are gathered before they are written and hashed.
SMALL = 1 << 16
#: Large buffers are written and hashed in chunks of this size...
CHUNK = 1 << 23
#: ...with at most this many chunks hashed behind the writing (bounds what stays referenced).
AHEAD = 4


class HashingFile:
    """A binary file opened for writing whose :attr:`sha256` is known when it is closed.

    Parameters
    ----------
    path : str or Path
        Created or truncated.

    Attributes
    ----------
    size : int
        Bytes written so far.
    sha256 : str or None
        Hex digest of the whole file, set by :meth:`close`.
    crc32c : tuple of int
        CRC-32C (unmasked, as ``crc32c.crc32c`` gives it) of each range marked by
        :meth:`begin` and :meth:`end`, in order; complete after :meth:`close`.
    """

    def __init__(self, path: str | Path):
        self._file = open(path, "wb", buffering=0)
        self._digest = hashlib.sha256()
        # sha256 and the ranges' CRC-32C on a thread each: both release the GIL, so the
        # CRC adds no time to the sha256's path, which is the longest.
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="nishard-sha256")
        self._crcer = ThreadPoolExecutor(1, thread_name_prefix="nishard-crc32c")
        self._behind: deque[tuple[Future, Future]] = deque()
        self._small = bytearray()
        self._put_at = 0  # bytes handed to the hashing thread so far
        # (position, is a start) marks not yet reached by the bytes handed over.
        self._marks: deque[tuple[int, bool]] = deque()
        self._crc: int | None = None  # the open range's CRC (CRC thread only)
        self._crcs: list[int] = []
        self.size = 0
        self.sha256: str | None = None

    @property
    def crc32c(self) -> tuple[int, ...]:
        return tuple(self._crcs)

    def begin(self) -> None:
        """Start a sample's range at the current size."""
        self._marks.append((self.size, True))

    def end(self) -> None:
        """End the sample's range at the current size."""
        self._marks.append((self.size, False))

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write a bytes-like object (C-contiguous); the number of bytes written."""
        view = memoryview(data).cast("B")
        n = view.nbytes
        if n < SMALL:
            self._small += view
            if len(self._small) >= CHUNK:
                self._flush_small()
        else:
            self._flush_small()
            for start in range(0, n, CHUNK):
                self._put(view[start : start + CHUNK])
        self.size += n
        return n

    def writelines(self, buffers: Iterable[bytes | bytearray | memoryview]) -> None:
        for buffer in buffers:
            self.write(buffer)

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        """Write what is gathered, wait for the hashing, close the file."""
        if self._file.closed:
            return
        try:
            self._flush_small()
            if self._marks:  # ranges ending at the very end of the file
                self._crcer.submit(self._crc_update, memoryview(b""), self._take(1)).result()
            while self._behind:
                self._wait_oldest()
            self.sha256 = self._digest.hexdigest()
        finally:
            self._hasher.shutdown(wait=True)
            self._crcer.shutdown(wait=True)
            self._file.close()

    def _flush_small(self) -> None:
        if self._small:
            gathered, self._small = bytes(self._small), bytearray()
            self._put(memoryview(gathered))

    def _take(self, n: int) -> list[tuple[int, bool]]:
        """The marks inside the next ``n`` bytes handed over, relative to their start."""
        start, taken = self._put_at, []
        while self._marks and self._marks[0][0] < start + n:
            position, opening = self._marks.popleft()
            taken.append((position - start, opening))
        self._put_at += n
        return taken

    def _crc_update(self, chunk: memoryview, marks: list[tuple[int, bool]]) -> None:
        """CRC the parts of a chunk inside marked ranges (the CRC thread)."""
        done = 0
        for at, opening in marks:
            if self._crc is not None:
                self._crc = crc32c.crc32c(chunk[done:at], value=self._crc)
            if opening:
                self._crc = 0
            elif self._crc is not None:
                self._crcs.append(self._crc)
                self._crc = None
            done = at
        if self._crc is not None and done < chunk.nbytes:
            self._crc = crc32c.crc32c(chunk[done:], value=self._crc)

    def _put(self, chunk: memoryview) -> None:
        # Each single-thread pool takes the chunks in order, so the digest is the file's
        # and the ranges' CRCs are theirs.
        marks = self._take(chunk.nbytes)
        self._behind.append((
            self._hasher.submit(self._digest.update, chunk),
            self._crcer.submit(self._crc_update, chunk, marks),
        ))  # fmt: skip
        written = 0
        try:
            while written < chunk.nbytes:  # a raw write may be partial
                written += self._file.write(chunk[written:])
        except OSError as error:
            raise_if_full(error, self._file.name, "the output folder")
            raise
        while len(self._behind) > AHEAD:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        for future in self._behind.popleft():
            future.result()


class HashedShard:
    """Base of the shard files written through a :class:`HashingFile`: their ``sha256``
    and each sample's ``crc32c`` come from it. Subclasses mark each sample's bytes with the
    file's ``begin()`` and ``end()``."""

    def __init__(self, path: str):
        self._file = HashingFile(path)

    @property
    def sha256(self) -> str | None:
        return self._file.sha256

    @property
    def crc32c(self) -> tuple[int, ...]:
        """CRC-32C of each sample's bytes, in the order they were added."""
        return self._file.crc32c

    def close(self) -> None:
        self._file.close()
