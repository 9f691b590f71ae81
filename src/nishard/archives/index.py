"""Random access: a wids shard index per split, and sample offsets per shard.

``<split>.wids.json`` is the shard index of webdataset's ``wids`` package (``pip install
wids``): ``wids.ShardListDataset("out/train.wids.json")`` is then a map-style dataset,
``ds[i]`` the ``i``-th sample of the split in writing order. Its shard URLs are relative
to the index, so the folder can be moved or copied. wids copies shards into a cache
folder unless told where they are: ``ShardListDataset(path, cache_dir="out")`` reads
them in place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .shards import ShardInfo
from .storage import LocalStorage, publishing

#: The format wids reads: tar shards.
WIDS_FORMAT = "webdataset"


def wids_name(split: str) -> str:
    return f"{split}.wids.json"


def wids_index(split: str, shards: Sequence[ShardInfo]) -> dict:
    """The wids shard index (``wids-shard-index-v1``) of a split's tar shards, in order."""
    return {
        "__kind__": "wids-shard-index-v1",
        "wids_version": 1,
        "name": split,
        "shardlist": [{"url": s.name, "nsamples": s.samples, "filesize": s.bytes} for s in shards],
    }


def write_json(path: Path, content: dict) -> None:
    """Sorted, indented JSON, published whole (:func:`~.storage.publishing`) or absent."""
    text = json.dumps(content, indent=2, sort_keys=True, allow_nan=False) + "\n"
    with publishing(LocalStorage(path.parent), path.name) as temporary:
        temporary.write_text(text)
