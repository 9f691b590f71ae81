"""Plain NumPy iteration over the samples of a shard folder, for out-of-core learners.

:meth:`Stream.arrays <nishard.stream.Stream.arrays>` makes an :class:`ArrayStream`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..archives.decoders import DECODERS
from .batch import Assembler, is_half
from .catalog import STREAMABLE, Catalog
from .classes import Labels
from .memory import BufferPool, numpy_allocator
from .mirror import local_path
from .plan import Plan
from .prefetch import assembled
from .ranks import torch_ranks
from .stages import Batch, Epoch, Normalize, Output, Shard, Shuffle

if TYPE_CHECKING:
    from .compose import Stream


class ArrayStream:
    """Samples (or batches) as dicts of NumPy arrays: iterate once per epoch.

    Each array is the caller's own (writable, shared with no other sample or batch).
    With several splits each is read in turn, in its own order (a plan per split).

    Parameters
    ----------
    stream : Stream
    direct : bool
        Read large arrays of local tar and TFRecord shards past the page cache.
    """

    def __init__(self, stream: Stream, direct: bool = False):
        self.epoch, self.direct = stream.first_epoch, direct
        self.parts: list[Plan | _Decoded] = []
        for split in stream.split_names():
            catalog = stream.catalog(split, streamable=False)
            if catalog.format in STREAMABLE:
                self.parts.append(stream.compile(catalog, meta=True, ranks=torch_ranks))
            else:
                self.parts.append(_Decoded.of(stream, catalog))

    def set_epoch(self, epoch: int) -> None:
        """Order the next iteration as epoch ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Items (batches, or samples) per epoch."""
        return sum(len(part) for part in self.parts)

    def __iter__(self) -> Iterator[dict[str, object]]:
        for part in self.parts:
            if isinstance(part, _Decoded):
                yield from part
            else:
                yield from _read(part, self.epoch, self.direct)

    def __repr__(self) -> str:
        splits = [p.catalog.split for p in self.parts]
        return f"ArrayStream({str(self.parts[0].catalog.folder)!r}, splits={splits})"


def _read(plan: Plan, epoch: int, direct: bool) -> Iterator[dict[str, object]]:
    """A plan's epoch, in arrays reused once the caller has let go of them.

    Fresh memory is faulted in and zeroed by the kernel, even for a read past the page
    cache: system time taken from a learner's reductions beside the read. Up to three
    arrays of each key are kept (the caller's, the one read ahead, one more); a free one
    of another shape is let go before a fresh one is allocated, so that one long run is
    not held on while the next ones are read.
    """
    pool = BufferPool(capacity=3 * max(1, len(plan.catalog.keys)), keep_unfit=False)
    assembler = Assembler(plan.catalog, plan.fields, plan.normalizer, numpy_allocator(pool))
    batched = plan.batch_size is not None
    yield from assembled(assembler, plan.catalog, plan.batches(epoch), batched, 0, direct=direct)


class _Decoded:
    """Samples of formats without an offset reader (HDF5, Zarr), through the verifying
    decoders, in manifest order."""

    def __init__(
        self, catalog: Catalog, float32: bool, meta: bool | tuple[str, ...],
        labels: Labels | None = None,
    ):  # fmt: skip
        self.catalog, self.float32, self.meta, self.labels = catalog, float32, meta, labels

    @classmethod
    def of(cls, stream: Stream, catalog: Catalog) -> _Decoded:
        epoch = stream.stage(Epoch)
        ordering = [stream.stage(kind) for kind in (Shuffle, Shard, Batch, Normalize)]
        if any(ordering) or (epoch is not None and epoch.length is not None):
            raise ValueError(
                "shuffle, shard, batch, normalize and epoch lengths read tar and TFRecord "
                f"shards only, not {catalog.format!r}"
            )
        output = stream.stage(Output) or Output()
        meta = True if output.meta is None else output.meta
        return cls(catalog, output.float32, meta, stream.labels(catalog))

    def __len__(self) -> int:
        return len(self.catalog)

    def __iter__(self) -> Iterator[dict[str, object]]:
        catalog = self.catalog
        for shard in catalog.shards:
            for sample in DECODERS[catalog.format](local_path(catalog.storage, shard.name)):
                out: dict[str, object] = {"__key__": sample.key}
                for name in catalog.keys:
                    array = sample.arrays[name]
                    if self.float32 and is_half(array.dtype):
                        array = array.astype(np.float32)
                    out[name] = array
                if self.meta is True:
                    out["__meta__"] = sample.meta
                elif self.meta:
                    out.update({m: (sample.meta or {}).get(m) for m in self.meta})
                if self.labels is not None:
                    out.update(self._labels(shard.name, sample))
                yield out

    def _labels(self, shard: str, sample) -> dict[str, np.ndarray]:
        """A sample's class indices, as the offset readers give them (0-d int64)."""
        labels = self.labels
        return {
            label.name: labels.encode(label, [(sample.meta or {}).get(label.name)],
                                      lambda: [f"{shard}: sample {sample.key!r}"]).reshape(())
            for label in labels.classes
        }  # fmt: skip
