"""write(): run a plan over records and write the products as sharded archives."""

from __future__ import annotations

import inspect
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..archives.families import Family, family_name, resolve, unwrap
from ..archives.index import WIDS_FORMAT, wids_index, wids_name, write_json
from ..archives.manifest import (
    MANIFEST,
    Merged,
    build_manifest,
    merge,
    read_manifest,
    versions,
    write_manifest,
)
from ..archives.shards import Format, ShardInfo, ShardSpec
from ..archives.stats import Moments, sample_moments, stats_arrays, write_npz
from ..archives.storage import S3Storage, storage_for
from ..archives.webdataset import WebDataset
from ..checksums import sha256_file
from ..errors import NishardError, SpecError, check_writable, raise_if_full, raise_if_unwritable
from ..records.table import RecordTable
from ..workflow.cache import NodeCache
from ..workflow.executors import Executor, Serial
from ..workflow.plan import Outcome, Plan
from ..workflow.usage import Tally
from .planning import plan_shards
from .remote import staging_folder, upload_build
from .resume import Journal, Resumed, fingerprint
from .sizing import sample_bounds
from .splits import Split, counts_table
from .tasks import ShardTask


def output_spec(
    out: str | Path,
    formats: Sequence[Format | Family],
    shards: ShardSpec,
    split: str | Split,
    shuffle: int | None = 0,
) -> dict:
    """The output section of a pipeline spec, with the path as the user wrote it."""
    from .output import Output  # the one writer of the output section

    return Output(out, formats, shards, split, shuffle).to_dict()


def write(
    records: RecordTable,
    plan: Plan,
    out: str | Path,
    *,
    formats: Sequence[Format | Family] = (WebDataset(),),
    shards: ShardSpec | None = None,
    executor: Executor | None = None,
    split: str | Split = "all",
    shuffle: int | None = 0,
    spec: dict | None = None,
    progress: bool = True,
    cache: NodeCache | None = None,
    resume: bool = True,
) -> dict:
    """Run ``plan`` on every record and write the products as shards plus a manifest.

    Parameters
    ----------
    records : RecordTable
        From :func:`nishard.locate`.
    plan : Plan
        From :func:`nishard.assemble`.
    out : str or Path
        Output folder, created if missing, or an ``s3://bucket/prefix`` (built in a
        local staging folder, then uploaded, the manifest last: :mod:`.remote`). Shards
        are named ``<split>-000000<ext>`` (``.tar``, ``.tfrecord``, ``.h5``, ``.zarr.zip``), ...
    formats : sequence of Format or Family
        Each gets its own shards of every sample (default: WebDataset tar); a
        :class:`~.families.Family` holds only some products, in shards named
        ``<split>-<family>-000000<ext>``.
    shards : ShardSpec, optional
        Shard limits (default: 512 MB per shard).
    executor : Executor, optional
        ``Serial()`` (default) or ``Local(jobs)``.
    split : str or Split
        The name of the one split every sample goes to (letters, digits, ``_``), or a
        strategy from :mod:`nishard.archives.splits` (``Stratified("diagnosis")``...):
        shards are then named by split (``train-000000.tar``) and the manifest counts the
        classes of each split.
    shuffle : int or None
        Seed of the order samples are written in (within each split); None keeps the
        records' order.
    spec : dict, optional
        The pipeline spec to record in the manifest; by default it is composed from the
        records', plan's and these arguments' own specs.
    progress : bool
        Show a progress bar (records done, rate, time left) and a summary at the end
        (written, quarantined, time, and the peak resident memory of the largest process:
        this one or a worker, as each worker measures itself per record).
    cache : NodeCache, optional
        Store node outputs by content and reuse them: a rerun computes only what changed.
    resume : bool
        Go on from where an interrupted build of the same records, transforms and output
        settings stopped (killed, out of memory, Ctrl-C): the samples of its finished
        shards are not recomputed, and the result is byte-identical to an uninterrupted
        build. The journal is ``out/.nishard-resume/`` (see :mod:`.resume`), removed when
        the build completes; a build with other settings starts over. False starts over.

    Returns
    -------
    dict
        The manifest, also written to ``out/manifest.json``. A record that cannot be read,
        processed or encoded is listed under ``quarantine`` with its reason; the others
        are written. Besides the shards (each with its sample keys in order, and for tar
        and TFRecord the byte offset of each sample), it lists per split:

        - ``stats``: per product key, the count of observations, the number of features
          and the mean, std (ddof=0), min and max over all its values; the per-feature
          ``<key>.mean`` and ``<key>.std`` vectors (float64) are in the side file
          ``<split>.stats.npz`` (its sha256 listed). A product of shape ``(..., F)`` gives
          ``prod(...)`` observations of ``F`` features (see :mod:`.stats`); train on the
          training split's.
        - ``indexes``: ``<split>.wids.json``, the shard index with which
          ``wids.ShardListDataset`` reads the tar shards by sample number.

    Raises
    ------
    SpecError
        When the split name is invalid or the plan needs a file kind the records lack.
    NishardError
        When no record at all could be written (the manifest is still written first).
    """
    shards = shards or ShardSpec()
    executor = executor or Serial()
    if isinstance(out, str) and "://" in out:  # a bucket: built locally, then published
        remote = storage_for(out)
        if not isinstance(remote, S3Storage):
            raise SpecError(f"{out}: shards are written to local folders or s3:// buckets")
        recorded = spec or _spec(records, plan, out, formats, shards, split, shuffle, executor)
        staging = staging_folder(out)
        manifest = write(
            records, plan, staging, formats=formats, shards=shards, executor=executor,
            split=split, shuffle=shuffle, spec=recorded, progress=progress, cache=cache,
            resume=resume,
        )  # fmt: skip
        counts = upload_build(staging, remote)
        if progress:
            print(f"published to {out}: {counts['uploaded']} files uploaded, "
                  f"{counts['skipped']} already there", file=sys.stderr)  # fmt: skip
        return manifest
    if records.level != "run":
        raise SpecError(
            f"records are at {records.level} level; writing needs one record per run for now "
            "(a plan loads one run at a time)"
        )
    missing = [kind for kind in plan.inputs if kind not in records.files]
    if missing:
        raise SpecError(f"the plan reads {missing}, which the records do not stage")
    writing = resolve(formats, plan.products)
    # A group is a shard in every format: a byte limit is planned from each sample's
    # upper bound in each format, read from headers before anything runs.
    bounds = None if shards.max_bytes is None else sample_bounds(list(records), plan, writing)
    planned = plan_shards(records, split, shuffle, shards, bounds)
    names, assignment = planned.splits, planned.assignment
    # Absolute: a workflow engine (Pydra) changes the process's folder while it runs.
    folder = Path(out).absolute()
    # Both places written, checked before anything is: a refused write stops the build
    # here, in one line, rather than in every worker or after some shards.
    if cache is not None:
        cache.check_writable()
    check_writable(folder, f"the output folder {folder}")
    ours = _our_files(names, writing)
    previous = _matching(_previous_files(folder), ours)
    setup = {
        "transforms": plan.to_list(), "products": list(plan.products),
        "formats": [item.to_dict() for item in writing], "shards": shards.to_dict(),
        "split": split if isinstance(split, str) else split.to_dict(), "shuffle": shuffle,
        "groups": [[g.split, g.index, len(g.records)] for g in planned.groups],
    }  # fmt: skip
    by_id = {record.id: record for record in records}
    order = [by_id[i] for i in planned.order]
    journal = Journal(folder, fingerprint(order, assignment, setup, versions()))
    first = {name: (unwrap(writing[0]).name, family_name(writing[0])) for name in names}
    resumed, listed = journal.load(first) if resume else (None, journal.listed())
    previous |= _matching(listed, ours)
    journal.start(previous, resumed)
    resumed = resumed or Resumed()
    # The old manifest goes first: from the first renamed shard on it would describe
    # bytes that are no longer on disk.
    (folder / MANIFEST).unlink(missing_ok=True)
    for leftover in folder.glob("*.tmp"):
        if ours.fullmatch(leftover.name.removesuffix(".tmp")):
            leftover.unlink()  # a shard a killed build was writing

    tasks = [ShardTask(folder, g, writing, journal, resumed) for g in planned.groups]
    task_of = {record: task for task in tasks for record in task.group.records}
    skipped = _skippable(resumed.records, planned.order, task_of)
    partials = {}
    finishing: list[ShardTask] = []
    tally = Tally()
    quarantined = 0
    started = time.perf_counter()
    bar = tqdm(total=len(records), unit="record", desc="build", disable=not progress)
    if skipped:
        bar.write(f"resuming: {len(skipped)} records done by an interrupted build")

    def take(entry: dict) -> None:
        """Count a record's entry, whether just written or done by an earlier run."""
        nonlocal quarantined, finishing
        task = task_of[entry["id"]]
        task.take(entry)
        quarantined += entry["quarantine"] is not None
        bar.update()
        bar.set_postfix(quarantined=quarantined, refresh=False)
        if task.complete:
            # The group's shards are published in the background while the next
            # group's samples are written; one group in flight at most.
            for earlier in finishing:
                partials[earlier.group] = earlier.close()
            task.finish()
            finishing = [task]

    position = {record: p for p, record in enumerate(planned.order)}
    todo = [record for p, record in enumerate(order) if p not in skipped]
    replay = iter(sorted(skipped.items()))
    waiting = next(replay, None)
    outcomes = _outcomes(executor, plan, todo, cache)
    begun = time.time()
    try:
        for outcome in outcomes:
            tally.add(outcome.usage)
            here = position[outcome.record.id]
            while waiting is not None and waiting[0] < here:
                take(waiting[1])
                waiting = next(replay, None)
            entry = task_of[outcome.record.id].write(outcome, here, records.root)
            if entry["quarantine"] is not None:
                bar.write(f"quarantined: {outcome.error or _found(entry)}")
            journal.record(entry)
            take(entry)
        while waiting is not None:
            take(waiting[1])
            waiting = next(replay, None)
        for task in tasks:  # (an empty split's one group is complete from the start)
            if task.group not in partials:
                partials[task.group] = task.close()
    except BaseException as error:
        # The executor's workers stop first (closing the generator ends its pool); then
        # nothing writes the node cache, and what they left half-written there goes.
        outcomes.close()
        if cache is not None:
            cache.remove_partials(since=begun)
        for task in tasks:
            task.abort()
        journal.close()
        _raise_if_full(error, folder)
        raise
    finally:
        bar.close()

    try:
        merged = merge(partials.values(), names, planned.order)
        _check_counts(merged, len(records))
        written_frame = _written(records, merged.quarantine)
        manifest = build_manifest(
            spec=spec or _spec(records, plan, out, formats, shards, split, shuffle, executor),
            shards=merged.shards,
            keys=merged.keys,
            inputs=merged.inputs,
            quarantine=merged.quarantine,
            dropped=records.dropped.to_dict(orient="records"),
            n_records=len(records),
            splits=_split_table(records, written_frame, split, names, assignment),
            stats={name: _write_stats(folder, name, merged.moments[name]) for name in names},
            indexes=_write_indexes(folder, names, merged.shards),
            classes=text_classes(written_frame, records.variables),
            qc=merged.qc,
            warnings=merged.warnings,
        )
        write_manifest(folder, manifest)
    except OSError as error:  # the side files and the manifest: their temporaries are gone
        _raise_if_full(error, folder)
        raise
    journal.remove()
    if progress:
        print(summary(manifest, time.perf_counter() - started, tally), file=sys.stderr)
    rewritten = {info.name for info in merged.shards} | _side_files(manifest)
    for stale in previous - rewritten:
        (folder / stale).unlink(missing_ok=True)
    if len(records) and len(merged.quarantine) == len(records):
        raise NishardError(
            f"every one of the {len(records)} records was quarantined; see {folder / MANIFEST}"
        )
    return manifest


def _found(entry: dict) -> str:
    """A quarantine entry as one line (an encoding failure has no outcome error)."""
    q = entry["quarantine"]
    return f"{q['record']}: expected {q['expected']}, found {q['found']}"


def _raise_if_full(error: BaseException, folder: Path) -> None:
    """A full disk met by the build itself (journal, side files, manifest) as a
    :class:`~nishard.errors.DiskFullError` naming the file, else the output folder; a
    write refused there (made read-only during the build) as an UnwritableError."""
    path = getattr(error, "filename", None) or folder
    raise_if_full(error, path, "the output folder")
    if Path(path).absolute().is_relative_to(folder):  # not another folder's refusal
        raise_if_unwritable(error, path, f"the output folder {folder}")


def _check_counts(merged: Merged, n_records: int) -> None:
    """Every record planned is written or quarantined, once: nothing vanishes."""
    written = sum(merged.written.values())
    if written + len(merged.quarantine) != n_records:
        raise NishardError(
            f"the build accounts for {written} written and {len(merged.quarantine)} "
            f"quarantined records of {n_records} planned: a record was lost or counted twice"
        )


def _written(records: RecordTable, quarantine: list[dict]) -> pd.DataFrame:
    """The records' table without the quarantined ones, infinities as missing values."""
    bad = {entry["record"] for entry in quarantine}
    frame = records.frame[[str(i) not in bad for i in records.frame.index]]
    # An infinite variable is written as null in the samples; count it as missing too.
    return frame.replace([np.inf, -np.inf], np.nan)


def text_classes(frame: pd.DataFrame, variables: Sequence[str]) -> dict[str, list[str]]:
    """The sorted values of each variable whose values are all text (missing ones aside),
    over the written records of every split: the class map labels index, one for all
    splits."""
    classes = {}
    for name in variables:
        if name not in frame.columns:
            continue
        values = [v for v in frame[name].tolist() if isinstance(v, str) or pd.notna(v)]
        if values and all(isinstance(v, str) for v in values):
            classes[name] = sorted(set(values))
    return classes


def _outcomes(
    executor: Executor, plan: Plan, records: list, cache: NodeCache | None
) -> Iterator[Outcome]:
    """The executor's outcomes, each with its products' statistics where it can.

    The statistics of each sample are computed by the worker that made it: a pass over
    every array that would otherwise take the writer's process, which also writes (and
    hashes) every byte, from the cores the workers need. An executor whose ``map`` takes
    no ``summarize`` (one written for nishard 0.1) still works: the writer computes them.
    """
    try:
        takes = "summarize" in inspect.signature(executor.map).parameters
    except (TypeError, ValueError):  # no signature to read: call it as 0.1 did
        takes = False
    if takes:
        return executor.map(plan, records, cache, summarize=sample_moments)
    return executor.map(plan, records, cache)


def _skippable(
    entries: dict[int, dict], order: Sequence[str], task_of: dict[str, ShardTask]
) -> dict:
    """The journaled records a resumed build need not compute: quarantined ones, and
    those of a group whose shard in every format an interrupted build finished."""
    skipped = {}
    for p, entry in sorted(entries.items()):
        if p >= len(order) or order[p] != entry["id"]:
            break  # not this build's journal after all
        if entry["quarantine"] is not None or task_of[entry["id"]].done:
            skipped[p] = entry
    return skipped


def _write_stats(folder: Path, split: str, moments: dict[str, Moments]) -> dict:
    """The split's per-feature vectors to ``<split>.stats.npz``; the manifest's entry."""
    arrays = stats_arrays(moments)
    entry: dict = {"keys": {name: m.summary() for name, m in moments.items()}, "file": None}
    if arrays:
        path = folder / f"{split}.stats.npz"
        write_npz(path, arrays)
        entry |= {"file": path.name, "sha256": sha256_file(path)}
    return entry


def _write_indexes(folder: Path, names: Sequence[str], shards: list[ShardInfo]) -> dict:
    """A wids shard index per split (and family) of tar shards; the manifest's entries,
    by ``<split>`` or ``<split>-<family>``."""
    indexes = {}
    families = sorted({s.family for s in shards if s.format == WIDS_FORMAT}, key=str)
    for name in names:
        for family in families:
            tars = [
                s for s in shards
                if (s.split, s.format, s.family) == (name, WIDS_FORMAT, family)
            ]  # fmt: skip
            if not tars:
                continue
            label = name if family is None else f"{name}-{family}"
            path = folder / wids_name(label)
            write_json(path, wids_index(label, tars))
            indexes[label] = {"file": path.name, "sha256": sha256_file(path), "format": "wids"}
    return indexes


def _spec(records, plan, out, formats, shards, split, shuffle, executor) -> dict:
    """The pipeline spec a build records when it is given none."""
    return {
        "input": records.spec,
        "transforms": plan.to_list(),
        "output": output_spec(out, formats, shards, split, shuffle),
        "execution": executor.to_dict(),
    }


def _side_files(manifest: dict) -> set[str]:
    """Files besides the shards that a manifest lists."""
    side = {e.get("file") for e in manifest.get("stats", {}).values() if isinstance(e, dict)}
    side |= {e.get("file") for e in manifest.get("indexes", {}).values() if isinstance(e, dict)}
    return {name for name in side if isinstance(name, str)}


def _split_table(records, frame, split, names, assignment) -> dict:
    """The strategy and the counts per class per split of the records written (``frame``)."""
    group = "subject" if isinstance(split, str) else split.group
    if group is not None and group not in frame.columns:
        group = None
    ids = [str(i) for i in frame.index]
    table = counts_table(
        frame, pd.Series([assignment[i] for i in ids], index=frame.index), records.variables,
        group=group, splits=names,
    )  # fmt: skip
    return _finite({"strategy": split if isinstance(split, str) else split.to_dict(), **table})


def _finite(value):
    """NaN (a statistic of no values) as null: the manifest is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _our_files(names: Sequence[str], formats: Sequence[Format | Family]) -> re.Pattern:
    """The names this build could write: only those may it replace or remove."""
    shards = "|".join(re.escape(unwrap(item).extension) for item in formats)
    splits = "|".join(re.escape(name) for name in names)
    families = "|".join(re.escape(f"-{family_name(i)}") for i in formats if family_name(i))
    return re.compile(
        rf"(?:{splits})(?:{families or '(?!)'})?(?:-\d{{6}}(?:{shards})|\.wids\.json)"
        rf"|(?:{splits})\.stats\.npz"
    )


def _matching(names: set[str], pattern: re.Pattern) -> set[str]:
    return {name for name in names if isinstance(name, str) and pattern.fullmatch(name)}


def _previous_files(folder: Path) -> set[str]:
    """Shards and side files that a previous complete build listed here: replaced, or
    removed if this build does not write them."""
    if not (folder / MANIFEST).is_file():
        return set()
    try:
        manifest = read_manifest(folder)
        listed = {shard["name"] for shard in manifest.get("shards", [])}
        return listed | _side_files(manifest)
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()


def summary(manifest: dict, seconds: float, tally: Tally | None = None) -> str:
    """One line: what a build wrote, quarantined and dropped, its time and peak memory
    (of the largest process: the writer's, or a worker's as ``tally`` has it)."""
    counts = manifest["records"]
    return (
        f"build: {counts['written']} written, {counts['quarantined']} quarantined, "
        f"{counts['dropped']} dropped in {len(manifest['shards'])} shards; {seconds:.1f} s, "
        f"{(tally or Tally()).describe()}"
    )
