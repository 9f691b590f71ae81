"""The end of a build: partial manifests merged into ``manifest.json`` and its side files.

The same for a build whose shard tasks ran in its own process (:func:`.driver.write`) and
for one whose tasks ran apart (:mod:`.work`, ``nishard merge``): only the partial
manifests, the record table and the plan are read, never a sample. The manifest is
written last; files a previous complete build listed and this one did not rewrite go
after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..archives.index import WIDS_FORMAT, wids_index, wids_name, write_json
from ..archives.manifest import (
    MANIFEST,
    Merged,
    PartialManifest,
    build_manifest,
    merge,
    seal,
    write_manifest,
)
from ..archives.shards import ShardInfo
from ..archives.stats import Moments, stats_arrays, write_npz
from ..checksums import sha256_file
from ..errors import NishardError
from ..records.table import RecordTable
from ..report import write_report
from .card import write_card
from .splits import Split, counts_table


def publish(
    folder: Path,
    partials: Iterable[PartialManifest],
    *,
    records: RecordTable,
    spec: dict,
    names: Sequence[str],
    order: Sequence[str],
    assignment: dict[str, str],
    split: str | Split,
    previous: Iterable[str] = (),
) -> dict:
    """Merge the partial manifests and write the manifest (last) and its side files.

    Parameters
    ----------
    folder : Path
        The output folder, holding every partial's shards.
    partials : iterable of PartialManifest
        One per group of the plan.
    records : RecordTable
        The build's records (for the dropped ones, the split table and text classes).
    spec : dict
        The pipeline spec the manifest records.
    names, order, assignment, split
        The plan's split names, writing order, split of each record and strategy.
    previous : iterable of str
        Files a previous complete build listed here: removed if not rewritten.

    Returns
    -------
    dict
        The manifest written.

    Raises
    ------
    NishardError
        When the partials do not account for every record once.
    """
    merged = merge(partials, names, order)
    _check_counts(merged, len(records))
    written_frame = _written(records, merged.quarantine)
    manifest = build_manifest(
        spec=spec,
        shards=merged.shards,
        keys=merged.keys,
        inputs=merged.inputs,
        quarantine=merged.quarantine,
        dropped=records.dropped.to_dict(orient="records"),
        n_records=len(records),
        splits=_split_table(records, written_frame, split, names, assignment),
        stats={name: _write_stats(folder, name, merged.moments[name]) for name in names},
        indexes=_write_indexes(folder, names, merged.shards),
        # From the whole record table, quarantined records too: the class indices are
        # fixed by the records planned, not by which of them a build managed to write.
        classes=text_classes(records.frame, records.variables),
        qc=merged.qc,
        warnings=merged.warnings,
    )
    # The dataset card describes what the manifest lists and is listed in it: written
    # before it, as the other side files are.
    card = write_card(
        folder, shards=merged.shards, keys=manifest["keys"], names=names, records=records,
        classes=manifest["classes"], spec=spec,
    )  # fmt: skip
    manifest = seal(manifest | {"documents": {"card": card}})
    # The build report, drawn from the manifest (and two samples read back), is listed in
    # it: written before it, as the other side files are.
    documents = {**manifest.get("documents", {}), "report": write_report(folder, manifest)}
    manifest = seal(manifest | {"documents": documents})
    write_manifest(folder, manifest)
    rewritten = {info.name for info in merged.shards} | side_files(manifest)
    for stale in set(previous) - rewritten:
        (folder / stale).unlink(missing_ok=True)
    return manifest


def check_written(manifest: dict, folder: Path) -> None:
    """Raise when a build quarantined every one of its records (its manifest is written)."""
    counts = manifest["records"]
    planned = counts["written"] + counts["quarantined"]
    if planned and counts["quarantined"] == planned:
        raise NishardError(
            f"every one of the {planned} records was quarantined; see {folder / MANIFEST}"
        )


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
    over the records of every split: the class map labels index, one for all splits
    (``ns.stream``'s ``.classes()`` stage), a function of the record table alone."""
    classes = {}
    for name in variables:
        if name not in frame.columns:
            continue
        values = [v for v in frame[name].tolist() if isinstance(v, str) or pd.notna(v)]
        if values and all(isinstance(v, str) for v in values):
            classes[name] = sorted(set(values))
    return classes


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


def side_files(manifest: dict) -> set[str]:
    """Files besides the shards that a manifest lists."""
    side = {e.get("file") for e in manifest.get("stats", {}).values() if isinstance(e, dict)}
    side |= {e.get("file") for e in manifest.get("indexes", {}).values() if isinstance(e, dict)}
    side |= {e.get("file") for e in manifest.get("documents", {}).values() if isinstance(e, dict)}
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
