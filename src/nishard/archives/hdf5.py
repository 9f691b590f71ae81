"""HDF5 shards: one file per shard, one group per sample, one dataset per product.

A sample ``sub-01_task-rest_run-1`` with a product ``bold`` becomes the dataset
``/sub-01_task-rest_run-1/bold`` (dtype and shape kept, contiguous, uncompressed: a
read is one seek) and the group's attribute ``json``, the metadata as canonical JSON::

    with h5py.File("all-000000.h5") as f:
        for key, group in f.items():
            bold, meta = group["bold"][()], json.loads(group.attrs["json"])

float16 is HDF5's IEEE half type. bfloat16 is not an HDF5 type: it is stored as in
``.npy`` (:mod:`~nishard.archives.encode`), a compound of one little-endian ``uint16``
field named ``bfloat16``, which :func:`~nishard.archives.encode.restore_dtype` turns back
into an ``ml_dtypes.bfloat16`` array.

The same samples give the same bytes: object timestamps are off (root group included)
and the file format is pinned to HDF5 1.10's (``libver=("v110", "v110")``), which any
HDF5 1.10 or later reads and which puts no 64 KiB limit on an attribute.

h5py is an optional dependency: ``pip install "nishard[hdf5]"``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .encode import encode_json, encode_npy

#: Group and dataset names: what HDF5, Zarr and file systems all take as they are.
NAME = re.compile(r"^(?!\.{1,2}$)(?!__)[A-Za-z0-9._-]+$")

#: Bytes HDF5 adds to a sample's data: the group, its link in the root group and the
#: ``json`` attribute's header; each dataset's object header. Measured with h5py 3.14 /
#: HDF5 1.14 (about 250 bytes a group and 350 a dataset) and rounded up: the estimates
#: bound the file from above, so shards stay under ``max_bytes``.
GROUP_OVERHEAD = 512
DATASET_OVERHEAD = 512
#: The superblock, root group and free-space bookkeeping (about 5.6 KB).
FILE_OVERHEAD = 8192


def check_name(name: str, what: str) -> None:
    """Refuse a name that HDF5 or Zarr would read as a path, or that Zarr reserves."""
    if not NAME.match(name):
        raise ValueError(f"{what} {name!r}: use letters, digits, '.', '-' and '_'")


def npy_view(data: bytes) -> np.ndarray:
    """The array of ``.npy`` bytes, a view of them rather than a copy."""
    buffer = io.BytesIO(data)
    version = np.lib.format.read_magic(buffer)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buffer)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buffer)
    array = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=buffer.tell())
    return array.reshape(shape, order="F" if fortran else "C")


class HDF5Shard:
    """An open ``.h5`` shard; see the module docstring."""

    def __init__(self, path: str):
        h5py = _h5py()
        access = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
        access.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
        # The root group takes its timestamps from the file creation properties.
        creation = h5py.h5p.create(h5py.h5p.FILE_CREATE)
        creation.set_obj_track_times(False)
        fid = h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=creation, fapl=access)
        self._h5py, self._file = h5py, h5py.File(fid)

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        h5py = self._h5py
        # h5py's create_group cannot turn timestamps off; the low-level call can.
        properties = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        properties.set_obj_track_times(False)
        group = h5py.Group(h5py.h5g.create(self._file.id, key.encode(), gcpl=properties))
        for field in sorted(fields):
            if field == "json":
                group.attrs["json"] = fields[field].decode()
            else:
                array = npy_view(fields[field])
                group.create_dataset(field.removesuffix(".npy"), data=array, track_times=False)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class HDF5:
    """HDF5 format: a group per sample, a dataset per product; see the module docstring."""

    name: ClassVar[str] = "hdf5"
    extension: ClassVar[str] = ".h5"

    def to_dict(self) -> dict:
        return {"name": self.name}

    def open(self, path: str) -> HDF5Shard:
        return HDF5Shard(path)

    def encode(self, key: str, products: dict[str, np.ndarray], meta: dict) -> dict[str, bytes]:
        # .npy bytes carry dtype and shape to the shard, bfloat16 already in its stored form.
        check_name(key, "sample key")
        fields = {}
        for name, array in products.items():
            check_name(name, "product name")
            fields[f"{name}.npy"] = encode_npy(array)
        fields["json"] = encode_json(meta)
        return fields

    def sample_size(self, key: str, fields: dict[str, bytes]) -> int:
        """An upper bound of the bytes the sample adds (estimated: HDF5's overhead varies)."""
        size = GROUP_OVERHEAD + len(key) + len(fields["json"])
        for field, data in fields.items():
            if field != "json":
                size += DATASET_OVERHEAD + len(field) + npy_view(data).nbytes
        return size

    @staticmethod
    def file_size(content: int) -> int:
        return content + FILE_OVERHEAD


def _h5py():
    try:
        import h5py
    except ImportError as err:
        raise ImportError('HDF5 shards need h5py: pip install "nishard[hdf5]"') from err
    return h5py
