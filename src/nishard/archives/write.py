"""write(): run a plan over records and write the products as sharded archives."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import NishardError
from ..records.table import RecordTable
from ..workflow.executors import Serial
from ..workflow.plan import Plan
from .manifest import MANIFEST, KeyStats, build_manifest, read_manifest, write_manifest
from .shards import ShardSpec, ShardWriter
from .webdataset import WebDataset


def write(
    records: RecordTable,
    plan: Plan,
    out: str | Path,
    *,
    formats: Sequence = (WebDataset(),),
    shards: ShardSpec | None = None,
    executor=None,
    split: str = "all",
    spec: dict | None = None,
    progress: bool = True,
) -> dict:
    """Run ``plan`` on every record and write the products as shards plus a manifest.

    Parameters
    ----------
    records : RecordTable
        From :func:`nishard.locate`.
    plan : Plan
        From :func:`nishard.assemble`.
    out : str or Path
        Output folder; created if missing. Shards are named ``<split>-000000.tar``, ...
    formats : sequence of format primitives
        Each gets its own shards of every sample (default: WebDataset tar).
    shards : ShardSpec, optional
        Shard limits (default: 512 MB per shard).
    executor : executor primitive, optional
        ``serial()`` (default) or ``local(n_jobs)``.
    split : str
        Name of the split the samples go to.
    spec : dict, optional
        The pipeline spec to record in the manifest; by default it is composed from the
        records', plan's and these arguments' own specs.
    progress : bool
        Show a progress bar (records done, rate, time left).

    Returns
    -------
    dict
        The manifest, also written to ``out/manifest.json``. A record that cannot be read
        or processed is listed under ``quarantine`` with its reason; the others are written.

    Raises
    ------
    NishardError
        When no record at all could be written (the manifest is still written first).
    """
    shards = shards or ShardSpec()
    executor = executor or Serial()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    previous = _previous_shards(folder)
    root = Path(records.spec.get("path", "."))

    writers = [ShardWriter(folder, split, fmt, shards) for fmt in formats]
    keys = KeyStats()
    inputs: dict[str, str] = {}
    quarantine: list[dict] = []
    bar = tqdm(total=len(records), unit="record", desc="build", disable=not progress)
    for outcome in executor.map(plan, records):
        inputs.update({_relative(p, root): h for p, h in outcome.checksums.items()})
        if outcome.error is not None:
            err = outcome.error
            quarantine.append({
                "record": err.record,
                "file": None if err.path is None else _relative(err.path, root),
                "expected": err.expected,
                "found": err.found,
            })  # fmt: skip
            bar.write(f"quarantined: {err}")
        else:
            keys.update(outcome.products)
            for writer in writers:
                fields = writer.fmt.encode(
                    outcome.record.id, outcome.products, outcome.record.metadata
                )
                writer.add(outcome.record.id, fields)
        bar.update()
        bar.set_postfix(quarantined=len(quarantine), refresh=False)
    bar.close()
    written = [info for writer in writers for info in writer.close()]

    manifest = build_manifest(
        spec=spec
        or {
            "input": records.spec,
            "transforms": plan.to_list(),
            "output": {
                "path": str(out),
                "formats": [fmt.to_dict() for fmt in formats],
                "shards": shards.to_dict(),
                "split": split,
            },
            "execution": executor.to_dict(),
        },
        shards=written,
        keys=keys,
        inputs=inputs,
        quarantine=quarantine,
        dropped=records.dropped.to_dict(orient="records"),
        n_records=len(records),
    )
    write_manifest(folder, manifest)
    for stale in previous - {info.name for info in written}:
        (folder / stale).unlink(missing_ok=True)
    if len(records) and len(quarantine) == len(records):
        raise NishardError(
            f"every one of the {len(records)} records was quarantined; see {folder / MANIFEST}"
        )
    return manifest


def _previous_shards(folder: Path) -> set[str]:
    """Shards a previous build listed here: replaced by this build, removed if not rewritten."""
    if not (folder / MANIFEST).is_file():
        return set()
    try:
        return {shard["name"] for shard in read_manifest(folder).get("shards", [])}
    except (ValueError, KeyError, TypeError):
        return set()


def _relative(path: str, root: Path) -> str:
    """A path relative to the dataset root, so manifests compare across machines."""
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path
