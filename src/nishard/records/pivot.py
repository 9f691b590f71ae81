"""Pivot a run-level record table to one record per session or per subject."""

from __future__ import annotations

import re

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
    rows = []
    for values, group in grouped:
        values = values if isinstance(values, tuple) else (values,)
        entities = {short: v for short, v in zip(("sub", "ses"), values, strict=False)
                    if isinstance(v, str)}  # fmt: skip
        row: dict = {"record": record_id(entities), **dict(zip(keys, values, strict=True))}
        row["runs"] = list(group.index)
        for column in per_run:
            row[column] = [_none_if_nan(v) for v in group[column]]
        for column in constant:
            row[column] = group[column].iloc[0]
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
