"""The stages of a :class:`~nishard.stream.Stream`: what each chained call records.

A stage is a small frozen description, checked when it is made (so that a bad argument
is reported by the call that gave it), that does nothing by itself: a stream keeps at
most one stage of each kind (a later call replaces the earlier one) and compiles them
all at once, whatever their order, into the parts a reader runs (see
:meth:`Stream.plan <nishard.stream.Stream.plan>`):

===================================  ========================  ==============================
stage (method)                       the factories' keywords   compiles into
===================================  ========================  ==============================
:class:`Keys` (``keys``)             ``keys``                  the :class:`Catalog`
:class:`Shuffle` (``shuffle``)       ``shuffle``, ``seed``,    the :class:`Order`
                                     ``buffer``
:class:`Shard` (``shard``)           ``rank``,                 the :class:`Order`
                                     ``world_size``,
                                     ``remainder``
:class:`Epoch` (``epoch``)           ``epoch``, ``length``     the :class:`Order`, the first
                                                               epoch
:class:`Batch` (``batch``)           ``batch_size``,           the :class:`Plan`'s batches
                                     ``drop_last``
:class:`Normalize` (``normalize``)   ``normalize``,            the :class:`Normalizer`
                                     ``stats_split``
:class:`Output` (``fields``)         ``float32``, ``meta``     the :class:`Fields`
:class:`Classes` (``classes``)       (none)                    the :class:`Fields`' labels
===================================  ========================  ==============================

(The classes of the last column are ``nishard.stream``'s.)
"""

from __future__ import annotations

from dataclasses import dataclass

from .order import Remainder


def _positive(name: str, value: object, *, none: bool = False) -> None:
    if none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        nothing = " or None" if none else ""
        raise ValueError(f"{name} must be a positive integer{nothing}, got {value!r}")


def _names(kind: str, names: tuple) -> tuple[str, ...]:
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{kind}: names are strings, got {name!r}")
    return tuple(names)


@dataclass(frozen=True)
class Keys:
    """The products to read (an empty tuple: none, sample keys and metadata only)."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", _names("keys", tuple(self.names)))


@dataclass(frozen=True)
class Shuffle:
    """Permute the shards by ``(seed, pass)`` and mix the samples through a buffer of
    ``buffer`` sample numbers seeded by ``(seed, pass, rank)``; ``shards=False`` keeps
    the shards in manifest order (only the buffer mixes, reads stay nearly sequential)."""

    seed: int = 0
    buffer: int = 1000
    shards: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        _positive("buffer", self.buffer)


@dataclass(frozen=True)
class Shard:
    """This process's part: rank ``rank`` of ``world_size`` (None: the terminal finds
    it, see :meth:`Stream.shard <nishard.stream.Stream.shard>`)."""

    rank: int | None = None
    world_size: int | None = None
    remainder: Remainder = "wrap"

    def __post_init__(self) -> None:
        _positive("world_size", self.world_size, none=True)
        rank = self.rank
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 0):
            raise ValueError(f"rank must be a non-negative integer or None, got {rank!r}")
        if rank is not None and self.world_size is not None and rank >= self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {rank}")
        if self.remainder not in ("wrap", "drop"):
            raise ValueError(f"remainder is 'wrap' or 'drop', got {self.remainder!r}")


@dataclass(frozen=True)
class Batch:
    """``size`` samples a batch (None: one sample at a time, without a batch axis)."""

    size: int | None
    drop_last: bool = False

    def __post_init__(self) -> None:
        _positive("batch size", self.size, none=True)


@dataclass(frozen=True)
class Epoch:
    """The epoch to read first, and the samples per rank an epoch holds (None: one pass
    over the split; else epochs are consecutive stretches of the rank's passes laid end
    to end)."""

    index: int = 0
    length: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {self.index!r}")
        _positive("length", self.length, none=True)


@dataclass(frozen=True)
class Normalize:
    """``(x - mean) / std`` per feature with the build's statistics: of ``keys`` (empty:
    every floating key read that has statistics), from split ``stats_split`` (None:
    ``train`` when it has them, else the split read)."""

    keys: tuple[str, ...] = ()
    stats_split: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", _names("normalize", tuple(self.keys)))


@dataclass(frozen=True)
class Output:
    """How values come back: ``float32`` turns 16-bit floats into float32; ``meta`` is
    False (no metadata), True (the JSON object under ``__meta__``), names (those fields,
    each under its own name) or None (the terminal's default: True for the iterating
    terminals, False for the random-access ones, whose loaders stack every value)."""

    float32: bool = True
    meta: bool | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        meta = self.meta
        if meta is not None and not isinstance(meta, bool):
            meta = (meta,) if isinstance(meta, str) else _names("meta", tuple(meta))
            object.__setattr__(self, "meta", meta)


@dataclass(frozen=True)
class Classes:
    """Text variables as int64 class indices, each under its own name: ``names`` (empty:
    every variable the manifest lists classes for); ``missing`` is a missing value's index
    (default -1) or ``"error"``."""

    names: tuple[str, ...] = ()
    missing: int | str = -1

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", _names("classes", tuple(self.names)))
        missing = self.missing
        if missing != "error" and (isinstance(missing, bool) or not isinstance(missing, int)):
            raise ValueError(f"missing is an integer index or 'error', got {missing!r}")


#: Every kind of stage, in the order a stream's repr lists them.
Stage = Keys | Shuffle | Shard | Batch | Epoch | Normalize | Output | Classes
KINDS = (Keys, Output, Classes, Normalize, Shuffle, Shard, Epoch, Batch)
