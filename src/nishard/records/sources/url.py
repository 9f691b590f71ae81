"""Files served over HTTP(S), mirrored into a cache with checksums and atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...checksums import sha256_file
from ...errors import SpecError
from .base import (
    EAGER,
    _cache_folder,
    _matches,
    _strings,
    _temporary,
    _write_text_atomic,
)
from .listing import _STATE, ListedFile, format_listing, parse_listing
from .options import _check_folder, _check_jobs, _patterns, _to_dict

_ORIGIN = "url.json"
_LISTING = "files.tsv"
_VERIFIED = "verified.json"

# Worth another try: the server or the path to it may recover. Any other HTTP error will not.
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Url:
    """A dataset served over HTTP(S) under a base URL, mirrored into a local cache.

    ``prepare(base_url)`` makes a folder tree in the cache with every listed file:
    the small ones the scan reads (``eager``) downloaded, the others as empty placeholders
    so that the scan still finds them by name. ``fetch`` then downloads the real content of
    exactly the staged files of the kept records. A placeholder is never taken for data:
    the cache keeps the size, time stamp and sha256 of every file it verified.

    Parameters
    ----------
    listing : str or tuple of str
        The files of the dataset, as HTTP has no folder listing: either the name of a
        listing file under the base URL (or an absolute URL to one), or the listing's lines
        themselves. See Notes for the format.
    cache : str or None
        The folder to mirror into (``~`` expanded); it must be empty or a cache of the same
        URL. Default ``$NISHARD_CACHE/url/<host>/<path>``, where ``NISHARD_CACHE`` defaults
        to ``~/.cache/nishard``.
    eager : tuple of str
        The files ``prepare`` downloads, as ``fnmatch`` patterns on their listed path
        (``*`` also crosses ``/``). Default :data:`EAGER`: JSON sidecars,
        ``participants.tsv`` and ``phenotype/*.tsv``; add what else the scan or the
        variables read (a ``Table`` by path, or the BOLD images of a schema that takes
        the repetition time from their headers, as ``Hcp`` does).
    timeout : float
        Seconds to wait on the server (to connect, and between received blocks).
    retries : int
        Further attempts after a connection error, a timeout or a 408/425/429/5xx answer,
        with 0.5, 1, 2, ... s (at most 8 s) in between; other errors are not retried.
    jobs : int
        Downloads at a time.

    Notes
    -----
    **The listing format.** UTF-8 text, one file a line, three tab-separated columns
    ``path  size  sha256``:

    - ``path`` is relative to the base URL, with ``/`` between folders, not URL-encoded
      (the source encodes it); it may not be absolute or contain ``.`` or ``..`` parts.
    - ``size`` is the size in bytes; ``sha256`` the content's hex digest. Either may be
      empty (or ``-``) when unknown, and trailing empty columns may be left out. A file
      with a sha256 is only ever accepted with that content.
    - A first line ``path  size  sha256`` is a header; blank lines and lines starting with
      ``#`` are skipped. A line without a tab is split on spaces (so a path with spaces
      needs tabs).

    :func:`write_listing` writes one for a local folder. The listing is downloaded anew at
    every ``prepare`` (conditionally: an unchanged one is not sent again); when the server
    cannot be reached, the cached copy is used with a warning. Files that leave the
    listing are deleted from the cache.

    Every download goes to a temporary file in the destination's folder, is checked
    against the listed size and sha256, then renamed over the destination (atomic): a
    rejected download leaves nothing, and an interrupted one at most a hidden
    ``.<name>.<random>.part`` beside it, never a partial file under the listed name. Two
    processes sharing one cache are safe but may download a file twice.

    Examples
    --------
    ``source: {name: url, listing: files.tsv}`` in a spec's input section, or
    ``locate("https://example.org/ds/derivatives/fmriprep/", source=Url())``.
    """

    listing: str | tuple[str, ...] = "files.tsv"
    cache: str | None = None
    eager: tuple[str, ...] = EAGER
    timeout: float = 60.0
    retries: int = 3
    jobs: int = 8

    name: ClassVar[str] = "url"

    def __post_init__(self) -> None:
        if isinstance(self.listing, list):
            object.__setattr__(self, "listing", tuple(self.listing))
        if not self.listing or not _strings(self.listing):
            raise ValueError("listing must name a listing file or give the listing's lines")
        object.__setattr__(self, "eager", _patterns(self.eager))
        _check_folder("cache", self.cache)
        real = isinstance(self.timeout, (int, float)) and not isinstance(self.timeout, bool)
        if not real or not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if isinstance(self.retries, int) and self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        _check_jobs(self.jobs)

    def to_dict(self) -> dict:
        return _to_dict(self)

    def prepare(self, root: str | Path) -> Path:
        """Mirror the listing's tree into the cache: eager files downloaded, others empty.

        Parameters
        ----------
        root : str
            The dataset's base URL (``http://`` or ``https://``).

        Returns
        -------
        Path
            The cache folder, to scan.

        Raises
        ------
        SpecError
            When the root is no HTTP(S) URL, the cache folder belongs to something else,
            or the listing cannot be had (nor a cached copy) or is malformed.
        """
        base = str(root)
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SpecError(f"the url source needs an http(s):// root, got {base!r}")
        base = base if base.endswith("/") else base + "/"
        folder = Path(os.path.expanduser(self.cache)) if self.cache else _cache_folder("url", base)
        mirror = _Mirror.open(folder, base)
        files, origin = self._listing(mirror)
        mirror.update(files)
        # Only now: a listing's validators must never describe a listing not yet saved.
        mirror.set_origin(**origin)
        eager = [rel for rel in mirror.listing if _matches(rel, self.eager)]
        failures = self._download(mirror, eager)
        if failures:
            shown = "; ".join(f"{rel}: {why}" for rel, why in list(failures.items())[:5])
            warnings.warn(
                f"url source: {len(failures)} of the {len(eager)} files the scan reads could "
                f"not be downloaded from {base}, and runs that need them may be dropped: "
                f"{shown}",
                stacklevel=2,
            )
        return folder

    def fetch(self, paths: Sequence[str]) -> dict[str, str]:
        """Download the real content of ``paths`` (in a cache made by :meth:`prepare`).

        Files already in the cache with their listed size and sha256 are not downloaded
        again. Never raises for a file that fails: its reason is returned.

        Returns
        -------
        dict
            Path to the reason it could not be fetched; empty when every path is there.
        """
        reasons: dict[str, str] = {}
        by_mirror: dict[Path, list[tuple[str, str]]] = {}
        roots: dict[Path, Path | None] = {}
        for path in paths:
            parent = Path(path).parent
            if parent not in roots:
                roots[parent] = _mirror_root(parent)
            folder = roots[parent]
            if folder is None:
                reasons[path] = "not in a cache folder made by the url source's prepare"
                continue
            by_mirror.setdefault(folder, []).append(
                (path, Path(path).relative_to(folder).as_posix())
            )
        for folder, items in by_mirror.items():
            try:
                mirror = _Mirror.load(folder)
            except (OSError, ValueError) as err:
                reasons.update((path, f"unreadable url cache {folder}: {err}") for path, _ in items)
                continue
            unlisted = {rel for _, rel in items if rel not in mirror.listing}
            failures = self._download(mirror, [rel for _, rel in items if rel not in unlisted])
            for path, rel in items:
                if rel in unlisted:
                    reasons[path] = f"{rel} is not in the listing of {mirror.base}"
                elif rel in failures:
                    reasons[path] = failures[rel]
        return reasons

    def _listing(self, mirror: _Mirror) -> tuple[dict[str, ListedFile], dict]:
        """The listing given inline, or downloaded (conditionally) from the server.

        Returns the listing and what the origin file should say of it: its URL and the
        validators (ETag, Last-Modified) that make the next download conditional.
        """
        unknown = {"listing_url": None, "etag": None, "last_modified": None}
        if isinstance(self.listing, tuple):
            return parse_listing(self.listing, "the url source's listing"), unknown
        url = urllib.parse.urljoin(mirror.base, self.listing)
        cached = mirror.state / _LISTING
        same = mirror.origin.get("listing_url") == url and cached.is_file()
        headers = {"User-Agent": _USER_AGENT}
        if same and mirror.origin.get("etag"):
            headers["If-None-Match"] = mirror.origin["etag"]
        if same and mirror.origin.get("last_modified"):
            headers["If-Modified-Since"] = mirror.origin["last_modified"]

        def get() -> tuple[bytes, dict] | None:
            request = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.read(), dict(response.headers)
            except urllib.error.HTTPError as err:
                if err.code == 304:  # not modified: the cached copy is current
                    return None
                raise

        try:
            answer = _retrying(get, self.retries)
        except _Failed as err:
            if not (same and err.transient):
                raise SpecError(f"url source: could not download the listing {url}: {err}") from err
            warnings.warn(
                f"url source: could not refresh the listing {url} ({err}); using the cached "
                f"copy in {cached}",
                stacklevel=3,
            )
            answer = None
        if answer is None:  # unchanged, or out of reach: the saved copy, as it was
            return parse_listing(cached.read_text(encoding="utf-8"), str(cached)), {}
        body, response_headers = answer
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise SpecError(f"url source: the listing {url} is not UTF-8 text: {err}") from err
        origin = {
            "listing_url": url,
            "etag": response_headers.get("ETag"),
            "last_modified": response_headers.get("Last-Modified"),
        }
        return parse_listing(text, url), origin

    def _download(self, mirror: _Mirror, rels: Sequence[str]) -> dict[str, str]:
        """Make ``rels`` present and verified in ``mirror``; their failures' reasons."""
        if not rels:
            return {}
        verified = mirror.verified()
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(rels))) as pool:
            done = list(pool.map(lambda rel: self._ensure(mirror, rel, verified.get(rel)), rels))
        failures, records = {}, {}
        for rel, (record, reason) in zip(rels, done, strict=True):
            if reason is not None:
                failures[rel] = reason
            elif record != verified.get(rel):
                records[rel] = record
        if records:  # only what changed: a warm cache is not written at every locate
            mirror.add_verified(records)
        return failures

    def _ensure(
        self, mirror: _Mirror, rel: str, record: list | None
    ) -> tuple[list | None, str | None]:
        """One file: (its verified record, None), or (None, why it failed)."""
        entry, dest = mirror.listing[rel], mirror.folder / rel
        url = mirror.base + urllib.parse.quote(rel)
        try:
            current = _cached(dest, entry, record)
            if current is not None:
                return current, None
            dest.parent.mkdir(parents=True, exist_ok=True)
            fresh = _retrying(lambda: _download_once(url, dest, entry, self.timeout), self.retries)
            return fresh, None
        except _Failed as err:
            return None, f"{err} ({url})"
        except OSError as err:  # the local disk, not the server: no use trying again
            return None, f"{type(err).__name__}: {err}"


class _Failed(Exception):
    """A download that did not succeed; ``transient`` when the server was out of reach."""

    def __init__(self, reason: str, transient: bool = False):
        super().__init__(reason)
        self.transient = transient


def _retrying(call, retries: int):
    """``call()``, tried again after errors that may pass; other errors raise _Failed."""
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        try:
            return call()
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code} {err.reason}"
            if err.code not in _TRANSIENT_HTTP:
                raise _Failed(last) from err
        except (
            TimeoutError,
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
        ) as err:
            last = f"{type(err).__name__}: {getattr(err, 'reason', None) or err}"
    tries = "1 attempt" if retries == 0 else f"{retries + 1} attempts"
    raise _Failed(f"{last} (gave up after {tries})", transient=True)


def _download_once(url: str, dest: Path, entry: ListedFile, timeout: float) -> list:
    """Download ``url`` to ``dest`` through a temporary file; the verified record."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        fd, tmp = _temporary(dest)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as handle:
                while block := response.read(_CHUNK):
                    size += len(block)
                    if entry.size is not None and size > entry.size:
                        # Stop early: a wrong file may be far larger than the listed one.
                        raise _Failed(f"size mismatch: listed {entry.size} bytes, got more")
                    digest.update(block)
                    handle.write(block)
                handle.flush()
                os.fsync(handle.fileno())
            got = digest.hexdigest()
            if entry.size is not None and size != entry.size:
                raise _Failed(f"size mismatch: listed {entry.size} bytes, got {size}")
            if entry.sha256 is not None and got != entry.sha256:
                raise _Failed(f"sha256 mismatch: listed {entry.sha256}, got {got}")
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    stat = dest.stat()
    return [stat.st_size, stat.st_mtime_ns, got]


def _cached(dest: Path, entry: ListedFile, record: list | None) -> list | None:
    """The verified record of ``dest`` when it holds the listed content, else None.

    A file this cache verified and that has not changed since is trusted; an unrecorded
    file of the listed size is hashed when the listing has a sha256 (its record was lost).
    Placeholders are neither: they have no record, and a listed sha256 they do not match.
    """
    try:
        stat = dest.stat()
    except FileNotFoundError:
        return None
    if (
        record is not None
        and record[:2] == [stat.st_size, stat.st_mtime_ns]
        and entry.size in (None, stat.st_size)
        and entry.sha256 in (None, record[2])
    ):
        return record
    if entry.sha256 is not None and entry.size in (None, stat.st_size) and dest.is_file():
        if sha256_file(dest) == entry.sha256:
            return [stat.st_size, stat.st_mtime_ns, entry.sha256]
    return None


def _mirror_root(folder: Path) -> Path | None:
    """The url cache folder that holds ``folder``, found by its state folder."""
    for candidate in (folder, *folder.parents):
        if (candidate / _STATE / _ORIGIN).is_file():
            return candidate
    return None


class _Mirror:
    """A url source's cache folder: the dataset's tree, and its state in ``.nishard-source``.

    The state is the origin (base URL, listing URL and its validators), the listing in use,
    and the verified files (relative path to size, mtime in ns and sha256).
    """

    def __init__(self, folder: Path, origin: dict, listing: dict[str, ListedFile]):
        self.folder = folder
        self.state = folder / _STATE
        self.origin = origin
        self.base: str = origin["base"]
        self.listing = listing

    @classmethod
    def open(cls, folder: Path, base: str) -> _Mirror:
        """The cache of ``base`` in ``folder``, made if the folder is new or empty."""
        origin_file = folder / _STATE / _ORIGIN
        if origin_file.is_file():
            mirror = cls.load(folder)
            if mirror.base != base:
                raise SpecError(
                    f"url source: the cache folder {folder} holds {mirror.base}, not {base}; "
                    f"give this dataset its own cache"
                )
            return mirror
        # Never write into a folder of someone else's: downloads would replace its files.
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise SpecError(
                f"url source: the cache folder {folder} is not empty and no url cache; "
                f"give a new or empty folder"
            )
        _write_text_atomic(origin_file, json.dumps({"base": base}, indent=1))
        return cls(folder, {"base": base}, {})

    @classmethod
    def load(cls, folder: Path) -> _Mirror:
        origin = json.loads((folder / _STATE / _ORIGIN).read_text(encoding="utf-8"))
        listing_file = folder / _STATE / _LISTING
        listing = (
            parse_listing(listing_file.read_text(encoding="utf-8"), str(listing_file))
            if listing_file.is_file()
            else {}
        )
        return cls(folder, origin, listing)

    def set_origin(self, **changes) -> None:
        if all(self.origin.get(key) == value for key, value in changes.items()):
            return
        self.origin = {**self.origin, **changes}
        _write_text_atomic(self.state / _ORIGIN, json.dumps(self.origin, indent=1))

    def update(self, listing: dict[str, ListedFile]) -> None:
        """Take ``listing`` as the dataset's files: remove the gone, placehold the new."""
        gone = [rel for rel in self.listing if rel not in listing]
        for rel in gone:
            (self.folder / rel).unlink(missing_ok=True)
        if gone:
            self.remove_verified(gone)
        for rel in listing:
            dest = self.folder / rel
            if not dest.exists():
                # Empty, so the scan sees the name; no verified record, so it is no data.
                # Exclusive: never bump the time stamp of a file another process just wrote.
                dest.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    dest.touch(exist_ok=False)
        _write_text_atomic(self.state / _LISTING, format_listing(listing.values()))
        self.listing = listing

    def verified(self) -> dict[str, list]:
        try:
            return json.loads((self.state / _VERIFIED).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}  # lost or torn: files are hashed again, not trusted blindly

    def add_verified(self, records: dict[str, list]) -> None:
        # Read again just before writing, to keep what another process added meanwhile.
        _write_text_atomic(self.state / _VERIFIED, json.dumps({**self.verified(), **records}))

    def remove_verified(self, rels: Iterable[str]) -> None:
        verified = self.verified()
        for rel in rels:
            verified.pop(rel, None)
        _write_text_atomic(self.state / _VERIFIED, json.dumps(verified))


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"nishard/{version('nishard')}"
    except Exception:
        return "nishard"


_USER_AGENT = _user_agent()
