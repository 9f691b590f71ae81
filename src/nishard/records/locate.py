"""locate(): find a dataset's records by a schema and collate them with tabular variables."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..errors import SpecError
from .filters import Complete
from .pivot import pivot
from .schemas import Fmriprep
from .sources import Local, Source
from .table import RecordTable


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a scan (or a pivot) builds its
    objects; a decorator too.

    A scan makes a few objects per file of the dataset and keeps them all: none is
    garbage, yet every few hundred allocations the collector walks the young ones, and
    every few thousand all those kept so far. Paused, a scan of a million files takes
    about half the time. It is restarted (when it was running) as soon as the scan ends.
    """
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


def locate(
    root: str | Path,
    schema=None,
    stage: Sequence[str] | None = None,
    variables=None,
    filters: Sequence = (Complete(),),
    level: str = "run",
    source: Source | None = None,
) -> RecordTable:
    """Find every record of a dataset and join its tabular variables.

    Parameters
    ----------
    root : str or Path
        The dataset's root folder (for fMRIPrep, the derivatives folder), or what the
        source understands (a URL).
    schema : schema primitive, optional
        How the dataset is laid out: ``Fmriprep`` (default, MNI152NLin2009cAsym),
        ``Bids``, ``Hcp`` or ``Regex``.
    stage : sequence of str, optional
        The file kinds each record carries (keys of ``schema.kinds``); a kind may give
        several file columns (``surface``: ``surface_L`` and ``surface_R``). Default: the
        schema's ``default_stage`` (fMRIPrep: bold, mask, confounds).
    variables : table primitive or sequence of them, optional
        Tabular variables to join on subject (and session), e.g.
        ``Participants(["age", "diagnosis"])``, ``Phenotype("cognition")``, ``Table(df)``.
    filters : sequence of filter primitives
        Applied in order, at run level; every dropped record and its reason lands in
        ``dropped``.
    level : {"run", "session", "subject"}
        One record per run, or per session or subject with its runs as lists.
    source : source primitive, optional
        Where the files come from (default: local disk). The staged files of the records
        kept by the filters are fetched; a record whose file cannot be is dropped.

    Returns
    -------
    RecordTable
        Sorted by record id; ``unparsed`` lists files under subject folders whose names
        the schema could not read, ``unmatched`` the subjects without a row in a table.

    Raises
    ------
    SpecError
        When the root folder is missing, a staged kind is unknown to the schema, two
        files claim one record's place, a table is unusable, or no record matches.
    """
    schema = schema or Fmriprep()
    source = source or Local()
    stage = tuple(schema.default_stage if stage is None else stage)
    tables = _as_tables(variables)
    root_path = source.prepare(root)
    if not root_path.is_dir():
        raise SpecError(f"input folder not found: {root_path}")
    unknown = [kind for kind in stage if kind not in schema.kinds]
    if unknown:
        known = ", ".join(schema.kinds)
        raise SpecError(f"stage {unknown} unknown to schema {schema.name}; it knows {known}")
    columns = tuple(column for kind in stage for column in schema.kinds[kind])
    frame, dropped, absent, unparsed = _run_table(schema, root_path, columns)

    names: list[str] = []
    unmatched: set[str] = set()
    for table in tables:
        frame, added, missing = _join(frame, table, root_path)
        names += added
        unmatched |= missing

    for primitive in filters:
        reasons = primitive.reasons(frame, columns, tuple(names))
        drop = reasons != ""
        dropped += [
            {"record": k, "reason": _explained(v, absent.get(k, {}))}
            for k, v in reasons[drop].items()
        ]
        frame = frame[~drop]
    frame, unfetched = _fetch(frame, columns, source)
    dropped += unfetched
    with paused_gc():  # a pivot to subjects makes a few lists for each, none garbage
        table = pivot(frame, columns, tuple(names), level)
    return RecordTable(
        frame=table,
        files=columns,
        root=str(root_path.absolute()),
        variables=tuple(names),
        level=level,
        spec=input_spec(root, schema, stage, variables, filters, source, level),
        dropped=pd.DataFrame(dropped, columns=["record", "reason"], dtype=str),
        unparsed=unparsed,
        unmatched=tuple(sorted(unmatched)),
    )


@paused_gc()
def _run_table(
    schema, root_path: Path, columns: tuple[str, ...]
) -> tuple[pd.DataFrame, list[dict], dict[str, dict[str, str]], tuple[str, ...]]:
    """The schema's runs as a table (one row per run with any staged file), the runs
    dropped for their problems, what each run lacks, and the files not parsed.

    The collector is paused while the scan's objects live (see :func:`paused_gc`); they
    are gone when this returns, and what follows (tables, filters, pivot) has few left
    for it to walk.
    """
    try:
        scan = schema.scan(root_path)
    except ValueError as err:
        raise SpecError(str(err)) from err
    # A run that has none of the staged files (only a CIFTI when BOLD volumes are asked
    # for) is no record of this query; one with some of them is, and complete() says
    # what it lacks. So is one the schema knows is missing a staged file (a run with its
    # confounds but its BOLD in another space) or cannot take (a folder in a file's
    # place): it is dropped with its reason, never left out unseen.
    runs = [
        run
        for run in scan.runs
        if run.problems
        or not run.files.keys().isdisjoint(columns)
        or not run.absent.keys().isdisjoint(columns)
    ]
    if not runs:
        raise SpecError(
            f"no {schema.name} records under {root_path} for {schema.to_dict()}; "
            f"{schema.hint(root_path)}"
        )

    ids = [r.record for r in runs]
    if len(set(ids)) < len(ids):
        seen: set[str] = set()
        twice = next(i for i in ids if i in seen or seen.add(i))
        files = [next(iter(r.files.values())) for r in runs if r.record == twice]
        raise SpecError(f"two runs share the record id {twice}: {' and '.join(files)}")
    frame = _frame(runs, pd.Index(ids, dtype="str", name="record"), columns)
    dropped: list[dict] = [
        {"record": r.record, "reason": "; ".join(r.problems)} for r in runs if r.problems
    ]
    if dropped:  # dropping none still hashes every id: skipped
        frame = frame.drop(index=[r["record"] for r in dropped])
    absent = {r.record: r.absent for r in runs if r.absent}
    return frame, dropped, absent, scan.unparsed


def _frame(runs: list, index: pd.Index, columns: tuple[str, ...]) -> pd.DataFrame:
    """The runs' table: their entities (in the order of first appearance), timing,
    metadata and staged files, one column at a time.

    Built by column, not from a dict per run that pandas then reads key by key: that
    took half the time of a UK Biobank-sized table. The entities come first whichever
    runs have them (a ``run`` column after ``task`` even when the first run has none).
    """
    entities = [r.entities for r in runs]
    shapes = dict.fromkeys(map(tuple, entities))  # a dataset's runs share a few
    names = tuple(dict.fromkeys(name for shape in shapes for name in shape))
    if len(shapes) == 1 and len(names) > 1:  # the same entities for every run: taken in C
        labels = zip(*map(itemgetter(*names), entities), strict=True)
    else:
        labels = ([e.get(name) for e in entities] for name in names)
    data = dict(zip(names, map(_strings, labels), strict=True))
    timings = [r.timing for r in runs]
    data["t_r"] = pd.Series([t.t_r for t in timings], dtype="float64")
    data["t_r_source"] = _strings([t.source for t in timings])
    if any(t.volume_timing is not None for t in timings):  # irregular runs only
        onsets = [math.nan if t.volume_timing is None else list(t.volume_timing) for t in timings]
        data["volume_timing"] = pd.Series(onsets, dtype=object)
    if any(r.metadata for r in runs):
        # Any JSON value: pandas infers each column's type as it does for rows of dicts.
        data.update(pd.DataFrame([r.metadata for r in runs]).items())
    # Each run's files dict visited once for all the staged columns, not once each.
    paths = [tuple(map(r.files.get, columns)) for r in runs]
    data.update(zip(columns, map(_strings, zip(*paths, strict=True)), strict=True))
    frame = pd.DataFrame({name: values.array for name, values in data.items()}, copy=False)
    frame.index = index
    return frame


def _strings(values: Sequence[str | None]) -> pd.Series:
    """A column of labels or paths (None where a run has none), through Arrow, which
    takes a list of str whole where pandas checks each one first."""
    return pd.Series(pa.array(values, pa.string()), dtype="str")


def _explained(reason: str, absent: dict[str, str]) -> str:
    """A filter's ``no bold file`` with what the schema knows of it (``no bold file
    (desc-preproc_bold in space MNI152NLin2009cAsym: found in T1w)``)."""
    for column, why in absent.items():
        reason = reason.replace(f"no {column} file", f"no {column} file ({why})")
    return reason


def _as_tables(variables) -> list:
    if variables is None:
        return []
    return list(variables) if isinstance(variables, list | tuple) else [variables]


def _join(frame: pd.DataFrame, table, root: Path) -> tuple[pd.DataFrame, list[str], set[str]]:
    """Left-join one table; its new columns, and the subjects it has no row for."""
    if "subject" not in frame.columns:
        raise SpecError(f"{table.describe(root)}: the records have no subject column to join on")
    values = table.load(root)
    clash = sorted(set(values.columns) & (set(frame.columns) | {"record", "runs"}))
    if clash:
        raise SpecError(
            f"{table.describe(root)}: columns {clash} clash with the record table's own "
            f"(entities, files, t_r, record, runs, earlier tables); leave them out of its columns"
        )
    keys = list(values.index.names)
    if "session" in keys and "session" not in frame.columns:
        raise SpecError(f"{table.describe(root)}: keyed by session, but the records have none")
    joined = frame.join(values, on=keys)
    known = set(values.index.get_level_values("subject"))
    return joined, list(values.columns), set(frame["subject"]) - known


def _fetch(
    frame: pd.DataFrame, columns: tuple[str, ...], source: Source
) -> tuple[pd.DataFrame, list[dict]]:
    """Fetch the staged files of the kept records; drop those with a file that failed."""
    if type(source) is Local:
        return frame, []  # on disk already: nothing to fetch (and no need to list it)
    paths = [p for column in columns for p in frame[column].dropna()]
    failures = source.fetch(paths) if paths else {}
    if not failures:
        return frame, []
    reasons = pd.Series("", index=frame.index)
    for column in columns:
        for record, path in frame[column].dropna().items():
            if path in failures:
                why = f"could not fetch {column} {path}: {failures[path]}"
                reasons[record] = f"{reasons[record]}; {why}" if reasons[record] else why
    drop = reasons != ""
    return frame[~drop], [{"record": k, "reason": v} for k, v in reasons[drop].items()]


def input_spec(
    root: str | Path,
    schema,
    stage: Sequence[str],
    variables=None,
    filters: Sequence = (),
    source: Source | None = None,
    level: str = "run",
) -> dict:
    """The input section of a pipeline spec, with the root as the user wrote it."""
    spec: dict = {"path": str(root), "schema": schema.to_dict(), "stage": list(stage)}
    tables = _as_tables(variables)
    if tables:
        spec["variables"] = [t.to_dict() for t in tables]
    spec["filters"] = [f.to_dict() for f in filters]
    if level != "run":
        spec["level"] = level
    if source is not None and not isinstance(source, Local):
        spec["source"] = source.to_dict()
    return spec
