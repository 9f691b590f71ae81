"""Pivot a run-level record table to one record per session or per subject."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import SpecError
from ..registry import not_one_of
from .entities import record_id

LEVELS = ("run", "session", "subject")


def pivot(frame: pd.DataFrame, files: tuple[str, ...], variables: tuple[str, ...], level: str):
    """Group runs into coarser records, keeping each group's runs in record-id order.

    Parameters
    ----------
    frame : DataFrame
        Run-level records, indexed by record id.
    files, variables : tuple of str
        File columns and variable columns of ``frame``.
    level : {"run", "session", "subject"}

    Returns
    -------
    DataFrame
        At ``run`` level, ``frame`` itself. Otherwise one row per group, indexed by
        ``sub-01[_ses-1]``: the group keys and the variables constant within every group
        as single values, and a ``runs`` column and every other column (files, ``t_r``,
        task, run, variables keyed by session at subject level) as lists with one item
        per run.
    """
    if level not in LEVELS:
        raise SpecError(not_one_of("level", level, LEVELS))
    if level == "run":
        return frame
    keys = ["subject"] + (["session"] if level == "session" else [])
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise SpecError(f"level {level!r} needs a {missing[0]} column; the records have none")
    frame = frame.loc[sorted(frame.index, key=natural_key)]
    grouped = frame.groupby(keys, sort=True, dropna=False)
    # A variable keyed by session varies within a subject: it becomes a list, like a file.
    constant = [v for v in variables if (grouped[v].nunique(dropna=False) <= 1).all()]
    per_run = [c for c in frame.columns if c not in keys and c not in constant]
    # Each group's rows by position, in the order iterating the groups gives them (what
    # ngroup numbers), each group's in the frame's order: the columns are read once, not
    # sliced into a frame per group.
    codes = grouped.ngroup().to_numpy()
    order = np.argsort(codes, kind="stable").tolist()
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=grouped.ngroups))])
    # Every column laid out once in that order, so that a group's runs are a slice of it,
    # not a lookup per run; in the lists, a missing value is None.
    index = frame.index.tolist()
    runs = [index[i] for i in order]
    ordered = {c: _in_order(frame[c], order, c in per_run) for c in [*keys, *per_run, *constant]}
    short_keys = ("sub", "ses")[: len(keys)]
    rows = []
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        values = [ordered[k][start] for k in keys]
        entities = {short: v for short, v in zip(short_keys, values, strict=True)
                    if isinstance(v, str)}  # fmt: skip
        row: dict = {
            "record": record_id(entities, short_keys),
            **dict(zip(keys, values, strict=True)),
        }
        row["runs"] = runs[start:stop]
        for column in per_run:
            row[column] = ordered[column][start:stop]
        for column in constant:
            row[column] = ordered[column][start]
        rows.append(row)
    if not rows:  # every record filtered out: an empty table of the same shape
        return pd.DataFrame(
            columns=[*keys, "runs", *per_run, *constant], index=pd.Index([], name="record")
        )
    out = pd.DataFrame(rows).set_index("record")
    return out[[*keys, "runs", *per_run, *constant]]


_DIGITS = re.compile(r"(\d+)")


def natural_key(record: str) -> list:
    """Sort key that puts ``run-2`` before ``run-10``."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(record)]


def _in_order(column: pd.Series, order: list[int], none: bool) -> list:
    """A column's values (``tolist``'s: NaN where missing) in the given order; with
    ``none``, None for each missing value."""
    values = column.tolist()
    if none and column.hasnans:
        return [
            None if isinstance(v, float) and v != v else v for v in map(values.__getitem__, order)
        ]
    return [values[i] for i in order]
