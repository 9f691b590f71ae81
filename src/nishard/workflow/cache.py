"""A content-addressed store of node outputs, in the manner of ``joblib.Memory``.

A node's key hashes what determines its output: the specs of its steps, the keys of the
nodes it reads from, the checksums of the record files it loads and the record's metadata
(the TR, for one). Editing the last step of a spec changes only the keys of the nodes from
that step on, so a rerun loads everything before it from the store. The store also carries
arrays between the tasks of a workflow engine (Pydra), which pass paths, not arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..checksums import sha256_file
from ..errors import check_writable, raise_if_full, raise_if_unwritable

#: What the store writes: ``<key[:2]>/<key>.joblib``, and ``.tmp`` files while saving.
#: Only these are counted or removed, so that clearing a mistyped folder deletes nothing
#: of the user's.
_ENTRY = re.compile(r"([0-9a-f]{2})/\1[0-9a-f]{30}\.joblib")
_PARTIAL = re.compile(r"([0-9a-f]{2})/[^/]+\.tmp")


def node_key(
    steps: list[dict],
    parents: list[str],
    files: dict[str, str],
    meta: dict,
    outputs: Sequence[str] = (),
) -> str:
    """The content hash of one node's output for one record."""
    payload = {"nishard": __version__, "steps": steps, "parents": parents, "files": files,
               "meta": meta, "outputs": sorted(outputs)}  # fmt: skip
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def step_files(step: object) -> dict[str, str]:
    """sha256 of every file a step's options name (an atlas, a mask), by option name."""
    out = {}
    for field in dataclasses.fields(step):  # type: ignore[arg-type]
        value = getattr(step, field.name)
        if isinstance(value, str | os.PathLike) and str(value) and Path(value).is_file():
            stat = Path(value).stat()
            out[field.name] = _digest(str(Path(value).resolve()), stat.st_size, stat.st_mtime_ns)
    return out


@functools.lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    # Keyed by size and mtime too: an atlas is hashed once per build, not once per record,
    # and again when it is rewritten.
    return sha256_file(path)


@dataclass(frozen=True)
class NodeCache:
    """Node outputs on disk: ``folder/<key[:2]>/<key>.joblib``.

    Parameters
    ----------
    folder : str or Path
        Created when missing. Safe to share between processes: files appear atomically.
    """

    folder: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.joblib"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def load(self, key: str, mmap: bool = False) -> dict[str, Any] | None:
        """The stored outputs, or None when absent or unreadable (then recomputed).

        With ``mmap``, arrays are read-only mappings of the file rather than copies
        (files are replaced, never rewritten in place, so a mapping stays valid).
        """
        import joblib

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return joblib.load(path, mmap_mode="r" if mmap else None)
        except Exception:  # a torn or foreign file: recomputing is always correct
            return None

    def save(self, key: str, outputs: dict[str, Any]) -> Path:
        """Store a node's outputs under ``key``.

        Raises
        ------
        DiskFullError, UnwritableError
            When the store has no room, or refuses the write (a permission, a read-only
            file system): the build stops; the record is not at fault.
        """
        import joblib

        path = self.path(key)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(fd)
            joblib.dump(outputs, tmp, compress=0)
            os.replace(tmp, path)
        except OSError as error:
            where = tmp or getattr(error, "filename", None) or path.parent
            raise_if_full(error, where, self.place)
            raise_if_unwritable(error, where, self.place)
            raise
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        return path

    def remove_partials(self, since: float) -> None:
        """Remove the temporary files of writes begun at or after ``since`` (a time
        stamp) and never finished: what workers stopped mid-write left behind."""
        for partial in self.folder.glob("*/*.tmp"):
            try:
                if partial.stat().st_mtime >= since - 1:
                    partial.unlink()
            except FileNotFoundError:
                pass

    @property
    def place(self) -> str:
        """The store as errors name it: ``the node cache <folder>``."""
        return f"the node cache {self.folder}"

    def check_writable(self) -> None:
        """Create the folder when missing and prove that it takes files: a build calls it
        before anything runs, so that a store it cannot write stops it at once, the same
        under every executor, rather than in (or as a quarantine by) every worker.

        Raises
        ------
        UnwritableError, DiskFullError
            Naming the folder and the system's reason.
        """
        check_writable(self.folder, self.place)

    def entries(self) -> list[Path]:
        """The stored outputs, sorted; nothing else a folder may hold."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("??/*.joblib") if self._ours(p, _ENTRY))

    def info(self) -> CacheInfo:
        """How many outputs are stored and their bytes on disk."""
        entries = self.entries()
        return CacheInfo(self.folder, len(entries), sum(_size(p) for p in entries))

    def clear(self) -> CacheInfo:
        """Remove every stored output (and files a killed save left); what was removed.

        Only the store's own files go, then the subfolders they leave empty and the
        folder itself if nothing else is in it: a folder given by mistake keeps whatever
        else it holds.
        """
        removed = self.info()
        partial = [p for p in self.folder.glob("??/*.tmp") if self._ours(p, _PARTIAL)]
        for path in [*self.entries(), *partial]:
            path.unlink(missing_ok=True)
        for sub in sorted(self.folder.glob("??")):
            _remove_if_empty(sub)
        _remove_if_empty(self.folder)
        return removed

    def size(self) -> int:
        """Bytes on disk."""
        return self.info().bytes

    def _ours(self, path: Path, pattern: re.Pattern) -> bool:
        return path.is_file() and pattern.fullmatch(path.relative_to(self.folder).as_posix())


@dataclass(frozen=True)
class CacheInfo:
    """What a node cache holds (or held, from :meth:`NodeCache.clear`).

    Attributes
    ----------
    folder : Path
    entries : int
        Stored node outputs (one per node and record).
    bytes : int
        Their size on disk.
    """

    folder: Path
    entries: int
    bytes: int


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # removed by a concurrent clear
        return 0


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty, or already gone
        pass
