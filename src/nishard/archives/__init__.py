"""Write: products as sharded archives (WebDataset tar) with a manifest."""

from .manifest import MANIFEST, read_manifest
from .shards import Format, ShardSpec, by_count, by_size, parse_bytes
from .webdataset import WebDataset
from .write import output_spec, write

#: Formats by the name a YAML spec gives them.
FORMATS: dict[str, type] = {WebDataset.name: WebDataset}

__all__ = [
    "FORMATS", "MANIFEST", "Format", "ShardSpec", "WebDataset", "by_count", "by_size",
    "output_spec", "parse_bytes", "read_manifest", "write",
]  # fmt: skip
