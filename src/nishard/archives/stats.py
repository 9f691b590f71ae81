"""Per-feature mean and std of each product, streamed while writing, for normalisation.

Definition: a product of shape ``(..., features)`` contributes every index of its leading
axes as one observation of its ``features`` values: a ``(time, voxels)`` array gives
``time`` observations of ``voxels`` features, a ``(regions,)`` vector one observation of
``regions`` features, a 0-d scalar one observation of one feature. Statistics reduce
over all axes but the last and over the samples of a split: ``mean[f]`` and
``std[f]`` (population, ddof=0) of feature ``f``, in float64.

Memory is O(features): each sample's moments are computed in chunks of rows and merged
with Chan et al.'s parallel update, never keeping the data. The merge order is fixed
(rows, then samples within a block, then blocks in order), so equal inputs give equal
bits however a build was interrupted and resumed.

A key whose feature count varies between samples, or whose dtype is not real numbers,
gets no statistics; the manifest says why.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .storage import LocalStorage, publishing

#: Elements per chunk of float64 rows: bounds the temporary copy a sample needs (8 MB).
CHUNK = 1 << 20

#: The zip timestamp of every member, so that equal statistics give equal bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class Moments:
    """Count, per-feature mean and sum of squared deviations (``m2``) of one key.

    Attributes
    ----------
    count : int
        Observations (rows) seen.
    samples : int
        Samples seen.
    mean, m2 : ndarray or None
        float64 vectors of length ``features``; None before the first sample.
    low, high : float
        Smallest and largest value seen.
    skipped : str or None
        Why there are no statistics (the feature count varies...); sticky.
    """

    count: int = 0
    samples: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    low: float = np.inf
    high: float = -np.inf
    skipped: str | None = None

    def observe(self, array: np.ndarray) -> None:
        """Add one sample's observations."""
        if self.skipped is not None:
            return
        array = np.asarray(array)
        if not _real(array.dtype):
            self.skipped = f"dtype {array.dtype} is not real numbers"
            return
        rows = array.reshape(-1, array.shape[-1] if array.ndim else 1)
        if rows.shape[0] == 0 or rows.shape[1] == 0:
            self.samples += 1
            return
        step = max(1, CHUNK // rows.shape[1])
        sample = Moments()
        for start in range(0, rows.shape[0], step):
            sample._merge_chunk(rows[start : start + step].astype(np.float64))
        sample.samples = 1
        self.merge(sample)

    def merge(self, other: Moments) -> None:
        """Fold ``other`` (later observations) into these, Chan et al.'s update."""
        if self.skipped is not None:
            return
        if other.skipped is not None:
            self.skipped = other.skipped
            return
        self.samples += other.samples
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean.copy(), other.m2.copy()
            self.low, self.high = other.low, other.high
            return
        if self.mean.shape != other.mean.shape:
            self.skipped = (
                f"the number of features (last axis) varies: {self.mean.size} and {other.mean.size}"
            )
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / total)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / total)
        self.count = total
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)

    def _merge_chunk(self, rows: np.ndarray) -> None:
        mean = rows.mean(axis=0)
        chunk = Moments(
            count=rows.shape[0],
            mean=mean,
            m2=((rows - mean) ** 2).sum(axis=0),
            low=float(rows.min()),
            high=float(rows.max()),
        )
        self.merge(chunk)

    @property
    def std(self) -> np.ndarray | None:
        return None if self.m2 is None else np.sqrt(self.m2 / self.count)

    def summary(self) -> dict:
        """Counts and the mean, std, min and max over every value of the key (JSON-able)."""
        if self.skipped is not None:
            return {"samples": self.samples, "skipped": self.skipped}
        if self.count == 0:
            return {"samples": self.samples, "count": 0, "features": None}
        features = self.mean.size
        grand = float(self.mean.mean())
        # Every feature has `count` observations: the total m2 is the within-feature m2
        # plus the spread of the feature means.
        m2 = float(self.m2.sum()) + self.count * float(((self.mean - grand) ** 2).sum())
        return {
            "samples": self.samples,
            "count": self.count,
            "features": features,
            "mean": _number(grand),
            "std": _number(np.sqrt(m2 / (self.count * features))),
            "min": _number(self.low),
            "max": _number(self.high),
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Exact state, for a resume journal (see :meth:`from_arrays`)."""
        scalars = np.array([self.count, self.samples], dtype=np.int64)
        arrays = {"counts": scalars, "range": np.array([self.low, self.high])}
        if self.mean is not None:
            arrays |= {"mean": self.mean, "m2": self.m2}
        if self.skipped is not None:
            arrays["skipped"] = np.frombuffer(self.skipped.encode(), dtype=np.uint8)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Moments:
        skipped = arrays.get("skipped")
        return cls(
            count=int(arrays["counts"][0]),
            samples=int(arrays["counts"][1]),
            mean=arrays.get("mean"),
            m2=arrays.get("m2"),
            low=float(arrays["range"][0]),
            high=float(arrays["range"][1]),
            skipped=None if skipped is None else skipped.tobytes().decode(),
        )


@dataclass
class SplitStats:
    """The moments of one split, kept in blocks (one per shard of the split's first
    format) so that a resumed build merges exactly what an uninterrupted one did."""

    blocks: list[dict[str, Moments]] = field(default_factory=list)
    current: dict[str, Moments] = field(default_factory=dict)

    def observe(self, products: dict[str, np.ndarray]) -> None:
        """Count one sample's products."""
        self.add(sample_moments(products))

    def add(self, moments: dict[str, Moments]) -> None:
        """Count one sample given its products' moments (from :func:`sample_moments`)."""
        for name, sample in moments.items():
            self.current.setdefault(name, Moments()).merge(sample)

    def close_block(self) -> dict[str, Moments]:
        """End the current block (its shard is finished); the block."""
        block, self.current = self.current, {}
        self.blocks.append(block)
        return block

    def total(self) -> dict[str, Moments]:
        """The moments of every block, merged in order (the open block last)."""
        merged: dict[str, Moments] = {}
        for block in [*self.blocks, self.current]:
            for name in sorted(block):
                merged.setdefault(name, Moments()).merge(block[name])
        return dict(sorted(merged.items()))


def sample_moments(products: dict[str, np.ndarray]) -> dict[str, Moments]:
    """The moments of each product of one sample, to merge into a split's with
    :meth:`SplitStats.add`.

    A pure function of the arrays, so that a worker process can compute it where it made
    the products (see :mod:`nishard.workflow.executors`); merging its result gives the
    same bits as observing the arrays in the writer. Each key's entry depends on that
    key's array alone.

    Parameters
    ----------
    products : dict of str to ndarray

    Returns
    -------
    dict of str to Moments
        One sample's observations per key (``samples == 1``).
    """
    moments = {}
    for name, array in products.items():
        moments[name] = Moments()
        moments[name].observe(array)
    return moments


def save_block(path: Path, block: dict[str, Moments]) -> None:
    """Write a block's exact state (see :func:`load_block`) to ``path``."""
    arrays = {f"{name}/{k}": v for name, m in block.items() for k, v in m.to_arrays().items()}
    write_npz(path, arrays)


def load_block(path: Path) -> dict[str, Moments]:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for member, value in arrays.items():
        name, part = member.rsplit("/", 1)
        grouped.setdefault(name, {})[part] = value
    return {name: Moments.from_arrays(parts) for name, parts in grouped.items()}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` that ``np.load`` reads, with fixed timestamps: equal arrays, equal bytes.

    ``np.savez`` stamps each member with the current time. Published whole
    (:func:`~.storage.publishing`) or absent.
    """
    with (
        publishing(LocalStorage(path.parent), path.name) as temporary,
        zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive,
    ):
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]),
                                      allow_pickle=False)  # fmt: skip
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def stats_arrays(moments: dict[str, Moments]) -> dict[str, np.ndarray]:
    """The per-feature vectors of a split's side file: ``<key>.mean`` and ``<key>.std``."""
    arrays = {}
    for name, m in moments.items():
        if m.skipped is None and m.mean is not None:
            arrays[f"{name}.mean"], arrays[f"{name}.std"] = m.mean, m.std
    return arrays


def _real(dtype: np.dtype) -> bool:
    if dtype.kind in "biuf":
        return True
    return dtype.kind == "V" and dtype.names is None and dtype.type.__module__ == "ml_dtypes"


def _number(value: float) -> float | None:
    """A JSON number, or None for NaN and infinities (the manifest is strict JSON)."""
    value = float(value)
    return value if np.isfinite(value) else None
