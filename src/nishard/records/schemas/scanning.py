"""The walk that BIDS-named layouts share: every file under the subjects' folders, sorted
into runs by a schema's ``classify``.

A large dataset repeats a few dozen kinds of file for each of its subjects:
``sub-<label>_ses-2_task-rest_..._bold.nii.gz`` in ``sub-<label>/ses-2/func/``. A name
that starts with its ``sub-`` entity is parsed and classified once per kind (the rest of
the name, in the folders below the subject's), and the answer is reused with the
subject's label for every other subject; every other name (and a folder named like a
file) is parsed and classified on its own. A folder whose names all start with its
subject (a UK Biobank subject's ``func/``: the same 16 names but for the label) is placed
by a plan made once for that set of names, no name of it looked up on its own. What is
found is what parsing every name finds, in the same order, at a fraction of the cost
(``benchmarks/growth.py`` times it on a UK Biobank-sized layout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..entities import _PAIR, BidsName, parse_bids_name, record_id
from ..files import walk_folders
from ..metadata import read_sidecar
from .base import ELSEWHERE, Match, claim, long_entities, subject_key


@dataclass(slots=True)
class Found:
    """A run as the walk finds it: its id, entities and files (a schema then makes its
    :class:`~nishard.records.schemas.base.Run`, with its timing and metadata).

    Attributes
    ----------
    record : str
        Record id.
    entities : dict
        Long entity names to labels.
    files : dict
        File column to absolute path.
    kinds : dict
        File column to the kind of its file, for the files placed by their kind.
    """

    record: str
    entities: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, _Kind] = field(default_factory=dict)


@dataclass
class BidsScan:
    """What one walk of a BIDS-named layout found; see :func:`scan_bids`.

    Attributes
    ----------
    runs : dict
        Record id to :class:`Found` (files only: the schema fills in ``t_r`` and metadata).
    names : dict
        Record id to column to the file's parsed name and relative path, for the files
        parsed on their own (:meth:`parsed` answers for every file).
    subject_files : dict
        ``(subject, session or None, res or None)`` to column to path.
    unparsed : list of str
        Files under ``sub-*`` whose names are not BIDS (relative paths).
    jsons : list of str
        Every JSON file, relative, for sidecar inheritance (when the scan was asked).
    folders : dict
        Record id to the problems of folders found where its files should be.
    root : str
        The dataset root, absolute, with a trailing ``/``: the prefix of every path.
    """

    runs: dict[str, Found] = field(default_factory=dict)
    names: dict[str, dict[str, tuple[BidsName, str]]] = field(default_factory=dict)
    subject_files: dict[tuple, dict[str, str]] = field(default_factory=dict)
    unparsed: list[str] = field(default_factory=list)
    jsons: list[str] = field(default_factory=list)
    folders: dict[str, list[str]] = field(default_factory=dict)
    root: str = "/"
    _elsewhere: dict[str, dict[str, set[str]]] = field(default_factory=dict, init=False, repr=False)
    _noted: list[tuple[str, tuple[_Kind, ...]]] = field(
        default_factory=list, init=False, repr=False
    )

    @property
    def elsewhere(self) -> dict[str, dict[str, set[str]]]:
        """Record id to column to the labels (a space) of its files that ``classify``
        marked as found elsewhere (``ELSEWHERE + column``, the label as level), to say
        why a run lacks a file."""
        # Most scans never ask (every run has its files): the notes are put in place
        # only when asked, not once for every file in another space.
        for label, kinds in self._noted:
            for kind in kinds:
                key = f"sub-{label}{kind.run_key}"
                self._elsewhere.setdefault(key, {}).setdefault(kind.elsewhere, set()).add(
                    kind.level
                )
        self._noted.clear()
        return self._elsewhere

    def note_elsewhere(self, label: str, kinds: tuple[_Kind, ...]) -> None:
        """Note files of subject ``label`` of these kinds, found in another space than
        the one asked for (see :attr:`elsewhere`)."""
        self._noted.append((label, kinds))

    def parsed(self, record: str, column: str) -> tuple[BidsName, str] | None:
        """The parsed name and relative path of a record's file; None when it has none."""
        run = self.runs.get(record)
        kind = None if run is None else run.kinds.get(column)
        if kind is None:
            return self.names.get(record, {}).get(column)
        return kind.named(run.entities["subject"]), run.files[column][len(self.root) :]

    def entity(
        self, record: str, column: str, entity: str, absent: str | None = None
    ) -> str | None:
        """An entity's label in the name of a record's file (None when the name has no
        such entity), or ``absent`` when the record has no such file."""
        run = self.runs.get(record)
        kind = None if run is None else run.kinds.get(column)
        if kind is not None:
            return run.entities["subject"] if entity == "sub" else kind.entities.get(entity)
        parsed = self.names.get(record, {}).get(column)
        return absent if parsed is None else parsed[0].get(entity)


@dataclass(frozen=True)
class _Kind:
    """A kind of file: what its name says after the subject, and the schema's answer."""

    entities: dict[str, str]  # without ``sub``, in the name's order
    suffix: str
    extension: str
    column: str
    level: str
    run_key: str  # its record id after ``sub-<label>``
    long: dict[str, str]  # its run-identifying entities but the subject, long names
    place: tuple[str | None, str | None]  # a subject-level file's session and resolution
    elsewhere: str  # the column of a file found in another space, else ""

    @property
    def where(self) -> str:
        """A subject-level file's place after ``sub-<label>``, for errors."""
        return "".join(f"_{k}-{v}" for k, v in zip(("ses", "res"), self.place, strict=True) if v)

    def named(self, label: str) -> BidsName:
        """The parsed name of the file of this kind of subject ``label``."""
        return BidsName({"sub": label, **self.entities}, self.suffix, self.extension)


#: A name not seen yet; a name that is not BIDS; a folder named like a file (placed on
#: its own, as a problem of its run).
_UNSEEN, _UNPARSED, _FOLDER = object(), object(), object()


def scan_bids(
    root: Path, classify: Callable[[BidsName, str], Match | None], jsons: bool = False
) -> BidsScan:
    """Walk ``root`` once and sort BIDS-named files into runs.

    Parameters
    ----------
    root : Path
        Dataset root.
    classify : callable
        ``(bids_name, relative_path) -> (column, level) or None``; level ``"subject"``
        files (an anatomical mask) apply to the runs of their subject (and session) at
        their resolution. Its answer must not depend on the subject: neither on the
        ``sub`` entity nor on the subject's folder (the path's first part); it is asked
        once per kind of file (see the module's notes).
    jsons : bool
        List every JSON file in :attr:`BidsScan.jsons`, for a schema that applies the
        inheritance principle (one that reads a run's own sidecar needs no list).

    Raises
    ------
    ValueError
        When two files claim the same column of one record (naming both).
    """
    root = root.absolute()
    read_sidecar.cache_clear()  # a sidecar fetched or edited since the last scan is read anew
    found = BidsScan(root=f"{root}/")
    json_names, prefix = found.jsons, found.root
    # By the folders below the subject's: a name's rest after ``sub-<label>_`` to its
    # kind, and a folder's rests together (a key no rest can be: it holds NULs) to its plan.
    kinds: dict[str, dict[str, _Kind | _Plan | object | None]] = {}
    subjects: dict[str, str | None] = {}  # a name's first part to its subject label
    made = used = 0  # plans made, plans reused
    for folder, listed in walk_folders(str(root), prefix="sub-", named_folders=True):
        if not folder:  # the root: its sidecars apply to every run
            if jsons:
                json_names += [name for name in listed if name.endswith(".json")]
            continue
        if not listed:
            continue  # folders only
        cut = folder.index("/")
        below = kinds.get(folder[cut:])
        if below is None:
            below = kinds[folder[cut:]] = {}
        # Most names start with their folder's subject: ``sub-<label>_``, cut off whole.
        own = subjects.get(folder[:cut], _UNSEEN)
        if own is _UNSEEN:
            own = subjects[folder[:cut]] = _subject_label(folder[:cut])
        mine = f"sub-{own}_" if own is not None else "/"  # no name starts with a slash
        skip = len(mine)
        # A dataset repeats a few folders' contents for every subject: when every name
        # here starts with the subject, the names but for it are the plan's key. Past
        # the first plans, none is tried while fewer are reused than made (a dataset
        # whose folders all differ pays for no plan).
        if own is not None and (made < _TRIED or used > made):
            joined = "\0" + "\0".join(listed)
            rests = joined.replace("\0" + mine, "\0")
            if len(joined) - len(rests) == skip * len(listed):  # each name lost its ``mine``
                plan = below.get(rests, _UNSEEN)
                if plan is _UNSEEN:
                    plan = below[rests] = _plan(listed, skip, folder, below, classify)
                    made += 1
                else:
                    used += 1
                if plan is not None:
                    _follow(found, plan, listed, own, folder, jsons)
                    continue
        base = prefix + folder
        for name in listed:
            if jsons and name.endswith(".json"):
                json_names.append(folder + name)
            if name.startswith(mine):
                label, rest = own, name[skip:]
            else:
                first, underscore, rest = name.partition("_")
                label = subjects.get(first, _UNSEEN)
                if label is _UNSEEN:
                    label = subjects[first] = _subject_label(first)
                if label is None or not underscore:
                    _place(found, folder + name, classify)  # on its own
                    continue
            kind = _kind_of(below, rest, name, folder, classify)
            if kind is None:
                continue  # not one of ours
            if kind is _UNPARSED:
                found.unparsed.append(folder + name)
            elif kind is _FOLDER:
                _place(found, folder + name, classify)
            elif kind.elsewhere:  # one of ours, but not of the space asked for
                found.note_elsewhere(label, (kind,))
            elif kind.level == "subject":
                _put_subject(found, label, kind, base + name)
            elif kind.level == "run":
                run = _run(found, label, kind)
                claim(run.files, kind.column, base + name, run.record)
                run.kinds[kind.column] = kind
            else:
                _put(found, kind.named(label), folder + name, kind.column, kind.level)
    return found


#: Plans made before their reuse is asked for (see :func:`scan_bids`).
_TRIED = 256


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a folder's names say for every subject whose folder at that place lists the
    same names but for its label: their kinds, grouped, the name's index with each.

    ``runs`` holds, per run and in the order of its first name, its files'
    ``(column, kind, index)``.
    """

    runs: tuple[tuple[tuple[str, _Kind, int], ...], ...]
    subject: tuple[tuple[_Kind, int], ...]  # subject-level files
    elsewhere: tuple[_Kind, ...]  # files in another space than the one asked for
    jsons: tuple[int, ...]  # every JSON file


def _plan(
    listed: list[str], skip: int, folder: str, below: dict, classify: Callable
) -> _Plan | None:
    """The plan of a folder whose every name starts with its subject (``skip`` long);
    None when a name needs the general case: not BIDS, a folder named like a file, a
    level other than run or subject, or a second file for one place (named there)."""
    runs: dict[str, list[tuple[str, _Kind, int]]] = {}
    subject, elsewhere, jsons = [], [], []
    for index, name in enumerate(listed):
        if name.endswith(".json"):
            jsons.append(index)
        kind = _kind_of(below, name[skip:], name, folder, classify)
        if kind is None:
            continue
        if kind is _UNPARSED or kind is _FOLDER:
            return None
        if kind.elsewhere:
            elsewhere.append(kind)
        elif kind.level == "subject":
            if any((kind.place, kind.column) == (k.place, k.column) for k, _ in subject):
                return None
            subject.append((kind, index))
        elif kind.level == "run":
            members = runs.setdefault(kind.run_key, [])
            if any(column == kind.column for column, _, _ in members):
                return None
            members.append((kind.column, kind, index))
        else:
            return None
    return _Plan(tuple(map(tuple, runs.values())), tuple(subject), tuple(elsewhere), tuple(jsons))


def _follow(
    found: BidsScan, plan: _Plan, listed: list[str], label: str, folder: str, jsons: bool
) -> None:
    """Place a folder's files as its plan says: what the general case does, name by
    name, without the names' parts looked up again."""
    base = found.root + folder
    if jsons:
        found.jsons += [folder + listed[index] for index in plan.jsons]
    for members in plan.runs:
        run = _run(found, label, members[0][1])
        files, kinds = run.files, run.kinds
        for column, kind, index in members:
            if column in files:  # a file of another folder in the same place
                claim(files, column, base + listed[index], run.record)
            files[column] = base + listed[index]
            kinds[column] = kind
    for kind, index in plan.subject:
        _put_subject(found, label, kind, base + listed[index])
    if plan.elsewhere:
        found.note_elsewhere(label, plan.elsewhere)


def _kind_of(
    below: dict, rest: str, name: str, folder: str, classify: Callable
) -> _Kind | object | None:
    """The kind of a name whose rest after its subject is ``rest``, worked out once for
    the folders at that place below the subjects' (``below``)."""
    kind = below.get(rest, _UNSEEN)
    if kind is _UNSEEN:
        kind = below[rest] = _kind(name, folder + name, classify)
    return kind


def _run(found: BidsScan, label: str, kind: _Kind) -> Found:
    """The run a file of ``kind`` of subject ``label`` belongs to, made if new."""
    key = f"sub-{label}{kind.run_key}"
    run = found.runs.get(key)
    if run is None:
        run = found.runs[key] = Found(key, {"subject": label, **kind.long})
    return run


def _put_subject(found: BidsScan, label: str, kind: _Kind, path: str) -> None:
    """Place a subject-level file (an anatomical mask) among its subject's files."""
    key = (label, *kind.place)
    files = found.subject_files.get(key)
    if files is None:
        found.subject_files[key] = {kind.column: path}
    else:
        claim(files, kind.column, path, f"sub-{label}{kind.where}")


def _subject_label(part: str) -> str | None:
    """The label of a name's first part when it is the ``sub-`` entity, else None."""
    match = _PAIR.match(part)
    return match.group(2) if match is not None and match.group(1) == "sub" else None


def _kind(name: str, relative: str, classify: Callable) -> _Kind | object | None:
    """What a name that starts with its ``sub-`` entity says for every subject: a kind,
    None (not one of ours), ``_UNPARSED`` or ``_FOLDER``."""
    if name.endswith("/"):
        return _FOLDER
    bids = parse_bids_name(name)
    if bids is None:
        return _UNPARSED
    match = classify(bids, relative)
    if match is None:
        return None
    rest = {k: v for k, v in bids.entities.items() if k != "sub"}
    run_key = record_id({"sub": "", **rest})[len("sub-") :]
    long = {k: v for k, v in long_entities(bids).items() if k != "subject"}
    column, level = match
    elsewhere = column.removeprefix(ELSEWHERE) if column.startswith(ELSEWHERE) else ""
    place = (rest.get("ses"), rest.get("res"))
    return _Kind(rest, bids.suffix, bids.extension, column, level, run_key, long, place, elsewhere)


def _place(found: BidsScan, listed: str, classify: Callable) -> None:
    """Parse, classify and place one file (or folder named like one, ``listed`` with a
    trailing ``/``) under a subject's folder."""
    relative = listed.rstrip("/")
    bids = parse_bids_name(relative.rsplit("/", 1)[-1])
    if bids is None:
        found.unparsed.append(listed)
        return
    match = classify(bids, relative)
    if match is not None:
        _put(found, bids, listed, *match)


def _put(found: BidsScan, bids: BidsName, listed: str, column: str, level: str) -> None:
    """Place a classified file: in its run, its subject's files, or among those found
    elsewhere; a folder named like a file is a problem of its run."""
    relative = listed.rstrip("/")
    path = found.root + relative
    if column.startswith(ELSEWHERE):  # one of ours, but not of the space asked for
        found.elsewhere.setdefault(record_id(bids.entities), {}).setdefault(
            column.removeprefix(ELSEWHERE), set()
        ).add(level)
        return
    if listed != relative:  # a folder named like a file
        key = record_id(bids.entities)
        found.runs.setdefault(key, Found(key, long_entities(bids)))
        found.folders.setdefault(key, []).append(f"{path} is a directory, expected a file")
        return
    if level == "subject":
        key = subject_key(bids.entities.get("sub"), bids.get("ses"), bids.get("res"))
        where = "_".join(f"{k}-{v}" for k, v in zip(("sub", "ses", "res"), key, strict=True) if v)
        claim(found.subject_files.setdefault(key, {}), column, path, where)
        return
    key = record_id(bids.entities)
    run = found.runs.setdefault(key, Found(key, long_entities(bids)))
    claim(run.files, column, path, key)
    found.names.setdefault(key, {})[column] = (bids, relative)
