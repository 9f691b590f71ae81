"""Hand large products from worker processes to the writer through shared memory.

A worker's outcome travels back to the writer pickled through a pipe: the worker copies a
280 MB run into the pickle, the kernel copies it twice, the writer copies it out again,
about half a second of both processes' CPU per run, on the cores the other workers need.
Instead a worker saves each large array as a ``.npy`` file in a folder in memory
(``/dev/shm`` where there is one) and sends its path; the writer maps the file (no copy),
unlinks it at once (the mapping stays valid until the array is dropped) and writes the
shard straight from the mapping.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .plan import Outcome

#: Arrays smaller than this travel in the pickle: a file would cost more than it saves.
LARGE = 1 << 20


@dataclasses.dataclass(frozen=True)
class Shared:
    """A product saved to a file of the hand-off folder, in place of the array."""

    path: str


@contextmanager
def handoff_folder() -> Iterator[Path]:
    """A private folder in memory for one run of an executor, removed with what is left."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="nishard-handoff-", dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def share(outcome: Outcome, folder: Path) -> Outcome:
    """In the worker: the outcome with each large array saved to ``folder``."""
    if outcome.products is None:
        return outcome
    products = {}
    for name, value in outcome.products.items():
        # NumPy's own number types only: np.load would not give a bfloat16 back.
        if isinstance(value, np.ndarray) and value.nbytes >= LARGE and value.dtype.kind in "biufc":
            value = _save(value, folder)
        products[name] = value
    return dataclasses.replace(outcome, products=products)


def _save(array: np.ndarray, folder: Path) -> np.ndarray | Shared:
    """The array as a file of ``folder``; the array itself if it cannot be written (a full
    ``/dev/shm``), to go through the pipe as before."""
    handle, path = tempfile.mkstemp(suffix=".npy", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            np.save(file, array, allow_pickle=False)
    except OSError:
        Path(path).unlink(missing_ok=True)
        return array
    return Shared(path)


def receive(outcome: Outcome) -> Outcome:
    """In the writer: the outcome with each shared array mapped back, its file unlinked."""
    if outcome.products is None:
        return outcome
    products = {}
    for name, value in outcome.products.items():
        if isinstance(value, Shared):
            array = np.load(value.path, mmap_mode="r", allow_pickle=False)
            os.unlink(value.path)
            value = array
        products[name] = value
    return dataclasses.replace(outcome, products=products)
