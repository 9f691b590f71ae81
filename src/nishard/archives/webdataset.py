"""WebDataset tar shards: one member per field, ``<key>.<field>``, members of a sample adjacent."""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .encode import Parts, buffers, encode_json, nbytes, npy_parts
from .hashing import HashedShard

#: The mtime stamped on every member, so that the same samples give the same bytes.
FIXED_MTIME = 0

_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class TarShard(HashedShard):
    """An open tar shard; members get fixed owner, mode and mtime.

    The bytes are those ``tarfile`` writes in PAX format (names up to 100 characters get
    plain ustar headers, longer BIDS keys a PAX record, where ustar would refuse them), but
    written here: ``tarfile`` copies each member through 16 kB reads, and the array
    buffers go to the file as they are. The shard's sha256 is computed as it is written,
    and each sample's CRC-32C over its members' headers, data and padding.
    """

    def add(self, key: str, fields: dict[str, bytes | Parts]) -> None:
        self._file.begin()
        for field in sorted(fields):
            info = tarfile.TarInfo(f"{key}.{field}")
            info.size = nbytes(fields[field])
            info.mtime = FIXED_MTIME
            info.mode = 0o444
            info.uname = info.gname = ""
            self._file.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            self._file.writelines(buffers(fields[field]))
            self._file.write(bytes(_padded(info.size) - info.size))
        self._file.end()

    def close(self) -> None:
        # The end of an archive: two zero blocks, then zeros to a whole tar record.
        self._file.write(bytes(WebDataset.file_size(self._file.size) - self._file.size))
        super().close()


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

    def encode(
        self, key: str, products: dict[str, np.ndarray], meta: dict
    ) -> dict[str, bytes | Parts]:
        if not _KEY.match(key):
            raise ValueError(f"sample key {key!r}: WebDataset keys are letters, digits, - and _")
        fields: dict[str, bytes | Parts] = {
            f"{name}.npy": npy_parts(array) for name, array in products.items()
        }
        fields["json"] = encode_json(meta)
        return fields

    def sample_size(self, key: str, fields: dict[str, bytes | Parts]) -> int:
        """Bytes the sample adds to a tar: a header per member, data padded to 512 bytes,
        and a PAX header pair for member names over 100 characters."""
        size = 0
        for field, data in fields.items():
            long_name = len(f"{key}.{field}") > 100
            size += 512 + _padded(nbytes(data)) + (1024 if long_name else 0)
        return size

    @staticmethod
    def file_size(content: int) -> int:
        """The finished tar: content, two zero blocks, padded to tarfile's 10240-byte records."""
        return -(-(content + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _padded(n: int) -> int:
    return -(-n // 512) * 512
