"""What the torch and JAX streams share: building their plan from the user's arguments."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .batch import Fields
from .catalog import Catalog, open_catalog
from .normalize import Normalizer, load_normalizer
from .order import Order, Remainder, n_batches
from .reader import SMALL


@dataclass(frozen=True)
class Stream:
    """Everything an epoch's iteration needs, picklable (DataLoader workers get a copy).

    Attributes
    ----------
    catalog : Catalog
    order : Order
    fields : Fields
    normalizer : Normalizer or None
    batch_size : int or None
    drop_last : bool
    threads : int or None
        Reader threads; None: chosen where it runs (see :func:`reader_threads`).
    """

    catalog: Catalog
    order: Order
    fields: Fields
    normalizer: Normalizer | None
    batch_size: int | None
    drop_last: bool
    threads: int | None

    def __len__(self) -> int:
        """Batches (samples without a batch size) per epoch on this rank."""
        per_epoch = self.order.per_epoch(len(self.catalog))
        return n_batches(per_epoch, self.batch_size, self.drop_last)

    def reader_threads(self, in_worker: bool) -> int:
        """Reader threads: as asked, else none in a DataLoader worker (workers are the
        parallelism); in the main process two for large samples (their reads run without
        the GIL and overlap), one for small ones (parsing holds the GIL: one thread
        overlaps it with the training step, a second would only contend)."""
        if self.threads is not None:
            return self.threads
        if in_worker:
            return 0
        return min(2, os.cpu_count() or 1) if self.catalog.sample_bytes >= SMALL else 1


def make_stream(
    path: str | Path,
    keys: Sequence[str] | str | None,
    split: str | None,
    *,
    batch_size: int | None,
    shuffle: bool,
    seed: int,
    buffer: int,
    length: int | None,
    drop_last: bool,
    remainder: Remainder,
    rank: int,
    world_size: int,
    normalize: bool | Sequence[str],
    stats_split: str | None,
    float32: bool,
    meta: bool | Sequence[str],
    format: str | None,
    threads: int | None,
) -> Stream:
    """Check the arguments and read the manifest (and statistics) once."""
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    catalog: Catalog = open_catalog(path, keys, split, format)
    order = Order(shuffle, seed, buffer, rank, world_size, remainder, length)
    if len(catalog) == 0:
        raise ValueError(f"{catalog.folder}: split {catalog.split!r} has no samples")
    if order.per_pass(len(catalog)) == 0:
        raise ValueError(
            f"{len(catalog)} samples cannot give each of {world_size} ranks one with "
            "remainder='drop'"
        )
    normalizer = load_normalizer(catalog, normalize, stats_split)
    fields = Fields(float32, meta)
    return Stream(catalog, order, fields, normalizer, batch_size, drop_last, threads)
