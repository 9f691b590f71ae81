"""Raw BIDS: functional runs with events, sidecar metadata by the inheritance principle."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from ..entities import BidsName
from ..metadata import by_folder, header_tr, inherited_sidecars, merged, usable_tr
from .base import NIFTI as _NIFTI
from .base import Match, Run, Scan, own_columns, scan_bids


@dataclass(frozen=True)
class Bids:
    """A raw BIDS dataset's functional runs.

    Parameters
    ----------
    task : str or None
        Keep only runs of this task.
    metadata : tuple of str
        Sidecar fields to add as record columns (``EchoTime``, ``SliceTiming``...), resolved
        by the BIDS inheritance principle like ``RepetitionTime``.

    Notes
    -----
    Staged kinds: ``bold`` (``_bold.nii[.gz]``), ``events`` (``_events.tsv``), ``sbref``.
    Sidecars apply from the dataset root (``task-rest_bold.json``), subject, session and
    ``func/`` folders, the more specific overriding the less; ``RepetitionTime`` comes from
    them or, failing that, from the NIfTI header.
    """

    task: str | None = None
    metadata: tuple[str, ...] = ()

    default_stage: ClassVar[tuple[str, ...]] = ("bold",)
    name: ClassVar[str] = "bids"
    kinds: ClassVar[dict[str, tuple[str, ...]]] = own_columns("bold", "events", "sbref")

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", tuple(self.metadata))
        if self.task is not None:
            object.__setattr__(self, "task", str(self.task))

    def to_dict(self) -> dict:
        out = {"name": self.name, **asdict(self)}
        out["metadata"] = list(self.metadata)
        return {k: v for k, v in out.items() if v is not None}

    def classify(self, bids: BidsName, relative: str) -> Match | None:
        """The file column of one file in a ``func/`` folder, or None."""
        if "/func/" not in relative or (self.task and bids.get("task") != self.task):
            return None
        if bids.suffix in ("bold", "sbref") and bids.extension in _NIFTI:
            return bids.suffix, "run"
        if bids.suffix == "events" and bids.extension == ".tsv":
            return "events", "run"
        return None

    def scan(self, root: Path) -> Scan:
        """Find the runs under ``root`` with their inherited metadata."""
        found = scan_bids(root, self.classify)
        sidecars = by_folder(found.jsons)
        out = []
        for key in sorted(found.runs):
            run = found.runs[key]
            if "bold" not in run.files:
                continue
            bids, relative = found.names[key]["bold"]
            try:
                sidecar = merged(inherited_sidecars(root.absolute(), relative, bids, sidecars))
            except ValueError as err:
                raise ValueError(f"record {key}: {err}") from err
            t_r = sidecar.get("RepetitionTime")
            t_r = float(t_r) if usable_tr(t_r) else header_tr(run.files["bold"])
            extra = {field: sidecar.get(field) for field in self.metadata}
            out.append(Run(run.record, run.entities, run.files, t_r, extra))
        return Scan(out, tuple(sorted(found.unparsed)))

    def hint(self, root: Path) -> str:
        return "raw BIDS runs are func/sub-*_bold.nii[.gz]"
