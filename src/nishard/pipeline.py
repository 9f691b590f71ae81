"""build(): one pipeline spec run through locate, assemble and write."""

from __future__ import annotations

import os
from pathlib import Path

from .builder import write
from .errors import RecordError
from .records import Record, RecordTable, locate
from .spec import Pipeline, load_spec
from .workflow import NodeCache, Plan, assemble


def locate_records(pipeline: Pipeline) -> RecordTable:
    """The records of a pipeline's input section: ``locate`` with its primitives."""
    return locate(
        pipeline.root,
        schema=pipeline.schema,
        stage=pipeline.stage,
        variables=pipeline.variables,
        filters=pipeline.filters,
        level=pipeline.level,
        source=pipeline.source,
    )


def build(pipeline: Pipeline | str | Path, *, progress: bool = True, resume: bool = True) -> dict:
    """Run a pipeline: the same three calls a user makes from Python.

    Parameters
    ----------
    pipeline : Pipeline or path
        A parsed spec, or the path of a YAML spec.
    progress : bool
        Show a progress bar.
    resume : bool
        Go on from where an interrupted build of the same spec stopped (the default);
        False starts over (see :func:`nishard.write`).

    Returns
    -------
    dict
        The manifest written beside the shards.
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = load_spec(pipeline)
    records = locate_records(pipeline)
    plan = plan_for(pipeline, records)
    return write(
        records,
        plan,
        pipeline.output,
        formats=pipeline.formats,
        shards=pipeline.shards,
        executor=pipeline.executor,
        split=pipeline.split,
        shuffle=pipeline.shuffle,
        storage_options=pipeline.storage_options,
        spec=pipeline.spec,
        progress=progress,
        resume=resume,
        cache=None if pipeline.cache is None else NodeCache(pipeline.cache),
    )


def plan_for(pipeline: Pipeline, records: RecordTable) -> Plan:
    """The pipeline's transforms assembled, fused for its largest record's shapes."""
    options = {"products": pipeline.products, "fusion": pipeline.fusion}
    try:
        return assemble(pipeline.transforms, example=largest(records), **options)
    except RecordError:  # an unreadable header: that record is quarantined when it runs
        return assemble(pipeline.transforms, **options)


def largest(records: RecordTable) -> Record | None:
    """The record with the largest BOLD (or first staged) file: what fusion is sized for."""
    best, size = None, -1
    for record in records:
        path = record.files.get("bold") or next(iter(record.files.values()), None)
        if isinstance(path, str) and os.path.isfile(path) and os.path.getsize(path) > size:
            best, size = record, os.path.getsize(path)
    return best
