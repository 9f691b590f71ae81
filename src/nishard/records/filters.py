"""Filters: primitives that keep or drop records, each saying why it dropped one.

A filter has ``reasons(frame, files, variables) -> Series``: one string per record, empty
to keep it, else the reason it is dropped. ``locate`` applies filters in order and lists
every dropped record with its reason.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..registry import Registry


def _combine(flags: list[tuple[pd.Series, str]], index: pd.Index) -> pd.Series:
    """Per record, the reasons whose flag is set, joined with ``; ``."""
    arrays = [(series.to_numpy(), why) for series, why in flags]
    if any(values.dtype != bool for values, _ in arrays):  # each value's truth, one by one
        return pd.Series(
            ["; ".join(why for values, why in arrays if values[i]) for i in range(len(index))],
            index=index,
        )
    # Few records are dropped: only theirs are joined.
    reasons: dict[int, list[str]] = {}
    for values, why in arrays:
        for i in np.flatnonzero(values).tolist():
            reasons.setdefault(i, []).append(why)
    joined = [""] * len(index)
    for i, whys in reasons.items():
        joined[i] = "; ".join(whys)
    return pd.Series(joined, index=index)


class _PlainOptions:
    """Base of the filters whose options are plain YAML values (a bool, a str): such a
    filter is written back to a spec as its name, then its options as they are."""

    name: ClassVar[str]

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class Complete(_PlainOptions):
    """Keep records that carry every staged file and a repetition time.

    A record whose TR is still to be read from its image (``t_r_source`` ``pending``:
    the file is not fetched yet) or that has irregular ``VolumeTiming`` is kept: the
    first is settled when the image is loaded, the second is quarantined by the steps
    that need a regular TR. Only a record whose files were read and give no TR at all
    (``none``) is dropped.

    Parameters
    ----------
    variables : bool
        Also require a value for every joined variable.
    """

    variables: bool = False

    name: ClassVar[str] = "complete"

    def reasons(
        self, frame: pd.DataFrame, files: tuple[str, ...], variables: tuple[str, ...]
    ) -> pd.Series:
        checks = [(frame[c].isna(), f"no {c} file") for c in files]
        source = frame["t_r_source"] if "t_r_source" in frame else None
        no_tr = frame["t_r"].isna() if source is None else source.eq("none")
        # A record without its data file has no TR to read either: that file is the reason.
        lacks_file = frame[list(files)].isna().any(axis=1) if files else False
        checks.append((no_tr & ~lacks_file, "no RepetitionTime in sidecar or header"))
        if self.variables:
            checks += [(frame[c].isna(), f"no value for {c}") for c in variables]
        return _combine(checks, frame.index)


@dataclass(frozen=True)
class Entities:
    """Keep records by their entities (or any column): an include and an exclude list.

    Parameters
    ----------
    include : dict
        Column to the labels to keep, e.g. ``{"task": ["rest"], "run": ["1", "2"]}``.
    exclude : dict
        Column to the labels to drop, e.g. ``{"subject": ["07"]}``.
    """

    include: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: dict[str, tuple[str, ...]] = field(default_factory=dict)

    name: ClassVar[str] = "entities"

    def __post_init__(self) -> None:
        for attr in ("include", "exclude"):
            if not isinstance(getattr(self, attr), dict):
                raise TypeError(
                    f"{attr} must map a column to its labels, got {getattr(self, attr)!r}"
                )
            rules = {
                k: tuple(str(v) for v in _as_list(vs)) for k, vs in getattr(self, attr).items()
            }
            object.__setattr__(self, attr, rules)

    def to_dict(self) -> dict:
        out: dict = {"name": self.name}
        for attr in ("include", "exclude"):
            if getattr(self, attr):
                out[attr] = {k: list(v) for k, v in getattr(self, attr).items()}
        return out

    def reasons(
        self, frame: pd.DataFrame, files: tuple[str, ...], variables: tuple[str, ...]
    ) -> pd.Series:
        checks = []
        for column, labels in self.include.items():
            found = self._matches(frame, column, labels)
            checks.append((~found, f"{column} not in {list(labels)}"))
        for column, labels in self.exclude.items():
            found = self._matches(frame, column, labels)
            checks.append((found, f"{column} excluded ({', '.join(labels)})"))
        return _combine(checks, frame.index)

    @staticmethod
    def _matches(frame: pd.DataFrame, column: str, labels: tuple[str, ...]) -> pd.Series:
        """Equal as text, or as numbers when both parse (run ``1`` matches ``run-01``)."""
        if column not in frame.columns:
            raise SpecError(f"filter entities: no column {column!r}; records have {list(frame)}")
        values = frame[column]
        found = values.astype(str).isin(labels)
        numbers = pd.to_numeric(pd.Series(labels), errors="coerce").dropna()
        if len(numbers):
            found |= pd.to_numeric(values.astype(str), errors="coerce").isin(numbers.tolist())
        return found


@dataclass(frozen=True)
class Where(_PlainOptions):
    """Keep records for which a pandas query on their columns holds.

    Parameters
    ----------
    query : str
        A :meth:`pandas.DataFrame.query` expression over entities and variables, e.g.
        ``"age >= 18 and diagnosis in ['control', 'patient']"``. A record with a missing
        value in a compared column does not satisfy it.
    """

    query: str

    name: ClassVar[str] = "where"

    def reasons(
        self, frame: pd.DataFrame, files: tuple[str, ...], variables: tuple[str, ...]
    ) -> pd.Series:
        try:
            kept = frame.eval(self.query)
        except Exception as err:
            raise SpecError(f"filter where {self.query!r}: {type(err).__name__}: {err}") from err
        if not isinstance(kept, pd.Series) or kept.dtype != bool:
            raise SpecError(f"filter where {self.query!r}: not a true/false condition")
        # A comparison with a missing value is no evidence: `age != 30` must not keep a
        # record whose age is unknown.
        named = [
            c
            for c in frame.columns
            if re.search(rf"(?<![\w.]){re.escape(str(c))}(?!\w)", self.query)
        ]
        checks = [(frame[c].isna(), f"missing {c}") for c in named]
        return _combine(
            [*checks, (~kept & ~frame[named].isna().any(axis=1), f"not {self.query}")], frame.index
        )


def _as_list(values: object) -> list:
    return list(values) if isinstance(values, list | tuple | set) else [values]


#: Filters by the name a YAML spec gives them.
FILTERS: Registry = Registry("filter", (Complete, Entities, Where))
