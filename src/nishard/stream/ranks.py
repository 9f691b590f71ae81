"""This process's rank and the world size, where a terminal finds them.

A stream's ``.shard()`` without a rank or world size leaves them to the terminal:
PyTorch's process group when it is initialised (else the ``RANK`` and ``WORLD_SIZE``
that ``torchrun`` sets, else 0 and 1), or JAX's process index and count. Nothing is
imported: a process that never imported torch has no process group.
"""

from __future__ import annotations

import os
import sys


def torch_ranks() -> tuple[int, int]:
    """``torch.distributed``'s rank and world size when initialised, else the
    environment's (``RANK``, ``WORLD_SIZE``) when both are set, else 0 and 1."""
    torch = sys.modules.get("torch")
    distributed = getattr(torch, "distributed", None) if torch is not None else None
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        return distributed.get_rank(), distributed.get_world_size()
    return environment_ranks()


def environment_ranks() -> tuple[int, int]:
    """``RANK`` and ``WORLD_SIZE`` from the environment, when both are set; else 0 and 1."""
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is None or world is None:
        return 0, 1
    try:
        return int(rank), int(world)
    except ValueError:
        raise ValueError(f"RANK={rank!r} and WORLD_SIZE={world!r} must be integers") from None


def jax_ranks() -> tuple[int, int]:
    """JAX's process index and count (imports JAX)."""
    import jax

    return jax.process_index(), jax.process_count()
