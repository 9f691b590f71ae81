"""A user's own layout, described by regular expressions with named groups."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..files import walk
from ..metadata import SidecarError, Timing, first_timing
from .base import ENTITY_COLUMNS, Run, Scan, claim, own_columns

#: Short BIDS keys for the long names a user gives groups, so ids read ``sub-01_run-1``.
_SHORT = {long: short for short, long in ENTITY_COLUMNS.items()}

_LABEL = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class Regex:
    """Files matched by one pattern per file column.

    Parameters
    ----------
    patterns : dict
        File column to a regular expression matched against the whole path relative to
        the root (``/``-separated). Named groups are the entities. The first pattern is
        the record's: its groups identify a record (``subject``, ``session``, ``run``...).
        A pattern with fewer groups matches files shared by every record with the same
        values, e.g. one mask per subject.
    t_r : float or None
        The repetition time of every run; None reads it from a sidecar JSON beside the
        first column's file, then from its NIfTI header.

    Examples
    --------
    >>> Regex({"bold": r"(?P<subject>\\d+)/func/rest(?P<run>\\d)\\.nii\\.gz",
    ...        "mask": r"(?P<subject>\\d+)/anat/brainmask\\.nii\\.gz"})  # doctest: +SKIP

    Name the subject group ``subject`` (and the session group ``session``) so that
    variables join and pivots group by them.
    """

    patterns: dict[str, str]
    t_r: float | None = None

    name: ClassVar[str] = "regex"

    def __post_init__(self) -> None:
        if not self.patterns:
            raise ValueError("patterns: at least one column: pattern")
        compiled = {}
        for column, pattern in self.patterns.items():
            try:
                compiled[column] = re.compile(pattern)
            except re.error as err:
                raise ValueError(
                    f"pattern of {column!r} is not a regular expression: {err}"
                ) from err
        primary = set(next(iter(compiled.values())).groupindex)
        if not primary:
            raise ValueError("the first pattern needs named groups that identify a record")
        for column, regex in compiled.items():
            if not set(regex.groupindex) <= primary:
                extra = sorted(set(regex.groupindex) - primary)
                raise ValueError(f"pattern of {column!r} has groups {extra} the first one lacks")
        object.__setattr__(self, "patterns", dict(self.patterns))

    @property
    def default_stage(self) -> tuple[str, ...]:
        return tuple(self.patterns)

    @property
    def kinds(self) -> dict[str, tuple[str, ...]]:
        return own_columns(*self.patterns)

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "patterns": dict(self.patterns)}
        if self.t_r is not None:
            out["t_r"] = self.t_r
        return out

    def scan(self, root: Path) -> Scan:
        """Match every file under ``root`` against the patterns.

        A match of the first pattern is always a record (its optional groups that did not
        take part are left out of the id); a match of another pattern whose groups are
        fewer than the first's is shared by the records with the same values, the most
        specific shared file first. Files in the folders where records were found that no
        pattern matches are listed as unparsed.
        """
        root = root.absolute()
        compiled = {column: re.compile(p) for column, p in self.patterns.items()}
        first = next(iter(compiled))
        order = list(compiled[first].groupindex)
        shared_columns = {c for c, r in compiled.items() if set(r.groupindex) < set(order)}
        runs: dict[str, Run] = {}
        shared: dict[tuple, dict[str, str]] = {}
        unmatched: list[str] = []
        for relative in sorted(walk(str(root))):
            matched = False
            for column, regex in compiled.items():
                match = regex.fullmatch(relative)
                if match is None:
                    continue
                matched = True
                groups = {k: _label(k, v) for k, v in match.groupdict().items() if v is not None}
                key = tuple((k, groups[k]) for k in order if k in groups)
                path = f"{root}/{relative}"
                if column in shared_columns:
                    claim(shared.setdefault(key, {}), column, path, _record(key))
                    continue
                record = _record(key)
                run = runs.setdefault(record, Run(record, dict(groups)))
                if run.entities != groups:
                    raise ValueError(
                        f"{run.files.get(first, record)} and {path} give the same record id "
                        f"{record}; use labels of letters and digits"
                    )
                claim(run.files, column, path, record)
            if not matched:
                unmatched.append(relative)
        folders = {f.rsplit("/", 1)[0] for run in runs.values() for f in run.files.values()}
        out = []
        for record in sorted(runs):
            run = runs[record]
            specific_first = sorted(shared.items(), key=lambda item: -len(item[0]))
            for shared_key, files in specific_first:
                if all(run.entities.get(k) == v for k, v in shared_key):
                    for column, path in files.items():
                        run.files.setdefault(column, path)
            try:
                timing, problems = self._timing(run.files.get(first)), ()
            except SidecarError as err:
                timing, problems = Timing(), (str(err),)
            out.append(Run(run.record, run.entities, run.files, timing, {}, problems))
        unparsed = tuple(u for u in unmatched if f"{root}/{u}".rsplit("/", 1)[0] in folders)
        return Scan(out, unparsed)

    def _timing(self, path: str | None) -> Timing:
        if self.t_r is not None:  # the acquisition protocol, as the user gave it
            return Timing(float(self.t_r), "protocol")
        return first_timing([path], [path])

    def hint(self, root: Path) -> str:
        return f"no path under it matched {next(iter(self.patterns.values()))!r}"


def _record(key: tuple) -> str:
    return "_".join(f"{_SHORT.get(k, _clean(k))}-{_clean(v)}" for k, v in key)


def _label(group: str, value: str) -> str:
    """A group's value; ``sub-01`` captured for ``subject`` is the label ``01``, as in BIDS."""
    prefix = {"subject": "sub-", "session": "ses-"}.get(group)
    return value.removeprefix(prefix) if prefix else value


def _clean(label: str) -> str:
    """A group value safe in a record id: letters and digits, others as ``-``."""
    return _LABEL.sub("-", label).strip("-") or "x"
