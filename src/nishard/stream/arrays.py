"""Plain NumPy iteration over the samples of a shard folder, for out-of-core learners."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..archives.decoders import DECODERS
from .batch import Assembler, Fields, is_half
from .catalog import STREAMABLE, open_catalog, pick_format, read_folder, splits_of
from .normalize import load_normalizer
from .order import Order
from .reader import ShardReader


def arrays(
    path: str | Path,
    keys: Sequence[str] | None = None,
    split: str | None = None,
    *,
    format: str | None = None,
    float32: bool = True,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    normalize: bool | Sequence[str] = False,
) -> Iterator[dict[str, object]]:
    """Samples of a shard folder, as dicts of NumPy arrays.

    Tar and TFRecord shards are read with nishard's own readers (each array read
    straight into a fresh array of its own); HDF5 and Zarr shards with their decoders.

    Parameters
    ----------
    path : str or Path
        The shard folder (or its ``manifest.json``).
    keys : sequence of str, optional
        Products to return (default: all; an empty list: none). A key the shards lack
        raises ``KeyError`` naming the keys they have.
    split : str, optional
        Only the shards of this split (default: every split, in manifest order).
    format : str, optional
        Which format's shards to read when the folder has several (default:
        ``webdataset`` when present, else the first format of the manifest).
    float32 : bool
        Return float16 and bfloat16 arrays as float32.
    shuffle : bool
        Visit the samples of each split in an order drawn from ``(seed, epoch)``: shards
        permuted, samples mixed through a shuffle buffer (see
        :mod:`nishard.stream.order`). Tar and TFRecord shards only.
    seed, epoch : int
        The order's seed and epoch.
    normalize : bool or sequence of str
        ``(x - mean) / std`` per feature with the build's statistics (the ``train``
        split's when it has them), as float32.

    Yields
    ------
    dict
        ``{"__key__": key, "__meta__": metadata, <product>: ndarray, ...}``; each array
        is the caller's own (writable, not shared with a later sample).
    """
    folder, manifest = read_folder(path)
    format = pick_format(folder, manifest, format)
    for name in [split] if split is not None else splits_of(manifest, format):
        catalog = open_catalog(folder, keys, name, format, streamable=False)
        if catalog.format not in STREAMABLE:
            if shuffle or normalize:
                raise ValueError(f"shuffle and normalize read tar and TFRecord shards only, "
                                 f"not {catalog.format!r}")  # fmt: skip
            yield from _decoded(catalog, float32)
            continue
        normalizer = load_normalizer(catalog, normalize)
        assembler = Assembler(catalog, Fields(float32, True), normalizer)
        order = Order(shuffle=shuffle, seed=seed)
        numbers = (
            order.epoch_indices(catalog.counts, epoch)
            if shuffle
            else np.arange(len(catalog), dtype=np.int64)
        )
        reader = ShardReader(catalog)
        try:
            for index in numbers.tolist():
                sample = assembler.sample(reader, index)
                sample["__meta__"] = sample.pop("__meta__")
                yield sample
        finally:
            reader.close()


def _decoded(catalog, float32: bool) -> Iterator[dict[str, object]]:
    """Samples of formats without an offset reader, through the verifying decoders."""
    for shard in catalog.shards:
        for sample in DECODERS[catalog.format](shard.path):
            out: dict[str, object] = {"__key__": sample.key, "__meta__": sample.meta}
            for name in catalog.keys:
                array = sample.arrays[name]
                if float32 and is_half(array.dtype):
                    array = array.astype(np.float32)
                out[name] = array
            yield out
