"""Plain NumPy iteration over the samples of a shard folder, for out-of-core learners."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..archives.decoders import DECODERS
from ..archives.manifest import read_manifest


def arrays(
    path: str | Path,
    keys: Sequence[str] | None = None,
    split: str | None = None,
    *,
    format: str | None = None,
    float32: bool = True,
) -> Iterator[dict[str, object]]:
    """Samples of a shard folder in manifest order, as dicts of NumPy arrays.

    Parameters
    ----------
    path : str or Path
        The shard folder (or its ``manifest.json``).
    keys : sequence of str, optional
        Products to return (default: all). A key the shards lack raises ``KeyError``
        naming the keys they have.
    split : str, optional
        Only the shards of this split (default: every split).
    format : str, optional
        Which format's shards to read when the folder has several (default: the first
        format of the manifest).
    float32 : bool
        Return float16 and bfloat16 arrays as float32.

    Yields
    ------
    dict
        ``{"__key__": key, "__meta__": metadata, <product>: ndarray, ...}``.
    """
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    manifest = read_manifest(folder)
    available = set(manifest["keys"])
    missing = [k for k in keys or () if k not in available]
    if missing:
        raise KeyError(f"{folder}: no key {missing} in the shards; they hold {sorted(available)}")
    shards = manifest["shards"]
    format = format or (shards[0]["format"] if shards else "webdataset")
    for shard in shards:
        if shard["format"] != format or (split is not None and shard["split"] != split):
            continue
        for sample in DECODERS[format](folder / shard["name"]):
            out: dict[str, object] = {"__key__": sample.key, "__meta__": sample.meta}
            for name in keys or sample.arrays:
                array = sample.arrays[name]
                if float32 and array.dtype.itemsize == 2 and array.dtype.kind in "fV":
                    array = array.astype(np.float32)
                out[name] = array
            yield out
