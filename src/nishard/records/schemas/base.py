"""What every schema returns, and the scan that BIDS-named layouts share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..entities import RUN_ENTITIES, BidsName, parse_bids_name, record_id
from ..files import walk
from ..metadata import Timing, read_sidecar

#: Column names given to BIDS entities in a record table (pybids' long names).
ENTITY_COLUMNS: dict[str, str] = {
    "sub": "subject", "ses": "session", "task": "task", "acq": "acquisition",
    "ce": "ceagent", "rec": "reconstruction", "dir": "direction", "run": "run", "echo": "echo",
}  # fmt: skip


@dataclass(frozen=True)
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


@dataclass
class BidsScan:
    """What one walk of a BIDS-named layout found; see :func:`scan_bids`.

    Attributes
    ----------
    runs : dict
        Record id to Run (files only: the schema fills in ``t_r`` and metadata).
    names : dict
        Record id to column to the file's parsed name and relative path.
    subject_files : dict
        ``(subject, session or None, res or None)`` to column to path.
    unparsed : list of str
        Files under ``sub-*`` whose names are not BIDS (relative paths).
    jsons : list of str
        Every JSON file, relative, for sidecar inheritance.
    folders : dict
        Record id to the problems of folders found where its files should be.
    elsewhere : dict
        Record id to column to the labels (a space) of its files that ``classify`` marked
        as found elsewhere (``ELSEWHERE + column``, the label as level), to say why a run
        lacks a file.
    """

    runs: dict[str, Run] = field(default_factory=dict)
    names: dict[str, dict[str, tuple[BidsName, str]]] = field(default_factory=dict)
    subject_files: dict[tuple, dict[str, str]] = field(default_factory=dict)
    unparsed: list[str] = field(default_factory=list)
    jsons: list[str] = field(default_factory=list)
    folders: dict[str, list[str]] = field(default_factory=dict)
    elsewhere: dict[str, dict[str, set[str]]] = field(default_factory=dict)


def scan_bids(root: Path, classify: Callable[[BidsName, str], Match | None]) -> BidsScan:
    """Walk ``root`` once and sort BIDS-named files into runs.

    Parameters
    ----------
    root : Path
        Dataset root.
    classify : callable
        ``(bids_name, relative_path) -> (column, level) or None``; level ``"subject"``
        files (an anatomical mask) apply to the runs of their subject (and session) at
        their resolution.

    Raises
    ------
    ValueError
        When two files claim the same column of one record (naming both).
    """
    root = root.absolute()
    read_sidecar.cache_clear()  # a sidecar fetched or edited since the last scan is read anew
    found = BidsScan()
    for listed in walk(str(root), prefix="sub-", named_folders=True):
        relative = listed.rstrip("/")
        folder = listed != relative  # a folder named like a file
        name = relative.rsplit("/", 1)[-1]
        if name.endswith(".json") and not folder:
            found.jsons.append(relative)
        if not relative.startswith("sub-") or "/" not in relative:
            continue
        bids = parse_bids_name(name)
        if bids is None:
            found.unparsed.append(listed)
            continue
        match = classify(bids, relative)
        if match is None:
            continue
        column, level = match
        path = f"{root}/{relative}"
        if column.startswith(ELSEWHERE):  # one of ours, but not of the space asked for
            found.elsewhere.setdefault(record_id(bids.entities), {}).setdefault(
                column.removeprefix(ELSEWHERE), set()
            ).add(level)
            continue
        if folder:
            key = record_id(bids.entities)
            run = found.runs.setdefault(key, Run(key, long_entities(bids)))
            found.folders.setdefault(key, []).append(f"{path} is a directory, expected a file")
            continue
        if level == "subject":
            key = subject_key(bids.entities.get("sub"), bids.get("ses"), bids.get("res"))
            where = "_".join(
                f"{k}-{v}" for k, v in zip(("sub", "ses", "res"), key, strict=True) if v
            )
            claim(found.subject_files.setdefault(key, {}), column, path, where)
            continue
        key = record_id(bids.entities)
        run = found.runs.setdefault(key, Run(key, long_entities(bids)))
        claim(run.files, column, path, key)
        found.names.setdefault(key, {})[column] = (bids, relative)
    return found


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
    keys = [subject_key(subject, session, res)] if session else []
    for key in [*keys, subject_key(subject, None, res)]:
        for column, path in subject_files.get(key, {}).items():
            run.files.setdefault(column, path)
