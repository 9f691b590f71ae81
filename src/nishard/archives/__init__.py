"""Write: products as sharded archives (WebDataset tar) with a manifest."""

from .manifest import MANIFEST, read_manifest
from .shards import ShardSpec, by_count, by_size, parse_bytes
from .webdataset import WebDataset
from .write import write

#: Formats by the name a YAML spec gives them.
FORMATS: dict[str, type] = {WebDataset.name: WebDataset}


def webdataset() -> WebDataset:
    """The WebDataset tar format; see :class:`WebDataset`."""
    return WebDataset()


__all__ = [
    "FORMATS", "MANIFEST", "ShardSpec", "WebDataset", "by_count", "by_size", "parse_bytes",
    "read_manifest", "webdataset", "write",
]  # fmt: skip
