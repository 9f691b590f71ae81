"""Which samples a rank reads in an epoch, in what order, and which batches a worker makes.

The plan is index arithmetic on the manifest's sample counts; no data is read. One pass
over the split:

1. shards in order, or permuted by ``(seed, pass)`` when shuffling (unless ``shards`` is
   False);
2. their samples concatenated (sample order inside a shard kept: reads stay sequential);
3. cut into ``world`` contiguous, equal parts, one per rank: with ``remainder="wrap"``
   the sequence is first extended by its own beginning to a multiple of ``world`` (as
   ``torch.utils.data.DistributedSampler`` pads), with ``"drop"`` the last
   ``N % world`` samples of the pass are left out (other samples each pass, as the shard
   order changes);
4. within a rank's part, a shuffle buffer of ``buffer`` sample *numbers* (seeded by
   ``(seed, pass, rank)``) mixes samples of nearby shards, as webdataset's buffer does
   with samples, but holding numbers: memory stays one batch and reads go straight into
   it, at the price of reads that jump within a window of ``buffer`` samples.

Without ``length`` epoch ``e`` is pass ``e``. With ``length`` every epoch is ``length``
samples per rank, taken from the rank's passes laid end to end: epoch ``e`` is positions
``e * length`` to ``(e + 1) * length`` of that endless sequence, so short epochs walk
through the data and long ones repeat it, reshuffled each pass.

Every rank gets the same number of samples, hence of batches. A rank's batches are then
dealt to its DataLoader workers in turn (batch ``b`` to worker ``b % workers``), which is
the order in which the DataLoader collects them: the batches come out in the same order
whatever the number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Remainder = Literal["wrap", "drop"]


@dataclass(frozen=True)
class Order:
    """How samples are ordered and split; see the module docstring.

    Parameters
    ----------
    shuffle : bool
        Permute the shards and mix samples through the buffer.
    seed : int
        Same seed, epoch and world, same order.
    buffer : int
        Sample numbers in the shuffle buffer (1: no mixing within shards' order).
    rank, world : int
        This process's rank among ``world`` (distributed training).
    remainder : {"wrap", "drop"}
        How every rank gets as many samples when ``world`` does not divide the split.
    length : int, optional
        Samples per rank per epoch (default: one pass).
    shards : bool
        When shuffling, permute the shards too (False: only the buffer mixes samples).
    """

    shuffle: bool = False
    seed: int = 0
    buffer: int = 1000
    rank: int = 0
    world: int = 1
    remainder: Remainder = "wrap"
    length: int | None = None
    shards: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.world, int) and self.world >= 1):
            raise ValueError(f"world must be a positive integer, got {self.world!r}")
        if not (isinstance(self.rank, int) and 0 <= self.rank < self.world):
            raise ValueError(f"rank must be in [0, {self.world}), got {self.rank!r}")
        if self.remainder not in ("wrap", "drop"):
            raise ValueError(f"remainder is 'wrap' or 'drop', got {self.remainder!r}")
        if self.buffer < 1:
            raise ValueError(f"buffer must be at least 1, got {self.buffer}")
        if self.length is not None and self.length < 1:
            raise ValueError(f"length must be a positive number of samples, got {self.length}")

    def per_pass(self, total: int) -> int:
        """Samples each rank gets from one pass over ``total`` samples."""
        return total // self.world if self.remainder == "drop" else math.ceil(total / self.world)

    def per_epoch(self, total: int) -> int:
        """Samples each rank gets per epoch."""
        return self.length if self.length is not None else self.per_pass(total)

    def pass_indices(self, counts: np.ndarray, index: int) -> np.ndarray:
        """This rank's sample numbers in pass ``index``, in reading order."""
        counts = np.asarray(counts, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        shards = np.arange(len(counts))
        if self.shuffle and self.shards:
            shards = np.random.default_rng([self.seed, index, 0]).permutation(len(counts))
        sequence = _ranges(starts[shards], counts[shards])
        n = self.per_pass(sequence.size)
        if n == 0:
            raise ValueError(
                f"{sequence.size} samples cannot give each of {self.world} ranks one with "
                "remainder='drop'"
            )
        if self.remainder == "wrap":
            sequence = np.resize(sequence, n * self.world)  # repeats from the beginning
        part = sequence[self.rank * n : (self.rank + 1) * n]
        if self.shuffle and self.buffer > 1:
            part = buffer_shuffle(part, self.buffer, [self.seed, index, 1, self.rank])
        return part

    def epoch_indices(self, counts: np.ndarray, epoch: int) -> np.ndarray:
        """This rank's sample numbers in epoch ``epoch``, in order."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if self.length is None:
            return self.pass_indices(counts, epoch)
        n = self.per_pass(int(np.sum(counts)))
        if n == 0:
            return self.pass_indices(counts, 0)  # raises the error
        start, stop = epoch * self.length, (epoch + 1) * self.length
        parts = [self.pass_indices(counts, p) for p in range(start // n, (stop - 1) // n + 1)]
        joined = np.concatenate(parts)
        offset = start - (start // n) * n
        return joined[offset : offset + self.length]


def buffer_shuffle(items: np.ndarray, size: int, seed) -> np.ndarray:
    """The order a shuffle buffer of ``size`` gives ``items``.

    The buffer fills with the first ``size`` items; each next item takes the place of a
    random one, which goes out; at the end the buffer empties in random order. An item
    leaves at most ``size`` places before its position (and later, rarely, much later).
    """
    rng = np.random.default_rng(seed)
    n = items.size
    if size >= n:
        return items[rng.permutation(n)]
    buffer = items[:size].tolist()
    out = []
    slots = rng.integers(0, size, size=n - size).tolist()
    for item, slot in zip(items[size:].tolist(), slots, strict=True):
        out.append(buffer[slot])
        buffer[slot] = item
    order = rng.permutation(size).tolist()
    return np.array(out + [buffer[i] for i in order], dtype=items.dtype)


def batches(
    indices: np.ndarray, batch_size: int | None, drop_last: bool
) -> list[np.ndarray] | np.ndarray:
    """Consecutive batches of ``batch_size`` sample numbers; without a batch size, one
    number each (the rows of an ``(n, 1)`` array)."""
    if batch_size is None:
        return indices.reshape(-1, 1)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
    stop = indices.size - indices.size % batch_size if drop_last else indices.size
    return [indices[i : min(i + batch_size, stop)] for i in range(0, stop, batch_size)]


def n_batches(samples: int, batch_size: int | None, drop_last: bool) -> int:
    """How many :func:`batches` ``samples`` sample numbers make."""
    if batch_size is None:
        return samples
    return samples // batch_size if drop_last else math.ceil(samples / batch_size)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in ...])``, vectorized."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    shift = np.repeat(starts - (ends - counts), counts)
    return np.arange(total, dtype=np.int64) + shift
