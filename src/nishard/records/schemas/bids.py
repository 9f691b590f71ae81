"""Raw BIDS: functional runs with events, sidecar metadata by the inheritance principle."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from ..entities import BidsName, record_id
from ..metadata import (
    Timing,
    by_folder,
    header_timing,
    inherited_sidecars,
    merged,
    sidecar_timing,
)
from .base import NIFTI as _NIFTI
from .base import Match, Run, Scan, own_columns, short_entities
from .scanning import scan_bids


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
        if "space" in bids.entities or "desc" in bids.entities:
            return None  # a derivative (fMRIPrep's desc-preproc): no raw run
        if bids.suffix in ("bold", "sbref") and bids.extension in _NIFTI:
            return bids.suffix, "run"
        if bids.suffix == "events" and bids.extension == ".tsv":
            return "events", "run"
        return None

    def scan(self, root: Path) -> Scan:
        """Find the runs under ``root`` with their inherited metadata."""
        found = scan_bids(root, self.classify, jsons=True)
        sidecars = by_folder(found.jsons)
        out = []
        for key in sorted(found.runs):
            run = found.runs[key]
            problems = list(found.folders.get(key, ()))
            timing, extra = Timing(), {}
            if "bold" in run.files:
                bids, relative = found.parsed(key, "bold")
                try:
                    timing, extra = self._metadata(root, relative, bids, sidecars)
                except ValueError as err:  # a SidecarError, or two sidecars at one level
                    problems.append(str(err))
            if "echo" in run.entities:
                # The echoes of one acquisition share every other entity: one key for all,
                # which splits keep together.
                extra["acquisition_key"] = record_id(
                    {k: v for k, v in short_entities(run.entities).items() if k != "echo"}
                )
            absent = {} if "bold" in run.files else {"bold": "no _bold.nii[.gz] image"}
            out.append(Run(run.record, run.entities, run.files, timing, extra, tuple(problems),
                           absent))  # fmt: skip
        return Scan(out, tuple(sorted(found.unparsed)))

    def _metadata(
        self, root: Path, relative: str, bids: BidsName, sidecars: dict
    ) -> tuple[Timing, dict]:
        """The run's timing and the asked sidecar fields (``EchoTime`` too for an echo)."""
        paths = inherited_sidecars(root.absolute(), relative, bids, sidecars)
        sidecar, origin = merged(paths)
        where = origin.get("RepetitionTime") or origin.get("VolumeTiming") or ""
        timing = sidecar_timing(sidecar, where) or header_timing(f"{root.absolute()}/{relative}")
        fields = (*self.metadata, *(("EchoTime",) if "echo" in bids.entities else ()))
        return timing, {field: sidecar.get(field) for field in dict.fromkeys(fields)}

    def hint(self, root: Path) -> str:
        """What the runs under ``root`` are, for an error that found none of ours."""
        from .fmriprep import preprocessed_bold  # the error's path only

        preprocessed = preprocessed_bold(root)
        if preprocessed is None:
            return "raw BIDS runs are func/sub-*_bold.nii[.gz]"
        return (
            f"{preprocessed} is a preprocessed run, not a raw one: use the fmriprep schema "
            "(--schema fmriprep, schema=ns.schemas.fmriprep() in Python, schema: fmriprep "
            "in a spec)"
        )
