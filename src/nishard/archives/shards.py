"""Sharding: roll samples into numbered shard files by count and by bytes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..checksums import sha256_file

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip


def parse_bytes(value: int | str) -> int:
    """``512MB`` -> 512_000_000, ``1GiB`` -> 1_073_741_824; integers pass through."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
    if match is None or match.group(2).upper() not in _UNITS:
        raise ValueError(f"a size like 512MB or 1GiB, got {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


@dataclass(frozen=True)
class ShardSpec:
    """When to start a new shard: after ``max_samples`` or before passing ``max_bytes``.

    A sample larger than ``max_bytes`` gets a shard of its own rather than an error.
    """

    max_samples: int | None = None
    max_bytes: int | None = 512 * 10**6

    def __post_init__(self) -> None:
        if self.max_samples is None and self.max_bytes is None:
            raise ValueError("a shard limit: max_samples, max_bytes or both")
        for name in ("max_samples", "max_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")

    def to_dict(self) -> dict:
        return {k: v for k, v in (("max_samples", self.max_samples),
                                  ("max_bytes", self.max_bytes)) if v is not None}  # fmt: skip

    def full(self, samples: int, size: int, incoming: int) -> bool:
        if samples == 0:
            return False
        if self.max_samples is not None and samples >= self.max_samples:
            return True
        return self.max_bytes is not None and size + incoming > self.max_bytes


def by_count(n: int) -> ShardSpec:
    """Shards of at most ``n`` samples."""
    return ShardSpec(max_samples=n, max_bytes=None)


def by_size(size: int | str) -> ShardSpec:
    """Shards of at most ``size`` bytes (``"512MB"``, ``"1GiB"`` or an int)."""
    return ShardSpec(max_samples=None, max_bytes=parse_bytes(size))


@dataclass
class ShardInfo:
    """One finished shard, as the manifest lists it."""

    name: str
    split: str
    format: str
    samples: int
    bytes: int
    sha256: str
    keys: list[str] = field(default_factory=list)


class ShardWriter:
    """Writes the samples of one split in one format to ``<split>-000000<ext>``, ...

    A shard is written under a temporary name and renamed when complete, so a reader (or
    a crash) never sees half a shard under a final name.
    """

    def __init__(self, folder: Path, split: str, fmt, spec: ShardSpec):
        self.folder, self.split, self.fmt, self.spec = folder, split, fmt, spec
        self.shards: list[ShardInfo] = []
        self._open = None
        self._keys: list[str] = []
        self._size = 0

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        incoming = self.fmt.size(fields)
        if self._open is not None and self.spec.full(len(self._keys), self._size, incoming):
            self._finish()
        if self._open is None:
            self._start()
        self._open.add(key, fields)
        self._keys.append(key)
        self._size += incoming

    def close(self) -> list[ShardInfo]:
        if self._open is not None:
            self._finish()
        return self.shards

    def _name(self) -> str:
        return f"{self.split}-{len(self.shards):06d}{self.fmt.extension}"

    def _start(self) -> None:
        self._open = self.fmt.open(str(self.folder / (self._name() + ".tmp")))
        self._keys, self._size = [], 0

    def _finish(self) -> None:
        self._open.close()
        self._open = None
        name = self._name()
        temporary = self.folder / (name + ".tmp")
        digest = sha256_file(temporary)
        size = temporary.stat().st_size
        os.replace(temporary, self.folder / name)
        self.shards.append(
            ShardInfo(name, self.split, self.fmt.name, len(self._keys), size, digest, self._keys)
        )
