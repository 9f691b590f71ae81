"""build(): one pipeline spec run through locate, assemble and write."""

from __future__ import annotations

from pathlib import Path

from .archives import write
from .records import RecordTable, locate
from .spec import Pipeline, load_spec
from .workflow import assemble


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


def build(pipeline: Pipeline | str | Path, *, progress: bool = True) -> dict:
    """Run a pipeline: the same three calls a user makes from Python.

    Parameters
    ----------
    pipeline : Pipeline or path
        A parsed spec, or the path of a YAML spec.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        The manifest written beside the shards.
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = load_spec(pipeline)
    records = locate_records(pipeline)
    plan = assemble(pipeline.transforms)
    return write(
        records,
        plan,
        pipeline.output,
        formats=pipeline.formats,
        shards=pipeline.shards,
        executor=pipeline.executor,
        split=pipeline.split,
        spec=pipeline.spec,
        progress=progress,
    )
