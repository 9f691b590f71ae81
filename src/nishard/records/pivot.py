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
    # ngroup numbers), each group's in the frame's order: the columns are read once, as
    # iterating them gives their values, not sliced into a frame per group.
    codes = grouped.ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=grouped.ngroups))])
    index, values_of = list(frame.index), {c: list(frame[c]) for c in [*keys, *per_run, *constant]}
    rows = []
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        members = order[start:stop].tolist()
        first = members[0]
        values = [values_of[k][first] for k in keys]
        entities = {short: v for short, v in zip(("sub", "ses"), values, strict=False)
                    if isinstance(v, str)}  # fmt: skip
        row: dict = {"record": record_id(entities), **dict(zip(keys, values, strict=True))}
        row["runs"] = [index[i] for i in members]
        for column in per_run:
            column_values = values_of[column]
            row[column] = [_none_if_nan(column_values[i]) for i in members]
        for column in constant:
            row[column] = values_of[column][first]
        rows.append(row)
    if not rows:  # every record filtered out: an empty table of the same shape
        return pd.DataFrame(
            columns=[*keys, "runs", *per_run, *constant], index=pd.Index([], name="record")
        )
    out = pd.DataFrame(rows).set_index("record")
    return out[[*keys, "runs", *per_run, *constant]]


def natural_key(record: str) -> list:
    """Sort key that puts ``run-2`` before ``run-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", record)]


def _none_if_nan(value: object) -> object:
    return None if isinstance(value, float) and value != value else value
