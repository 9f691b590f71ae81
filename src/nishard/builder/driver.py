"""write(): run a plan over records and write the products as sharded archives."""

from __future__ import annotations

import inspect
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..archives.families import Family, family_name, family_products, resolve, unwrap
from ..archives.index import WIDS_FORMAT, wids_index, wids_name, write_json
from ..archives.manifest import (
    MANIFEST,
    KeyStats,
    build_manifest,
    describe,
    read_manifest,
    versions,
    write_manifest,
)
from ..archives.shards import Format, ShardInfo, ShardSpec, ShardWriter
from ..archives.stats import Moments, SplitStats, sample_moments, stats_arrays, write_npz
from ..archives.webdataset import WebDataset
from ..checksums import sha256_file
from ..errors import NishardError, RecordError, SpecError
from ..records.table import RecordTable
from ..workflow.cache import NodeCache
from ..workflow.executors import Executor, Serial
from ..workflow.plan import Outcome, Plan
from ..workflow.usage import Tally
from .resume import Journal, Resumed, fingerprint
from .splits import Split, check_split_name, counts_table


def output_spec(
    out: str | Path,
    formats: Sequence[Format | Family],
    shards: ShardSpec,
    split: str | Split,
    shuffle: int | None = 0,
) -> dict:
    """The output section of a pipeline spec, with the path as the user wrote it."""
    return {
        "path": str(out),
        "formats": [fmt.to_dict() for fmt in formats],
        "shards": shards.to_dict(),
        "split": split if isinstance(split, str) else split.to_dict(),
        "shuffle": shuffle,
    }


def split_records(
    records: RecordTable, split: str | Split, shuffle: int | None
) -> tuple[tuple[str, ...], dict[str, str], list]:
    """Split names, the split of each record id, and the records in writing order.

    The order is the records' own, or, with a ``shuffle`` seed, a permutation drawn from it:
    shards then hold a mix of subjects and classes rather than runs in name order.
    """
    if isinstance(split, str):
        try:
            check_split_name(split)
        except ValueError as err:
            raise SpecError(str(err)) from err
        names, assignment = (split,), dict.fromkeys(records.frame.index.astype(str), split)
    else:
        try:
            assigned = split.assign(records.frame)
        except ValueError as err:
            raise SpecError(f"split {split.to_dict()}: {err}") from err
        names, assignment = split.names, {str(k): str(v) for k, v in assigned.items()}
    order = list(records)
    if shuffle is not None:
        order = [order[i] for i in np.random.default_rng(shuffle).permutation(len(order))]
    return names, assignment, order


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
        Output folder; created if missing. Shards are named ``<split>-000000<ext>``
        (``.tar``, ``.tfrecord``, ``.h5``, ``.zarr.zip``), ...
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
    if records.level != "run":
        raise SpecError(
            f"records are at {records.level} level; writing needs one record per run for now "
            "(a plan loads one run at a time)"
        )
    names, assignment, order = split_records(records, split, shuffle)
    missing = [kind for kind in plan.inputs if kind not in records.files]
    if missing:
        raise SpecError(f"the plan reads {missing}, which the records do not stage")
    writing = resolve(formats, plan.products)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    ours = _our_files(names, writing)
    previous = _matching(_previous_files(folder), ours)
    setup = {
        "transforms": plan.to_list(), "products": list(plan.products),
        "formats": [item.to_dict() for item in writing], "shards": shards.to_dict(),
        "split": split if isinstance(split, str) else split.to_dict(), "shuffle": shuffle,
    }  # fmt: skip
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

    stats = {name: SplitStats(blocks=list(resumed.blocks.get(name, []))) for name in names}
    writers = {name: [_writer(folder, name, item, shards, journal, stats[name], i == 0, resumed)
                      for i, item in enumerate(writing)] for name in names}  # fmt: skip
    skipped = _skippable(resumed.records, writers)
    keys = KeyStats()
    tally = Tally()
    inputs: dict[str, str] = {}
    quarantine: list[dict] = []
    written = {name: 0 for name in names}
    started = time.perf_counter()
    bar = tqdm(total=len(records), unit="record", desc="build", disable=not progress)
    if skipped:
        bar.write(f"resuming: {len(skipped)} records done by an interrupted build")

    def take(entry: dict) -> None:
        """Count a record's entry, whether just written or done by an earlier run."""
        inputs.update(entry["inputs"])
        if entry["quarantine"] is not None:
            quarantine.append(entry["quarantine"])
        else:
            for name, (dtype, shape) in sorted(entry["keys"].items()):
                keys.add(name, dtype, shape)
            written[entry["split"]] += 1
        bar.update()
        bar.set_postfix(quarantined=len(quarantine), refresh=False)

    position = {record.id: p for p, record in enumerate(order)}
    todo = [record for p, record in enumerate(order) if p not in skipped]
    replay = iter(sorted(skipped.items()))
    waiting = next(replay, None)
    try:
        for outcome in _outcomes(executor, plan, todo, cache):
            tally.add(outcome.usage)
            here = position[outcome.record.id]
            while waiting is not None and waiting[0] < here:
                take(waiting[1])
                waiting = next(replay, None)
            name = assignment[outcome.record.id]
            error = outcome.error
            entry = {
                "position": here, "id": outcome.record.id, "split": name,
                "inputs": {_relative(p, records.root): h for p, h in outcome.checksums.items()},
                "quarantine": None, "keys": None,
            }  # fmt: skip
            if error is None:
                error = _write_sample(outcome, writers[name], written[name], stats[name])
            if error is None:
                entry["keys"] = describe(outcome.products)
            else:
                entry["quarantine"] = _quarantine_entry(error, records.root)
                bar.write(f"quarantined: {error}")
            journal.record(entry)
            take(entry)
        while waiting is not None:
            take(waiting[1])
            waiting = next(replay, None)
        finished = [info for name in names for w in writers[name] for info in w.close()]
    except BaseException:
        for writer in (w for name in names for w in writers[name]):
            writer.abort()
        journal.close()
        raise
    finally:
        bar.close()

    manifest = build_manifest(
        spec=spec
        or {
            "input": records.spec,
            "transforms": plan.to_list(),
            "output": output_spec(out, formats, shards, split, shuffle),
            "execution": executor.to_dict(),
        },
        shards=finished,
        keys=keys,
        inputs=inputs,
        quarantine=quarantine,
        dropped=records.dropped.to_dict(orient="records"),
        n_records=len(records),
        splits=_split_table(records, split, names, assignment, quarantine),
        stats={name: _write_stats(folder, name, stats[name]) for name in names},
        indexes=_write_indexes(folder, names, finished),
    )
    write_manifest(folder, manifest)
    journal.remove()
    if progress:
        print(summary(manifest, time.perf_counter() - started, tally), file=sys.stderr)
    rewritten = {info.name for info in finished} | _side_files(manifest)
    for stale in previous - rewritten:
        (folder / stale).unlink(missing_ok=True)
    if len(records) and len(quarantine) == len(records):
        raise NishardError(
            f"every one of the {len(records)} records was quarantined; see {folder / MANIFEST}"
        )
    return manifest


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


def _writer(
    folder: Path,
    split: str,
    item: Format | Family,
    shards: ShardSpec,
    journal: Journal,
    stats: SplitStats,
    first: bool,
    resumed: Resumed,
) -> ShardWriter:
    """A split's writer in one format, after the shards an interrupted build finished.

    The shards of a split's first format delimit its statistics blocks: when one is
    finished, the moments of its samples are journaled with it.
    """

    def finished(info: ShardInfo) -> Callable[[], None]:
        # The block ends now, before the next sample is counted; the journal lists the
        # shard once it is on disk under its name (the writer calls this back then).
        block = stats.close_block() if first else None
        return lambda: journal.shard(info, block)

    fmt, family = unwrap(item), family_name(item)
    done = resumed.shards.get((split, fmt.name, family), [])
    return ShardWriter(folder, split, fmt, shards, finished=done, on_finish=finished,
                       family=family, products=family_products(item))  # fmt: skip


def _skippable(entries: dict[int, dict], writers: dict[str, list[ShardWriter]]) -> dict:
    """The journaled records a resumed build need not compute: quarantined ones, and
    those in the finished shards of every format of their split."""
    done = {name: min(w.done for w in split) for name, split in writers.items()}
    count = dict.fromkeys(writers, 0)
    skipped = {}
    for p, entry in sorted(entries.items()):
        name = entry["split"]
        if name not in count:
            break  # not this build's journal after all
        if entry["quarantine"] is not None:
            skipped[p] = entry
        elif count[name] < done[name]:
            skipped[p] = entry
            count[name] += 1
        else:
            count[name] += 1
    return skipped


def _write_sample(
    outcome: Outcome, writers: list[ShardWriter], index: int, stats: SplitStats
) -> RecordError | None:
    """Encode and write one sample; an encoding failure quarantines it, as bad data does.

    ``index`` is the sample's place in its split: a writer that has it in a shard finished
    by an interrupted build skips it, and so do the statistics if the first format does.
    """
    record = outcome.record
    try:
        encoded = [
            w.fmt.encode(record.id, _only(outcome.products, w.products), record.metadata)
            for w in writers
        ]
    except (ValueError, TypeError) as err:
        found = f"{type(err).__name__}: {err}"
        return RecordError(record.id, None, "products and metadata the format can encode", found)
    # A finished first-format shard ends the statistics block before its successor's
    # first sample is counted, so writers go first.
    counted = index >= writers[0].done
    for writer, fields in zip(writers, encoded, strict=True):
        if index >= writer.done:
            writer.add(record.id, fields)
    if counted:
        given = outcome.summaries or {}
        moments: dict[str, Moments] = {}
        for name, array in outcome.products.items():  # in the products' order, as observe
            if isinstance(given.get(name), Moments):
                moments[name] = given[name]
            else:  # a product the worker did not summarise (a staged file kept as it is)
                moments |= sample_moments({name: array})
        stats.add(moments)
    return None


def _only(products: dict, names: tuple[str, ...] | None) -> dict:
    """The products a family holds (all for None), in the order of ``products``."""
    return products if names is None else {k: v for k, v in products.items() if k in names}


def _write_stats(folder: Path, split: str, stats: SplitStats) -> dict:
    """The split's per-feature vectors to ``<split>.stats.npz``; the manifest's entry."""
    moments = stats.total()
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


def _side_files(manifest: dict) -> set[str]:
    """Files besides the shards that a manifest lists."""
    side = {e.get("file") for e in manifest.get("stats", {}).values() if isinstance(e, dict)}
    side |= {e.get("file") for e in manifest.get("indexes", {}).values() if isinstance(e, dict)}
    return {name for name in side if isinstance(name, str)}


def _split_table(records, split, names, assignment, quarantine) -> dict:
    """The strategy and the counts per class per split of the records written."""
    bad = {entry["record"] for entry in quarantine}
    frame = records.frame[[str(i) not in bad for i in records.frame.index]]
    # An infinite variable is written as null in the samples; count it as missing too.
    frame = frame.replace([np.inf, -np.inf], np.nan)
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


def _quarantine_entry(error: RecordError, root: str) -> dict:
    return {
        "record": error.record,
        "file": None if error.path is None else _relative(error.path, root),
        "expected": error.expected,
        "found": error.found,
    }


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


def _relative(path: str, root: str) -> str:
    """A path relative to the dataset root, so manifests compare across machines."""
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path


def summary(manifest: dict, seconds: float, tally: Tally | None = None) -> str:
    """One line: what a build wrote, quarantined and dropped, its time and peak memory
    (of the largest process: the writer's, or a worker's as ``tally`` has it)."""
    counts = manifest["records"]
    return (
        f"build: {counts['written']} written, {counts['quarantined']} quarantined, "
        f"{counts['dropped']} dropped in {len(manifest['shards'])} shards; {seconds:.1f} s, "
        f"{(tally or Tally()).describe()}"
    )
