"""Schemas: primitives that tell ``locate`` how a dataset lays out its records."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from .entities import RUN_ENTITIES, BidsName, parse_bids_name, record_id

#: Column names given to BIDS entities in a record table (pybids' long names).
ENTITY_COLUMNS: dict[str, str] = {
    "sub": "subject", "ses": "session", "task": "task", "acq": "acquisition",
    "ce": "ceagent", "rec": "reconstruction", "dir": "direction", "run": "run", "echo": "echo",
}  # fmt: skip

_NIFTI = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Run:
    """One run found by a schema: its id, entities (long names), files by kind and TR."""

    record: str
    entities: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)
    t_r: float = math.nan


@dataclass(frozen=True)
class Fmriprep:
    """fMRIPrep derivatives: volumetric BOLD runs in one template space.

    Parameters
    ----------
    space : str
        Template space of the ``desc-preproc_bold`` images, e.g. ``MNI152NLin2009cAsym``.
    res : str or None
        The ``res-`` entity to select; None accepts any, but a run found at two
        resolutions is an error (say which one you want).
    task : str or None
        Keep only runs of this task.

    Notes
    -----
    File kinds a record can carry (``stage``): ``bold`` (``desc-preproc_bold``), ``mask``
    (``desc-brain_mask`` in the same space and resolution), ``confounds``
    (``desc-confounds_timeseries.tsv``). The repetition time comes from the BOLD sidecar
    JSON (``RepetitionTime``) and, failing that, from the NIfTI header.
    """

    space: str = "MNI152NLin2009cAsym"
    res: str | None = None
    task: str | None = None

    name: ClassVar[str] = "fmriprep"
    kinds: ClassVar[tuple[str, ...]] = ("bold", "mask", "confounds")

    def __post_init__(self) -> None:
        # YAML reads `res: 2` as an int; entity labels are strings.
        for attr in ("space", "res", "task"):
            value = getattr(self, attr)
            if value is not None:
                object.__setattr__(self, attr, str(value))

    def to_dict(self) -> dict:
        return {"name": self.name, **{k: v for k, v in asdict(self).items() if v is not None}}

    def _kind(self, bids: BidsName) -> str | None:
        ent = bids.entities
        in_res = self.res is None or ent.get("res") == self.res
        in_space = ent.get("space") == self.space and in_res
        if bids.suffix == "bold" and ent.get("desc") == "preproc" and bids.extension in _NIFTI:
            return "bold" if in_space else None
        if bids.suffix == "mask" and ent.get("desc") == "brain" and bids.extension in _NIFTI:
            return "mask" if in_space and "task" in ent else None
        if bids.suffix == "timeseries" and ent.get("desc") == "confounds":
            return "confounds" if bids.extension == ".tsv" and "space" not in ent else None
        return None

    def scan(self, root: Path) -> list[Run]:
        """Find the runs under ``root``.

        Parameters
        ----------
        root : Path
            The derivatives folder; file paths in the result are absolute.

        Returns
        -------
        list of Run
            Sorted by record id; a run may lack some kinds (``complete()`` drops it later).

        Raises
        ------
        ValueError
            When one run has two files of one kind (e.g. two resolutions).
        """
        runs: dict[str, Run] = {}
        for path in sorted(root.absolute().glob("sub-*/**/func/sub-*")):
            bids = parse_bids_name(path.name)
            if bids is None or (self.task and bids.get("task") != self.task):
                continue
            kind = self._kind(bids)
            if kind is None:
                continue
            key = record_id(bids.entities)
            run = runs.setdefault(key, Run(key, _run_entities(bids)))
            if kind in run.files:
                raise ValueError(
                    f"run {key} has two {kind} files, {run.files[kind]} and {path}: "
                    f"select one with the schema's options (res=, task=)"
                )
            run.files[kind] = str(path)
        return [
            Run(key, run.entities, run.files, _repetition_time(run.files.get("bold")))
            for key, run in sorted(runs.items())
        ]

    def spaces(self, root: Path) -> list[str]:
        """The ``space``/``res`` pairs of the preprocessed BOLD runs under ``root``."""
        found = set()
        for path in root.glob("sub-*/**/func/sub-*_desc-preproc_bold.nii*"):
            bids = parse_bids_name(path.name)
            if bids is not None and "space" in bids.entities:
                res = bids.get("res")
                found.add(bids.entities["space"] + (f" res-{res}" if res else ""))
        return sorted(found)


def _run_entities(bids: BidsName) -> dict[str, str]:
    return {ENTITY_COLUMNS[k]: v for k, v in bids.entities.items() if k in RUN_ENTITIES}


def _repetition_time(bold: str | None) -> float:
    """RepetitionTime from the sidecar, else the header's 4th zoom; NaN when neither is usable."""
    if bold is None:
        return math.nan
    sidecar = Path(bold.removesuffix(".gz").removesuffix(".nii") + ".json")
    if sidecar.is_file():
        try:
            value = json.loads(sidecar.read_text()).get("RepetitionTime")
        except (OSError, ValueError, AttributeError):
            value = None
        if _usable_tr(value):
            return float(value)
    try:
        import nibabel as nib

        header = nib.load(bold).header
        zooms = header.get_zooms()
        units = header.get_xyzt_units()[1] if hasattr(header, "get_xyzt_units") else "sec"
    except Exception:
        return math.nan  # unreadable: the record is quarantined when its data is loaded
    if len(zooms) < 4 or not _usable_tr(zooms[3]):
        return math.nan
    return float(zooms[3]) / 1000.0 if units == "msec" else float(zooms[3])


def _usable_tr(value: object) -> bool:
    # numbers.Real: a header zoom is a numpy float32, which is no Python float.
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return real and math.isfinite(value) and value > 0


#: Schemas by the name a YAML spec gives them.
SCHEMAS: dict[str, type] = {Fmriprep.name: Fmriprep}
