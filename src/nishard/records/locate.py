"""locate(): find a dataset's records by a schema and collate them with tabular variables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..errors import SpecError
from .filters import Complete
from .schemas import Fmriprep
from .sources import Local, Source
from .table import RecordTable
from .tables import Participants


def locate(
    root: str | Path,
    schema: Fmriprep | None = None,
    stage: Sequence[str] = ("bold", "mask", "confounds"),
    variables: Participants | None = None,
    filters: Sequence[Complete] = (Complete(),),
    source: Source | None = None,
) -> RecordTable:
    """Find every record of a dataset and join its tabular variables.

    Parameters
    ----------
    root : str or Path
        The dataset's root folder (for fMRIPrep, the derivatives folder).
    schema : schema primitive, optional
        How the dataset is laid out; default ``fmriprep()`` in MNI152NLin2009cAsym.
    stage : sequence of str
        The file kinds each record carries (a subset of ``schema.kinds``).
    variables : tables primitive, optional
        Tabular variables to join, e.g. ``participants(["age", "diagnosis"])``.
    filters : sequence of filter primitives
        Applied in order; every dropped record and its reason lands in ``dropped``.
    source : source primitive, optional
        Where the files come from (default: local disk). The staged files of the records
        kept by the filters are fetched; a record whose file cannot be is dropped.

    Returns
    -------
    RecordTable
        One row per record, sorted by record id.

    Raises
    ------
    SpecError
        When the root folder is missing, a staged kind is unknown to the schema, or no
        record matches.
    """
    schema = schema or Fmriprep()
    source = source or Local()
    stage = tuple(stage)
    root_path = source.prepare(root)
    if not root_path.is_dir():
        raise SpecError(f"input folder not found: {root_path}")
    unknown = [kind for kind in stage if kind not in schema.kinds]
    if unknown:
        raise SpecError(f"stage {unknown} unknown to schema {schema.name}; it knows {schema.kinds}")
    if "bold" not in stage:
        raise SpecError("stage must include 'bold'")
    try:
        runs = schema.scan(root_path)
    except ValueError as err:
        raise SpecError(str(err)) from err
    if not any("bold" in run.files for run in runs):
        raise SpecError(
            f"no {schema.name} records under {root_path} for {schema.to_dict()}; "
            f"BOLD runs there are in: {', '.join(schema.spaces(root_path)) or 'none'}"
        )

    rows = [{"record": r.record, **r.entities, "t_r": r.t_r} for r in runs]
    frame = pd.DataFrame(rows).set_index("record")
    for kind in stage:
        frame[kind] = pd.Series([r.files.get(kind) for r in runs], index=frame.index, dtype="str")

    names: tuple[str, ...] = ()
    if variables is not None:
        table = variables.load(root_path)
        clash = sorted(set(table.columns) & set(frame.columns))
        if clash:
            raise SpecError(
                f"{variables.find(root_path)}: columns {clash} clash with the record table's "
                f"own (entities, files, t_r); leave them out of the variables' columns"
            )
        names = tuple(table.columns)
        frame = frame.join(table, on="subject")

    dropped = []
    for primitive in filters:
        reasons = primitive.reasons(frame, stage, names)
        drop = reasons != ""
        dropped += [{"record": k, "reason": v} for k, v in reasons[drop].items()]
        frame = frame[~drop]
    frame, unfetched = _fetch(frame, stage, source)
    dropped += unfetched
    return RecordTable(
        frame=frame,
        files=stage,
        root=str(root_path.absolute()),
        variables=names,
        spec=input_spec(root, schema, stage, variables, filters, source),
        dropped=pd.DataFrame(dropped, columns=["record", "reason"], dtype=str),
    )


def input_spec(
    root: str | Path,
    schema: Fmriprep,
    stage: Sequence[str],
    variables: Participants | None,
    filters: Sequence[Complete],
    source: Source | None = None,
) -> dict:
    """The input section of a pipeline spec, with the root as the user wrote it."""
    spec: dict = {"path": str(root), "schema": schema.to_dict(), "stage": list(stage)}
    if variables is not None:
        spec["variables"] = variables.to_dict()
    spec["filters"] = [f.to_dict() for f in filters]
    if source is not None and not isinstance(source, Local):
        spec["source"] = source.to_dict()
    return spec


def _fetch(
    frame: pd.DataFrame, stage: tuple[str, ...], source: Source
) -> tuple[pd.DataFrame, list[dict]]:
    """Fetch the staged files of the kept records; drop those with a file that failed."""
    paths = [p for kind in stage for p in frame[kind].dropna()]
    failures = source.fetch(paths) if paths else {}
    if not failures:
        return frame, []
    reasons = pd.Series("", index=frame.index)
    for kind in stage:
        for record, path in frame[kind].dropna().items():
            if path in failures:
                why = f"could not fetch {kind} {path}: {failures[path]}"
                reasons[record] = f"{reasons[record]}; {why}" if reasons[record] else why
    drop = reasons != ""
    return frame[~drop], [{"record": k, "reason": v} for k, v in reasons[drop].items()]
