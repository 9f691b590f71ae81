"""Sources: where a dataset's files come from, made local before and after locating.

A source is a primitive with two steps around ``locate``: :meth:`prepare` turns the root
the user gave into a local folder to scan (nothing to do for local files; a download or a
clone for remote ones), and :meth:`fetch` makes the staged files of the records kept by the
filters present on disk (``datalad get`` of only those files, say). A file that cannot be
fetched drops its record with the reason; the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
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


#: Sources by the name a YAML spec gives them.
SOURCES: dict[str, type] = {Local.name: Local}
