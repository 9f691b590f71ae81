"""The few protobuf messages of a ``tf.train.Example``, encoded by hand.

TensorFlow's schema (``tensorflow/core/example/{example,feature}.proto``)::

    message Example   { Features features = 1; }
    message Features  { map<string, Feature> feature = 1; }
    message Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                                     Int64List int64_list = 3; } }
    message BytesList { repeated bytes value = 1; }
    message FloatList { repeated float value = 1 [packed = true]; }
    message Int64List { repeated int64 value = 1 [packed = true]; }

Writing these few messages takes a varint and a length prefix; doing it here spares
writers a dependency on TensorFlow or protobuf. Map entries are written in sorted key
order, so the same features always give the same bytes (protobuf itself promises no
order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .encode import Parts

#: A feature's values: raw bytes, 32-bit floats or 64-bit integers.
Feature = tuple[str, Sequence]

_LENGTH_DELIMITED = 2
_INT64_MASK = (1 << 64) - 1


def varint(value: int) -> bytes:
    """Base-128 varint of a non-negative integer below 2**64."""
    if not 0 <= value <= _INT64_MASK:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _Message:
    """A message as parts to join once at the end: nesting then copies no array's bytes."""

    def __init__(self) -> None:
        self.parts: list = []
        self.size = 0

    def add(self, number: int, payload: bytes | memoryview | _Message) -> None:
        """A length-delimited field: tag, length, payload."""
        head = varint(number << 3 | _LENGTH_DELIMITED) + varint(_size(payload))
        self.parts.append(head)
        if isinstance(payload, _Message):
            self.parts += payload.parts
        else:
            self.parts.append(payload)
        self.size += len(head) + _size(payload)


def _size(payload: bytes | memoryview | _Message) -> int:
    return payload.size if isinstance(payload, _Message) else memoryview(payload).nbytes


def _bytes_list(values: Iterable[bytes | memoryview]) -> _Message:
    message = _Message()
    for value in values:
        message.add(1, value)
    return message


def _float_list(values: Iterable[float]) -> _Message:
    message = _Message()
    packed = np.asarray(list(values), dtype="<f4").tobytes()
    if packed:  # proto3 leaves an empty packed field out
        message.add(1, packed)
    return message


def _int64_list(values: Iterable[int]) -> _Message:
    message = _Message()
    # int64 is a two's complement varint: a negative value takes ten bytes.
    packed = b"".join(varint(int(v) & _INT64_MASK) for v in values)
    if packed:
        message.add(1, packed)
    return message


_KINDS = {"bytes": (1, _bytes_list), "float": (2, _float_list), "int64": (3, _int64_list)}


def example(features: Mapping[str, Feature]) -> bytes:
    """A serialized ``tf.train.Example``: the bytes of :func:`example_parts`."""
    return bytes(example_parts(features))


def example_parts(features: Mapping[str, Feature]) -> Parts:
    """A serialized ``tf.train.Example`` as buffers to write in order.

    Parameters
    ----------
    features : mapping
        Feature name to ``(kind, values)`` with kind ``"bytes"`` (values bytes-like),
        ``"float"`` (stored as float32) or ``"int64"``.

    Returns
    -------
    Parts
        The message, map entries in sorted name order; bytes values given as buffers
        (array views) are among the parts, not copied.
    """
    entries = _Message()
    for name in sorted(features):
        kind, values = features[name]
        if kind not in _KINDS:
            raise ValueError(f"feature {name!r}: kind {kind!r}, not one of {sorted(_KINDS)}")
        number, encode = _KINDS[kind]
        feature = _Message()
        feature.add(number, encode(values))
        entry = _Message()
        entry.add(1, name.encode())
        entry.add(2, feature)
        entries.add(1, entry)
    message = _Message()
    message.add(1, entries)
    return Parts(tuple(message.parts))
