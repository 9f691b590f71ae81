"""Sharding: samples into numbered shard files by count and by bytes.

A build cuts each split into groups of records before it runs (:mod:`nishard.builder.planning`),
a group being one shard in every format; byte limits are planned from
:func:`sample_bound`, an upper bound of a sample's bytes known from its products' shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import ml_dtypes
import numpy as np

from ..checksums import sha256_file
from ..units import parse_bytes
from .storage import Storage, storage_for


@dataclass(frozen=True)
class ShardSpec:
    """When to start a new shard: after ``max_samples``, or before passing ``max_bytes``.

    ``max_bytes`` bounds the finished file, format overhead included. A sample that alone
    exceeds it gets a shard of its own rather than an error.
    """

    max_samples: int | None = None
    max_bytes: int | None = 512 * 10**6

    def __post_init__(self) -> None:
        if self.max_samples is None and self.max_bytes is None:
            raise ValueError("a shard limit: max_samples, max_bytes or both")
        for name in ("max_samples", "max_bytes"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict:
        return {"max_samples": self.max_samples, "max_bytes": self.max_bytes}


def by_count(n: int) -> ShardSpec:
    """Shards of at most ``n`` samples."""
    return ShardSpec(max_samples=n, max_bytes=None)


def by_size(size: int | str) -> ShardSpec:
    """Shards of at most ``size`` bytes (``"512MB"``, ``"1GiB"`` or an int)."""
    return ShardSpec(max_samples=None, max_bytes=parse_bytes(size))


class ShardFile(Protocol):
    """An open shard. It may also have a ``sha256`` attribute, the hex digest of the file
    it computed while writing it (set by ``close``); otherwise the file is read back."""

    def add(self, key: str, fields: dict[str, bytes]) -> None: ...

    def close(self) -> None: ...


class Format(Protocol):
    """What a format gives the shard writer; see :class:`~nishard.archives.WebDataset`."""

    name: ClassVar[str]
    extension: ClassVar[str]

    def to_dict(self) -> dict: ...

    def open(self, path: str) -> ShardFile: ...

    def encode(self, key: str, products: dict, meta: dict) -> dict[str, bytes]: ...

    def sample_size(self, key: str, fields: dict[str, bytes]) -> int: ...

    def file_size(self, content: int) -> int: ...


#: Formats whose ``sample_size`` is the exact number of bytes a sample adds, so that the
#: running total is each sample's byte offset (its first tar header, its TFRecord length
#: field); other formats get no offsets.
BYTE_EXACT = ("webdataset", "tfrecord")


@dataclass(frozen=True)
class ShardInfo:
    """One finished shard, as the manifest lists it."""

    name: str
    split: str
    format: str
    samples: int
    bytes: int
    sha256: str
    keys: tuple[str, ...]
    #: Byte offset of each sample in the file, for formats whose sizes are exact.
    offsets: tuple[int, ...] | None = None
    #: The archive family (see :mod:`.families`) and its products; None: every product.
    family: str | None = None
    products: tuple[str, ...] | None = None
    #: Bytes of each sample: exactly those from its offset for byte-exact formats, the
    #: format's estimate (payload and overhead) for the others. None in a v1 manifest.
    sizes: tuple[int, ...] | None = None
    #: CRC-32C of each sample's bytes (from its offset, ``sizes`` long): byte-exact formats.
    crc32c: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        entry = {
            "name": self.name, "split": self.split, "format": self.format,
            "samples": self.samples, "bytes": self.bytes, "sha256": self.sha256,
            "keys": list(self.keys),
        }  # fmt: skip
        for name in ("offsets", "sizes", "crc32c"):
            if getattr(self, name) is not None:
                entry[name] = list(getattr(self, name))
        if self.family is not None:
            entry["family"] = self.family
            entry["products"] = list(self.products or ())
        return entry

    @classmethod
    def from_dict(cls, entry: dict) -> ShardInfo:
        lists = {
            name: None if entry.get(name) is None else tuple(entry[name])
            for name in ("offsets", "products", "sizes", "crc32c")
        }
        return cls(
            **{k: entry[k] for k in ("name", "split", "format", "samples", "bytes", "sha256")},
            keys=tuple(entry["keys"]),
            family=entry.get("family"),
            **lists,
        )


#: Products of up to this many bytes are bounded by encoding zeros of their shape: the
#: formats' sizes do not depend on the values, so the bound is exact.
EXACT_BELOW = 1 << 20

#: Larger ones are encoded as one element of their dtype and their other bytes added with
#: this margin per product and per dimension, for what grows with the digits of a shape
#: and the length of the data: a ``.npy`` header (padded to 64 bytes), a tar member's
#: padding (511 bytes at most), TFRecord's varint lengths and ``/shape`` values, Zarr's
#: ``zarr.json``.
MARGIN, MARGIN_PER_DIM = 1024, 64


def sample_bound(
    fmt: Format, key: str, products: Mapping[str, tuple[tuple[int, ...], str]], meta: dict
) -> int:
    """An upper bound of the bytes a sample adds to a shard of ``fmt`` (``sample_size``).

    Parameters
    ----------
    fmt : Format
    key : str
        The sample key (its length counts: member names, ``__key__``).
    products : mapping of str to (shape, dtype)
        Upper bounds of the products' shapes (as a plan infers them from headers), and
        their dtypes' names.
    meta : dict
        The record's metadata, encoded as the format encodes it (the JSON member).

    Raises
    ------
    ValueError, TypeError
        What ``fmt.encode`` raises for such a sample: it cannot be written.
    """
    stand_ins: dict[str, np.ndarray] = {}
    extra = 0
    for name, (shape, dtype) in products.items():
        dt = _dtype(dtype)
        size = math.prod(shape) * dt.itemsize
        if size <= EXACT_BELOW:
            stand_ins[name] = np.zeros(shape, dt)
        else:  # a gigabyte of zeros to measure is no bound worth its time
            stand_ins[name] = np.zeros((1,) * len(shape), dt)
            extra += size - dt.itemsize + MARGIN + MARGIN_PER_DIM * len(shape)
    return fmt.sample_size(key, fmt.encode(key, stand_ins, meta)) + extra


def _dtype(name: str) -> np.dtype:
    scalar = getattr(ml_dtypes, str(name), None)  # bfloat16, float8...: ml_dtypes' names
    return np.dtype(scalar if isinstance(scalar, type) else name)


def shard_name(split: str, index: int, fmt: Format, family: str | None = None) -> str:
    """``train-000000.tar``, or ``train-<family>-000000.tar`` for a family's shards."""
    middle = "" if family is None else f"-{family}"
    return f"{split}{middle}-{index:06d}{fmt.extension}"


class ShardWriter:
    """Writes samples in one format to ``<split>-000000<ext>``, ``<split>-000001<ext>``, ...

    A shard is written under a temporary name, synced to disk and renamed when complete,
    so a reader (or a crash, even of the machine) never sees half a shard under a final
    name; :meth:`abort` removes the unfinished one.

    The sync and the rename run on a background thread while the next shard is written:
    syncing waits for the disk (a second or more per 512 MB), time the writer would
    otherwise spend idle while samples wait for it. One shard at most is in flight;
    :meth:`close` and :meth:`abort` wait for it, and an error it met is raised by the next
    call.

    Parameters
    ----------
    folder : Path or Storage
        Where the shards go (:func:`~nishard.archives.storage.storage_for`); each is
        written at the storage's staging path and published under its name.
    split : str
    fmt : Format
    spec : ShardSpec or None
        When to start a new shard as samples arrive; None: never (one shard of every
        sample, the planned group of a build).
    finished : sequence of ShardInfo
        Shards a previous, interrupted build finished: numbering goes on after them.
    on_finish : callable, optional
        Called with each shard's info as soon as its last sample is written, in the
        writer's thread (before any later sample is added); it may return a function of
        no arguments, which is called right after the shard's rename, from the
        background thread (to journal the shard only once it is on disk).
    family : str, optional
        The archive family: shards named ``<split>-<family>-000000<ext>``.
    products : tuple of str, optional
        The products the family's samples hold, listed in each shard's info.
    first : int
        The number of the writer's first shard (a build's group ``k`` is shard ``k``).
    """

    def __init__(
        self,
        folder: Path,
        split: str,
        fmt: Format,
        spec: ShardSpec | None,
        finished: Sequence[ShardInfo] = (),
        on_finish: Callable[[ShardInfo], None] | None = None,
        family: str | None = None,
        products: tuple[str, ...] | None = None,
        first: int = 0,
    ):
        self.storage = storage_for(folder)
        self.split, self.fmt, self.spec = split, fmt, spec
        self.family, self.products, self.first = family, products, first
        self.shards: list[ShardInfo] = list(finished)
        self.on_finish = on_finish
        self._syncing: Future | None = None
        self._syncer: ThreadPoolExecutor | None = None
        self._exact = fmt.name in BYTE_EXACT
        self._open: ShardFile | None = None
        self._keys: list[str] = []
        self._offsets: list[int] = []
        self._sizes: list[int] = []
        self._content = 0

    @property
    def done(self) -> int:
        """Samples in finished shards."""
        return sum(info.samples for info in self.shards)

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        incoming = self.fmt.sample_size(key, fields)
        if self._open is not None and self._full(incoming):
            self._finish()
        if self._open is None:
            self._open = self.fmt.open(str(self._temporary()))
            self._keys, self._offsets, self._sizes, self._content = [], [], [], 0
        self._open.add(key, fields)
        self._keys.append(key)
        self._offsets.append(self._content)
        self._sizes.append(incoming)
        self._content += incoming

    def finish(self) -> None:
        """Finish the open shard; it is synced and published in the background."""
        if self._open is not None:
            self._finish()

    def close(self) -> list[ShardInfo]:
        """Finish the last shard and wait until every shard is on disk under its name;
        the list of every shard written."""
        self.finish()
        self._wait()
        return self.shards

    def abort(self) -> None:
        """Drop the unfinished shard; finished ones stay (the one being synced is let
        finish: it is complete)."""
        if self._open is not None:
            try:
                self._open.close()
            except OSError:  # a full disk fails the last flush too: the file goes anyway
                pass
            self._open = None
            self._temporary().unlink(missing_ok=True)
        try:
            self._wait()
        except Exception:  # aborting because of another error: that one is raised
            pass

    def _full(self, incoming: int) -> bool:
        spec = self.spec
        if spec is None:
            return False
        if spec.max_samples is not None and len(self._keys) >= spec.max_samples:
            return True
        if spec.max_bytes is None:
            return False
        return self.fmt.file_size(self._content + incoming) > spec.max_bytes

    def _name(self) -> str:
        return shard_name(self.split, self.first + len(self.shards), self.fmt, self.family)

    def _temporary(self) -> Path:
        return self.storage.staging(self._name())

    def _wait(self) -> None:
        """Wait for the shard in flight; raise what it met."""
        syncing, self._syncing = self._syncing, None
        try:
            if syncing is not None:
                syncing.result()
        finally:
            if self._syncer is not None:
                self._syncer.shutdown(wait=True)
                self._syncer = None

    def _finish(self) -> None:
        shard, self._open = self._open, None
        shard.close()
        name, temporary = self._name(), self._temporary()
        crcs = tuple(getattr(shard, "crc32c", ()))
        info = ShardInfo(
            name=name,
            split=self.split,
            format=self.fmt.name,
            samples=len(self._keys),
            bytes=temporary.stat().st_size,
            sha256=getattr(shard, "sha256", None) or sha256_file(temporary),
            keys=tuple(self._keys),
            offsets=tuple(self._offsets) if self._exact else None,
            family=self.family,
            products=self.products,
            sizes=tuple(self._sizes),
            crc32c=crcs if self._exact and len(crcs) == len(self._keys) else None,
        )
        self.shards.append(info)
        then = self.on_finish(info) if self.on_finish is not None else None
        if self._syncing is not None:  # one in flight at most: dirty pages stay bounded
            self._syncing.result()
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(1, thread_name_prefix="nishard-sync")
        self._syncing = self._syncer.submit(_publish, self.storage, temporary, name, then)


def _publish(storage: Storage, temporary: Path, name: str, then: Callable[[], None] | None) -> None:
    """Publish a finished shard under its name (locally: synced and renamed), then ``then``."""
    storage.publish(temporary, name)
    if then is not None:
        then()
