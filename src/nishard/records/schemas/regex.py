"""A user's own layout, described by regular expressions with named groups."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..files import walk
from ..metadata import header_tr, sidecar_tr
from .base import ENTITY_COLUMNS, Run, Scan, claim

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
    def kinds(self) -> dict[str, tuple[str, ...]]:
        return {column: (column,) for column in self.patterns}

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "patterns": dict(self.patterns)}
        if self.t_r is not None:
            out["t_r"] = self.t_r
        return out

    def scan(self, root: Path) -> Scan:
        """Match every file under ``root`` against the patterns."""
        root = root.absolute()
        compiled = {column: re.compile(p) for column, p in self.patterns.items()}
        first = next(iter(compiled))
        order = list(compiled[first].groupindex)
        runs: dict[tuple, Run] = {}
        shared: dict[tuple, dict[str, str]] = {}
        for relative in sorted(walk(str(root))):
            for column, regex in compiled.items():
                match = regex.fullmatch(relative)
                if match is None:
                    continue
                groups = {k: v for k, v in match.groupdict().items() if v is not None}
                key = tuple((k, groups[k]) for k in order if k in groups)
                if len(key) == len(order):
                    record = "_".join(f"{_SHORT.get(k, _clean(k))}-{_clean(v)}" for k, v in key)
                    run = runs.setdefault(key, Run(record, dict(groups)))
                    claim(run.files, column, str(root / relative), record)
                else:
                    claim(shared.setdefault(key, {}), column, str(root / relative), str(key))
        out = []
        for key, run in sorted(runs.items(), key=lambda item: item[1].record):
            for shared_key, files in shared.items():
                if set(shared_key) <= set(key):
                    for column, path in files.items():
                        run.files.setdefault(column, path)
            out.append(Run(run.record, run.entities, run.files, self._t_r(run.files.get(first))))
        return Scan(out)

    def _t_r(self, path: str | None) -> float:
        if self.t_r is not None:
            return float(self.t_r)
        if path is None:
            return math.nan
        t_r = sidecar_tr(path)
        return t_r if not math.isnan(t_r) else header_tr(path)

    def hint(self, root: Path) -> str:
        return f"no path under it matched {next(iter(self.patterns.values()))!r}"


def _clean(label: str) -> str:
    """A group value safe in a record id: letters and digits, others as ``-``."""
    return _LABEL.sub("-", label).strip("-") or "x"
