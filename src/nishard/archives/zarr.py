"""Zarr shards: one zip file per shard, one group per sample, one array per product.

A sample ``sub-01_task-rest_run-1`` with a product ``bold`` becomes the array
``sub-01_task-rest_run-1/bold`` (dtype and shape kept, one uncompressed chunk) in a
group whose attributes are the record's metadata (Zarr attributes are JSON)::

    store = zarr.storage.ZipStore("all-000000.zarr.zip", mode="r")
    root = zarr.open_group(store, mode="r")
    for key, group in root.groups():
        bold, age = group["bold"][...], group.attrs["age"]

A shard is a single file, as the other formats' are: the shard writer's temporary name
and atomic rename, size and checksum apply unchanged, where a directory store would need
a recursive rename and a checksum over many files. Each sample is encoded into its Zarr
store entries in memory (:meth:`Zarr.encode`, exact sizes for byte-based sharding) and
the entries are appended to the zip, stored uncompressed with fixed timestamps, so the
same samples give the same bytes. (zarr's own ``ZipStore`` stamps the current time.)

``zarr_format`` 3 (the default) or 2. bfloat16 is in neither specification: it is
stored as in ``.npy`` (:mod:`~nishard.archives.encode`), a structured dtype of one
little-endian ``uint16`` field named ``bfloat16``, which
:func:`~nishard.archives.encode.restore_dtype` turns back into ``ml_dtypes.bfloat16``.
Zarr 2 specifies structured dtypes; for Zarr 3 they are zarr-python's own extension,
which it reads with an ``UnstableSpecificationWarning`` and other Zarr 3 readers may not.

zarr (3.1 or later) is an optional dependency: ``pip install "nishard[zarr]"``.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .encode import encode_json
from .hdf5 import check_name

#: Every zip entry's timestamp: the earliest a zip can record.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)

# A zip entry costs a local header (30 bytes) and a central directory record (46), each
# with the name; the zip64 extras (20 + 28) are counted too, as an upper bound.
_LOCAL, _CENTRAL, _ZIP64 = 30, 46, 48
# The end of the central directory: zip64 record and locator (56 + 20) and the classic
# record (22); and room for the root group's entries.
_END, _ROOT = 98, 512


class ZarrShard:
    """An open ``.zarr.zip`` shard; see the module docstring."""

    def __init__(self, path: str, zarr_format: int):
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        root = _entries(zarr_format, lambda group: None)
        for name in sorted(root):
            self._write(name, root[name])

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        for name in sorted(fields):
            self._write(name, fields[name])

    def close(self) -> None:
        self._zip.close()

    def _write(self, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
        info.create_system = 3  # Unix, on every platform, so that the bytes are the same
        info.external_attr = 0o444 << 16
        info.compress_type = zipfile.ZIP_STORED
        self._zip.writestr(info, data)


@dataclass(frozen=True)
class Zarr:
    """Zarr format in a zip per shard; see the module docstring.

    Parameters
    ----------
    zarr_format : int
        3 (default) or 2.
    """

    name: ClassVar[str] = "zarr"
    extension: ClassVar[str] = ".zarr.zip"

    zarr_format: int = 3

    def __post_init__(self) -> None:
        if self.zarr_format not in (2, 3):
            raise ValueError(f"zarr_format must be 2 or 3, got {self.zarr_format!r}")

    def to_dict(self) -> dict:
        return {"name": self.name, "zarr_format": self.zarr_format}

    def open(self, path: str) -> ZarrShard:
        return ZarrShard(path, self.zarr_format)

    def encode(self, key: str, products: dict[str, np.ndarray], meta: dict) -> dict[str, bytes]:
        """The sample's Zarr store entries: ``{"<key>/zarr.json": ..., "<key>/bold/c/0": ...}``."""
        check_name(key, "sample key")
        for name in products:
            check_name(name, "product name")
        # Through canonical JSON: sorted keys at every level, so the same bytes each time.
        attributes = json.loads(encode_json(meta))

        def fill(root) -> None:
            group = root.create_group(key, attributes=attributes)
            for name, array in products.items():
                _add_array(group, name, array)

        entries = _entries(self.zarr_format, fill)
        return {name: data for name, data in entries.items() if name.startswith(key + "/")}

    def sample_size(self, key: str, fields: dict[str, bytes]) -> int:
        """Bytes the entries add to the zip (an upper bound: zip64 extras counted)."""
        return sum(
            _LOCAL + _CENTRAL + _ZIP64 + 2 * len(name.encode()) + len(data)
            for name, data in fields.items()
        )

    @staticmethod
    def file_size(content: int) -> int:
        return content + _ROOT + _END


def _add_array(group, name: str, array: np.ndarray) -> None:
    array = _storable(np.asarray(array, order="C"))
    with warnings.catch_warnings():
        # bfloat16's structured dtype: the module docstring says what it means.
        warnings.filterwarnings("ignore", category=_zarr().errors.UnstableSpecificationWarning)
        stored = group.create_array(
            name,
            shape=array.shape,
            dtype=array.dtype,
            # One chunk: a sample is read whole. Zarr wants chunk lengths of at least 1.
            chunks=tuple(max(n, 1) for n in array.shape),
            compressors=None,
            filters=None,
            # A chunk equal to the fill value is written all the same: otherwise -0.0
            # would come back as 0.0.
            config={"write_empty_chunks": True},
        )
        stored[...] = array


def _storable(array: np.ndarray) -> np.ndarray:
    """bfloat16 (any ``ml_dtypes`` type) as its bits in a one-field structured dtype."""
    dtype = array.dtype
    if dtype.kind == "V" and dtype.names is None and dtype.type.__module__ == "ml_dtypes":
        bits = array.view(f"u{dtype.itemsize}").astype(f"<u{dtype.itemsize}")
        return bits.view([(dtype.name, bits.dtype)])
    return array


def _entries(zarr_format: int, fill) -> dict[str, bytes]:
    """The store entries of a root group after ``fill(root)``, written in memory."""
    zarr = _zarr()
    entries: dict = {}
    root = zarr.open_group(
        zarr.storage.MemoryStore(store_dict=entries), mode="w", zarr_format=zarr_format
    )
    fill(root)
    return {name: entries[name].to_bytes() for name in sorted(entries)}


def _zarr():
    try:
        import zarr
    except ImportError as err:
        raise ImportError('Zarr shards need zarr: pip install "nishard[zarr]"') from err
    if not hasattr(zarr.errors, "UnstableSpecificationWarning"):  # new in zarr 3.1
        raise ImportError(f"Zarr shards need zarr 3.1 or later, found {zarr.__version__}")
    return zarr
