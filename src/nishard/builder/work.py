"""The work order of a build run as shard tasks apart: saved once, read by every task.

A build whose groups run as tasks of their own (local processes, SLURM array elements)
saves in ``<out>/.nishard-tasks/``:

- ``records.parquet``: the record table (tasks never walk the dataset again);
- ``work.pkl``: the plan, the written formats, the shard groups, the writing order and
  each record's split, the spec the manifest records, the node cache's folder and the
  build's fingerprint (:func:`.resume.fingerprint`);
- ``parts/<split>-<group>.json`` (and ``.stats.npz``): each finished task's partial
  manifest, written after its shards are on disk under their names.

Task ``k`` (:func:`run_task`) runs group ``k``'s records, with a pool of record workers
inside, writes the group's shard in every format and its partial manifest. ``nishard
merge`` (:func:`merge_tasks`) reads the partial manifests only, never a sample, and
writes ``manifest.json``; the folder goes then. A rerun with the same fingerprint keeps
every group whose partial manifest is there and whose files have the sizes it records
(hashing every byte is ``nishard verify``'s job), and runs the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import pickle
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..archives.families import Family, family_name, unwrap
from ..archives.manifest import MANIFEST, PartialManifest, read_manifest
from ..archives.shards import Format, shard_name
from ..archives.storage import S3Storage
from ..errors import NishardError
from ..progress import say
from ..records.table import RecordTable
from ..workflow.cache import NodeCache
from ..workflow.executors import Local, Serial
from ..workflow.plan import Plan
from ..workflow.pydra import Pydra
from ..workflow.task_runners import SlurmArray, Tasks
from .finish import check_written, publish
from .planning import ShardGroup
from .remote import upload_files
from .resume import Resumed
from .splits import Split
from .tasks import ShardTask, outcomes

FOLDER = ".nishard-tasks"
PARTS = "parts"
RECORDS = "records.parquet"
ORDER = "work.pkl"


@dataclass(frozen=True)
class WorkOrder:
    """What every shard task of one build reads (the record table aside).

    Attributes
    ----------
    fingerprint : str
        Of the records, their files' sizes and mtimes, the transforms and output settings
        and the library versions: a work order of another build is never resumed.
    plan : Plan
    writing : tuple of Format or Family
        The formats (and archive families) each group is written in.
    groups : tuple of ShardGroup
        Task ``k`` writes ``groups[k]``.
    splits : tuple of str
        The split names, in the manifest's order.
    order : tuple of str
        Every record id in writing order.
    assignment : dict of str to str
        Each record's split.
    split : str or Split
        The split strategy, for the manifest's split table.
    spec : dict
        The pipeline spec the manifest records.
    previous : tuple of str
        Files a previous complete build listed in the folder: removed when not rewritten.
    cache : str or None
        The node cache's folder.
    remote : S3Storage or None
        The bucket of an ``s3://`` output: each task uploads its group's shards there
        (the merge uploads the side files and the manifest, last).
    """

    fingerprint: str
    plan: Plan
    writing: tuple[Format | Family, ...]
    groups: tuple[ShardGroup, ...]
    splits: tuple[str, ...]
    order: tuple[str, ...]
    assignment: dict[str, str]
    split: str | Split
    spec: dict
    previous: tuple[str, ...] = ()
    cache: str | None = None
    remote: S3Storage | None = None


def home(folder: Path) -> Path:
    """The work order's folder in the output folder."""
    return Path(folder) / FOLDER


def save_work(folder: Path, work: WorkOrder, records: RecordTable) -> None:
    """Save the work order and the records, unless the same build's are there already
    (then its finished tasks' partial manifests are kept); another build's go first."""
    where = home(folder)
    if _fingerprint(where) == work.fingerprint:
        return
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    (where / PARTS).mkdir()
    records.to_parquet(where / RECORDS)
    temporary = where / (ORDER + ".tmp")
    temporary.write_bytes(pickle.dumps(work, protocol=pickle.HIGHEST_PROTOCOL))
    temporary.rename(where / ORDER)  # last: a work order is there only when complete


def load_work(folder: Path) -> tuple[WorkOrder, RecordTable]:
    """The work order saved in ``folder`` and its records.

    Raises
    ------
    NishardError
        When there is none (no build of shard tasks was started there).
    """
    where = home(folder)
    if not (where / ORDER).is_file():
        raise NishardError(
            f"{where}: no work order of shard tasks (expected {ORDER}); start the build "
            "with an executor of shard tasks (tasks, slurm-array) first"
        )
    work = pickle.loads((where / ORDER).read_bytes())
    return work, RecordTable.from_parquet(where / RECORDS)


def part_path(folder: Path, group: ShardGroup) -> Path:
    """Where task ``group``'s partial manifest goes."""
    return home(folder) / PARTS / f"{group.split}-{group.index:06d}.json"


def finished(folder: Path, group: ShardGroup) -> PartialManifest | None:
    """The group's partial manifest, when it is there and its files have the sizes it
    records; None when the group must run (again)."""
    path = part_path(folder, group)
    try:
        partial = PartialManifest.load(path)
    except (OSError, ValueError, KeyError):  # not there, or cut short
        return None
    for info in partial.shards:
        target = Path(folder) / info.name
        if not target.is_file() or target.stat().st_size != info.bytes:
            return None
    return partial


def pending(folder: Path, work: WorkOrder) -> list[int]:
    """The numbers of the tasks still to run."""
    return [k for k, group in enumerate(work.groups) if finished(folder, group) is None]


def run_task(folder: Path, number: int, jobs: int = 1, progress: bool = True) -> PartialManifest:
    """Run shard task ``number`` of the build saved in ``folder``: its group's records on
    ``jobs`` record workers, the group's shard in every format, its partial manifest.

    A task whose partial manifest and files are there already returns it; one killed
    mid-write left its shards' temporaries, removed here before it starts again.

    Raises
    ------
    NishardError
        When ``number`` is not a task of the build.
    """
    folder = Path(folder).absolute()
    work, records = load_work(folder)
    if not 0 <= number < len(work.groups):
        raise NishardError(
            f"{folder}: shard task {number} is not one of the build's {len(work.groups)} "
            f"tasks (0 to {len(work.groups) - 1})"
        )
    group = work.groups[number]
    with _only_runner(folder, number):
        done = finished(folder, group)
        if done is not None:
            if progress:
                say(f"task {number} ({done.name}): done already")
            return done
        return _run_group(folder, number, work, records, jobs, progress)


def _run_group(
    folder: Path, number: int, work: WorkOrder, records: RecordTable, jobs: int, progress: bool
) -> PartialManifest:
    """Task ``number``'s group written and its partial manifest saved (see run_task)."""
    group = work.groups[number]
    for item in work.writing:
        name = shard_name(group.split, group.index, unwrap(item), family_name(item))
        (folder / (name + ".tmp")).unlink(missing_ok=True)
    task = ShardTask(folder, group, work.writing, None, Resumed())
    executor = Serial() if jobs == 1 else Local(jobs)
    cache = None if work.cache is None else NodeCache(work.cache)
    position = {record: p for p, record in enumerate(work.order)}
    started = time.perf_counter()
    results = outcomes(executor, work.plan, [records[i] for i in group.records], cache)
    try:
        for outcome in results:
            entry = task.write(outcome, position[outcome.record.id], records.root)
            task.take(entry)
            if progress and entry["quarantine"] is not None:
                say(f"task {number}: quarantined {outcome.record.id}")
        partial = task.close()
        if work.remote is not None:  # the group's shards, uploaded where they were made
            upload_files(folder, work.remote, {info.name: info.sha256 for info in partial.shards})
    except BaseException:
        results.close()
        task.abort()
        raise
    partial.save(part_path(folder, group).parent)
    if progress:
        seconds = time.perf_counter() - started
        say(f"task {number} ({partial.name}): {partial.written} written, "
              f"{len(partial.quarantine)} quarantined of {len(group.records)} in "
              f"{seconds:.1f} s")  # fmt: skip
    return partial


def merge_tasks(folder: Path) -> dict:
    """Merge the partial manifests of every task into ``manifest.json``; the work order
    goes then. Reads no sample.

    Raises
    ------
    NishardError
        When some tasks have not finished: named, with how to run them.
    """
    folder = Path(folder).absolute()
    work, records = load_work(folder)
    parts = {k: finished(folder, group) for k, group in enumerate(work.groups)}
    missing = [k for k, part in parts.items() if part is None]
    if missing:
        names = ", ".join(_named(work.groups[k], k) for k in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise NishardError(
            f"{folder}: {len(missing)} of {len(work.groups)} shard tasks have not finished "
            f"({names}{more}); their records are in no shard yet. Run the build again: it "
            "runs only those tasks"
        )
    manifest = publish(
        folder, [part for part in parts.values() if part is not None], records=records,
        spec=work.spec, names=work.splits, order=work.order, assignment=work.assignment,
        split=work.split, previous=work.previous,
    )  # fmt: skip
    shutil.rmtree(home(folder), ignore_errors=True)
    check_written(manifest, folder)
    return manifest


@contextlib.contextmanager
def _only_runner(folder: Path, number: int) -> Iterator[None]:
    """Hold task ``number``'s lock: a second process running the same task (the rerun of
    a killed coordinator whose tasks live on) stops instead of writing the same files."""
    locks = home(folder) / "locks"
    locks.mkdir(exist_ok=True)
    with open(locks / f"task-{number}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NishardError(
                f"{folder}: shard task {number} is running in another process (its lock "
                f"{lock.name} is held); wait for it to end"
            ) from None
        yield


def _build_id(folder: Path, work: WorkOrder) -> str:
    """Names this build's jobs: its fingerprint and its folder (the same records built
    into two folders are two builds, whose jobs must not be taken for each other's)."""
    return hashlib.sha256(f"{work.fingerprint} {folder}".encode()).hexdigest()[:8]


def _named(group: ShardGroup, number: int) -> str:
    return f"task {number}: {group.split}-{group.index:06d}"


def _fingerprint(where: Path) -> str | None:
    try:
        return pickle.loads((where / ORDER).read_bytes()).fingerprint
    except (OSError, pickle.UnpicklingError, AttributeError, EOFError):
        return None


def run_tasks(
    folder: Path,
    work: WorkOrder,
    records: RecordTable,
    runner: Tasks | SlurmArray | Pydra,
    *,
    progress: bool = True,
    resume: bool = True,
) -> dict:
    """Coordinate a build of shard tasks: save the work order, run the tasks not yet
    finished on ``runner``, merge (or let SLURM's merge job merge); the manifest.

    Raises
    ------
    NishardError
        When the runner refuses before submitting anything, or tasks failed: each named
        with its reason (SLURM's state: ``OUT_OF_MEMORY``, ``TIMEOUT``, ``CANCELLED``...;
        or the process's last line of error). Their records are in no shard; the build's
        rerun runs only them.
    """
    runner.check(folder)
    if not resume:
        shutil.rmtree(home(folder), ignore_errors=True)
    save_work(folder, work, records)
    # The old manifest goes first: from the first task's shard on it would describe
    # bytes that are no longer on disk.
    (folder / MANIFEST).unlink(missing_ok=True)
    numbers = pending(folder, work)
    if progress:
        done = len(work.groups) - len(numbers)
        say(f"{runner.name}: {len(records)} records in {len(work.groups)} shard tasks"
              + (f", {done} done by an earlier run" if done else ""))  # fmt: skip
    python = [sys.executable, "-m", "nishard"]

    def command(number: str, jobs: int) -> list[str]:
        return [*python, "build", "--output", str(folder), "--shard-task", number,
                "--jobs", str(jobs)]  # fmt: skip

    if isinstance(runner, SlurmArray):
        peaks = work.plan.estimate(work.plan.example) if work.plan.example else [0]
        failures = runner.run(
            numbers, command, home(folder), progress, merge=[*python, "merge", str(folder)],
            label=f"nishard-{_build_id(folder, work)}", peak=max(peaks, default=0),
        )  # fmt: skip
    else:
        failures = runner.run(numbers, command, home(folder), progress)
    if failures:
        listed = "; ".join(
            f"{_named(work.groups[f.task], f.task)}: {f.reason}" for f in failures[:10]
        )
        more = f"; and {len(failures) - 10} more" if len(failures) > 10 else ""
        raise NishardError(
            f"{len(failures)} of {len(numbers)} shard tasks failed ({listed}{more}). Their "
            f"records are in no shard and {folder / MANIFEST} is not written; the finished "
            "tasks are kept: run the build again to run only the failed ones"
        )
    if runner.merges:
        return read_manifest(folder)
    return merge_tasks(folder)
