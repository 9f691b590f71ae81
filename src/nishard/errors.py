"""Exceptions that say which file, which record, what was expected and what was found."""

from __future__ import annotations

from pathlib import Path


class NishardError(Exception):
    """Base class of every error nishard raises on purpose."""


class SpecError(NishardError, ValueError):
    """A pipeline spec (YAML or Python) is invalid: unknown key, bad value, missing input."""


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
        self.path = None if path is None else str(path)
        self.expected = expected
        self.found = found
        where = f" in {self.path}" if self.path else ""
        super().__init__(f"record {record}{where}: expected {expected}, found {found}")

    def __reduce__(self):
        # Exceptions unpickle as cls(*args), and args holds only the message: without this a
        # quarantined record could not come back from a worker process.
        return type(self), (self.record, self.path, self.expected, self.found)


class SampleError(NishardError, ValueError):
    """A transform cannot process a record's data; the plan turns it into a RecordError.

    Transforms see arrays, not files: they name the input kind at fault (``bold``,
    ``confounds``...) and the plan that runs them adds the record and its file path.

    Parameters
    ----------
    kind : str or None
        The staged file kind whose content is at fault, when one is.
    expected, found : str
        As in :class:`RecordError`.
    """

    def __init__(self, kind: str | None, expected: str, found: str):
        self.kind = kind
        self.expected = expected
        self.found = found
        super().__init__(f"expected {expected}, found {found}")

    def __reduce__(self):
        return type(self), (self.kind, self.expected, self.found)
