"""Read shards back for training and learning: PyTorch, JAX, grain and plain NumPy.

- :func:`torch`: a PyTorch ``IterableDataset`` (shard shuffling, a seeded shuffle buffer,
  DataLoader workers and distributed ranks, equal batches per rank, epochs).
- :class:`MapDataset`: ``ds[i]`` for PyTorch samplers.
- :func:`jax`: batches prefetched to the device(s) by a background thread.
- :class:`GrainSource`: a ``RandomAccessDataSource`` for Google's grain loaders.
- :func:`arrays`: plain NumPy iteration, for the out-of-core learners.

All read WebDataset tar and TFRecord shards by the byte offsets in the manifest;
``import nishard`` imports neither torch nor JAX (``torch`` imports it on first use).
"""

from __future__ import annotations

from .arrays import arrays
from .jax_stream import JaxStream, jax
from .order import Order
from .random_access import GrainSource, MapDataset

__all__ = ["GrainSource", "JaxStream", "MapDataset", "Order", "TorchStream", "arrays", "jax",
           "torch"]  # fmt: skip


def __getattr__(name: str):
    # PEP 562: torch (the function and its dataset class) imports PyTorch, so only on use.
    if name in ("torch", "TorchStream"):
        from . import torch_stream

        return getattr(torch_stream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
