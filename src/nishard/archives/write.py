"""write(): run a plan over records and write the products as sharded archives."""

from __future__ import annotations

import os
import re
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import NishardError, RecordError, SpecError
from ..records.table import RecordTable
from ..units import format_bytes
from ..workflow.cache import NodeCache
from ..workflow.executors import Executor, Serial
from ..workflow.plan import Outcome, Plan
from .manifest import MANIFEST, KeyStats, build_manifest, read_manifest, write_manifest
from .shards import Format, ShardSpec, ShardWriter
from .splits import Split, counts_table
from .webdataset import WebDataset

_SPLIT = re.compile(r"^[A-Za-z0-9_]+$")


def output_spec(
    out: str | Path,
    formats: Sequence[Format],
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
        if not _SPLIT.match(split):
            raise SpecError(f"split name {split!r}: use letters, digits and _")
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
    formats: Sequence[Format] = (WebDataset(),),
    shards: ShardSpec | None = None,
    executor: Executor | None = None,
    split: str | Split = "all",
    shuffle: int | None = 0,
    spec: dict | None = None,
    progress: bool = True,
    cache: NodeCache | None = None,
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
    formats : sequence of Format
        Each gets its own shards of every sample (default: WebDataset tar).
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
        (written, quarantined, time, peak memory).
    cache : NodeCache, optional
        Store node outputs by content and reuse them: a rerun computes only what changed.

    Returns
    -------
    dict
        The manifest, also written to ``out/manifest.json``. A record that cannot be read,
        processed or encoded is listed under ``quarantine`` with its reason; the others
        are written.

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
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    previous = set().union(*(_previous_shards(folder, name, formats) for name in names))
    # The old manifest goes first: from the first renamed shard on it would describe
    # bytes that are no longer on disk.
    (folder / MANIFEST).unlink(missing_ok=True)

    writers = {name: [ShardWriter(folder, name, fmt, shards) for fmt in formats] for name in names}
    keys = KeyStats()
    inputs: dict[str, str] = {}
    quarantine: list[dict] = []
    started = time.perf_counter()
    bar = tqdm(total=len(records), unit="record", desc="build", disable=not progress)
    try:
        for outcome in executor.map(plan, order, cache):
            inputs.update({_relative(p, records.root): h for p, h in outcome.checksums.items()})
            error = outcome.error
            if error is None:
                error = _write_sample(outcome, writers[assignment[outcome.record.id]], keys)
            if error is not None:
                quarantine.append(_quarantine_entry(error, records.root))
                bar.write(f"quarantined: {error}")
            bar.update()
            bar.set_postfix(quarantined=len(quarantine), refresh=False)
        written = [info for name in names for w in writers[name] for info in w.close()]
    except BaseException:
        for writer in (w for name in names for w in writers[name]):
            writer.abort()
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
        shards=written,
        keys=keys,
        inputs=inputs,
        quarantine=quarantine,
        dropped=records.dropped.to_dict(orient="records"),
        n_records=len(records),
        splits=_split_table(records, split, names, assignment, quarantine),
    )
    write_manifest(folder, manifest)
    if progress:
        print(summary(manifest, time.perf_counter() - started), file=sys.stderr)
    for stale in previous - {info.name for info in written}:
        (folder / stale).unlink(missing_ok=True)
    if len(records) and len(quarantine) == len(records):
        raise NishardError(
            f"every one of the {len(records)} records was quarantined; see {folder / MANIFEST}"
        )
    return manifest


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


def _write_sample(
    outcome: Outcome, writers: list[ShardWriter], keys: KeyStats
) -> RecordError | None:
    """Encode and write one sample; an encoding failure quarantines it, as bad data does."""
    record = outcome.record
    try:
        encoded = [w.fmt.encode(record.id, outcome.products, record.metadata) for w in writers]
    except (ValueError, TypeError) as err:
        found = f"{type(err).__name__}: {err}"
        return RecordError(record.id, None, "products and metadata the format can encode", found)
    keys.update(outcome.products)
    for writer, fields in zip(writers, encoded, strict=True):
        writer.add(record.id, fields)
    return None


def _quarantine_entry(error: RecordError, root: str) -> dict:
    return {
        "record": error.record,
        "file": None if error.path is None else _relative(error.path, root),
        "expected": error.expected,
        "found": error.found,
    }


def _previous_shards(folder: Path, split: str, formats: Sequence[Format]) -> set[str]:
    """Shards of this split that a previous build listed here: replaced, or removed if this
    build writes fewer. Only names this build itself could write are considered."""
    if not (folder / MANIFEST).is_file():
        return set()
    try:
        listed = {shard["name"] for shard in read_manifest(folder).get("shards", [])}
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()
    pattern = re.compile(
        "|".join(rf"{re.escape(split)}-\d{{6}}{re.escape(fmt.extension)}" for fmt in formats)
    )
    return {name for name in listed if isinstance(name, str) and pattern.fullmatch(name)}


def _relative(path: str, root: str) -> str:
    """A path relative to the dataset root, so manifests compare across machines."""
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path


def peak_memory() -> int:
    """Peak resident memory in bytes of this process and of its finished workers."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, workers) * scale


def summary(manifest: dict, seconds: float) -> str:
    """One line: what a build wrote, quarantined and dropped, its time and peak memory."""
    counts = manifest["records"]
    return (
        f"build: {counts['written']} written, {counts['quarantined']} quarantined, "
        f"{counts['dropped']} dropped in {len(manifest['shards'])} shards; {seconds:.1f} s, "
        f"peak memory {format_bytes(peak_memory())} (largest process)"
    )
