"""The manifest: what a build wrote, from what, how, and what it refused."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from .shards import ShardInfo

MANIFEST = "manifest.json"
FORMAT_VERSION = 1

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
) -> dict:
    """Assemble the manifest's content (pure: no clock, no host names, so builds compare).

    ``stats`` and ``indexes`` are per split: the summary statistics of each key with the
    side file of per-feature vectors (see :func:`nishard.builder.driver.write`), and the
    wids shard index of its tar shards.
    """
    return {
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
        "dropped": dropped,
        "splits": splits or {},
        "stats": stats or {},
        "indexes": indexes or {},
    }


def write_manifest(folder: Path, manifest: dict) -> Path:
    """Write ``manifest.json`` atomically, with sorted keys so equal content gives equal bytes."""
    path = folder / MANIFEST
    temporary = folder / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(temporary, path)
    return path


def read_manifest(folder: str | Path) -> dict:
    """Read the manifest of a shard folder (or the manifest file itself)."""
    path = Path(folder)
    if path.is_dir():
        path = path / MANIFEST
    return json.loads(path.read_text())
