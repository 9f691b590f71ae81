"""Read shards back for training and learning: PyTorch, JAX, grain and plain NumPy.

A stream is composed of stages, as webdataset composes them, and ends in a terminal::

    stream = (ns.stream.open("shards", split="train")
              .keys("bold")
              .shuffle(seed=0, buffer=64)
              .shard()
              .batch(32, drop_last=True)
              .classes("diagnosis"))  # text labels as int64 class indices
    stream.torch()        # a PyTorch IterableDataset (DataLoader workers, ranks, epochs)
    stream.jax()          # batches prefetched to the device(s) by a background thread
    stream.arrays()       # plain NumPy dicts, for the out-of-core learners
    stream.grain()        # a grain RandomAccessDataSource
    stream.map_dataset()  # a map-style PyTorch dataset (``ds[i]``)

:func:`open` returns an immutable :class:`Stream`; each stage (:mod:`.stages`) returns a
new one, and the terminal compiles them, whatever their order, into a :class:`Plan`:
the split's :class:`Catalog` (shards, keys, byte offsets), its :class:`Order` (split by
rank first, then shuffled within the rank), the :class:`Fields` returned and the
:class:`Normalizer`. See docs/stream.md.

All read WebDataset tar and TFRecord shards by the byte offsets in the manifest
(:meth:`Stream.arrays` reads HDF5 and Zarr too); ``import nishard.stream`` imports
neither torch nor JAX: the terminals do.

``torch``, ``jax`` and ``arrays``, the keyword factories of the previous release, are
deprecated wrappers of the same streams (:mod:`.legacy`).
"""

from __future__ import annotations

from .arrays import ArrayStream
from .batch import Fields
from .catalog import Catalog, open_catalog
from .classes import ClassLabel, LabelError, Labels
from .compose import EVERY_SPLIT, Stream, open
from .jax_stream import JaxStream
from .legacy import arrays, jax, torch
from .normalize import Normalizer, load_normalizer
from .order import Order
from .plan import Plan
from .random_access import GrainSource, MapDataset

__all__ = ["EVERY_SPLIT", "ArrayStream", "Catalog", "ClassLabel", "Fields", "GrainSource",
           "JaxStream", "LabelError", "Labels", "MapDataset", "Normalizer", "Order", "Plan",
           "Stream", "TorchStream", "arrays", "jax", "load_normalizer", "open", "open_catalog",
           "torch"]  # fmt: skip


def __getattr__(name: str):
    # PEP 562: the dataset class subclasses torch's, so it imports PyTorch: only on use.
    if name == "TorchStream":
        from .torch_stream import TorchStream

        return TorchStream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
