"""WebDataset tar shards: one member per field, ``<key>.<field>``, members of a sample adjacent."""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .encode import encode_json, encode_npy

#: The mtime stamped on every member, so that the same samples give the same bytes.
FIXED_MTIME = 0

_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class TarShard:
    """An open tar shard; members get fixed owner, mode and mtime.

    PAX format: names up to 100 characters get plain ustar headers, longer BIDS keys a PAX
    record, where ustar would refuse them.
    """

    def __init__(self, path: str):
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        for field in sorted(fields):
            info = tarfile.TarInfo(f"{key}.{field}")
            info.size = len(fields[field])
            info.mtime = FIXED_MTIME
            info.mode = 0o444
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(fields[field]))

    def close(self) -> None:
        self._tar.close()


@dataclass(frozen=True)
class WebDataset:
    """WebDataset format: arrays as ``.npy`` members, record metadata as ``.json``.

    A sample ``sub-01_task-rest_run-1`` with a product ``bold`` becomes the members
    ``sub-01_task-rest_run-1.bold.npy`` and ``sub-01_task-rest_run-1.json``; the
    ``webdataset`` library reads them as fields ``bold.npy`` and ``json``.
    """

    name: ClassVar[str] = "webdataset"
    extension: ClassVar[str] = ".tar"

    def to_dict(self) -> dict:
        return {"name": self.name}

    def open(self, path: str) -> TarShard:
        return TarShard(path)

    def encode(self, key: str, products: dict[str, np.ndarray], meta: dict) -> dict[str, bytes]:
        if not _KEY.match(key):
            raise ValueError(f"sample key {key!r}: WebDataset keys are letters, digits, - and _")
        fields = {f"{name}.npy": encode_npy(array) for name, array in products.items()}
        fields["json"] = encode_json(meta)
        return fields

    def sample_size(self, key: str, fields: dict[str, bytes]) -> int:
        """Bytes the sample adds to a tar: a header per member, data padded to 512 bytes,
        and a PAX header pair for member names over 100 characters."""
        size = 0
        for field, data in fields.items():
            long_name = len(f"{key}.{field}") > 100
            size += 512 + _padded(len(data)) + (1024 if long_name else 0)
        return size

    @staticmethod
    def file_size(content: int) -> int:
        """The finished tar: content, two zero blocks, padded to tarfile's 10240-byte records."""
        return -(-(content + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _padded(n: int) -> int:
    return -(-n // 512) * 512
