"""Shards hashed while written: the digest is the file's, and the bytes are tarfile's."""

import hashlib
import io
import tarfile

import numpy as np
import pytest

from nishard.archives import hashing
from nishard.archives.hashing import HashingFile
from nishard.archives.webdataset import FIXED_MTIME, WebDataset


@pytest.mark.parametrize("sizes", [[], [10], [70_000], [3, 5, 200_000, 7, 1, 300_000, 2]])
def test_the_digest_is_the_sha256_of_the_file(tmp_path, monkeypatch, sizes):
    # Small chunks and a short lead, so that a few hundred kB cross every path.
    monkeypatch.setattr(hashing, "CHUNK", 1 << 16)
    monkeypatch.setattr(hashing, "AHEAD", 1)
    rng = np.random.default_rng(0)
    path = tmp_path / "f"
    file = HashingFile(path)
    for size in sizes:
        # Array views and bytes, as the formats hand them over.
        data = rng.integers(0, 256, size, dtype=np.uint8)
        file.write(memoryview(data) if size % 2 else data.tobytes())
    file.close()
    content = path.read_bytes()
    assert len(content) == file.size == sum(sizes)
    assert file.sha256 == hashlib.sha256(content).hexdigest()


def _tarfile_bytes(samples: list[tuple[str, dict[str, bytes]]]) -> bytes:
    """What ``tarfile`` writes for the same members, the reference for our own framing."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for key, fields in samples:
            for field in sorted(fields):
                info = tarfile.TarInfo(f"{key}.{field}")
                info.size, info.mtime, info.mode = len(fields[field]), FIXED_MTIME, 0o444
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(fields[field]))
    return buffer.getvalue()


def test_tar_shards_are_the_bytes_tarfile_writes(tmp_path):
    fmt = WebDataset()
    arrays = [np.arange(7, dtype=np.float32), np.ones((300, 1000), dtype=np.float16)]
    # The second key is longer than ustar's 100 characters: a PAX header carries it.
    keys = ["sub-01_task-rest_run-1", "sub-02_" + "x" * 120]
    samples = [
        (k, fmt.encode(k, {"bold": a}, {"age": i}))
        for i, (k, a) in enumerate(zip(keys, arrays, strict=True))
    ]
    shard = fmt.open(str(tmp_path / "s.tar"))
    for key, fields in samples:
        shard.add(key, fields)
    shard.close()
    written = (tmp_path / "s.tar").read_bytes()
    as_bytes = [(k, {f: bytes(v) for f, v in fields.items()}) for k, fields in samples]
    assert written == _tarfile_bytes(as_bytes)
    assert shard.sha256 == hashlib.sha256(written).hexdigest()
    content = sum(fmt.sample_size(k, fields) for k, fields in samples)
    assert len(written) == fmt.file_size(content)
