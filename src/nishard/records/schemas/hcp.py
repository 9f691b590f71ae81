"""HCP S1200 minimally preprocessed: ``<subject>/MNINonLinear/Results/<run>/``."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from ..entities import record_id
from ..metadata import Timing
from .base import ENTITY_COLUMNS, Run, Scan, own_columns

#: rfMRI_REST1_LR, tfMRI_WM_RL, tfMRI_RETBAR2_AP, rfMRI_REST1_7T_PA: the acquisition, the
#: name, its number (the day for rest, the run for tasks), 7T, the phase-encoding direction.
_RUN = re.compile(r"^(rfMRI|tfMRI)_([A-Za-z]+?)(\d*)(?:_(7T))?_(LR|RL|AP|PA)$")


#: HCP Young Adult's fMRI repetition time in seconds, by field strength (the 3T and 7T
#: protocols: every resting-state and task run of one strength shares it).
PROTOCOL_TR: dict[str, float] = {"3T": 0.72, "7T": 1.0}


@dataclass(frozen=True)
class Hcp:
    """The Human Connectome Project's minimally preprocessed layout.

    Parameters
    ----------
    fix : bool
        Use the ICA-FIX cleaned volume (``<run>_hp2000_clean.nii.gz``) as ``bold`` instead
        of the minimally preprocessed one (``<run>.nii.gz``).
    res : str
        Resolution in the subject mask's name, ``brainmask_fs.<res>.nii.gz``.
    task : str or None
        Keep only runs of this task (``rest``, ``wm``, ``motor``...).
    surface_registration : str
        The CIFTI variant: ``MSMAll`` reads ``<run>_Atlas_MSMAll.dtseries.nii``; ``""`` reads
        ``<run>_Atlas.dtseries.nii`` (MSMSulc).

    Notes
    -----
    A run ``rfMRI_REST1_LR`` becomes the record ``sub-100307_ses-1_task-rest_dir-LR``
    (REST1 and REST2 were acquired on two days: sessions ``1`` and ``2``); ``tfMRI_WM_RL``
    becomes ``sub-100307_task-wm_dir-RL``, ``tfMRI_RETBAR2_AP`` becomes
    ``..._task-retbar_dir-AP_run-2`` and the 7T ``rfMRI_REST1_7T_PA`` becomes
    ``..._ses-1_task-rest_acq-7T_dir-PA``. Staged kinds: ``bold``, ``mask`` (the subject's
    ``brainmask_fs``), ``movement`` (``Movement_Regressors.txt``), ``cifti``.

    HCP ships no sidecars. Indexing opens no image: each run gets the protocol's
    repetition time (:data:`PROTOCOL_TR`: 0.72 s at 3T, 1.0 s at 7T; ``t_r_source`` is
    ``protocol``), so a tree whose files are not fetched yet (DataLad before ``get``,
    empty placeholders) indexes every run. When a worker loads the image, the header's
    TR replaces it (``header``), and a header that disagrees by more than 1 ms is a
    warning in the manifest.
    """

    fix: bool = False
    res: str = "2"
    task: str | None = None
    surface_registration: str = "MSMAll"

    default_stage: ClassVar[tuple[str, ...]] = ("bold", "mask", "movement")
    name: ClassVar[str] = "hcp"
    kinds: ClassVar[dict[str, tuple[str, ...]]] = own_columns("bold", "mask", "movement", "cifti")

    def __post_init__(self) -> None:
        object.__setattr__(self, "res", str(self.res))
        if self.task is not None:
            object.__setattr__(self, "task", str(self.task).lower())

    def to_dict(self) -> dict:
        return {"name": self.name, **{k: v for k, v in asdict(self).items() if v is not None}}

    def _files(self, run_dir: Path, run: str) -> tuple[dict[str, str], list[str]]:
        """The run's files by column, and the folders found where a file should be."""
        atlas = f"_Atlas_{self.surface_registration}" if self.surface_registration else "_Atlas"
        wanted = {
            "bold": f"{run}_hp2000_clean.nii.gz" if self.fix else f"{run}.nii.gz",
            "movement": "Movement_Regressors.txt",
            "cifti": f"{run}{atlas}.dtseries.nii",
        }
        present = {entry.name: entry for entry in os.scandir(run_dir)}
        files, problems = {}, []
        for column, name in wanted.items():
            entry = present.get(name)
            if entry is not None and entry.is_dir(follow_symlinks=False):
                problems.append(f"{entry.path} is a directory, expected a file")
            elif entry is not None:
                files[column] = str(run_dir / name)
        return files, problems

    def scan(self, root: Path) -> Scan:
        """Find the runs under ``root``: one folder per subject."""
        root = root.absolute()
        runs, unparsed = [], []
        for subject in sorted(os.listdir(root)):
            results = root / subject / "MNINonLinear" / "Results"
            if not results.is_dir():
                continue
            mask = root / subject / "MNINonLinear" / f"brainmask_fs.{self.res}.nii.gz"
            for run in sorted(os.listdir(results)):
                match = _RUN.match(run)
                if match is None or not (results / run).is_dir():
                    unparsed.append(f"{subject}/MNINonLinear/Results/{run}")
                    continue
                kind, label, number, field, direction = match.groups()
                task = label.lower()
                if self.task and task != self.task:
                    continue
                entities = {"sub": subject, "task": task, "dir": direction}
                if field:
                    entities["acq"] = field
                if number:  # REST1/REST2 were two days; a task's number is its run
                    entities["ses" if kind == "rfMRI" else "run"] = number
                files, problems = self._files(results / run, run)
                if not files and not problems:
                    continue  # an empty run folder: nothing of this run is there
                if mask.exists() or mask.is_symlink():
                    files["mask"] = str(mask)
                long = {ENTITY_COLUMNS[k]: v for k, v in entities.items()}
                timing = Timing(PROTOCOL_TR["7T" if field else "3T"], "protocol")
                absent = {"bold": f"no {run}{'_hp2000_clean' if self.fix else ''}.nii.gz"}
                runs.append(Run(record_id(entities), long, files, timing, {}, tuple(problems),
                                absent))  # fmt: skip
        return Scan(sorted(runs, key=lambda r: r.record), tuple(unparsed))

    def hint(self, root: Path) -> str:
        return "HCP runs are <subject>/MNINonLinear/Results/<rfMRI|tfMRI>_<NAME>_<LR|RL>/"
