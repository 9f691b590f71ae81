"""The listing of a dataset's files served over HTTP: path, size, sha256."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from ...checksums import sha256_file
from ...errors import SpecError
from .base import _write_text_atomic

#: The columns of a URL listing, in order (see :class:`~nishard.records.sources.Url`).
LISTING_COLUMNS: tuple[str, ...] = ("path", "size", "sha256")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# The url source's own files inside its cache folder: hidden, so that neither the schema's
# scan (``sub-*/...``) nor a listing made by write_listing ever sees them.
_STATE = ".nishard-source"


class ListedFile(NamedTuple):
    """One file of a URL listing: its path under the base URL, size and sha256 if known."""

    path: str
    size: int | None
    sha256: str | None


def parse_listing(lines: str | Iterable[str], where: str = "listing") -> dict[str, ListedFile]:
    """Read a URL listing (the format is described in :class:`Url`).

    Parameters
    ----------
    lines : str or iterable of str
        The listing's text, or its lines.
    where : str
        Names the listing in error messages (its URL, say).

    Returns
    -------
    dict
        Relative path to its :class:`ListedFile`, in the listing's order.

    Raises
    ------
    SpecError
        On a malformed line, an unsafe path (absolute, ``..``) or a path listed twice.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    files: dict[str, ListedFile] = {}
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) >= 2 and fields[0] == "path" and fields[1].strip() == "size":
            continue  # the header line
        try:
            entry = _listed_file(fields)
        except ValueError as err:
            raise SpecError(f"{where}, line {number}: {err}: {line!r}") from err
        if entry.path in files:
            raise SpecError(f"{where}, line {number}: {entry.path} is listed twice")
        files[entry.path] = entry
    return files


def _listed_file(fields: list[str]) -> ListedFile:
    if len(fields) > len(LISTING_COLUMNS):
        raise ValueError(f"expected at most {len(LISTING_COLUMNS)} fields {LISTING_COLUMNS}")
    path, size, sha256 = [*fields, "", ""][:3]
    parts = path.split("/")
    # The listing comes from a server: a path must not climb out of the cache folder.
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(part in ("", ".", "..") for part in parts)
        or parts[0] == _STATE
    ):
        raise ValueError(f"unsafe or empty path {path!r}")
    size, sha256 = size.strip(), sha256.strip().lower()
    if size in ("", "-"):
        size_value = None
    elif size.isdigit():
        size_value = int(size)
    else:
        raise ValueError(f"size {size!r} is not a number of bytes")
    if sha256 in ("", "-"):
        sha256 = ""
    elif not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256 {sha256!r} is not 64 hex digits")
    return ListedFile(path, size_value, sha256 or None)


def format_listing(files: Iterable[ListedFile]) -> str:
    """The text of a listing: a header line, then one tab-separated line a file."""
    rows = ["\t".join(LISTING_COLUMNS)]
    rows += [f"{f.path}\t{'' if f.size is None else f.size}\t{f.sha256 or ''}" for f in files]
    return "\n".join(rows) + "\n"


def write_listing(
    folder: str | Path, out: str | Path | None = None, checksums: bool = True
) -> Path:
    """Write the listing of a local folder, to serve that folder to :class:`Url`.

    Parameters
    ----------
    folder : str or Path
        The dataset's root folder, as it will be served.
    out : str or Path or None
        Where to write the listing; default ``files.tsv`` in ``folder`` (the file itself
        is left out of the listing).
    checksums : bool
        Compute every file's sha256 (reads every byte); False leaves the column empty.

    Returns
    -------
    Path
        The listing written.

    Notes
    -----
    Hidden files and folders (``.git``, ``.datalad``, ...) are left out; symbolic links are
    followed.
    """
    folder = Path(folder)
    out = folder / "files.tsv" if out is None else Path(out)
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if name.startswith(".") or path.absolute() == out.absolute():
                continue
            relative = path.relative_to(folder).as_posix()
            if "\t" in relative or "\n" in relative:
                raise SpecError(f"{path}: a tab or newline in a name cannot be listed")
            sha256 = sha256_file(path) if checksums else None
            files.append(ListedFile(relative, path.stat().st_size, sha256))
    _write_text_atomic(out, format_listing(files))
    return out
