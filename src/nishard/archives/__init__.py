"""Archives: the shard formats (WebDataset tar, TFRecord, HDF5, Zarr), their manifest and
readers, and ``verify``/``inspect``. Nothing here runs transforms or drives a build
(that is :mod:`nishard.builder`): a training process imports this layer and no other.

Formats are found by name in :data:`FORMATS`, where a YAML spec's ``output.formats``
looks them up. A new format is a class with the methods of :class:`Format`, registered
in a few lines::

    from dataclasses import dataclass
    from typing import ClassVar

    import numpy as np

    from nishard.archives import register_format

    class NpzShard:  # one .npz per shard, a member per product of each sample
        def __init__(self, path):
            self.path, self.arrays = path, {}

        def add(self, key, fields):
            self.arrays |= {f"{key}.{name}": data for name, data in fields.items()}

        def close(self):
            with open(self.path, "wb") as file:
                np.savez(file, **{k: np.frombuffer(v, np.uint8) for k, v in self.arrays.items()})

    @register_format
    @dataclass(frozen=True)
    class Npz:
        name: ClassVar[str] = "npz"
        extension: ClassVar[str] = ".npz"

        def to_dict(self): return {"name": self.name}
        def open(self, path): return NpzShard(path)
        def encode(self, key, products, meta): return {n: a.tobytes() for n, a in products.items()}
        def sample_size(self, key, fields): return sum(map(len, fields.values())) + 200
        @staticmethod
        def file_size(content): return content + 22

after which ``formats: [npz]`` in a spec and ``write(..., formats=[Npz()])`` use it.
``open`` gets the shard's temporary path: the writer renames the file when it is complete.
"""

from __future__ import annotations

from ..registry import Registry
from .families import Family
from .hdf5 import HDF5
from .manifest import MANIFEST, read_manifest
from .shards import Format, ShardSpec, by_count, by_size, parse_bytes
from .tfrecord import TFRecord
from .webdataset import WebDataset
from .zarr import Zarr

_METHODS = ("to_dict", "open", "encode", "sample_size", "file_size")


def _check_format(cls: type) -> None:
    """Refuse a class that cannot be a format: an odd name or extension, missing methods."""
    name, extension = getattr(cls, "name", None), getattr(cls, "extension", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{cls.__name__}.name must be an identifier string, got {name!r}")
    if not isinstance(extension, str) or not extension.startswith("."):
        raise TypeError(f"{cls.__name__}.extension must be a string such as '.tar'")
    missing = [method for method in _METHODS if not callable(getattr(cls, method, None))]
    if missing:
        raise TypeError(f"{cls.__name__} is not a format: it lacks {', '.join(missing)}")


#: Formats by the name a YAML spec gives them; add to it with ``FORMATS.register`` (or
#: :func:`register_format`).
FORMATS: Registry = Registry("format", (WebDataset, TFRecord, HDF5, Zarr), check=_check_format)


def register_format(cls: type, *, replace: bool = False) -> type:
    """Make a format class known by its ``name``, to specs and to :data:`FORMATS`.

    The same as ``FORMATS.register(cls, replace=replace)``.

    Parameters
    ----------
    cls : type
        A class with the class attributes ``name`` and ``extension`` (``".tar"``) and the
        methods of :class:`Format`; a spec's options are its constructor's arguments.
    replace : bool
        Allow replacing a format already registered under the same name.

    Returns
    -------
    type
        ``cls`` itself, so that this works as a class decorator.

    Raises
    ------
    ValueError
        When the name is taken (and ``replace`` is false), or is not a plain identifier.
    TypeError
        When the class lacks an attribute or method of a format.
    """
    return FORMATS.register(cls, replace=replace)


__all__ = [
    "FORMATS", "HDF5", "MANIFEST", "Family", "Format", "ShardSpec", "TFRecord", "WebDataset",
    "Zarr", "by_count", "by_size", "parse_bytes", "read_manifest", "register_format",
]  # fmt: skip
