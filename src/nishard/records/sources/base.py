"""The source contract, the local source, and helpers the remote sources share."""

from __future__ import annotations

import fnmatch
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol


class Source(Protocol):
    name: ClassVar[str]

    def to_dict(self) -> dict: ...

    def prepare(self, root: str | Path) -> Path:
        """The local folder to scan for ``root``."""
        ...

    def fetch(self, paths: Sequence[str]) -> dict[str, str]:
        """Make ``paths`` (absolute, under the prepared folder) present on disk.

        Returns
        -------
        dict
            Path to the reason it could not be fetched; empty when every path is there.
        """
        ...


@dataclass(frozen=True)
class Local:
    """Files already on a local or mounted disk: nothing to prepare, nothing to fetch."""

    name: ClassVar[str] = "local"

    def to_dict(self) -> dict:
        return {"name": self.name}

    def prepare(self, root: str | Path) -> Path:
        return Path(root)

    def fetch(self, paths: Sequence[str]) -> dict[str, str]:
        return {}


#: What ``prepare`` makes present before the scan, as ``fnmatch`` patterns on the path
#: relative to the root (``*`` also crosses ``/``): the sidecars that give the repetition
#: time and metadata, and the tables that variables are joined from (``participants.tsv``,
#: ``phenotype/``). Everything else waits for ``fetch``, which gets only the staged files
#: of the kept records.
EAGER: tuple[str, ...] = ("*.json", "participants.tsv", "phenotype/*.tsv")


def _strings(value: object) -> bool:
    """A str, or a tuple of str: the listing option's two forms."""
    if isinstance(value, tuple):
        return all(isinstance(item, str) for item in value)
    return isinstance(value, str)


def _matches(relative: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)


def _cache_folder(kind: str, location: str) -> Path:
    """``$NISHARD_CACHE/<kind>/<host>/<path>`` for a URL, ``<kind>/<sanitized>`` otherwise."""
    home = os.environ.get("NISHARD_CACHE") or os.path.expanduser("~/.cache/nishard")
    parts = urllib.parse.urlsplit(location)
    if parts.scheme and parts.hostname:
        # The port keeps two servers on one host apart; user:password stays out of it.
        host = parts.hostname + (f"_{parts.port}" if parts.port else "")
        segments = [host, *urllib.parse.unquote(parts.path).split("/")]
    else:
        segments = [location]  # a local path or ssh's host:path, as one folder name
    safe = [re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") for s in segments]
    return Path(home, kind, *[s for s in safe if s] or ["root"])


def _walk_files(folder: Path) -> Iterable[Path]:
    """Every file and symlink under ``folder``, outside git's and DataLad's own folders."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".datalad", ".git-annex")]
        for name in filenames:
            yield Path(dirpath, name)


def _temporary(path: Path) -> tuple[int, Path]:
    """A new file beside ``path``: same folder, so that os.replace is an atomic rename."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.part")
        try:
            # 0o666 and the umask, as a file the user wrote would get (mkstemp gives 0o600).
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
