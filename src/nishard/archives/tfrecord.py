"""TFRecord shards: one ``tf.train.Example`` per sample, written without TensorFlow.

A sample ``sub-01_task-rest_run-1`` with a product ``bold`` (float32, 200 x 1000) and
metadata ``{"age": 23, "sex": "F", "t_r": 2.0, ...}`` is an Example with the features

=================  ===========  ===============================================
``__key__``        bytes        ``b"sub-01_task-rest_run-1"``
``bold``           bytes        the array's raw bytes, C order, little-endian
``bold/shape``     int64 list   ``[200, 1000]``
``bold/dtype``     bytes        ``b"float32"`` (a name ``tf.as_dtype`` takes)
``json``           bytes        all of the metadata, canonical JSON
``meta/age``       int64        ``[23]``
``meta/sex``       bytes        ``[b"F"]``
``meta/t_r``       float        ``[2.0]``
=================  ===========  ===============================================

Each top-level metadata value that is a number, a bool or a string also gets a typed
``meta/<name>`` feature, so that ``tf.io.parse_single_example`` hands TensorFlow users
labels without a JSON parser in the graph: an int (or bool, as 0/1) is an int64 feature,
a float a float feature (float32, as TFRecord stores floats: ``json`` keeps the exact
value), a string a bytes feature. A None (a missing value) gets no feature: give the
``FixedLenFeature`` a ``default_value``. Lists and mappings are in ``json`` only. The
feature's type follows the value's Python type, as ``json`` shows it.

Reading in TensorFlow, with the dtype and shape the manifest lists under ``keys``::

    spec = {"bold": tf.io.FixedLenFeature([], tf.string),
            "bold/shape": tf.io.VarLenFeature(tf.int64),
            "meta/age": tf.io.FixedLenFeature([], tf.int64)}
    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        bold = tf.io.decode_raw(ex["bold"], tf.float32)
        return tf.reshape(bold, tf.sparse.to_dense(ex["bold/shape"])), ex["meta/age"]
    tf.data.TFRecordDataset(files).map(parse)

bfloat16 arrays are their raw bytes with ``bold/dtype`` ``bfloat16``, which
``tf.io.decode_raw(..., tf.bfloat16)`` reads as is: TensorFlow has the dtype, so the
structured ``.npy`` form of :mod:`~nishard.archives.encode` is not needed here. Other
``ml_dtypes`` types (float8) are written the same way under their ``ml_dtypes`` name.

Records are framed as TensorFlow frames them: ``uint64 length``, masked CRC-32C of the
length, the data, masked CRC-32C of the data. The same samples give the same bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

import crc32c
import numpy as np

from . import protobuf
from .encode import Parts, buffers, encode_json, nbytes
from .hashing import HashedShard

#: Feature names the writer itself uses; metadata names go under ``meta/``.
KEY, JSON, META = "__key__", "json", "meta/"

_MASK_DELTA = 0xA282EAD8
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def masked_crc32c(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC-32C: the CRC rotated right by 15 bits plus a constant."""
    return masked(crc32c.crc32c(data))


def masked(crc: int) -> int:
    """TFRecord's mask of a CRC-32C: rotated right by 15 bits plus a constant."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes | Parts) -> list[bytes | memoryview]:
    """One TFRecord record as buffers to write: length, its CRC, data, the data's CRC."""
    length = struct.pack("<Q", nbytes(data))
    crc = 0
    for buffer in buffers(data):
        crc = crc32c.crc32c(buffer, value=crc)
    return [
        length,
        struct.pack("<I", masked_crc32c(length)),
        *buffers(data),
        struct.pack("<I", masked(crc)),
    ]


#: The bytes :func:`frame` adds to a record.
FRAMING = 8 + 4 + 4


class TFRecordShard(HashedShard):
    """An open ``.tfrecord`` file; each sample is one record (its CRC-32C covers the
    framing). Its sha256 is computed as it is written."""

    def add(self, key: str, fields: dict[str, bytes | Parts]) -> None:
        self._file.begin()
        self._file.writelines(frame(fields["example"]))
        self._file.end()


@dataclass(frozen=True)
class TFRecord:
    """TFRecord format: a ``tf.train.Example`` per sample; see the module docstring."""

    name: ClassVar[str] = "tfrecord"
    extension: ClassVar[str] = ".tfrecord"

    def to_dict(self) -> dict:
        return {"name": self.name}

    def open(self, path: str) -> TFRecordShard:
        return TFRecordShard(path)

    def encode(
        self, key: str, products: dict[str, np.ndarray], meta: dict
    ) -> dict[str, bytes | Parts]:
        features: dict[str, protobuf.Feature] = {
            KEY: ("bytes", [key.encode()]),
            JSON: ("bytes", [encode_json(meta)]),
        }
        for name, array in products.items():
            data, dtype = raw_bytes(array)
            _put(features, name, ("bytes", [data]))
            _put(features, f"{name}/shape", ("int64", list(np.shape(array))))
            _put(features, f"{name}/dtype", ("bytes", [dtype.encode()]))
        for name, value in meta.items():
            typed = _typed(value)
            if typed is not None:
                _put(features, META + name, typed)
        return {"example": protobuf.example_parts(features)}

    def sample_size(self, key: str, fields: dict[str, bytes | Parts]) -> int:
        return nbytes(fields["example"]) + FRAMING

    @staticmethod
    def file_size(content: int) -> int:
        return content


def raw_bytes(array: np.ndarray) -> tuple[memoryview, str]:
    """An array's bytes in C order, little-endian, and the name of its dtype.

    The bytes are a view where the array is already so laid out; bool is one byte
    per value (``tf.io.decode_raw`` reads it as ``tf.bool``).
    """
    array = np.asarray(array, order="C")
    ml_dtype = array.dtype.kind == "V" and array.dtype.type.__module__ == "ml_dtypes"
    if array.dtype.kind not in "biufc" and not ml_dtype:
        raise TypeError(f"array of dtype {array.dtype}: TFRecord stores numbers only")
    if not ml_dtype:  # ml_dtypes types have no byte order to set; they are native
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    # uint8 view of the flat array: a buffer that bytes.join takes whatever the dtype.
    return memoryview(array.reshape(-1).view(np.uint8)), array.dtype.name


def _typed(value: object) -> protobuf.Feature | None:
    """A metadata value's typed feature, or None for what only ``json`` holds."""
    if isinstance(value, bool | np.bool_):
        return ("int64", [int(value)])
    if isinstance(value, int | np.integer):
        return ("int64", [int(value)]) if _INT64_MIN <= value <= _INT64_MAX else None
    if isinstance(value, float | np.floating):
        return ("float", [float(value)])
    if isinstance(value, str):
        return ("bytes", [value.encode()])
    return None


def _put(features: dict, name: str, feature: protobuf.Feature) -> None:
    if name in features:
        raise ValueError(f"two TFRecord features named {name!r}: rename the product")
    features[name] = feature
