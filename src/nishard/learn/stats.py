"""Running statistics per key: mean, variance, min and max per feature, mergeable.

:class:`RunningStats` extends the writer's :class:`~nishard.archives.stats.Moments`
(count, per-feature mean and sum of squared deviations, Chan et al.'s parallel merge)
with the per-feature minimum and maximum, so that the same numbers come from a build's
side file and from a pass over shards. Workers each fold their part and the parts are
merged: the merge is exact (Chan's update) and, in a fixed order, deterministic.
:func:`running_stats` streams shard folders (in parallel, one worker per folder) or any
iterable of samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..archives.stats import Moments


@dataclass
class RunningStats:
    """Per-feature count, mean, variance, minimum and maximum of one key.

    A sample of shape ``(..., features)`` adds every index of its leading axes as one
    observation of its features (the writer's definition).

    Attributes
    ----------
    moments : Moments
        Count, mean and ``m2`` (sum of squared deviations) per feature.
    minimum, maximum : ndarray or None
        Per feature; None before the first sample.
    """

    moments: Moments = field(default_factory=Moments)
    minimum: np.ndarray | None = None
    maximum: np.ndarray | None = None

    def update(self, array: np.ndarray) -> RunningStats:
        """Add one sample's observations; returns self."""
        array = np.asarray(array)
        self.moments.observe(array)
        if self.moments.skipped is not None:
            return self
        rows = array.reshape(-1, array.shape[-1] if array.ndim else 1)
        if rows.shape[0] == 0:
            return self
        low, high = rows.min(axis=0).astype(np.float64), rows.max(axis=0).astype(np.float64)
        self._fold(low, high)
        return self

    def _fold(self, low: np.ndarray, high: np.ndarray) -> None:
        if self.minimum is None:
            self.minimum, self.maximum = low, high
        elif self.minimum.shape == low.shape:
            self.minimum = np.minimum(self.minimum, low)
            self.maximum = np.maximum(self.maximum, high)

    def merge(self, other: RunningStats) -> RunningStats:
        """Fold in another worker's statistics (later observations); returns self."""
        self.moments.merge(other.moments)
        if other.minimum is not None and self.moments.skipped is None:
            self._fold(other.minimum, other.maximum)
        return self

    @property
    def count(self) -> int:
        return self.moments.count

    @property
    def samples(self) -> int:
        return self.moments.samples

    @property
    def mean(self) -> np.ndarray | None:
        return self.moments.mean

    def variance(self, ddof: int = 0) -> np.ndarray | None:
        """Per-feature variance (``ddof=1``: the unbiased estimate)."""
        m = self.moments
        if m.m2 is None or m.count - ddof <= 0:
            return None
        return m.m2 / (m.count - ddof)

    @property
    def std(self) -> np.ndarray | None:
        variance = self.variance()
        return None if variance is None else np.sqrt(variance)

    def summary(self) -> dict:
        """Counts and the statistics over every value of the key (JSON-able)."""
        return self.moments.summary()


def _fold_stream(samples: Iterable[dict], keys: Sequence[str] | None) -> dict[str, RunningStats]:
    stats: dict[str, RunningStats] = {}
    for sample in samples:
        names = keys or [k for k in sample if not str(k).startswith("__")]
        for name in names:
            stats.setdefault(name, RunningStats()).update(sample[name])
    return stats


def _folder_stats(folder: Path, keys, split, format) -> dict[str, RunningStats]:
    from ..stream import EVERY_SPLIT
    from ..stream import open as open_stream

    stream = open_stream(folder, EVERY_SPLIT if split is None else split, format=format)
    return _fold_stream((stream if keys is None else stream.keys(*keys)).arrays(), keys)


def running_stats(
    source: str | Path | Sequence[str | Path] | Iterable[dict],
    keys: Sequence[str] | None = None,
    split: str | None = None,
    *,
    format: str | None = None,
    jobs: int = 1,
) -> dict[str, RunningStats]:
    """Per-key running statistics of shard folders or of samples, in one pass.

    Parameters
    ----------
    source : path, sequence of paths, or iterable of dicts
        Shard folders (each streamed by ``nishard.stream.open(...).arrays()``), or samples as
        that function yields them.
    keys : sequence of str, optional
        Keys to summarise (default: every array of the samples).
    split : str, optional
        Only this split's shards.
    format : str, optional
        Which format's shards to read.
    jobs : int
        Folders read at once (processes); their statistics are merged in order.

    Returns
    -------
    dict
        Key to :class:`RunningStats`.
    """
    if isinstance(source, (str, Path)):
        source = [source]
    if isinstance(source, Sequence) and all(isinstance(s, (str, Path)) for s in source):
        folders = [Path(s) for s in source]
        if jobs > 1 and len(folders) > 1:
            from joblib import Parallel, delayed

            parts = Parallel(n_jobs=min(jobs, len(folders)))(
                delayed(_folder_stats)(f, keys, split, format) for f in folders
            )
        else:
            parts = [_folder_stats(f, keys, split, format) for f in folders]
        merged: dict[str, RunningStats] = {}
        for part in parts:
            for name in sorted(part):
                merged.setdefault(name, RunningStats()).merge(part[name])
        return merged
    return _fold_stream(source, keys)
