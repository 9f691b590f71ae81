"""Where the arrays of a TFRecord sample lie in its file, found without reading them.

A record is a ``uint64`` length, the masked CRC-32C of that length, a serialized
``tf.train.Example`` and the masked CRC-32C of the Example (see
:mod:`nishard.archives.tfrecord`). For a large sample, :func:`record_length` checks the
length's CRC and :func:`example_at` walks the Example's protobuf framing through a window
of the file: tags, lengths and the small values (key, JSON, shapes, dtypes) are read, the
bytes of each large value are skipped and only their place is noted (a :class:`Span`).
The reader then reads those bytes straight into the caller's array with one ``preadv``:
no copy of the record in memory first.

The data CRC would take a second pass over every byte; like the tar reader, this one
trusts the manifest's sha256 for the bytes (``nishard verify`` checks them and both CRCs)
and checks everything it parses: the length CRC, the protobuf framing, and that each
array's byte count matches its shape and dtype.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

from ..archives.tfrecord import JSON, KEY, masked_crc32c

#: ``read(offset, n)``: ``n`` bytes of the file at ``offset``.
Read = Callable[[int, int], memoryview]

#: ``held(offset, n)``: whether those bytes are in memory already, so reading them is free.
Held = Callable[[int, int], bool]

#: Bytes before the Example (its length and the length's CRC) and after it (its CRC).
HEADER, FOOTER = 12, 4


@dataclass(frozen=True)
class Span:
    """A bytes value left in the file: ``size`` bytes at ``offset``."""

    offset: int
    size: int


#: A bytes value: in memory, or where it lies in the file.
Value = memoryview | Span


@dataclass
class Example:
    """What a record holds: its key, its JSON metadata (bytes) and its arrays as
    ``(dtype, shape, value)``."""

    key: str
    json: bytes | None = None
    arrays: dict[str, tuple[np.dtype, tuple[int, ...], Value]] = field(default_factory=dict)


def record_length(head: bytes | memoryview, start: int, end: int) -> int:
    """The length of the Example in the record at ``start``, its CRC checked.

    Parameters
    ----------
    head : bytes
        The record's first 12 bytes (fewer when the file ends).
    start, end : int
        The sample's span in the file: the record must fit in it.

    Raises
    ------
    ValueError
        When the header is short, its CRC is wrong, or the record overruns the span.
    """
    if len(head) < HEADER:
        raise ValueError(f"a {HEADER}-byte TFRecord header; the file ends")
    length, crc = struct.unpack_from("<QI", head)
    if masked_crc32c(bytes(head[:8])) != crc:
        raise ValueError(f"a length CRC-32C of {crc:#010x}: the record's length is damaged")
    if start + HEADER + length + FOOTER > end:
        raise ValueError(f"a record of {length} bytes within the sample's {end - start}")
    return length


def example_at(read: Read, held: Held, start: int, end: int, want: frozenset | None) -> Example:
    """The Example between file offsets ``start`` and ``end``.

    Parameters
    ----------
    read, held : callable
        Bytes of the file, and whether a range is in memory already. A bytes value that
        is not is left where it is, as a :class:`Span`, unless it is small metadata (key,
        JSON, dtype) that must be parsed.
    want : frozenset of str, or None
        The arrays to describe (None: all).

    Raises
    ------
    ValueError
        When the bytes are not an Example as :mod:`nishard.archives.tfrecord` writes it.
    """
    features = _features(read, held, start, end)
    key = _text(read, features, KEY)
    if key is None:
        raise ValueError(f"a {KEY} bytes feature")
    example = Example(key)
    if JSON in features:
        example.json = _bytes(read, _one(features, JSON))
    for name in features:
        if want is not None and name not in want:
            continue
        if f"{name}/shape" in features and f"{name}/dtype" in features:
            example.arrays[name] = _array(read, features, name)
    return example


def _array(read: Read, features: dict, name: str) -> tuple[np.dtype, tuple[int, ...], Value]:
    value = _one(features, name)
    dtype = _dtype(_text(read, features, f"{name}/dtype"))
    kind, shape = features[f"{name}/shape"]
    if kind != "int64" or any(n < 0 for n in shape):
        raise ValueError(f"{name}/shape: lengths >= 0, found {kind} {shape}")
    expected = math.prod(shape) * dtype.itemsize
    size = value.size if isinstance(value, Span) else len(value)
    if size != expected:
        raise ValueError(f"{name}: {expected} bytes for {shape} {dtype}, found {size}")
    return dtype, tuple(shape), value


def _one(features: dict, name: str) -> Value:
    kind, values = features[name]
    if kind != "bytes" or len(values) != 1:
        raise ValueError(f"{name}: one bytes value, found {kind} {len(values)} values")
    return values[0]


def _bytes(read: Read, value: Value) -> bytes:
    return bytes(read(value.offset, value.size) if isinstance(value, Span) else value)


def _text(read: Read, features: dict, name: str) -> str | None:
    if name not in features:
        return None
    try:
        return _bytes(read, _one(features, name)).decode()
    except UnicodeDecodeError as err:
        raise ValueError(f"{name}: UTF-8 ({err})") from None


def _dtype(name: str | None) -> np.dtype:
    """The dtype a ``<key>/dtype`` names: ml_dtypes types native, numbers little-endian."""
    scalar = getattr(ml_dtypes, name or "", None)
    if isinstance(scalar, type):
        return np.dtype(scalar)
    try:
        dtype = np.dtype(name)
    except TypeError as err:
        raise ValueError(f"a dtype name, found {name!r} ({err})") from None
    if dtype.kind not in "biufc":
        raise ValueError(f"a number dtype, found {name!r}")
    return dtype.newbyteorder("<")


# -- protobuf, walked in the file ---------------------------------------------------------

_LISTS = {1: "bytes", 2: "float", 3: "int64"}


def _features(read: Read, held: Held, start: int, end: int) -> dict[str, tuple[str, list]]:
    """Example -> Features -> map entries: name to ``(kind, values)``; bytes values as
    memoryviews when held, else as spans (never read here)."""
    features: dict[str, tuple[str, list]] = {}
    for number, wire, at, size in _fields(read, start, end):
        if number != 1 or wire != 2:  # unknown fields are legal protobuf: skipped
            continue
        for entry, entry_wire, where, length in _fields(read, at, at + size):
            if entry == 1 and entry_wire == 2:
                name, feature = _entry(read, held, where, where + length)
                features[name] = feature
    return features


def _entry(read: Read, held: Held, start: int, end: int) -> tuple[str, tuple[str, list]]:
    name, feature = None, ("bytes", [])
    for number, wire, at, size in _fields(read, start, end):
        if number == 1 and wire == 2:
            name = bytes(read(at, size)).decode()
        elif number == 2 and wire == 2:
            feature = _feature(read, held, at, at + size)
    if name is None:
        raise ValueError("a feature without a name")
    return name, feature


def _feature(read: Read, held: Held, start: int, end: int) -> tuple[str, list]:
    kind, values = "bytes", []
    for number, wire, at, size in _fields(read, start, end):
        if number not in _LISTS:
            continue
        if wire != 2:
            raise ValueError(f"a length-delimited list, found wire type {wire}")
        kind, values = _LISTS[number], []  # oneof: the last one set wins
        for item, item_wire, value, length in _fields(read, at, at + size):
            if item == 1:
                values += _values(read, held, kind, item_wire, value, length)
    return kind, values


def _values(read: Read, held: Held, kind: str, wire: int, value: int, size: int) -> list:
    """One element (or a packed run) of a list; ``value`` is an offset, or a varint's value."""
    if kind == "bytes":
        if wire != 2:
            raise ValueError(f"a bytes value, found wire type {wire}")
        return [read(value, size) if held(value, size) else Span(value, size)]
    if kind == "float":
        if wire not in (2, 5) or size % 4:
            raise ValueError(f"packed 4-byte floats, found wire type {wire}, {size} bytes")
        return np.frombuffer(read(value, size), "<f4").tolist()
    if wire == 0:
        return [_signed(value)]
    if wire != 2:
        raise ValueError(f"int64 varints, found wire type {wire}")
    packed, pos, out = read(value, size), 0, []
    while pos < size:
        number, pos = _varint(packed, pos)
        out.append(_signed(number))
    return out


def _fields(read: Read, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(number, wire type, value, size)`` of the fields between two offsets: a varint's
    value (size 0), else the offset of the field's bytes and their size."""
    pos = start
    while pos < end:
        tag, used = _varint(read(pos, min(10, end - pos)), 0)
        pos += used
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, used = _varint(read(pos, min(10, end - pos)), 0)
            yield number, wire, value, 0
            pos += used
            continue
        if wire == 2:
            size, used = _varint(read(pos, min(10, end - pos)), 0)
            pos += used
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire} at offset {pos}")
        if pos + size > end:
            raise ValueError(f"a field of {size} bytes at offset {pos} runs past its message")
        yield number, wire, pos, size
        pos += size


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """A base-128 varint at ``pos`` of ``data``: its value and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("a broken varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
