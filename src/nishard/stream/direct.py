"""Large arrays read past the page cache (``O_DIRECT``), for passes over more than memory.

A buffered read goes through the page cache: the device fills the cache, the kernel
copies it into the caller's array, and later reclaims those pages to make room for the
next ones. When the data are larger than memory nothing of it stays cached for a second
pass anyway, and that copy and reclaim are CPU time taken from the work that reads them
(the learners' reductions, on a machine of few cores). A direct read lets the device fill
the caller's array itself; ``benchmarks/direct_read.py`` measures what CanICA's pass gains.

A direct read needs its file offset and its memory address aligned to the device's
block; a sample's array starts anywhere in its shard (after a tar header and a ``.npy``
header). So the array is placed with its address at the same position within a block
as its file offset (:func:`at_phase`); the aligned middle is read directly, the few bytes
before the first block boundary and after the last through the ordinary descriptor.
Where the file system refuses ``O_DIRECT`` (older tmpfs, some FUSE and network file
systems), the read falls back to the page cache, and the reader stops asking for that
file.
"""

from __future__ import annotations

import errno
import math
import os

import numpy as np

#: Alignment of file offsets, lengths and addresses: a page, a multiple of every common
#: logical block size (512 or 4096 bytes).
ALIGN = 4096

#: Arrays read directly: at least this many bytes (smaller ones gain nothing and would
#: cost a block of their neighbours' bytes each).
MIN_BYTES = 16 << 20


def available() -> bool:
    """Whether this platform has ``O_DIRECT`` (Linux does; macOS and Windows do not)."""
    return hasattr(os, "O_DIRECT")


def available_memory() -> int:
    """Bytes of memory available without swapping (Linux's ``MemAvailable``: free memory
    and the page cache it may reclaim); the free pages elsewhere."""
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # no such file, or a line not "name: kB"
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def beyond_memory(nbytes: int) -> bool:
    """Whether a pass over ``nbytes`` is better read past the page cache: more than the
    memory available, so that the cache could not keep it for the next pass anyway."""
    return available() and nbytes > available_memory()


def padded(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes of raw memory that hold an array of ``shape`` at any phase in a block."""
    return math.prod(shape) * np.dtype(dtype).itemsize + ALIGN


def at_phase(raw: np.ndarray, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> np.ndarray:
    """An uninitialised C-ordered array of ``shape`` in ``raw`` (uint8 of :func:`padded`
    bytes, fresh or reused from a pool) whose address is ``offset`` modulo :data:`ALIGN`:
    the file's blocks then fall on the array's pages, so they can be read straight in. A
    view, which keeps ``raw`` referenced while it lives."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    start = (offset - raw.ctypes.data) % ALIGN
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def open_file(path: str | os.PathLike) -> int | None:
    """A descriptor of ``path`` opened for direct reads, or None where that is refused."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as err:
        if err.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return None
        raise


def read_middle(fd: int, out: np.ndarray, offset: int) -> tuple[int, int] | None:
    """Read the block-aligned middle of ``out`` (uint8, file bytes from ``offset``) from
    the direct descriptor ``fd``.

    Returns
    -------
    (start, stop) or None
        The span of ``out`` that was read; the caller reads the rest (under a block at
        each end, or from where the file ended). None when ``out`` is not at the file's
        phase or spans no whole block.

    Raises
    ------
    OSError
        ``EINVAL`` where the file system opened the file for direct reads but refuses
        them: the caller reads through the page cache instead.
    """
    if (out.ctypes.data - offset) % ALIGN:
        return None
    start = -offset % ALIGN
    stop = (offset + out.size) // ALIGN * ALIGN - offset
    if stop - start < ALIGN:
        return None
    done = start
    while done < stop:
        got = os.preadv(fd, [out[done:stop]], offset + done)
        done += max(got, 0)
        if got <= 0 or got % ALIGN:  # the file ends, short of the manifest's bytes
            break
    return start, done
