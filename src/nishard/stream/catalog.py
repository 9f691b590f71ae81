"""What a stream reads: one split's shards of one format, its keys, its sample numbering.

A :class:`Catalog` is built from the manifest alone (no shard is opened): the shards of
the split in manifest order, each with its sample count and the byte offset of each
sample, and the dtype and shape of every key. Sample ``i`` of the split is the ``i``-th
in that order, the numbering of the wids index (``<split>.wids.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..archives.manifest import MANIFEST, read_manifest
from ..archives.storage import HttpStorage, LocalStorage, S3Storage, Storage, storage_for
from ..errors import StorageError
from .mirror import ShardMirror, default_cache

#: Formats whose samples these readers locate by byte offset and read without a library.
STREAMABLE = ("webdataset", "tfrecord")


@dataclass(frozen=True)
class Shard:
    """One shard file: where it is, how many samples, where each begins (bytes).

    ``name`` is the file's name in the catalog's storage; ``path`` its local path (the
    shard folder's file), which the readers open.
    """

    path: Path
    samples: int
    bytes: int
    keys: tuple[str, ...]
    offsets: tuple[int, ...] | None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.path.name)


@dataclass(frozen=True)
class KeySpec:
    """A product as the manifest lists it: dtype name and shape (None: varies)."""

    dtype: str
    shape: tuple[int | None, ...]

    @property
    def fixed(self) -> bool:
        """Same shape in every sample: samples can be stacked into a batch."""
        return all(n is not None for n in self.shape)


@dataclass(frozen=True)
class Catalog:
    """The shards of one split in one format, and the keys to read from them.

    Build it with :func:`open_catalog`. ``storage`` is where the shards are (see
    :mod:`nishard.archives.storage`); ``folder`` is its local folder.
    """

    folder: Path
    split: str
    format: str
    shards: tuple[Shard, ...]
    keys: tuple[str, ...]
    specs: dict[str, KeySpec]
    manifest: dict
    storage: Storage | None = None

    def __post_init__(self) -> None:
        if self.storage is None:
            object.__setattr__(self, "storage", LocalStorage(self.folder))

    def __len__(self) -> int:
        return sum(s.samples for s in self.shards)

    @cached_property
    def counts(self) -> np.ndarray:
        """Samples per shard, in order."""
        return np.array([s.samples for s in self.shards], dtype=np.int64)

    @cached_property
    def ends(self) -> np.ndarray:
        """Split-wide number after each shard's last sample."""
        return np.cumsum(self.counts)

    @cached_property
    def starts(self) -> np.ndarray:
        """Split-wide number of each shard's first sample."""
        return self.ends - self.counts

    def locate(self, indices: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Shard and position within it of split-wide sample numbers."""
        indices = np.asarray(indices, dtype=np.int64)
        n = len(self)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            bad = indices[(indices < 0) | (indices >= n)][0]
            raise IndexError(f"sample {bad} of split {self.split!r}, which has {n} samples")
        shard = np.searchsorted(self.ends, indices, side="right")
        return shard, indices - self.starts[shard]

    @property
    def sample_bytes(self) -> float:
        """Mean bytes per sample in the shards (for sizing buffers)."""
        n = len(self)
        return sum(s.bytes for s in self.shards) / n if n else 0.0


def open_catalog(
    path: str | Path,
    keys: Sequence[str] | str | None = None,
    split: str | None = None,
    format: str | None = None,
    *,
    streamable: bool = True,
    cache: str | Path | None = None,
    cache_limit: int | None = None,
) -> Catalog:
    """The catalog of a shard folder's split.

    Parameters
    ----------
    path : str or Path
        The shard folder or its ``manifest.json``, local or an ``http(s)://`` URL (its
        shards then read through a local cache: :mod:`.mirror`).
    keys : sequence of str, or str, optional
        Products to read; default: every key of the manifest. An empty list reads none
        (keys and metadata only).
    split : str, optional
        Default: ``train`` when the manifest has it, else its only split.
    format : str, optional
        Default: ``webdataset`` when its shards are there, else the first format listed.
    streamable : bool
        Refuse formats other than tar and TFRecord (the fast readers' formats).
    cache, cache_limit : optional
        For a URL: the local cache folder (default :func:`.mirror.default_cache`) and
        the bytes it may hold (default: no limit).

    Raises
    ------
    FileNotFoundError
        No manifest in the folder.
    KeyError
        A key, split or format the manifest does not have; the message lists those it has.
    """
    storage, manifest = read_storage(path, cache, cache_limit)
    folder = storage.folder
    shards = manifest.get("shards", [])
    available = manifest.get("keys", {})
    keys = sorted(available) if keys is None else [keys] if isinstance(keys, str) else list(keys)
    missing = [k for k in keys if k not in available]
    if missing:
        raise KeyError(f"{folder}: no key {missing} in the shards; they hold {sorted(available)}")
    format = pick_format(folder, manifest, format, keys, streamable=streamable)
    if streamable and format not in STREAMABLE:
        raise KeyError(
            f"{folder}: the stream readers read {' and '.join(STREAMABLE)} shards, not "
            f"{format!r}; Stream.arrays() reads the others"
        )
    splits = splits_of(manifest, format)
    split = _default_split(folder, splits) if split is None else split
    if split not in splits:
        raise KeyError(f"{folder}: no split {split!r}; the manifest has {splits}")
    shards = [s for s in shards if s["format"] == format and s["split"] == split]
    family = pick_family(folder, shards, keys, sorted(available))
    chosen = tuple(
        Shard(
            name=s["name"],
            path=storage.path(s["name"]),
            samples=int(s["samples"]),
            bytes=int(s["bytes"]),
            keys=tuple(s.get("keys", ())),
            offsets=None if s.get("offsets") is None else tuple(s["offsets"]),
        )
        for s in shards
        if s.get("family") == family
    )
    specs = {k: KeySpec(available[k]["dtype"], tuple(available[k]["shape"])) for k in keys}
    return Catalog(folder, split, format, chosen, tuple(keys), specs, manifest, storage)


def pick_family(folder: Path, shards: list[dict], keys: list[str], every: list[str]) -> str | None:
    """The archive family (see :mod:`nishard.archives.families`) whose shards hold all of
    ``keys``: the narrowest (fewest bytes to read past), the one of every product on a tie."""
    families = families_of(shards, every)
    holding = sorted((f for f, held in families.items() if set(keys) <= held),
                     key=lambda f: (len(families[f]), f is not None, str(f)))  # fmt: skip
    if not holding:
        listed = {str(f): sorted(held) for f, held in families.items()}
        raise KeyError(f"{folder}: no family of shards holds all of {keys}; they hold {listed}")
    return holding[0]


def read_folder(path: str | Path | Storage) -> tuple[Path, dict]:
    """The shard folder of a folder or manifest path, and its manifest."""
    storage, manifest = read_storage(path)
    return storage.folder, manifest


def read_storage(
    path: str | Path | Storage, cache: str | Path | None = None, cache_limit: int | None = None
) -> tuple[LocalStorage | ShardMirror, dict]:
    """The storage of a shard folder, manifest path (any file names its folder), URL or
    storage, and its manifest. A remote folder's storage is a :class:`.mirror.ShardMirror`
    whose files are checked against this manifest as they arrive.

    Raises
    ------
    FileNotFoundError
        No manifest there.
    StorageError
        An object store the stream cannot read yet (``gs://``...).
    """
    storage = storage_for(path)
    if isinstance(storage, HttpStorage | S3Storage):
        manifest = read_manifest(storage)
        expected = {s["name"]: s for s in manifest.get("shards", [])}
        # The endpoint too: two stores may hold the same bucket and prefix.
        where = storage.url
        if isinstance(storage, S3Storage):
            where += f" {storage.endpoint}"
        folder = Path(cache) if cache is not None else default_cache(where)
        # No cache asked for: an epoch read by one process streams through memory.
        memory = cache is None and cache_limit is None
        return ShardMirror(storage, folder, expected, cache_limit, memory=memory), manifest
    if not isinstance(storage, LocalStorage):
        raise StorageError(f"{storage.url}: the stream reads local folders and HTTP(S) URLs")
    if storage.folder.is_file():  # a manifest under another name: its folder's
        storage = LocalStorage(storage.folder.parent)
    if storage.stat(MANIFEST) is None:
        raise FileNotFoundError(f"{storage.url}: no {MANIFEST}; is it a nishard shard folder?")
    return storage, read_manifest(storage)


def pick_format(
    folder: Path,
    manifest: dict,
    format: str | None,
    keys: Sequence[str] | None = None,
    *,
    streamable: bool = False,
) -> str:
    """``format``, checked; by default the first format, in order of preference, with a
    family of shards (:mod:`nishard.archives.families`) holding all of ``keys``.

    The preference: ``webdataset``, then (for the offset readers, ``streamable``) the
    other formats they read, then the manifest's order. So a folder whose products went
    to families of different formats (time series to tar, connectivity to TFRecord) is
    read by product key without naming a format. Without ``keys`` (or when no format holds
    them all: :func:`open_catalog` then says which holds what), the most preferred.

    Raises
    ------
    KeyError
        A ``format`` the manifest does not list, or ``keys`` that no family of one format
        holds together.
    """
    shards = manifest.get("shards", [])
    formats = list(dict.fromkeys(s["format"] for s in shards))
    if format is not None:
        if format not in formats:
            raise KeyError(f"{folder}: no {format!r} shards; the manifest lists {formats}")
        return format
    if not formats:
        raise KeyError(f"{folder}: the manifest lists no shards")
    ranked = sorted(formats, key=lambda f: (f != "webdataset", streamable and f not in STREAMABLE))
    if keys is None:
        return ranked[0]
    every = sorted(manifest.get("keys", {}))
    held = {f: families_of([s for s in shards if s["format"] == f], every) for f in ranked}
    for candidate in ranked:
        if any(set(keys) <= products for products in held[candidate].values()):
            return candidate
    listed = {f: {str(name): sorted(p) for name, p in fams.items()} for f, fams in held.items()}
    raise KeyError(
        f"{folder}: no family of shards holds all of {list(keys)}; by format and family "
        f"they hold {listed}: read fewer keys at a time (.keys(...))"
    )


def families_of(shards: list[dict], every: list[str]) -> dict[str | None, set[str]]:
    """The products each family of these shards holds (None: the family of every
    product)."""
    return {s.get("family"): set(s.get("products") or every) for s in shards}


def splits_of(manifest: dict, format: str) -> list[str]:
    """The splits of a format's shards, in manifest order."""
    return list(dict.fromkeys(
        s["split"] for s in manifest.get("shards", []) if s["format"] == format
    ))  # fmt: skip


def _default_split(folder: Path, splits: list[str]) -> str:
    if "train" in splits:
        return "train"
    if len(splits) == 1:
        return splits[0]
    raise KeyError(f"{folder}: several splits {splits} and none named 'train': choose one")
