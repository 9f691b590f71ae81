"""The keyword factories ``ns.stream.torch``, ``jax`` and ``arrays``, deprecated.

Each is now a thin wrapper that builds the same :class:`~nishard.stream.Stream` (its
keywords mapped to stages by :func:`composed`), warns once per call with a
``DeprecationWarning`` naming the chain to write instead, and returns the terminal's
result: the same batches, in the same order (``tests/stream/golden_orders.json``).
They go in the release after next.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .compose import EVERY_SPLIT, Stream, open
from .order import Remainder

if TYPE_CHECKING:
    from .jax_stream import JaxStream
    from .torch_stream import TorchStream


def composed(
    path: str | Path,
    keys: Sequence[str] | str | None = None,
    split: str | None = None,
    *,
    format: str | None = None,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    buffer: int = 1000,
    epoch: int = 0,
    length: int | None = None,
    drop_last: bool = False,
    sharded: bool = False,
    remainder: Remainder = "wrap",
    rank: int | None = None,
    world_size: int | None = None,
    normalize: bool | Sequence[str] = False,
    stats_split: str | None = None,
    float32: bool = True,
    meta: bool | Sequence[str] | None = None,
) -> Stream:
    """The stream today's keywords describe (``sharded``: add the :meth:`~Stream.shard`
    stage, as the torch and JAX factories always did)."""
    stream = open(path, split, format=format)
    if keys is not None:
        stream = stream.keys(*([keys] if isinstance(keys, str) else keys))
    if shuffle:
        stream = stream.shuffle(seed, buffer)
    if sharded:
        stream = stream.shard(rank, world_size, remainder)
    if batch_size is not None:
        stream = stream.batch(batch_size, drop_last)
    if epoch or length is not None:
        stream = stream.epoch(epoch, length)
    names = [] if isinstance(normalize, bool) else list(normalize)
    if normalize is True or names:
        stream = stream.normalize(*names, stats_split=stats_split)
    if not float32 or meta is not None:
        stream = stream.fields(float32, meta)
    return stream


def _warn(name: str, chain: str) -> None:
    warnings.warn(
        f"ns.stream.{name}(path, keys, split, ...) is deprecated and will be removed in the "
        f"release after next; compose the stream instead: ns.stream.open(path, split)"
        f"{chain} (see docs/stream.md)",
        DeprecationWarning,
        stacklevel=3,
    )


def torch(
    path: str | Path,
    keys: Sequence[str] | str | None = None,
    split: str | None = None,
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    buffer: int = 1000,
    epoch: int = 0,
    length: int | None = None,
    drop_last: bool = False,
    remainder: Remainder = "wrap",
    rank: int | None = None,
    world_size: int | None = None,
    normalize: bool | Sequence[str] = False,
    stats_split: str | None = None,
    float32: bool = True,
    meta: bool | Sequence[str] = True,
    format: str | None = None,
    threads: int | None = None,
) -> TorchStream:
    """Deprecated: ``ns.stream.open(path, split, format=...)`` with ``.keys(...)``,
    ``.shuffle(seed, buffer)``, ``.shard(rank, world_size, remainder)``,
    ``.batch(batch_size, drop_last)``, ``.epoch(epoch, length)``,
    ``.normalize(..., stats_split=...)``, ``.fields(float32, meta)`` and
    ``.torch(threads=...)``; see :class:`~nishard.stream.Stream`."""
    _warn("torch", ".keys(...).shuffle(...).shard().batch(...).torch()")
    return composed(
        path, keys, split, format=format, batch_size=batch_size, shuffle=shuffle, seed=seed,
        buffer=buffer, epoch=epoch, length=length, drop_last=drop_last, sharded=True,
        remainder=remainder, rank=rank, world_size=world_size, normalize=normalize,
        stats_split=stats_split, float32=float32, meta=meta,
    ).torch(threads=threads)  # fmt: skip


def jax(
    path: str | Path,
    keys: Sequence[str] | str | None = None,
    split: str | None = None,
    *,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    buffer: int = 1000,
    epoch: int = 0,
    length: int | None = None,
    drop_last: bool = False,
    remainder: Remainder = "wrap",
    rank: int | None = None,
    world_size: int | None = None,
    normalize: bool | Sequence[str] = False,
    stats_split: str | None = None,
    float32: bool = True,
    meta: bool | Sequence[str] = True,
    format: str | None = None,
    threads: int | None = None,
    prefetch: int = 2,
    devices: Sequence | None = None,
    sharding=None,
) -> JaxStream:
    """Deprecated: the stages of :func:`torch`, then ``.jax(threads=..., prefetch=...,
    devices=..., sharding=...)``; see :class:`~nishard.stream.Stream`."""
    _warn("jax", ".keys(...).shuffle(...).shard().batch(...).jax()")
    return composed(
        path, keys, split, format=format, batch_size=batch_size, shuffle=shuffle, seed=seed,
        buffer=buffer, epoch=epoch, length=length, drop_last=drop_last, sharded=True,
        remainder=remainder, rank=rank, world_size=world_size, normalize=normalize,
        stats_split=stats_split, float32=float32, meta=meta,
    ).jax(threads=threads, prefetch=prefetch, devices=devices, sharding=sharding)  # fmt: skip


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
    """Deprecated: ``iter(ns.stream.open(path, split or "*", format=...).keys(...)
    .shuffle(seed).epoch(epoch).normalize(...).fields(float32).arrays())``; see
    :meth:`~nishard.stream.Stream.arrays`. Without a split, every split in manifest
    order."""
    _warn("arrays", ".keys(...).arrays() (split='*' for every split)")
    stream = composed(
        path, keys, EVERY_SPLIT if split is None else split, format=format, shuffle=shuffle,
        seed=seed, epoch=epoch, normalize=normalize, float32=float32,
    )  # fmt: skip
    return _lazily(stream)


def _lazily(stream: Stream) -> Iterator[dict[str, object]]:
    """The samples, the manifest first read on the first ``next`` (as before)."""
    yield from stream.arrays()
