"""A shard file that computes its sha256 while it is written, on the second core.

Reading a finished shard back to hash it doubles the bytes a build moves, and hashing on
the writing thread serialises two jobs that can overlap: ``hashlib`` and ``FileIO.write``
both release the GIL on large buffers, so one thread hashes chunk ``i`` while the other
writes chunk ``i + 1``. Buffers go to the file as they are (array views, no copies); small
ones (headers, JSON) are gathered first, so that each system call and each hash update is
worth its overhead.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

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
    """

    def __init__(self, path: str | Path):
        self._file = open(path, "wb", buffering=0)
        self._digest = hashlib.sha256()
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="nishard-sha256")
        self._behind: deque[Future] = deque()
        self._small = bytearray()
        self.size = 0
        self.sha256: str | None = None

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
            while self._behind:
                self._behind.popleft().result()
            self.sha256 = self._digest.hexdigest()
        finally:
            self._hasher.shutdown(wait=True)
            self._file.close()

    def _flush_small(self) -> None:
        if self._small:
            gathered, self._small = bytes(self._small), bytearray()
            self._put(memoryview(gathered))

    def _put(self, chunk: memoryview) -> None:
        # The single hashing thread takes the chunks in order, so the digest is the file's.
        self._behind.append(self._hasher.submit(self._digest.update, chunk))
        written = 0
        while written < chunk.nbytes:  # a raw write may be partial
            written += self._file.write(chunk[written:])
        while len(self._behind) > AHEAD:
            self._behind.popleft().result()
