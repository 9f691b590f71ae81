"""fMRIPrep derivatives: volumes in any space, surfaces, CIFTI, masks, boldref, confounds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from ..entities import BidsName, in_space, parse_bids_name
from ..files import walk
from ..metadata import SidecarError, Timing, first_timing
from .base import ELSEWHERE, Match, Run, Scan, own_columns, subject_fallback
from .base import NIFTI as _NIFTI
from .scanning import scan_bids


@dataclass(frozen=True)
class Fmriprep:
    """fMRIPrep derivatives (20.x and later, and the older naming where it differs).

    Parameters
    ----------
    space : str
        Template space of the volumetric files (``desc-preproc_bold``, masks, boldref).
    res : str or None
        The ``res-`` entity to select; None accepts any (and names without ``res-``, as
        older releases wrote them), but a run found at two resolutions is an error.
    task : str or None
        Keep only runs of this task.
    surface_space : str
        Space of the ``hemi-L``/``hemi-R`` ``.func.gii`` surface files.
    cifti_density : str
        The ``den-`` entity of the ``space-fsLR`` ``.dtseries.nii`` CIFTI files.

    Notes
    -----
    Staged kinds and the file columns they give a record:

    - ``bold``: ``desc-preproc_bold`` volume in ``space``;
    - ``mask``: ``desc-brain_mask`` (or older ``label-brain_mask``) of the run, falling back
      to the anatomical mask of the subject (session first) in the same space;
    - ``boldref``: the run's reference volume in ``space``;
    - ``confounds``: ``desc-confounds_timeseries.tsv`` (or older ``_regressors.tsv``);
    - ``surface``: both hemispheres, columns ``surface_L`` and ``surface_R``;
    - ``cifti``: the ``.dtseries.nii`` grayordinates.

    The repetition time comes from a sidecar of the run's data files (BOLD, CIFTI, then
    surface) and, failing that, from the BOLD or CIFTI header.
    """

    space: str = "MNI152NLin2009cAsym"
    res: str | None = None
    task: str | None = None
    surface_space: str = "fsaverage5"
    cifti_density: str = "91k"

    default_stage: ClassVar[tuple[str, ...]] = ("bold", "mask", "confounds")
    name: ClassVar[str] = "fmriprep"
    kinds: ClassVar[dict[str, tuple[str, ...]]] = {
        **own_columns("bold", "mask", "boldref", "confounds"),
        "surface": ("surface_L", "surface_R"),
        **own_columns("cifti"),
    }

    def __post_init__(self) -> None:
        # YAML reads `res: 2` as an int; entity labels are strings.
        for attr in ("space", "res", "task", "surface_space", "cifti_density"):
            value = getattr(self, attr)
            if value is not None:
                object.__setattr__(self, attr, str(value))

    def to_dict(self) -> dict:
        return {"name": self.name, **{k: v for k, v in asdict(self).items() if v is not None}}

    def _in_space(self, ent: dict[str, str]) -> bool:
        # A space may name a templateflow cohort: MNIInfant+1 or MNIInfant:cohort-1.
        return in_space(ent, self.space) and (self.res is None or ent.get("res") == self.res)

    def classify(self, bids: BidsName, relative: str) -> Match | None:
        """The file column and level of one file, or None when it is not one of ours.

        fMRIPrep 1.0-1.1's names are ours too: ``_bold_space-<space>_preproc`` (the BOLD),
        ``_bold_space-<space>_brainmask`` (its mask) and ``_bold_confounds.tsv``.
        """
        ent, suffix, ext = bids.entities, bids.suffix, bids.extension
        preproc = (suffix == "bold" and ent.get("desc") == "preproc") or (
            suffix == "bold_preproc" and "variant" not in ent  # variant-: AROMA's output
        )
        brain_mask = suffix == "bold_brainmask" or (
            suffix == "mask" and "brain" in (ent.get("desc"), ent.get("label"))
        )
        if self.task and "task" in ent and ent["task"] != self.task:
            return None
        if "/func/" in relative:
            if preproc and ext in _NIFTI:
                if self._in_space(ent):
                    return "bold", "run"
                res = "".join(f" {k}-{ent[k]}" for k in ("cohort", "res") if k in ent)
                return ELSEWHERE + "bold", f"{ent.get('space', 'no space')}{res}"
            if suffix == "bold" and ext == ".func.gii" and ent.get("space") == self.surface_space:
                hemi = ent.get("hemi")
                return (f"surface_{hemi}", "run") if hemi in ("L", "R") else None
            if suffix == "bold" and ext == ".dtseries.nii":
                fslr = ent.get("space") == "fsLR" and ent.get("den") == self.cifti_density
                return ("cifti", "run") if fslr else None
            if brain_mask and ext in _NIFTI:
                return ("mask", "run") if self._in_space(ent) else None
            if suffix == "boldref" and ext in _NIFTI:
                return ("boldref", "run") if self._in_space(ent) else None
            if suffix == "bold_confounds" or (
                suffix in ("timeseries", "regressors") and ent.get("desc") == "confounds"
            ):
                return ("confounds", "run") if ext == ".tsv" and "space" not in ent else None
        elif "/anat/" in relative and suffix == "mask" and ext in _NIFTI and "task" not in ent:
            brain = "brain" in (ent.get("desc"), ent.get("label"))
            return ("mask", "subject") if brain and self._in_space(ent) else None
        return None

    def scan(self, root: Path) -> Scan:
        """Find the runs under ``root``; see the class notes for the columns."""
        found = scan_bids(root, self.classify)
        # The columns a subject's own files can give (an anatomical mask): a run that has
        # them all already (its own mask) has nothing to take from them.
        given = {column for files in found.subject_files.values() for column in files}
        out = []
        for key in sorted(found.runs):
            run = found.runs[key]
            files = run.files
            if not given <= files.keys():
                res = found.entity(key, "bold", "res", absent=self.res)
                subject_fallback(run, found.subject_files, res)
            problems = tuple(found.folders.get(key, ()))
            bold, cifti = files.get("bold"), files.get("cifti")
            try:
                timing = first_timing([bold, cifti, files.get("surface_L")], [bold, cifti])
            except SidecarError as err:
                timing, problems = Timing(), (*problems, str(err))
            absent = {}
            if "bold" not in run.files:
                # A run fMRIPrep processed (it has its confounds, a mask, a surface) whose
                # volume is not in the space asked for: say where it is, or that it is not.
                res = f" res-{self.res}" if self.res else ""
                spaces = sorted(found.elsewhere.get(key, {}).get("bold", ()))
                where = f"found in {', '.join(spaces)}" if spaces else "not in any space"
                absent["bold"] = f"desc-preproc_bold in space {self.space}{res}: {where}"
            out.append(Run(run.record, run.entities, files, timing, {}, problems, absent))
        return Scan(out, tuple(sorted(found.unparsed)))

    def hint(self, root: Path) -> str:
        """Where the BOLD runs under ``root`` are, for an error that found none of ours."""
        found = set()
        for relative in walk(str(root), prefix="sub-"):
            bids = parse_bids_name(relative.rsplit("/", 1)[-1])
            if bids and bids.suffix == "bold" and "space" in bids.entities:
                res = bids.get("res")
                found.add(bids.entities["space"] + (f" res-{res}" if res else ""))
        there = f"BOLD runs there are in: {', '.join(sorted(found)) or 'none'}"
        if found:
            return there
        # A raw dataset's root (or its derivatives folder) given for its fMRIPrep outputs.
        folders = [f for f in derivative_folders(root) if preprocessed_bold(f) is not None]
        if not folders:
            return there
        return (
            f"no preprocessed BOLD there, but in {' and '.join(map(str, folders))}: give "
            f"{'that folder' if len(folders) == 1 else 'one of them'} as the root"
        )


def preprocessed_bold(root: Path) -> str | None:
    """A preprocessed BOLD file (``desc-preproc`` or ``space-``, entities no raw BIDS run
    has) under the subject folders of ``root``, relative to it; None when there is none."""
    for relative in walk(str(root), prefix="sub-"):
        bids = parse_bids_name(relative.rsplit("/", 1)[-1])
        if bids is None or bids.suffix != "bold" or bids.extension == ".json":
            continue
        if bids.get("desc") == "preproc" or "space" in bids.entities:
            return relative
    return None


def derivative_folders(root: Path) -> list[Path]:
    """The pipelines' folders of a raw dataset (``derivatives/*``), or of ``root`` itself
    when it is a ``derivatives`` folder; ``fmriprep`` first."""
    parents = [root / "derivatives"] + ([root] if root.name == "derivatives" else [])
    folders = [
        child
        for parent in parents
        if parent.is_dir()
        for child in parent.iterdir()
        if child.is_dir() and not child.name.startswith((".", "sub-"))
    ]
    return sorted(folders, key=lambda folder: (folder.name != "fmriprep", folder.name))
