"""A build whose output is an ``s3://`` folder: written locally, then published.

Each group's shards are uploaded as soon as the group is finished (:class:`Uploads`; by
its own task when the build runs as shard tasks), the rest at the end. The build runs as
every build does, in a local staging folder (``$NISHARD_CACHE`` or
``~/.cache/nishard``, under ``builds/<hash of the URL>``), with its journal there: a killed
build resumes from it. Then :func:`upload_build` puts each file the manifest names into
the bucket (boto3's transfer: multipart for large files, which S3 shows only once
complete, so no reader sees half an object), each object carrying its sha256 as
metadata, and ``manifest.json`` last: the commit point, as for a local folder. A rerun
asks the store for each object's size and checksum (one HEAD request) and uploads only
what is missing or differs.

An upload stopped midway (the process or the server killed, the connection lost) leaves
no object under a shard's name, only multipart parts that S3 keeps unseen: each upload
begins by aborting those left under the prefix. An object is counted as done only when
both its size and its sha256 metadata are the local file's: one without the metadata
(written by something else, or cut short) is uploaded again.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..archives.manifest import MANIFEST, PartialManifest, read_manifest
from ..archives.storage import S3Storage
from ..checksums import sha256_file


def staging_folder(url: str) -> Path:
    """Where the build for ``url`` is written before it is uploaded."""
    root = os.environ.get("NISHARD_CACHE") or Path.home() / ".cache" / "nishard"
    return Path(root) / "builds" / hashlib.sha256(url.encode()).hexdigest()[:16]


def build_files(folder: Path, manifest: dict) -> list[str]:
    """The files of a finished build besides its manifest: shards, then side files."""
    names = [shard["name"] for shard in manifest.get("shards", [])]
    for section in ("stats", "indexes", "documents"):
        for entry in manifest.get(section, {}).values():
            if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                names.append(entry["file"])
    return list(dict.fromkeys(names))


def upload_build(folder: Path, storage: S3Storage) -> dict[str, int]:
    """Publish the build in ``folder`` to ``storage``, the manifest last.

    Returns
    -------
    dict
        ``uploaded`` and ``skipped`` (already there with the same size and sha256) files,
        and the incomplete multipart uploads ``aborted`` first.

    Raises
    ------
    StorageError
        Naming the bucket when it is missing, the endpoint when it refuses the
        credentials, the object when its upload fails. The local build stays: the same
        call (or build) run again resumes.
    """
    manifest = read_manifest(folder)
    # The first request: a missing bucket or refused credentials stop here, by name.
    counts = {"aborted": storage.abort_uploads(), "uploaded": 0, "skipped": 0}
    listed = {s["name"]: str(s["sha256"]) for s in manifest["shards"]}
    names = build_files(folder, manifest)
    counts |= upload_files(folder, storage, {name: listed.get(name) for name in names})
    # Last, and always: the commit point.
    storage.put_file(
        folder / MANIFEST, MANIFEST, sha256_file(folder / MANIFEST).removeprefix("sha256:")
    )
    counts["uploaded"] += 1
    return counts


def upload_files(folder: Path, storage: S3Storage, files: dict[str, str | None]) -> dict[str, int]:
    """Upload each of ``files`` (name: its sha256 when known) unless the store has it
    with the same size and sha256 metadata; ``uploaded`` and ``skipped`` counts. What a
    shard task runs for its group's shards, and :func:`upload_build` for the rest."""
    counts = {"uploaded": 0, "skipped": 0}
    for name, known in files.items():
        path = folder / name
        sha256 = (known or sha256_file(path)).removeprefix("sha256:")
        if storage.checksum(name) == (path.stat().st_size, sha256):
            counts["skipped"] += 1
            continue
        storage.put_file(path, name, sha256)
        counts["uploaded"] += 1
    return counts


class Uploads:
    """The shards of each finished group uploaded in the background (one group at a
    time) while the build goes on; nothing for a local build (``storage`` None)."""

    def __init__(self, folder: Path, storage: S3Storage | None):
        self.folder, self.storage = folder, storage
        self._pool = ThreadPoolExecutor(1, "nishard-upload") if storage is not None else None
        self._pending: list[Future] = []
        self.counts = {"uploaded": 0, "skipped": 0}

    def add(self, partial: PartialManifest) -> None:
        if self._pool is not None:
            files = {info.name: info.sha256 for info in partial.shards}
            self._pending.append(self._pool.submit(upload_files, self.folder, self.storage, files))

    def wait(self) -> None:
        """Wait for every upload; raise the first that failed."""
        if self._pool is None:
            return
        try:
            for pending in self._pending:
                for key, count in pending.result().items():
                    self.counts[key] += count
        finally:
            self._pool.shutdown()

    def abort(self) -> None:
        """Upload no more (the one under way ends); a rerun uploads what is missing."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
