"""Per-feature normalisation with the statistics a build stored: ``(x - mean) / std``.

The writer keeps, per split, the mean and std (ddof=0) of each key's last axis in
``<split>.stats.npz`` (see :mod:`nishard.archives.stats`). A model is normalised with the
training split's statistics whichever split it reads, so the statistics come from
``train`` when the manifest has it. A feature of zero std is only centred.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .catalog import Catalog
from .mirror import local_path


@dataclass(frozen=True)
class Normalizer:
    """float32 mean and std vectors of some keys, applied in place along the last axis."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self.mean)

    def apply(self, name: str, values: np.ndarray) -> None:
        """Normalise ``values`` (float32, last axis the features) in place."""
        values -= self.mean[name]
        values /= self.std[name]


def load_normalizer(
    catalog: Catalog, normalize: bool | Sequence[str], split: str | None = None
) -> Normalizer | None:
    """The statistics of ``normalize``'s keys (True: every key read that has them).

    Parameters
    ----------
    catalog : Catalog
    normalize : bool or sequence of str
    split : str, optional
        Whose statistics: default ``train`` when the manifest has them, else the split
        read.

    Raises
    ------
    KeyError
        A key asked for that is not read, or that has no statistics (the message says
        why the manifest has none, e.g. an integer dtype).
    """
    if normalize is False or (not isinstance(normalize, bool) and not list(normalize)):
        return None
    stats = catalog.manifest.get("stats", {})
    if split is None:
        split = "train" if stats.get("train", {}).get("file") else catalog.split
    entry = stats.get(split) or {}
    if not entry.get("file"):
        raise KeyError(f"{catalog.folder}: no statistics file for split {split!r}")
    with np.load(local_path(catalog.storage, entry["file"]), allow_pickle=False) as npz:
        vectors = {name: npz[name] for name in npz.files}
    names = (
        [k for k in catalog.keys if _floating(catalog, k) and f"{k}.mean" in vectors]
        if normalize is True
        else list(normalize)
    )
    mean, std = {}, {}
    for name in names:
        if name not in catalog.keys:
            raise KeyError(f"normalize {name!r}: it is not among the keys read {catalog.keys}")
        if f"{name}.mean" not in vectors:
            why = entry.get("keys", {}).get(name, {}).get("skipped", "not in the statistics file")
            raise KeyError(f"normalize {name!r}: split {split!r} has no statistics for it ({why})")
        mean[name] = vectors[f"{name}.mean"].astype(np.float32)
        scale = vectors[f"{name}.std"].astype(np.float32)
        std[name] = np.where(scale > 0, scale, np.float32(1))
    return Normalizer(mean, std)


def _floating(catalog: Catalog, name: str) -> bool:
    try:
        return np.dtype(catalog.specs[name].dtype).kind == "f"
    except TypeError:  # bfloat16 and other ml_dtypes names
        return catalog.specs[name].dtype.startswith(("bfloat", "float"))
