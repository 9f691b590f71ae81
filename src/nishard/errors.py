"""Exceptions that say which file, which record, what was expected and what was found."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path


class NishardError(Exception):
    """Base class of every error nishard raises on purpose."""


class SpecError(NishardError, ValueError):
    """A pipeline spec (YAML or Python) is invalid: unknown key, bad value, missing input."""


class StorageError(NishardError):
    """A shard folder or object store cannot do what was asked (a remote store not yet
    supported, a folder where a file should be); the message names the file or URL."""


class MissingFileError(StorageError, FileNotFoundError):
    """A file a storage was asked for is not there; still a ``FileNotFoundError``."""


class StorageUnavailableError(StorageError):
    """A store did not answer, dropped the connection mid-transfer or answered that it is
    unavailable (HTTP 5xx, throttling): the same request may succeed later, so the shard
    cache tries it again (a few times, with backoff), and no other error."""


class RecordError(NishardError):
    """One record cannot be processed; the run quarantines it and goes on.

    Parameters
    ----------
    record : str
        The record's identifier, e.g. ``sub-01_task-rest_run-1``.
    path : str or Path or None
        The file at fault, when there is one.
    expected : str
        What nishard expected to find.
    found : str
        What it found instead.
    """

    def __init__(self, record: str, path: str | Path | None, expected: str, found: str):
        self.record = record
        self._path = None if path is None else str(path)
        self.expected = expected
        self.found = found
        super().__init__(record, self._path, expected, found)

    @property
    def path(self) -> str | None:
        """The file at fault: the one given, else the one named by the SampleError this
        error was raised from (an atlas or mask given by path, which is no file of the
        record's and which a transform alone knows)."""
        cause = self.__cause__
        if self._path is None and isinstance(cause, SampleError) and cause.path is not None:
            return cause.path
        return self._path

    def __str__(self) -> str:
        where = f" in {self.path}" if self.path else ""
        return f"record {self.record}{where}: expected {self.expected}, found {self.found}"

    def __reduce__(self):
        # Exceptions unpickle as cls(*args); the path is resolved here so that one taken
        # from the cause, which does not travel, comes back from a worker process too.
        return type(self), (self.record, self.path, self.expected, self.found)


class SampleError(NishardError, ValueError):
    """A transform cannot process a record's data; the plan turns it into a RecordError.

    Transforms see arrays, not files: they name the input kind at fault (``bold``,
    ``confounds``...) and the plan that runs them adds the record and its file path. A
    file the transform itself reads (an atlas, a mask given by path) it names by ``path``,
    which the RecordError raised from this one takes as its own.

    Parameters
    ----------
    kind : str or None
        The staged file kind whose content is at fault, when one is.
    expected, found : str
        As in :class:`RecordError`.
    path : str or Path or None
        The file at fault when it is not one of the record's.
    """

    def __init__(
        self, kind: str | None, expected: str, found: str, *, path: str | Path | None = None
    ):
        self.kind = kind
        self.expected = expected
        self.found = found
        self.path = None if path is None else str(path)
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}expected {expected}, found {found}")

    def __reduce__(self):
        return _sample_error, (self.kind, self.expected, self.found, self.path)


def _sample_error(kind: str | None, expected: str, found: str, path: str | None) -> SampleError:
    # Keyword arguments do not go through __reduce__'s positional tuple.
    return SampleError(kind, expected, found, path=path)


#: The errors of a write that found no room: the device is full, or the user's quota is.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(NishardError, OSError):
    """No space left where nishard writes (the output folder, the node cache): the build
    stops, its temporary files removed and what it finished kept, so the same build run
    again once space is freed resumes where it stopped. The message names the file, the
    place and the space left there."""


def raise_if_full(error: BaseException, path: str | Path, place: str) -> None:
    """Raise ``error`` as a :class:`DiskFullError` naming ``path`` and ``place`` (e.g.
    "the output folder") when it is a full device or quota; return for any other error,
    which the caller raises as it is.

    A DiskFullError is raised as it is: it was raised where the file was known (a
    worker's node cache).
    """
    if isinstance(error, DiskFullError):
        raise error
    if not isinstance(error, OSError) or error.errno not in NO_SPACE:
        return
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = f"{shutil.disk_usage(where).free / 2**20:.1f} MiB free there"
    except OSError:
        free = "free space unknown"
    raise DiskFullError(
        f"no space left writing {path} ({place}; {free}): free some space and run the same "
        "build again, it resumes where it stopped"
    ) from None


#: The errors of a write refused: not the user's to write (mode bits, ACLs, a root-squashed
#: share), or a read-only file system.
REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)


class UnwritableError(NishardError, OSError):
    """A folder nishard must write in (the output folder, the node cache) refuses it: it
    is read-only, or not the user's to write. The build stops before writing there (or at
    the first write refused), and no record is quarantined for it: the records are not at
    fault. The message names the folder, the file refused when it is another, and the
    system's reason."""


def raise_if_unwritable(error: BaseException, path: str | Path, place: str) -> None:
    """Raise ``error`` as an :class:`UnwritableError` when it is a refused write (a
    permission, a read-only file system) of ``path`` in ``place`` (e.g. "the node cache
    /x/cache"); return for any other error, which the caller raises as it is.

    An UnwritableError is raised as it is: it was raised where the file was known.
    """
    if isinstance(error, UnwritableError):
        raise error
    if not isinstance(error, OSError) or error.errno not in REFUSED:
        return
    where = "" if place.endswith(f" {path}") else f" ({path})"
    reason = error.strerror or str(error)
    raise UnwritableError(
        f"cannot write {place}{where}: {type(error).__name__}: {reason}"
    ) from None


def check_writable(folder: str | Path, place: str) -> None:
    """Create ``folder`` (and its parents) when missing and prove that it takes a file,
    before a build writes anything; ``place`` says what it is ("the output folder
    /x/out").

    Raises
    ------
    UnwritableError
        When the folder cannot be made or written (a permission, a read-only file system).
    DiskFullError
        When there is no room for even an empty file.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A real file, not os.access: ACLs, root-squashed shares and read-only mounts
        # answer only to a write.
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".nishard-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        # The folder, or the parent that could not be made; never the probe's own name.
        name = getattr(error, "filename", None)
        path = folder if name is None or Path(name).parent == folder else name
        raise_if_full(error, path, place)
        raise_if_unwritable(error, path, place)
        raise
