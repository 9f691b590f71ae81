"""The manifest: what a build wrote, from what, how, and what it refused.

Format version 2 (docs/manifest.md): v1 plus a checksum of the manifest's own content,
each sample's size (every format) and CRC-32C (tar and TFRecord), per-record QC
statistics and the class maps of text variables. A build's shard tasks each give a
:class:`PartialManifest`; :func:`merge` joins them, and :func:`write_manifest` writes the
result last, once every shard it lists is in place: the manifest is the commit point.
:func:`read_manifest` reads v1 manifests too, upgraded in memory (:func:`upgrade`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from .shards import ShardInfo
from .stats import Moments, load_block, save_block
from .storage import Storage, publishing, storage_for

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
#: The versions :func:`read_manifest` reads (older ones are upgraded in memory).
READABLE = (1, 2)

#: Distributions whose versions go into the manifest: those that compute what is written
#: (crc32c frames TFRecords; h5py and zarr write their formats) or read the inputs.
_VERSIONED = ("nishard", "numpy", "scipy", "pandas", "nibabel", "nilearn", "webdataset",
              "ml_dtypes", "crc32c", "h5py", "zarr")  # fmt: skip


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape the output."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


class KeyStats:
    """dtype and shape of each product over the samples written.

    An axis whose length varies between samples (run lengths, say) becomes None; a key
    whose dtype varies becomes ``"mixed"``.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, list[int | None]]] = {}

    def update(self, products: dict[str, np.ndarray]) -> None:
        for name, (dtype, shape) in describe(products).items():
            self.add(name, dtype, shape)

    def add(self, name: str, dtype: str, shape: list[int]) -> None:
        """Count one product of this dtype and shape (as :func:`describe` gives them)."""
        if name not in self._seen:
            self._seen[name] = (dtype, list(shape))
            return
        old_dtype, old_shape = self._seen[name]
        if len(old_shape) != len(shape):
            merged: list[int | None] = [None] * max(len(old_shape), len(shape))
        else:
            merged = [a if a == b else None for a, b in zip(old_shape, shape, strict=True)]
        self._seen[name] = (old_dtype if old_dtype == dtype else "mixed", merged)

    def to_dict(self) -> dict:
        return {k: {"dtype": d, "shape": s} for k, (d, s) in sorted(self._seen.items())}


def describe(products: dict[str, np.ndarray]) -> dict[str, list]:
    """``[dtype, shape]`` of each product, JSON-able (for :class:`KeyStats` and journals)."""
    return {name: [str(array.dtype), list(array.shape)] for name, array in products.items()}


@dataclass(frozen=True)
class PartialManifest:
    """What one shard task wrote: one group of one split's records, in every format.

    The unit a build's tasks hand back, on one machine or many: :func:`merge` joins them
    into the manifest without reading a sample. ``moments`` (per product, over the
    samples written) travel beside the JSON in an ``.npz`` (:meth:`save`).

    Attributes
    ----------
    split : str
    group : int
        The group's number within its split (see :mod:`nishard.builder.planning`).
    records : tuple of str
        Every record of the group, in writing order: written or quarantined.
    written : int
        Samples written (the records not quarantined).
    shards : tuple of ShardInfo
        The group's finished shards, every format and family.
    keys : dict
        dtype and shape of each product (as :meth:`KeyStats.to_dict` gives them).
    inputs : dict
        sha256 of each input file read, by its path relative to the dataset root.
    quarantine : tuple of dict
        One entry per record refused: record, file, expected, found.
    warnings : tuple of dict
        What workers noticed without refusing the record: record, file, warning.
    qc : dict
        Per-record QC statistics, by record id (filled by the workers; may be empty).
    moments : dict of str to Moments
        Per product, over the group's written samples (first format's samples).
    """

    split: str
    group: int
    records: tuple[str, ...]
    written: int
    shards: tuple[ShardInfo, ...] = ()
    keys: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    quarantine: tuple[dict, ...] = ()
    warnings: tuple[dict, ...] = ()
    qc: dict = field(default_factory=dict)
    moments: dict[str, Moments] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """``<split>-<group>``, the stem of its files."""
        return f"{self.split}-{self.group:06d}"

    def to_dict(self) -> dict:
        """JSON-able, without the moments (:meth:`save` writes those beside it)."""
        return {
            "format_version": FORMAT_VERSION, "split": self.split, "group": self.group,
            "records": list(self.records), "written": self.written,
            "shards": [info.to_dict() for info in self.shards], "keys": self.keys,
            "inputs": dict(sorted(self.inputs.items())), "quarantine": list(self.quarantine),
            "warnings": list(self.warnings), "qc": self.qc,
        }  # fmt: skip

    @classmethod
    def from_dict(
        cls, entry: Mapping, moments: dict[str, Moments] | None = None
    ) -> PartialManifest:
        return cls(
            split=entry["split"], group=int(entry["group"]), records=tuple(entry["records"]),
            written=int(entry["written"]),
            shards=tuple(ShardInfo.from_dict(s) for s in entry["shards"]), keys=entry["keys"],
            inputs=dict(entry["inputs"]), quarantine=tuple(entry["quarantine"]),
            warnings=tuple(entry.get("warnings", ())), qc=dict(entry.get("qc", {})),
            moments=moments or {},
        )  # fmt: skip

    def save(self, folder: Path) -> Path:
        """Write ``<name>.json`` (and ``<name>.stats.npz``) into ``folder``, atomically;
        the JSON's path. The JSON goes last: a partial is there only when complete."""
        folder.mkdir(parents=True, exist_ok=True)
        save_block(folder / f"{self.name}.stats.npz", self.moments)
        path = folder / f"{self.name}.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        os.replace(temporary, path)
        return path

    @classmethod
    def load(cls, path: Path) -> PartialManifest:
        """Read what :meth:`save` wrote."""
        entry = json.loads(path.read_text())
        return cls.from_dict(entry, load_block(path.with_name(f"{path.stem}.stats.npz")))


@dataclass(frozen=True)
class Merged:
    """Partial manifests joined (:func:`merge`): what :func:`build_manifest` takes."""

    shards: list[ShardInfo]
    keys: KeyStats
    inputs: dict[str, str]
    quarantine: list[dict]
    written: dict[str, int]
    moments: dict[str, dict[str, Moments]]
    qc: dict[str, dict]
    warnings: list[dict] = field(default_factory=list)


def merge(
    partials: Iterable[PartialManifest], splits: Sequence[str], order: Sequence[str]
) -> Merged:
    """Join the partial manifests of a build: pure, no sample read.

    Shards are listed by split (in ``splits`` order), then by group, as each task listed
    its own (format by format); quarantine entries in the records' writing ``order``;
    statistics merged exactly (Chan et al.'s pairwise update, as within a task).

    Raises
    ------
    ValueError
        When two partials are the same group, or a partial's split is not in ``splits``.
    """
    by_group: dict[tuple[str, int], PartialManifest] = {}
    for part in partials:
        if part.split not in splits:
            raise ValueError(
                f"partial manifest {part.name}: split {part.split!r} is not one of {list(splits)}"
            )
        if (part.split, part.group) in by_group:
            raise ValueError(f"two partial manifests for group {part.name}")
        by_group[(part.split, part.group)] = part
    rank = {name: i for i, name in enumerate(splits)}
    ordered = sorted(by_group.values(), key=lambda p: (rank[p.split], p.group))
    keys = KeyStats()
    inputs: dict[str, str] = {}
    written = dict.fromkeys(splits, 0)
    moments: dict[str, dict[str, Moments]] = {name: {} for name in splits}
    qc: dict[str, dict] = {}
    for part in ordered:
        for name, entry in part.keys.items():
            keys.add(name, entry["dtype"], entry["shape"])
        inputs |= part.inputs
        written[part.split] += part.written
        qc |= part.qc
        total = moments[part.split]
        for name, m in part.moments.items():
            if name in total:
                total[name].merge(m)
            else:
                total[name] = Moments.from_arrays(m.to_arrays())  # a copy: merge mutates
    position = {record: i for i, record in enumerate(order)}

    def in_order(entries: Iterable[dict]) -> list[dict]:
        return sorted(entries, key=lambda entry: position.get(entry["record"], len(position)))

    return Merged(
        shards=[info for part in ordered for info in part.shards], keys=keys,
        inputs=dict(sorted(inputs.items())),
        quarantine=in_order(entry for part in ordered for entry in part.quarantine),
        written=written, moments=moments, qc=qc,
        warnings=in_order(entry for part in ordered for entry in part.warnings),
    )  # fmt: skip


def build_manifest(
    *,
    spec: dict,
    shards: list[ShardInfo],
    keys: KeyStats,
    inputs: dict[str, str],
    quarantine: list[dict],
    dropped: list[dict],
    n_records: int,
    splits: dict | None = None,
    stats: dict | None = None,
    indexes: dict | None = None,
    classes: dict | None = None,
    qc: dict | None = None,
    warnings: list[dict] | None = None,
) -> dict:
    """Assemble the manifest's content (pure: no clock, no host names, so builds compare).

    ``stats`` and ``indexes`` are per split: the summary statistics of each key with the
    side file of per-feature vectors (see :func:`nishard.builder.driver.write`), and the
    wids shard index of its tar shards. ``classes`` maps each text variable to its values
    (a label's index is its place in the list); ``qc`` holds per-record statistics;
    ``warnings`` what workers noticed in records they wrote or refused. The
    result carries its own checksum (:func:`seal`).
    """
    return seal(
        {
            "format_version": FORMAT_VERSION,
            "versions": versions(),
            "spec": spec,
            "records": {
                "located": n_records + len(dropped),
                "dropped": len(dropped),
                "quarantined": len(quarantine),
                "written": n_records - len(quarantine),
            },
            "keys": keys.to_dict(),
            "shards": [shard.to_dict() for shard in shards],
            "inputs": dict(sorted(inputs.items())),
            "quarantine": quarantine,
            "warnings": warnings or [],
            "dropped": dropped,
            "splits": splits or {},
            "stats": stats or {},
            "indexes": indexes or {},
            "classes": classes or {},
            "qc": qc or {},
        }
    )


def content_checksum(manifest: Mapping) -> str:
    """``sha256:<hex>`` of the manifest without its ``checksum`` key, as canonical JSON:
    sorted keys, no whitespace, ASCII (``json.dumps(..., sort_keys=True,
    separators=(",", ":"))``)."""
    content = {k: v for k, v in manifest.items() if k != "checksum"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def seal(manifest: dict) -> dict:
    """The manifest with its content checksum (a copy; the checksum key replaced)."""
    sealed = {k: v for k, v in manifest.items() if k != "checksum"}
    sealed["checksum"] = content_checksum(sealed)
    return sealed


def check_checksum(manifest: Mapping) -> str | None:
    """Why the manifest's content does not match its checksum, or None when it does
    (a v1 manifest, which has none, is reported as such)."""
    stored = manifest.get("checksum")
    if stored is None:
        version = manifest.get("upgraded_from", "?")
        return f"format version {version} manifest: no content checksum to check"
    found = content_checksum(manifest)
    if stored != found:
        return (
            f"content checksum is {found}, the manifest says {stored}: "
            "it was changed after it was written"
        )
    return None


def upgrade(manifest: dict) -> dict:
    """A manifest as version 2, whatever version it was written in (a copy for v1).

    A v1 manifest gains empty ``classes``, ``qc`` and ``warnings``, ``upgraded_from: 1`` and no
    ``checksum``; its shards keep what v1 had (``offsets`` for tar and TFRecord; no
    ``sizes``, no ``crc32c``: readers check what they can).

    Raises
    ------
    ValueError
        For a version this nishard cannot read (a newer one: upgrade nishard), or a
        manifest that is not a JSON object.
    """
    if not isinstance(manifest, Mapping):
        raise ValueError(f"a manifest is a JSON object, found {type(manifest).__name__}")
    version = manifest.get("format_version", 1)  # hand-made ones may lack it: the first
    if version == FORMAT_VERSION:
        return manifest
    if version not in READABLE:
        raise ValueError(
            f"manifest format version {version!r}: this nishard reads versions "
            f"{', '.join(map(str, READABLE))} (a newer nishard wrote it?)"
        )
    upgraded = dict(manifest)
    upgraded.update(format_version=FORMAT_VERSION, upgraded_from=version)
    upgraded.setdefault("classes", {})
    upgraded.setdefault("qc", {})
    upgraded.setdefault("warnings", [])
    return upgraded


def write_manifest(where: str | os.PathLike | Storage, manifest: dict) -> str:
    """Publish ``manifest.json`` atomically, sealed (:func:`seal`), with sorted keys so
    equal content gives equal bytes. Call it last: it commits the build (on an object
    store, a reader that finds the manifest finds every shard it lists).

    Parameters
    ----------
    where : path or Storage
        The shard folder (:func:`~nishard.archives.storage.storage_for`).
    manifest : dict

    Returns
    -------
    str
        Where the manifest is (a path, later a URL).
    """
    storage = storage_for(where)
    text = json.dumps(seal(manifest), indent=2, sort_keys=True, allow_nan=False)
    with publishing(storage, MANIFEST) as temporary:
        temporary.write_text(text + "\n")
    return storage.join(MANIFEST)


def read_manifest(where: str | os.PathLike | Storage) -> dict:
    """Read the manifest of a shard folder, as version 2 (:func:`upgrade`).

    Parameters
    ----------
    where : path or Storage
        The shard folder, the ``manifest.json`` in it, or its storage.

    Raises
    ------
    MissingFileError
        No ``manifest.json`` there (a ``FileNotFoundError`` naming the folder).
    """
    return upgrade(json.loads(storage_for(where).read_bytes(MANIFEST)))
