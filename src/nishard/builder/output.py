"""What a build writes and how: one value for a spec's ``output`` section.

:class:`Output` holds the options of the output section (the folder, the formats and
archive families, the shard limits, the split, the writing order's seed and the plan's
products); :meth:`Output.from_dict` reads the section as a YAML spec writes it, every key
checked, and :meth:`Output.to_dict` writes it back exactly as the spec and the manifest
record it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archives import FORMATS, Family, Format, ShardSpec
from ..archives.storage import S3_OPTIONS
from ..archives.webdataset import WebDataset
from ..errors import SpecError
from ..registry import as_list, as_mapping, known_keys, required
from ..units import parse_bytes
from .splits import SPLITS, Split, check_split_name

#: The keys of a spec's output section, in the order a spec writes them.
KEYS = ("path", "formats", "shards", "split", "shuffle", "products", "storage_options")


@dataclass(frozen=True)
class Output:
    """Where and how a build writes its samples.

    Parameters
    ----------
    path : str or Path
        The output folder, as the user wrote it (a spec's is relative to its file).
    formats : sequence of Format or Family
        Each gets its own shards of every sample (default: WebDataset tar); a
        :class:`~nishard.archives.Family` holds only some products.
    shards : ShardSpec
        Shard limits (default: 512 MB per shard).
    split : str or Split
        The one split every sample goes to, or a strategy (:mod:`.splits`).
    shuffle : int or None
        Seed of the order samples are written in; None keeps the records' order.
    products : sequence of str, optional
        The plan's products to write (``assemble(products=...)``); None: every key the
        last steps write. Formats narrowed to some of them are families.
    storage_options : dict, optional
        For an ``s3://`` path: ``endpoint_url`` and ``profile`` of its store (no
        credentials: those come the AWS way, from the environment or profiles).
    """

    path: str | Path
    formats: tuple[Format | Family, ...] = (WebDataset(),)
    shards: ShardSpec = field(default_factory=ShardSpec)
    split: str | Split = "all"
    shuffle: int | None = 0
    products: tuple[str, ...] | None = None
    storage_options: dict | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(self.formats))
        if self.products is not None:
            object.__setattr__(self, "products", tuple(self.products))

    def to_dict(self) -> dict:
        """The output section of a spec, with the path as the user wrote it; ``products``
        only when set."""
        out = {
            "path": str(self.path),
            "formats": [fmt.to_dict() for fmt in self.formats],
            "shards": self.shards.to_dict(),
            "split": self.split if isinstance(self.split, str) else self.split.to_dict(),
            "shuffle": self.shuffle,
        }
        if self.products is not None:
            out["products"] = list(self.products)
        if self.storage_options:
            out["storage_options"] = dict(self.storage_options)
        return out

    @classmethod
    def from_dict(cls, section: Any) -> Output:
        """An output section as a spec writes it (``path`` required, the rest defaulted).

        Raises
        ------
        SpecError
            An unknown key (with a close match), a missing path, an unknown format or
            split strategy, or a bad value, each named with its place (``output.shards``).
        """
        section = as_mapping(section, "output")
        known_keys(section, KEYS, "output")
        path = required(section, "path", "output")
        formats = tuple(
            _format(item, f"output.formats[{i}]")
            for i, item in enumerate(as_list(section.get("formats", ["webdataset"]),
                                             "output.formats"))
        )  # fmt: skip
        shards = _shards(section.get("shards", {}))
        split = _split(section.get("split", "all"))
        shuffle = section.get("shuffle", 0)
        if shuffle is not None and (not isinstance(shuffle, int) or isinstance(shuffle, bool)):
            raise SpecError(f"output.shuffle must be an integer seed or null, got {shuffle!r}")
        products = section.get("products")
        if products is not None:
            products = tuple(str(p) for p in as_list(products, "output.products"))
        options = _storage_options(section.get("storage_options"), str(path))
        return cls(str(path), formats, shards, split, shuffle, products, options)


def _format(entry: Any, where: str) -> Format | Family:
    """A format entry: ``webdataset``, ``{name: hdf5, compression: gzip}``, or a family of
    some products ``{name: tfrecord, products: [connectivity], family: conn}``."""
    if not isinstance(entry, dict) or ("products" not in entry and "family" not in entry):
        return FORMATS.from_dict(entry, where=where)
    entry = dict(entry)
    products, family = entry.pop("products", None), entry.pop("family", None)
    fmt = FORMATS.from_dict(entry, where=where)
    if products is None:
        raise SpecError(f"{where}: a family names its products (a list, or 'each')")
    if not isinstance(products, str):
        products = tuple(str(p) for p in as_list(products, f"{where}.products"))
    try:
        return Family(fmt, products, None if family is None else str(family))
    except ValueError as err:
        raise SpecError(f"{where}: {err}") from err


def _shards(entry: Any) -> ShardSpec:
    """``{max_samples: 16, max_bytes: 512MB}``, either one null for no limit of that kind."""
    if not isinstance(entry, dict):  # `shards: 512MB`: say what goes there
        raise SpecError(
            "output.shards must be a mapping of max_samples and max_bytes (either may be "
            f"left out), e.g. {{max_bytes: 512MB}}; got {type(entry).__name__}: {entry!r}"
        )
    known_keys(entry, ("max_samples", "max_bytes"), "output.shards")
    max_bytes = entry.get("max_bytes", ShardSpec.max_bytes)
    if max_bytes is not None:
        try:
            max_bytes = parse_bytes(max_bytes)
        except ValueError as err:
            raise SpecError(f"output.shards.max_bytes: {err}") from err
    try:
        return ShardSpec(max_samples=entry.get("max_samples"), max_bytes=max_bytes)
    except (TypeError, ValueError) as err:  # its message names the option at fault
        raise SpecError(f"output.shards: {err}") from err


def _split(entry: Any) -> str | Split:
    """``train`` (one named split) or ``{name: stratified, by: diagnosis, ...}``."""
    if isinstance(entry, str):
        try:
            return check_split_name(entry)
        except ValueError as err:
            raise SpecError(f"output.split: {err}") from err
    return SPLITS.from_dict(entry, where="output.split")


def _storage_options(entry: Any, path: str) -> dict | None:
    """``{endpoint_url: http://host:8333, profile: lab}`` of an ``s3://`` path."""
    if entry is None:
        return None
    entry = as_mapping(entry, "output.storage_options")
    known_keys(entry, S3_OPTIONS, "output.storage_options")
    if not path.startswith("s3://"):
        raise SpecError(f"output.storage_options are for an s3:// path, not {path!r}")
    return {str(k): str(v) for k, v in entry.items()}
