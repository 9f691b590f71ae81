"""The header of a ``.npy`` member, parsed once per distinct header.

``np.load`` parses the header's Python literal on every call (``ast.literal_eval``, tens
of microseconds); samples of one key share the same header bytes, so a cache keyed by
those bytes parses each once. The array's bytes then go straight to their destination.
"""

from __future__ import annotations

import ast
import math
import struct
from dataclasses import dataclass

import numpy as np

from ..archives.encode import restore_dtype

MAGIC = b"\x93NUMPY"

#: Bytes of a ``.npy`` member to read first: nishard's headers are 128 bytes (numpy pads
#: them to a multiple of 64); longer ones cost a second read.
PREFIX = 256

_CACHE: dict[bytes, tuple[np.dtype, tuple[int, ...], bool]] = {}
_CACHE_SIZE = 1024


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header says: the array's dtype, shape and memory order, and the
    header's length (where the array's bytes begin)."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool
    length: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def header_length(prefix: bytes | memoryview) -> int:
    """Total header length from the first 12 bytes of a ``.npy`` file.

    Raises
    ------
    ValueError
        When the bytes do not begin a ``.npy`` file.
    """
    if len(prefix) < 10 or bytes(prefix[:6]) != MAGIC:
        raise ValueError(f"a .npy magic string, found {bytes(prefix[:8])!r}")
    major = prefix[6]
    if major == 1:
        return 10 + struct.unpack_from("<H", prefix, 8)[0]
    if major in (2, 3) and len(prefix) >= 12:
        return 12 + struct.unpack_from("<I", prefix, 8)[0]
    raise ValueError(f"a .npy format version 1-3, found {major}")


def header_at(buffer: bytes, pos: int) -> NpyHeader:
    """The header of the ``.npy`` file at ``pos`` of ``buffer`` (which holds it whole).

    Raises
    ------
    ValueError
        As :func:`parse_header`, or when the buffer ends within the header.
    """
    if buffer[pos : pos + 6] != MAGIC:
        raise ValueError(f"a .npy magic string, found {bytes(buffer[pos : pos + 8])!r}")
    if buffer[pos + 6] == 1:
        start, length = 10, 10 + struct.unpack_from("<H", buffer, pos + 8)[0]
    else:
        start, length = 12, header_length(buffer[pos : pos + 12])
    if pos + length > len(buffer):
        raise ValueError(f"a .npy header of {length} bytes; the member ends first")
    text = buffer[pos + start : pos + length]
    cached = _CACHE.get(text)
    if cached is None:
        return parse_header(buffer[pos : pos + length])
    return NpyHeader(*cached, length)


def parse_header(header: bytes | memoryview) -> NpyHeader:
    """Parse a complete ``.npy`` header (magic to newline).

    bfloat16 and other ``ml_dtypes`` types, which nishard stores as a one-field structured
    dtype of their bits, come back as the ``ml_dtypes`` dtype (see
    :mod:`nishard.archives.encode`).

    Raises
    ------
    ValueError
        For a damaged header, or one that describes Python objects.
    """
    length = header_length(header)
    if len(header) < length:
        raise ValueError(f"a .npy header of {length} bytes, found {len(header)}")
    text = bytes(header[12 if header[6] > 1 else 10 : length])
    cached = _CACHE.get(text)
    if cached is None:
        cached = _parse_dict(text)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[text] = cached
    dtype, shape, fortran = cached
    return NpyHeader(dtype, shape, fortran, length)


def _parse_dict(text: bytes) -> tuple[np.dtype, tuple[int, ...], bool]:
    try:
        found = ast.literal_eval(text.decode("latin1"))
        dtype = np.lib.format.descr_to_dtype(found["descr"])
        shape = tuple(int(n) for n in found["shape"])
        fortran = bool(found["fortran_order"])
    except (ValueError, SyntaxError, KeyError, TypeError) as err:
        raise ValueError(f"a .npy header dictionary, found {text[:80]!r}: {err}") from None
    if dtype.hasobject:
        raise ValueError("a .npy array of numbers, found Python objects")
    # The ml_dtypes type of a stored bfloat16 array (an empty array shows it for free).
    return restore_dtype(np.empty(0, dtype)).dtype, shape, fortran
