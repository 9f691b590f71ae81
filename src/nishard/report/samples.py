"""The few samples a report draws, read back from the shards.

Carpet thumbnails are drawn for a handful of records chosen once the build is merged
(the worst and the median by framewise displacement), so they are read back here rather
than made by every worker for every record: a thumbnail per record would make a
100,000-record manifest some hundreds of megabytes for two pictures, while reading two
samples back costs two range reads (a tar shard's samples have their offsets and sizes
in the manifest) or, in other formats, one shard read up to the sample.
"""

from __future__ import annotations

import io
import tarfile

import numpy as np

from ..archives.decoders import DECODERS
from ..archives.encode import restore_dtype
from ..archives.storage import LocalStorage, Storage


def series_key(manifest: dict) -> str | None:
    """The product a carpet shows: a 2-D float array of (time, feature), not square (a
    connectivity matrix), preferably ``bold``, else the one with the most features."""
    found = []
    for name, entry in sorted(manifest.get("keys", {}).items()):
        shape, dtype = entry.get("shape") or [], str(entry.get("dtype", ""))
        if len(shape) != 2 or not (dtype.startswith("float") or dtype == "bfloat16"):
            continue
        if shape[0] is not None and shape[0] == shape[1]:
            continue
        found.append((name != "bold", -(shape[1] or 0), name))
    return min(found)[2] if found else None


def read_series(storage: Storage, manifest: dict, record: str, key: str) -> np.ndarray | None:
    """Product ``key`` of ``record``'s sample, from the first shard that has it; None when
    no shard can give it (a format without a decoder, a remote store)."""
    shards = [s for s in manifest.get("shards", []) if record in s.get("keys", [])]
    # Tar shards first: one range read.
    shards.sort(key=lambda s: s.get("format") != "webdataset")
    for shard in shards:
        if shard.get("family"):
            continue  # (a family holds some products only)
        if shard.get("format") == "webdataset" and "offsets" in shard and "sizes" in shard:
            at = shard["keys"].index(record)
            raw = storage.read_range(shard["name"], shard["offsets"][at], shard["sizes"][at])
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
                for member in tar:
                    if member.name == f"{record}.{key}.npy":
                        data = tar.extractfile(member).read()
                        return restore_dtype(np.load(io.BytesIO(data), allow_pickle=False))
            continue
        decoder = DECODERS.get(shard.get("format"))
        if decoder is None or not isinstance(storage, LocalStorage):
            continue
        for sample in decoder(storage.path(shard["name"])):
            if sample.key == record:
                return sample.arrays.get(key)
    return None
