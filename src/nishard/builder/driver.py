"""write(): run a plan over records and write the products as sharded archives."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

from ..archives.families import Family, family_name, resolve, unwrap
from ..archives.manifest import MANIFEST, read_manifest, versions
from ..archives.shards import Format, ShardSpec
from ..archives.storage import S3Storage, storage_for
from ..archives.webdataset import WebDataset
from ..errors import SpecError, check_writable, raise_if_full, raise_if_unwritable
from ..progress import bar as progress_bar
from ..progress import say
from ..records.table import RecordTable
from ..workflow.cache import NodeCache
from ..workflow.executors import Executor, Serial
from ..workflow.plan import Plan
from ..workflow.task_runners import runs_groups
from ..workflow.usage import Tally
from .finish import check_written, publish, side_files
from .planning import plan_shards
from .remote import Uploads, staging_folder, upload_build
from .resume import Journal, Resumed, fingerprint
from .sizing import sample_bounds
from .splits import Split
from .tasks import ShardTask
from .tasks import outcomes as run_records
from .work import WorkOrder, run_tasks


def output_spec(
    out: str | Path,
    formats: Sequence[Format | Family],
    shards: ShardSpec,
    split: str | Split,
    shuffle: int | None = 0,
    storage_options: dict | None = None,
) -> dict:
    """The output section of a pipeline spec, with the path as the user wrote it."""
    from .output import Output  # the one writer of the output section

    return Output(out, formats, shards, split, shuffle, storage_options=storage_options).to_dict()


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
    storage_options: dict | None = None,
    _publish: Uploads | None = None,
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
    storage_options : dict, optional
        For an ``s3://`` output: ``endpoint_url`` and ``profile`` of its store, when it is
        not the one the environment names (see :class:`~nishard.archives.S3Storage`).

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
        remote = storage_for(out, storage_options)
        if not isinstance(remote, S3Storage):
            raise SpecError(f"{out}: shards are written to local folders or s3:// buckets")
        # Asked first: a missing bucket or refused credentials stop the build here, by
        # name, not after every record was computed (and leftover uploads go).
        remote.abort_uploads()
        recorded = spec or _spec(records, plan, out, formats, shards, split, shuffle,
                                 executor, storage_options)  # fmt: skip
        # By endpoint too: two stores may hold the same bucket and prefix.
        staging = staging_folder(f"{remote.url} {remote.endpoint}")
        uploads = Uploads(staging, remote)
        manifest = write(
            records, plan, staging, formats=formats, shards=shards, executor=executor,
            split=split, shuffle=shuffle, spec=recorded, progress=progress, cache=cache,
            resume=resume, _publish=uploads,
        )  # fmt: skip
        counts = upload_build(staging, remote)
        # The shards the build uploaded as they finished are among those found there.
        total = counts["uploaded"] + uploads.counts["uploaded"]
        before = counts["skipped"] - uploads.counts["uploaded"]
        if progress:
            say(f"published to {out}: {total} files uploaded, {before} already there")
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
    bounds = None
    if shards.max_bytes is not None:
        bounds = sample_bounds(list(records), plan, writing, progress=progress)
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
    identity = fingerprint(order, assignment, setup, versions())
    if runs_groups(executor):  # each group a task of its own
        recorded = spec or _spec(records, plan, out, formats, shards, split, shuffle, executor)
        work = WorkOrder(
            identity, plan, tuple(writing), tuple(planned.groups), tuple(names),
            tuple(planned.order), dict(assignment), split, recorded, tuple(sorted(previous)),
            None if cache is None else str(cache.folder), _publish and _publish.storage,
        )  # fmt: skip
        return run_tasks(folder, work, records, executor, progress=progress, resume=resume)
    journal = Journal(folder, identity)
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
    # An s3:// build's shards go up as their groups finish, not all at the end.
    uploads = _publish or Uploads(folder, None)
    finishing: list[ShardTask] = []
    tally = Tally()
    quarantined = 0
    started = time.perf_counter()
    bar = progress_bar(total=len(records), unit="record", desc="build", disable=not progress)
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
                uploads.add(partials[earlier.group])
            task.finish()
            finishing = [task]

    position = {record: p for p, record in enumerate(planned.order)}
    todo = [record for p, record in enumerate(order) if p not in skipped]
    replay = iter(sorted(skipped.items()))
    waiting = next(replay, None)
    outcomes = run_records(executor, plan, todo, cache)
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
                uploads.add(partials[task.group])
        uploads.wait()
    except BaseException as error:
        uploads.abort()
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
        manifest = publish(
            folder, partials.values(), records=records,
            spec=spec or _spec(records, plan, out, formats, shards, split, shuffle, executor),
            names=names, order=planned.order, assignment=assignment, split=split,
            previous=previous,
        )  # fmt: skip
    except OSError as error:  # the side files and the manifest: their temporaries are gone
        _raise_if_full(error, folder)
        raise
    journal.remove()
    if progress:
        say(summary(manifest, time.perf_counter() - started, tally))
    check_written(manifest, folder)
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
        return listed | side_files(manifest)
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


def _spec(records, plan, out, formats, shards, split, shuffle, executor, options=None) -> dict:
    """The pipeline spec a build records when it is given none."""
    return {
        "input": records.spec,
        "transforms": plan.to_list(),
        "output": output_spec(out, formats, shards, split, shuffle, options),
        "execution": executor.to_dict(),
    }
