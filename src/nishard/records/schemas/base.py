"""What every schema returns, and what the BIDS-named schemas share (their walk is in
:mod:`.scanning`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..entities import RUN_ENTITIES, BidsName
from ..metadata import Timing

#: Column names given to BIDS entities in a record table (pybids' long names).
ENTITY_COLUMNS: dict[str, str] = {
    "sub": "subject", "ses": "session", "task": "task", "acq": "acquisition",
    "ce": "ceagent", "rec": "reconstruction", "dir": "direction", "run": "run", "echo": "echo",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Run:
    """One run found by a schema.

    Attributes
    ----------
    record : str
        Unique id, BIDS entities joined by ``_`` (no dots: a valid WebDataset key).
    entities : dict
        Long entity names (``subject``, ``session``, ``task``, ``run``...) to labels.
    files : dict
        File column (``bold``, ``mask``, ``surface_L``...) to absolute path.
    timing : Timing
        Repetition time in seconds (NaN when unknown) and where it came from.
    metadata : dict
        Further sidecar fields a schema was asked for.
    problems : tuple of str
        Why the run cannot be a record although the schema found it (a folder where its
        BOLD file should be, a malformed sidecar): ``locate`` drops it with these reasons.
    absent : dict
        File column to why the run has none (``"found only in space T1w"``): the reason
        ``locate`` gives when the run is dropped for lacking it.
    """

    record: str
    entities: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    metadata: dict[str, object] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    absent: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Scan:
    """A schema's result: the runs, and the files under subject folders it could not parse."""

    runs: list[Run]
    unparsed: tuple[str, ...] = ()


#: Extensions of NIfTI images.
NIFTI = (".nii.gz", ".nii")

#: Where a classified file belongs: its file column and ``"run"`` or ``"subject"`` level.
#: A column prefixed with :data:`ELSEWHERE` marks a file of the kind in another space
#: (the level then holds the space), so a run without one can say where it is.
Match = tuple[str, str]

ELSEWHERE = "elsewhere:"


def own_columns(*kinds: str) -> dict[str, tuple[str, ...]]:
    """Staged kinds that each give one file column of their own name.

    Parameters
    ----------
    *kinds : str
        The kinds, in the order a schema lists them.

    Returns
    -------
    dict
        Kind to its columns, ``{"bold": ("bold",), ...}``: a schema's ``kinds``, or part
        of them where a kind gives several columns (fMRIPrep's ``surface``).
    """
    return {kind: (kind,) for kind in kinds}


def claim(files: dict[str, str], column: str, path: str, record: str) -> None:
    """Put ``path`` in ``files[column]``, refusing a second file for the same place."""
    if column in files:
        raise ValueError(
            f"{record} has two {column} files, {files[column]} and {path}: "
            f"narrow the schema's options to choose one"
        )
    files[column] = path


def long_entities(bids: BidsName) -> dict[str, str]:
    """The run-identifying entities of a name, under their long names."""
    return {ENTITY_COLUMNS[k]: v for k, v in bids.entities.items() if k in RUN_ENTITIES}


def short_entities(entities: dict[str, str]) -> dict[str, str]:
    """Long entity names (a record's columns) back to BIDS keys, for :func:`record_id`."""
    short = {long: key for key, long in ENTITY_COLUMNS.items()}
    return {short[k]: v for k, v in entities.items() if k in short}


def subject_key(subject: str | None, session: str | None, res: str | None) -> tuple:
    return (subject, session, res)


def subject_fallback(
    run: Run, subject_files: dict[tuple, dict[str, str]], res: str | None = None
) -> None:
    """Give a run the subject-level files it lacks: of its resolution, its session's first."""
    subject, session = run.entities["subject"], run.entities.get("session")
    files = run.files
    if session:
        for column, path in subject_files.get((subject, session, res), {}).items():
            files.setdefault(column, path)
    for column, path in subject_files.get((subject, None, res), {}).items():
        files.setdefault(column, path)
