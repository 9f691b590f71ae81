"""Read shards back, sample by sample, as a check that every byte still decodes.

A decoder is a function of a shard's path that yields a :class:`Sample` per sample, in
the shard's order, and raises :class:`DecodeError` where the shard is damaged. Decoders
are found by format name in :data:`DECODERS`; a format of one's own adds its decoder
with :func:`register_decoder`::

    from nishard.archives.decoders import Sample, register_decoder

    @register_decoder("npz")
    def read_npz(path):
        with np.load(path, allow_pickle=False) as archive:
            ...
            yield Sample(key, arrays, meta)

The built-in decoders check what each format can check by itself: tar header checksums,
zero padding and the end-of-archive blocks; TFRecord framing and both masked CRC-32Cs
of every record; HDF5's metadata checksums (h5py); the CRC-32 of every zip entry of a
Zarr shard. Array bytes are checked by the manifest's sha256 alone, except in TFRecord
and Zarr, whose CRCs cover them.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np

from .encode import restore_dtype
from .tfrecord import JSON, KEY, masked_crc32c


@dataclass
class Sample:
    """One sample read back: its key, its arrays by product name, its metadata, and where
    it starts in the file (tar and TFRecord; None where a format has no byte order)."""

    key: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: object = None
    offset: int | None = None


class DecodeError(Exception):
    """A shard that does not decode: where, what the format wants, what was there.

    Parameters
    ----------
    sample : str or None
        The sample's key, when it is known.
    expected, found : str
    """

    def __init__(self, sample: str | None, expected: str, found: str):
        super().__init__(f"expected {expected}, found {found}")
        self.sample, self.expected, self.found = sample, expected, found


Decoder = Callable[[Path], Iterator[Sample]]

#: Decoders by format name; add to it with :func:`register_decoder`.
DECODERS: dict[str, Decoder] = {}


def register_decoder(name: str, *, replace: bool = False) -> Callable[[Decoder], Decoder]:
    """A decorator that makes a decoder the one of the format ``name``.

    Parameters
    ----------
    name : str
        The format's name, as the manifest lists it.
    replace : bool
        Allow replacing a decoder already registered under the same name.

    Returns
    -------
    callable
        The decorator; it returns the decoder unchanged.
    """

    def register(decoder: Decoder) -> Decoder:
        if name in DECODERS and DECODERS[name] is not decoder and not replace:
            raise ValueError(f"a decoder for {name!r} is registered already")
        DECODERS[name] = decoder
        return decoder

    return register


# -- WebDataset tar -----------------------------------------------------------------------


def unsafe_member(name: str) -> bool:
    """Whether a tar member's name would leave a folder it is extracted to: absolute, or
    with ``..`` parts. nishard writes neither; a reader refuses such a shard rather than
    hand the name on (``tar -x``, webdataset's own extraction)."""
    return name.startswith("/") or ".." in name.split("/")


@register_decoder("webdataset")
def read_tar(path: Path) -> Iterator[Sample]:
    """Samples of a tar shard: members ``<key>.<name>.npy`` and ``<key>.json``."""
    size = path.stat().st_size
    with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
        current: Sample | None = None
        for member in tar:
            key, dot, name = member.name.partition(".")
            if not member.isfile() or not dot:
                raise DecodeError(key, "file members named <key>.<field>", repr(member.name))
            if unsafe_member(member.name):
                expected = "member names inside the archive (relative, without '..')"
                raise DecodeError(None, expected, repr(member.name))
            data = tar.extractfile(member).read()
            _check_padding(raw, member, key)
            if current is None or current.key != key:
                if current is not None:
                    yield current
                current = Sample(key, offset=member.offset)
            _add_field(current, name, data)
        # tarfile takes a damaged header for the end of the archive, silently.
        end = tar.offset
    if current is not None:
        yield current
    _check_end(path, end, size)


def _add_field(sample: Sample, name: str, data: bytes) -> None:
    if name == "json":
        if sample.meta is not None:
            raise DecodeError(sample.key, "one json member per sample", "two")
        sample.meta = _json(sample.key, data)
    elif name.endswith(".npy"):
        product = name.removesuffix(".npy")
        if product in sample.arrays:
            raise DecodeError(sample.key, f"one member {name!r} per sample", "two")
        sample.arrays[product] = _npy(sample.key, name, data)
    else:
        raise DecodeError(sample.key, "members <key>.<product>.npy and <key>.json", repr(name))


def _npy(key: str, name: str, data: bytes) -> np.ndarray:
    buffer = io.BytesIO(data)
    try:
        array = np.load(buffer, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise DecodeError(key, f"{name}: a .npy array", str(err)) from None
    if buffer.tell() != len(data):
        raise DecodeError(key, f"{name}: {buffer.tell()} bytes of .npy", f"{len(data)} bytes")
    return restore_dtype(array)


def _json(key: str, data: bytes | str) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise DecodeError(key, "metadata as JSON", str(err)) from None


def _check_padding(raw, member: tarfile.TarInfo, key: str) -> None:
    """The zeros between a member's data and the next 512-byte block."""
    start = member.offset_data + member.size
    padding = os.pread(raw.fileno(), -member.size % tarfile.BLOCKSIZE, start)
    if padding.strip(b"\0"):
        where = start + len(padding) - len(padding.lstrip(b"\0"))
        raise DecodeError(key, f"zero padding after {member.name}", f"a byte at offset {where}")


def _check_end(path: Path, end: int, size: int) -> None:
    """At least two zero blocks after the last member, and zeros to the end of the file."""
    with open(path, "rb") as file:
        file.seek(end)
        rest = file.read()
    if rest.strip(b"\0"):
        where = end + len(rest) - len(rest.lstrip(b"\0"))
        raise DecodeError(
            None,
            f"the end-of-archive zero blocks at offset {end}",
            f"a non-zero byte at offset {where} (a damaged member header, or data after the end)",
        )
    if size - end < 2 * tarfile.BLOCKSIZE:
        raise DecodeError(
            None, "two zero blocks at the end of the archive", "the file ends: it is truncated"
        )


# -- TFRecord -----------------------------------------------------------------------------


@register_decoder("tfrecord")
def read_tfrecord(path: Path) -> Iterator[Sample]:
    """Samples of a TFRecord shard, each record's framing and both CRCs checked."""
    with open(path, "rb") as file:
        index = offset = 0
        while head := file.read(12):
            where = f"record {index} at offset {offset}"
            if len(head) < 12:
                raise DecodeError(None, f"{where}: a 12-byte header", _short(len(head)))
            length, crc = struct.unpack("<QI", head)
            if masked_crc32c(head[:8]) != crc:
                found = f"{masked_crc32c(head[:8]):#010x}: the length is damaged"
                raise DecodeError(None, f"{where}: length CRC-32C {crc:#010x}", found)
            data, tail = file.read(length), file.read(4)
            if len(data) < length or len(tail) < 4:
                expected = f"{where}: {length + 4} bytes of data and CRC"
                raise DecodeError(None, expected, _short(len(data) + len(tail)))
            (crc,) = struct.unpack("<I", tail)
            if masked_crc32c(data) != crc:
                found = f"{masked_crc32c(data):#010x}: the record is damaged"
                raise DecodeError(_key_of(data), f"{where}: data CRC-32C {crc:#010x}", found)
            sample = example_sample(data)
            sample.offset = offset
            yield sample
            index, offset = index + 1, offset + 16 + length


def _short(n: int) -> str:
    return f"{n} bytes: the file is truncated"


def _key_of(data: bytes) -> str | None:
    """The key of a record whose CRC failed, when its Example still parses."""
    try:
        kind, values = parse_example(data)[KEY]
        return bytes(values[0]).decode() if kind == "bytes" else None
    except (ValueError, KeyError, IndexError, UnicodeDecodeError):
        return None


def example_sample(data: bytes) -> Sample:
    """A sample from a serialized ``tf.train.Example`` as :mod:`.tfrecord` writes it."""
    try:
        features = parse_example(data)
    except ValueError as err:
        raise DecodeError(None, "a tf.train.Example", str(err)) from None
    kind, values = features.get(KEY, (None, []))
    if kind != "bytes" or len(values) != 1:
        raise DecodeError(None, f"a {KEY} bytes feature", f"{kind} {len(values)} values")
    try:
        sample = Sample(bytes(values[0]).decode())
    except UnicodeDecodeError as err:
        raise DecodeError(None, f"a UTF-8 {KEY}", str(err)) from None
    if JSON in features:
        kind, values = features[JSON]
        if kind != "bytes" or len(values) != 1:
            raise DecodeError(sample.key, f"one {JSON} bytes value", f"{kind} {len(values)}")
        sample.meta = _json(sample.key, bytes(values[0]))
    for name in features:
        if f"{name}/shape" in features and f"{name}/dtype" in features:
            sample.arrays[name] = _feature_array(sample.key, name, features)
    return sample


def _feature_array(key: str, name: str, features: dict) -> np.ndarray:
    kind, data = features[name]
    shape, dtype_name = features[f"{name}/shape"][1], features[f"{name}/dtype"][1]
    if kind != "bytes" or len(data) != 1 or len(dtype_name) != 1:
        raise DecodeError(key, f"{name}: one bytes value and one dtype", f"{len(data)} values")
    try:
        dtype = _dtype(bytes(dtype_name[0]).decode())
    except (TypeError, ValueError, UnicodeDecodeError) as err:
        raise DecodeError(key, f"{name}/dtype: a dtype name", str(err)) from None
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise DecodeError(key, f"{name}/shape: lengths >= 0", str(shape))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data[0]) != expected:
        raise DecodeError(key, f"{name}: {expected} bytes for {shape} {dtype}", f"{len(data[0])}")
    return np.frombuffer(data[0], dtype=dtype).reshape(shape)


def _dtype(name: str) -> np.dtype:
    scalar = getattr(ml_dtypes, name, None)
    if isinstance(scalar, type):  # ml_dtypes types are stored as they are, native order
        return np.dtype(scalar)
    dtype = np.dtype(name)
    if dtype.kind not in "biufc":
        raise ValueError(f"{name!r} is not a number type")
    return dtype.newbyteorder("<")


def parse_example(data: bytes | memoryview) -> dict[str, tuple[str, list]]:
    """Features of a serialized ``tf.train.Example``: name to ``(kind, values)``.

    The reverse of :func:`nishard.archives.protobuf.example`; bytes values are memoryviews
    of ``data``, int64 values signed.

    Raises
    ------
    ValueError
        When the bytes are not such a message.
    """
    features: dict[str, tuple[str, list]] = {}
    for number, payload in _fields(memoryview(data)):
        if number != 1:  # unknown fields are legal protobuf: skipped, as protobuf does
            continue
        for number, entry in _fields(_delimited(payload)):
            if number == 1:
                name, feature = _map_entry(_delimited(entry))
                features[name] = feature
    return features


def _map_entry(entry: memoryview) -> tuple[str, tuple[str, list]]:
    name, feature = None, ("bytes", [])
    for number, payload in _fields(entry):
        if number == 1:
            name = bytes(_delimited(payload)).decode()
        elif number == 2:
            feature = _feature(_delimited(payload))
    if name is None:
        raise ValueError("a feature without a name")
    return name, feature


def _feature(message: memoryview) -> tuple[str, list]:
    kind, values = "bytes", []
    for number, payload in _fields(message):
        if number not in _LISTS:
            continue
        kind, values = _LISTS[number], []  # oneof: the last one set wins
        for item_number, item in _fields(_delimited(payload)):
            if item_number == 1:
                values += _values(kind, item)
    return kind, values


_LISTS = {1: "bytes", 2: "float", 3: "int64"}


def _values(kind: str, item: int | memoryview | bytes) -> list:
    """One element (or a packed run) of a BytesList, FloatList or Int64List."""
    if kind == "bytes":
        return [_delimited(item)]
    if kind == "float":
        packed = item if isinstance(item, bytes) else _delimited(item)
        if len(packed) % 4:
            raise ValueError("a packed float list whose length is not a multiple of 4")
        return np.frombuffer(packed, "<f4").tolist()
    if isinstance(item, int):  # an unpacked varint
        return [_signed(item)]
    view, pos, out = _delimited(item), 0, []
    while pos < len(view):
        value, pos = _varint(view, pos)
        out.append(_signed(value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _delimited(payload: int | memoryview | bytes) -> memoryview:
    if not isinstance(payload, memoryview):
        raise ValueError("a length-delimited field of another wire type")
    return payload


def _fields(buffer: memoryview) -> Iterator[tuple[int, int | memoryview | bytes]]:
    """``(field number, value)``: a varint as int, length-delimited as memoryview, fixed
    32- and 64-bit values as bytes."""
    pos = 0
    while pos < len(buffer):
        tag, pos = _varint(buffer, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buffer, pos)
            yield number, value
            continue
        if wire == 2:
            size, pos = _varint(buffer, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire} at byte {pos}")
        if pos + size > len(buffer):
            raise ValueError(f"a field of {size} bytes at byte {pos} runs past the message")
        value = buffer[pos : pos + size]
        yield number, value if wire == 2 else bytes(value)
        pos += size


def _varint(buffer: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buffer) or shift > 63:
            raise ValueError(f"a broken varint at byte {pos}")
        byte = buffer[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


# -- HDF5 and Zarr ------------------------------------------------------------------------


@register_decoder("hdf5")
def read_hdf5(path: Path) -> Iterator[Sample]:
    """Samples of an HDF5 shard: a group per sample, its ``json`` attribute the metadata."""
    from .hdf5 import _h5py

    h5py = _h5py()
    with h5py.File(path, "r") as file:
        for key, group in file.items():
            if not isinstance(group, h5py.Group):
                raise DecodeError(key, "a group per sample", type(group).__name__)
            sample = Sample(key)
            for name, dataset in group.items():
                sample.arrays[name] = restore_dtype(np.asarray(dataset[()]))
            if "json" not in group.attrs:
                raise DecodeError(key, "a json attribute", "none")
            sample.meta = _json(key, group.attrs["json"])
            yield sample


@register_decoder("zarr")
def read_zarr(path: Path) -> Iterator[Sample]:
    """Samples of a ``.zarr.zip`` shard, every zip entry's CRC-32 checked first."""
    from .zarr import _zarr

    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        key = bad.split("/", 1)[0] if "/" in bad else None
        raise DecodeError(key, f"zip entry {bad!r} to match its CRC-32 and header", "it does not")
    zarr = _zarr()
    store = zarr.storage.ZipStore(path, mode="r")
    try:
        root = zarr.open_group(store, mode="r")
        with warnings.catch_warnings():
            # bfloat16's structured dtype; see nishard.archives.zarr.
            warnings.filterwarnings("ignore", category=zarr.errors.UnstableSpecificationWarning)
            for key, group in root.groups():
                sample = Sample(key, meta=dict(group.attrs))
                for name, array in group.arrays():
                    sample.arrays[name] = restore_dtype(np.asarray(array[...]))
                yield sample
    finally:
        store.close()
