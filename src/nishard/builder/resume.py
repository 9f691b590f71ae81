"""The resume journal: what an interrupted build finished, so a rerun does only the rest.

A build keeps ``<out>/.nishard-resume/``: ``journal.jsonl`` and the statistics of each
finished block (:mod:`.stats`). The journal is append-only JSON lines:

- a header: the build's fingerprint (records, their files' sizes and mtimes, transforms,
  formats, shard limits, split, shuffle, library versions) and the files a previous
  complete build listed, removed at the end if this build does not rewrite them;
- a ``record`` line per record as the writer takes it: its input checksums, its
  quarantine entry or the dtype and shape of its products;
- a ``shard`` line right after each shard's rename: its group, name, size, sha256 and
  the sample keys it holds, and for the first format the file with the statistics of
  the group's samples.

Appending one line is O(1) per shard where rewriting a journal of every record would be
O(records); a line cut short by a crash is simply dropped on reading, with all after it.

Order and shard groups are deterministic given the fingerprint, so a shard an
interrupted build finished is the shard of its group an uninterrupted one writes. A
rerun with the same fingerprint checks each listed shard (size, sha256) and keeps the
intact ones; it does not recompute the records of a group whose every format's shard is
kept (nor the quarantined ones), writes the other shards, and ends with byte-identical
shards and manifest. A different fingerprint starts over. The folder is removed once the
manifest is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..archives.shards import ShardInfo
from ..archives.stats import Moments, load_block, save_block
from ..archives.storage import LocalStorage, sha256_of, sync
from ..checksums import sha256_file
from ..errors import StorageError, raise_if_full, raise_if_unwritable
from ..records.table import Record

FOLDER = ".nishard-resume"
JOURNAL = "journal.jsonl"
VERSION = 2  # 2: shards by group (a group is one shard in every format)


def fingerprint(
    order: Sequence[Record], assignment: dict[str, str], setup: dict, versions: dict
) -> str:
    """sha256 of everything that decides the bytes a build writes.

    Input files enter by path, size and mtime (not content: hashing every input before
    starting would cost as much as a small build); touching a file starts over.
    """
    digest = hashlib.sha256()
    digest.update(_canonical({"journal": VERSION, "setup": setup, "versions": versions}))
    for record in order:
        files = {kind: [_stat(p) for p in _paths(value)] for kind, value in record.files.items()}
        item = [record.id, assignment[record.id], files, record.metadata]
        digest.update(_canonical(item))
    return digest.hexdigest()


@dataclass
class Resumed:
    """What an interrupted build with the same fingerprint left that can be trusted.

    Attributes
    ----------
    records : dict of int to dict
        Record entries by position in the writing order: a contiguous prefix.
    shards : dict of (split, group, format, family) to ShardInfo
        The intact finished shards.
    blocks : dict of (split, group) to dict
        The statistics of each group whose first format's shard is intact.
    """

    records: dict[int, dict] = field(default_factory=dict)
    shards: dict[tuple[str, int, str, str | None], ShardInfo] = field(default_factory=dict)
    blocks: dict[tuple[str, int], dict[str, Moments]] = field(default_factory=dict)


class Journal:
    """The journal of one build in ``folder``; see the module docstring.

    Parameters
    ----------
    folder : Path
        The output folder.
    fingerprint : str
        From :func:`fingerprint`.
    """

    def __init__(self, folder: Path, fingerprint: str):
        self.folder, self.fingerprint = folder, fingerprint
        self.home = folder / FOLDER
        # The shards through the output folder's storage; the journal, appended to
        # line by line, stays a local file.
        self.storage = LocalStorage(folder)
        self._home = LocalStorage(self.home)
        self._file = None
        self._lines: list[dict] = []
        # Shards are journaled from the shard writers' sync threads, records from the
        # writer's: one line at a time.
        self._lock = threading.RLock()

    # ----------------------------------------------------------------------- reading

    def load(
        self, first_formats: dict[str, tuple[str, str | None]]
    ) -> tuple[Resumed | None, set[str]]:
        """What a journal here lets this build skip, and the files it says to remove.

        Parameters
        ----------
        first_formats : dict
            The format and family whose shards carry the groups' statistics, per split.

        Returns
        -------
        Resumed or None
            None when there is no journal, or one of another build (which is dropped).
        set of str
            Files to remove if this build does not rewrite them: those a complete build
            before the journal's listed, and the shards of an abandoned journal.
        """
        lines = self._read()
        if not lines or lines[0].get("journal") != VERSION:
            return None, set()
        header, body = lines[0], lines[1:]
        previous = set(header.get("previous", []))
        if header.get("fingerprint") != self.fingerprint:
            return None, previous | {ln["shard"]["name"] for ln in body if "shard" in ln}
        self._lines = [header]
        resumed = Resumed()
        for line in body:
            if "record" in line:
                entry = line["record"]
                resumed.records[entry["position"]] = entry
        resumed.records = _contiguous(resumed.records)
        for line in body:
            if "shard" not in line:
                continue
            entry = dict(line["shard"])
            group = entry.pop("group", None)
            stats = entry.pop("stats", None)
            info = ShardInfo.from_dict(entry)
            if not isinstance(group, int) or not self._intact(info, group):
                continue
            if first_formats.get(info.split) == (info.format, info.family):
                block = self._block(stats)
                if block is None:
                    continue
                resumed.blocks[(info.split, group)] = block
            resumed.shards[(info.split, group, info.format, info.family)] = info
            self._lines.append(line)
        self._lines += [{"record": e} for _, e in sorted(resumed.records.items())]
        return resumed, previous

    def listed(self) -> set[str]:
        """The files a journal here says to remove if not rewritten (see :meth:`load`),
        without checking anything: for a build that starts over regardless."""
        lines = self._read()
        if not lines or lines[0].get("journal") != VERSION:
            return set()
        shards = {line["shard"]["name"] for line in lines[1:] if "shard" in line}
        return set(lines[0].get("previous", [])) | shards

    def _read(self) -> list[dict]:
        try:
            text = self._home.read_bytes(JOURNAL).decode()
        except (OSError, UnicodeDecodeError, StorageError):
            return []
        lines = []
        for raw in text.split("\n")[:-1]:  # the last piece lacks its newline: cut short
            try:
                line = json.loads(raw)
            except ValueError:
                break
            if not isinstance(line, dict):
                break
            lines.append(line)
        return lines

    def _intact(self, info: ShardInfo, group: int) -> bool:
        """The shard is its group's, and on disk with the bytes listed."""
        if info.name.split(".")[0].rsplit("-", 1)[-1] != f"{group:06d}":
            return False
        try:
            found = self.storage.stat(info.name)
            return (
                found is not None
                and found.size == info.bytes
                and sha256_of(self.storage, info.name) == info.sha256
            )
        except (OSError, StorageError):
            return False

    def _block(self, stats: dict | None) -> dict[str, Moments] | None:
        if not isinstance(stats, dict):
            return None
        path = self.home / stats["file"]
        try:
            if sha256_file(path) != stats["sha256"]:
                return None
            return load_block(path)
        except (OSError, ValueError, KeyError):
            return None

    # ----------------------------------------------------------------------- writing

    def start(self, previous: Iterable[str], resumed: Resumed | None) -> None:
        """Begin this build's journal: the kept part of the old one, or a new header."""
        if resumed is None:
            shutil.rmtree(self.home, ignore_errors=True)
            self._lines = [
                {"journal": VERSION, "fingerprint": self.fingerprint,
                 "previous": sorted(previous)}
            ]  # fmt: skip
        path = self.home / JOURNAL
        temporary = path.with_name(JOURNAL + ".tmp")
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            temporary.write_text("".join(_line(line) for line in self._lines))
            self._home.publish(temporary, JOURNAL)
            self._file = open(path, "a", encoding="utf-8")  # closed by close()
        except OSError as error:
            # Before any shard: a folder that refuses the journal (another user's, a
            # read-only mount) stops the build in one line, leaving no temporary.
            with contextlib.suppress(OSError):  # (a read-only folder refuses even this)
                temporary.unlink(missing_ok=True)
            where = getattr(error, "filename", None) or self.home
            place = f"the output folder {self.folder}"
            raise_if_full(error, where, place)
            raise_if_unwritable(error, where, place)
            raise

    def record(self, entry: dict) -> None:
        """Journal a record as the writer took it (flushed; synced with the next shard)."""
        self._append({"record": entry})

    def shard(
        self, info: ShardInfo, block: dict[str, Moments] | None = None, group: int = 0
    ) -> None:
        """Journal a renamed shard of a group and, for a first format, the group's
        statistics (from any thread)."""
        entry = info.to_dict() | {"group": group}
        if block is not None:
            path = self.home / f"{info.name}.stats.npz"
            save_block(path, block)
            sync(path)
            entry["stats"] = {"file": path.name, "sha256": sha256_file(path)}
        with self._lock:
            self._append({"shard": entry})
            os.fsync(self._file.fileno())

    def _append(self, line: dict) -> None:
        # One write of a whole line: a kill leaves it whole or missing, never half of
        # it followed by more (a cut line is dropped on reading).
        with self._lock:
            self._file.write(_line(line))
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def remove(self) -> None:
        """The build is complete: its manifest now says what the journal said."""
        self.close()
        shutil.rmtree(self.home, ignore_errors=True)


def _contiguous(records: dict[int, dict]) -> dict[int, dict]:
    kept, position = {}, 0
    while position in records:
        kept[position] = records[position]
        position += 1
    return kept


def _line(line: dict) -> str:
    return json.dumps(line, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, default=str, allow_nan=True).encode()


def _paths(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _stat(path: str) -> list:
    try:
        stat = os.stat(path)
    except OSError:
        return [path, None, None]
    return [path, stat.st_size, stat.st_mtime_ns]
