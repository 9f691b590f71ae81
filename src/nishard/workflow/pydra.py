"""The Pydra executor: a plan's nodes as Pydra tasks, on local processes or a cluster.

Pydra hashes every input of a task and pickles its outputs into its own cache, so the tasks
here pass small things only: the record as a plain dict, the path of the pickled plan, the
folder of the node cache and the node's number. Arrays travel through the node cache
(:class:`~.cache.NodeCache`): a task computes its node into it and hands on the node's key.

Each record is a chain of node tasks in topological order (the plan's node order). Pydra
1.0 resolves a task's inputs only when they are lazy outputs themselves, not lists of them,
so a node cannot wait on several parents; the chain carries every key so far instead, and
the records, not the branches of one record, are what runs in parallel.

The chain's state also carries what the writer would otherwise recompute in its own
process: the input checksums (hashed once, by the first task), what each task cost its
process (:class:`~.usage.Usage`), and the files of the summaries (statistics) of the
products each task made, computed while the arrays were in its memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import pickle
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from ..errors import (
    DiskFullError,
    NishardError,
    RecordError,
    UnwritableError,
    check_writable,
)
from ..progress import say
from ..records.table import Record
from ..threads import one_blas_thread
from .cache import NodeCache
from .inputs import input_checksums
from .plan import Outcome, Plan, Summarize
from .task_runners import TaskCommand, TaskFailure, last_line
from .timing import settle_timing
from .usage import Meter, Usage

#: How often the writer looks for a record's result while the workflow runs, in seconds.
POLL_S = 0.05


@dataclasses.dataclass(frozen=True, init=False)
class Pydra:
    """Records in parallel as Pydra workflows: local processes or SLURM.

    Every fused node of the plan becomes a Pydra task; each record runs its nodes as a
    chain of tasks, and the records of a batch run as one workflow split over them.
    Outcomes come back in record order as soon as each record is done, so the writer
    overlaps with the computing. A record that fails is quarantined with its reason
    (the :class:`~nishard.errors.RecordError`); the rest go on.

    Parameters
    ----------
    worker : str
        Pydra's worker: ``"cf"`` (local processes, the default; on a loky pool, see
        :mod:`.pydra_loky`), ``"slurm"``, ``"debug"`` (in this process, one
        task at a time).
    jobs : int or None
        ``cf``: worker processes (None or -1: every core). Other workers: the most jobs
        submitted at once (None: no limit).
    cache_dir : str or Path or None
        Where each run keeps Pydra's working folders and, unless ``write`` is given a node
        cache, the node outputs (in a fresh subfolder, removed after the run). On a cluster
        it must be on a filesystem every node sees. Default: the system's temporary folder.
    batch : int
        Records per workflow. The node outputs of at most two batches are on disk at once
        (the one being written and the next); larger batches leave workers idle less often
        at batch ends.
    options : mapping, optional
        More keyword arguments for Pydra's worker, e.g. ``sbatch_args`` and ``poll_delay``
        for SLURM; they can also be given as keywords, ``Pydra("slurm", sbatch_args=...)``.

    Notes
    -----
    On SLURM (tested on a one-node SLURM, ``scripts/slurm/start.sh``)::

        Pydra(worker="slurm", jobs=50, cache_dir="nishard-pydra",
              sbatch_args="--time=01:00:00 --mem=8G --cpus-per-task=1")

    Each node of each record is one ``sbatch`` job running ``python -c "...load_and_run"``
    with the interpreter of the submitting process, so the cluster nodes need the same
    environment at the same path. ``cache_dir`` must be shared with the compute nodes (the
    system temporary folder usually is not); ``--mem`` should cover the largest node's
    peak (``nishard plan`` prints the estimates, and ``--memory-budget`` caps them). The writer
    runs in the submitting process, which stays alive until every record is written; with
    many short nodes, fuse more (a larger memory budget) to keep scheduler overhead low.
    Before anything is submitted, the build stops with one error when ``sbatch``,
    ``squeue`` or ``sacct`` is not on ``PATH`` or when ``sbatch --test-only`` refuses the
    ``sbatch_args`` (:func:`check_scheduler`).
    """

    worker: str = "cf"
    jobs: int | None = None
    cache_dir: str | None = None
    batch: int = 64
    options: tuple[tuple[str, Any], ...] = ()
    per: str = "record"

    name: ClassVar[str] = "pydra"
    merges: ClassVar[bool] = False

    def __init__(
        self,
        worker: str = "cf",
        jobs: int | None = None,
        cache_dir: str | Path | None = None,
        batch: int = 64,
        options: dict[str, Any] | None = None,
        per: str = "record",
        **more: Any,
    ) -> None:
        if per not in ("record", "group"):
            raise ValueError(f"per must be 'record' or 'group', got {per!r}")
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, got {batch!r}")
        if jobs is not None and (not isinstance(jobs, int) or jobs == 0 or jobs < -1):
            raise ValueError(f"jobs must be a positive int, -1 or None, got {jobs!r}")
        merged = {**dict(options or {}), **more}
        set_ = object.__setattr__  # frozen: the dataclass's own __init__ is replaced
        set_(self, "worker", worker)
        set_(self, "jobs", jobs)
        set_(self, "cache_dir", None if cache_dir is None else str(cache_dir))
        set_(self, "batch", batch)
        set_(self, "options", tuple(sorted(merged.items())))
        set_(self, "per", per)

    @property
    def groups(self) -> bool:
        """Each shard group one Pydra task (``per="group"``), not each node of each record."""
        return self.per == "group"

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"executor": self.name, "worker": self.worker, "jobs": self.jobs,
                               "batch": self.batch}  # fmt: skip
        if self.cache_dir is not None:
            out["cache_dir"] = self.cache_dir
        if self.options:
            out["options"] = dict(self.options)
        if self.groups:
            out["per"] = self.per
        return out

    def check(self, folder: Path) -> None:
        """Stop before anything is saved when the worker is unknown or its scheduler is
        not usable (:func:`check_scheduler`)."""
        import pydra.engine  # noqa: F401
        from pydra.workers.base import Worker

        Worker.plugin(self.worker)
        check_scheduler(self.worker, str(dict(self.options).get("sbatch_args", "")))

    def run(self, numbers: Sequence[int], command: TaskCommand, home: Path,
            progress: bool = True) -> list[TaskFailure]:  # fmt: skip
        """With ``per="group"``: the shard tasks ``numbers`` as one Pydra task split over
        them, each running its task's command; the ones that failed, with their last line
        of error (from ``home/logs/task-K.log``)."""
        from pydra.compose import python
        from pydra.engine.submitter import Submitter

        os.environ.setdefault("NO_ET", "1")  # (see _Runner._run)
        logs = home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        paths = [str(logs / f"task-{n}.log") for n in numbers]
        # One record worker per task: Pydra's worker gives each task one slot.
        argvs = [command(str(n), 1) for n in numbers]
        task = python.define(run_command, outputs=["code"])().split(
            ("argv", "log"), argv=argvs, log=paths
        )
        if progress:
            say(f"pydra ({self.worker}): {len(numbers)} shard tasks")
        root = Path(self.cache_dir).absolute() if self.cache_dir else home
        check_writable(root, f"Pydra's cache_dir {root}")
        with tempfile.TemporaryDirectory(prefix="nishard-pydra-", dir=root) as tmp:
            with Submitter(cache_root=Path(tmp), **self.submitter_options()) as submitter:
                result = submitter(task)
        codes = list(result.outputs.code) if not result.errored else [None] * len(numbers)
        ended = zip(numbers, paths, codes, strict=True)
        return [
            TaskFailure(n, last_line(Path(log), code or 1)) for n, log, code in ended if code != 0
        ]

    def submitter_options(self) -> dict[str, Any]:
        """Keyword arguments of ``pydra.engine.submitter.Submitter`` besides the cache root."""
        options: dict[str, Any] = {"worker": self.worker, **dict(self.options)}
        if self.worker == "cf":
            from .pydra_loky import LokyWorker

            options["worker"] = LokyWorker
        jobs = None if self.jobs == -1 else self.jobs
        if jobs is not None:
            options["n_procs" if self.worker == "cf" else "max_concurrent"] = jobs
        return options

    def map(
        self,
        plan: Plan,
        records: Iterable[Record],
        cache: NodeCache | None = None,
        summarize: Summarize | None = None,
    ) -> Iterator[Outcome]:
        """Run ``plan`` on every record; outcomes in record order.

        Parameters
        ----------
        plan : Plan
        records : iterable of Record
        cache : NodeCache, optional
            A node cache to reuse and fill (kept). Without one, node outputs go to a
            temporary store, and each record's are deleted once its outcome is taken.
        summarize : callable, optional
            Run by each task on the products its node makes (see :mod:`.executors`).
        """
        # pydra.engine first: importing pydra.workers before it is a circular import.
        import pydra.engine  # noqa: F401
        from pydra.workers.base import Worker

        Worker.plugin(self.worker)  # an unknown worker fails here, not in a thread
        check_scheduler(self.worker, str(dict(self.options).get("sbatch_args", "")))
        # Every folder absolute before Pydra runs: it changes the process's folder (and
        # each task's) while it does, under the writer's feet.
        root = None if self.cache_dir is None else Path(self.cache_dir).absolute()
        if root is not None:
            check_writable(root, f"Pydra's cache_dir {root}")
        with tempfile.TemporaryDirectory(prefix="nishard-pydra-", dir=root) as tmp:
            work = Path(tmp).absolute()
            store = NodeCache(cache.folder.absolute() if cache is not None else work / "nodes")
            saved = _save_plan(_Job(plan, summarize, os.getpid()), work)
            runner = _Runner(self, saved, len(plan.nodes), store, work, iter(records))
            runner.start()
            try:
                yield from _outcomes(plan, runner, store, keep=cache is not None)
            finally:
                runner.stop()


#: The commands each cluster worker of Pydra runs: it submits with the first and polls
#: the others (``sacct`` needs SLURM's accounting, slurmdbd).
SCHEDULER_COMMANDS = {"slurm": ("sbatch", "squeue", "sacct"), "sge": ("qsub", "qstat", "qacct")}


def check_scheduler(worker: str, sbatch_args: str = "") -> None:
    """Stop before anything is submitted when a cluster worker's commands are missing, or
    when SLURM refuses the job options.

    Without this every task fails in Pydra's thread and every record would be quarantined
    for the machine's fault; one error naming the command or the options says what is
    wrong instead. The options are tried with ``sbatch --test-only``, which submits
    nothing.

    Raises
    ------
    NishardError
        ``no sbatch on PATH: ...`` (or the first other missing command), or ``sbatch
        refuses sbatch_args '...': ...`` with SLURM's reason.
    """
    commands = SCHEDULER_COMMANDS.get(worker, ())
    for command in commands:
        if shutil.which(command) is None:
            raise NishardError(
                f"no {command} on PATH: Pydra's {worker} worker runs {', '.join(commands)}; "
                "build on a machine that submits to the cluster (a login node), or use "
                "worker: cf"
            )
    if worker != "slurm":
        return
    # Split as Pydra's worker splits them (str.split), so the test is of what it submits.
    test = ["sbatch", "--test-only", *sbatch_args.split(), "--wrap", "true"]
    try:
        run = subprocess.run(test, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NishardError(f"sbatch --test-only did not answer: {err}") from None
    if run.returncode != 0:
        lines = [line.strip() for line in (run.stderr + run.stdout).splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {run.returncode}"
        raise NishardError(f"sbatch refuses sbatch_args {sbatch_args!r}: {why}")


# --------------------------------------------------------------------------- the writer side


def _outcomes(plan: Plan, runner: _Runner, store: NodeCache, keep: bool) -> Iterator[Outcome]:
    """Outcomes in record order, each as soon as its marker is there."""
    while True:
        message = runner.messages.get()
        if message[0] == "end":
            return
        if message[0] == "fail":
            raise message[1]
        _, batch, markers = message
        engine_error: str | None = None
        done = False
        for record, marker in zip(batch, markers, strict=True):
            result = _read_marker(marker)
            while result is None and not done:
                reply = runner.next(timeout=POLL_S)
                if reply is not None:
                    done, engine_error = True, reply
                result = _read_marker(marker)
            outcome = _outcome(plan, record, store, result, engine_error)
            if result is not None:
                for path in result.get("summaries", []):
                    Path(path).unlink(missing_ok=True)
                if not keep:
                    for key in result["keys"]:
                        store.path(key).unlink(missing_ok=True)
            yield outcome
        if not done:  # every marker came before Pydra said the batch was over
            runner.next(timeout=None)
        runner.slots.release()


def _outcome(
    plan: Plan, record: Record, store: NodeCache, result: dict | None, engine_error: str | None
) -> Outcome:
    if result is not None and "metadata" in result:  # as the first task settled it
        record = dataclasses.replace(record, metadata=result["metadata"])
    given = result.get("warnings", ()) if result is not None else ()
    warnings = tuple((path, text) for path, text in given)  # JSON made the pairs lists
    if result is not None and result.get("fatal"):  # no record's fault: stop the build
        kind, message = result["fatal"]
        raise _FATAL[kind](message)
    if result is not None and result["error"] is None:
        outcome = plan.collect(record, store, result.get("checksums"))
        summaries: dict[str, Any] = {}
        for path in result.get("summaries", []):
            with open(path, "rb") as file:
                summaries.update(pickle.load(file))
        usage = _usage(result.get("usage"))
        return dataclasses.replace(
            outcome, usage=usage, summaries=summaries or None, warnings=warnings
        )
    if result is None:
        why = engine_error or "the workflow ended without one"
        error = RecordError(record.id, None, "a result from the Pydra workflow", f"none ({why})")
    else:
        error = RecordError(**result["error"])
    # The same provenance as the other executors give a quarantined record.
    try:
        checksums = input_checksums(record, plan.inputs)
    except RecordError:
        checksums = {}
    usage = _usage(result and result.get("usage"))
    return Outcome(record, None, error, checksums, usage, warnings=warnings)


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not there yet (markers appear atomically)
        return None


# --------------------------------------------------------------------------- the engine side


class _Runner(threading.Thread):
    """Submits batch after batch to Pydra, at most one ahead of the writer.

    Messages, in order: ``("batch", records, markers)`` when a batch starts, ``("done",
    error or None)`` when Pydra returns, then the next batch..., and ``("end",)``; or
    ``("fail", exception)`` when the engine cannot run at all.
    """

    def __init__(self, executor: Pydra, plan_file: Path, n_nodes: int, store: NodeCache,
                 work: Path, records: Iterator[Record]) -> None:  # fmt: skip
        super().__init__(name="nishard-pydra", daemon=True)
        self.executor = executor
        self.plan_file = str(plan_file)
        self.n_nodes = n_nodes
        self.store = str(store.folder)
        self.work = work
        self.records = records
        self.messages: queue.Queue = queue.Queue()
        self.slots = threading.Semaphore(2)  # the batch being written and the next one
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as err:  # handed to the writer, who raises it
            self.messages.put(("fail", err))

    def _run(self) -> None:
        from pydra.engine.submitter import Submitter

        # A build must not wait on Pydra's online version check: cluster nodes are
        # often offline, and it would cost its 5 s timeout in every process.
        os.environ.setdefault("NO_ET", "1")
        chain = _tasks()[1]
        (self.work / "done").mkdir()
        number = 0
        options = self.executor.submitter_options()
        with Submitter(cache_root=self.work / "pydra", **options) as submitter:
            while True:
                self.slots.acquire()
                if self.stopping.is_set():
                    break
                batch = list(itertools.islice(self.records, self.executor.batch))
                if not batch:
                    break
                markers = [self.work / "done" / f"{number + i}.json" for i in range(len(batch))]
                number += len(batch)
                self.messages.put(("batch", batch, markers))
                task = chain(plan_file=self.plan_file, cache_folder=self.store,
                             n_nodes=self.n_nodes).split(
                    ("record", "marker"),
                    record=[_as_dict(r) for r in batch], marker=[str(m) for m in markers],
                )  # fmt: skip
                error = None
                try:
                    result = submitter(task)
                    if result.errored:
                        error = _first_line(result.errors)
                except Exception as err:  # the records without a marker say why
                    error = f"{type(err).__name__}: {err}"
                self.messages.put(("done", error))
        self.messages.put(("end",))

    def next(self, timeout: float | None) -> str | None:
        """Wait for the running batch's end: its error message, or "" when it ran through;
        None if it is still running after ``timeout`` seconds."""
        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            return None
        if message[0] == "fail":
            raise message[1]
        kind, error = message
        assert kind == "done", kind  # the writer reads one batch's messages at a time
        return error or ""

    def stop(self) -> None:
        """Submit no more; wait for the running batch (its tasks write into the folder)."""
        self.stopping.set()
        self.slots.release()
        self.join()


def run_command(argv: list[str], log: str) -> int:
    """A Pydra task of shard-task mode: run ``argv`` with its output to ``log``; its exit
    status (never raises: a failed task is reported by number, not as Pydra's error)."""
    with open(log, "wb") as out:
        try:
            return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL).returncode  # fmt: skip
        except OSError as err:
            out.write(f"{type(err).__name__}: {err}\n".encode())
            return 127


def _first_line(errors: Any) -> str:
    if isinstance(errors, dict):
        text = "".join(errors.get("error message", [])) or str(errors)
    else:
        text = str(errors)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


def _as_dict(record: Record) -> dict:
    return {"id": record.id, "files": record.files, "metadata": record.metadata}


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every task of a run needs besides its record: the plan, the summarising
    function, and the writer's process (a task running in it must not reset its peak)."""

    plan: Plan
    summarize: Summarize | None
    writer: int


def _save_plan(job: _Job, folder: Path) -> Path:
    """The pickled job, named by its content so that a worker's loaded copy is never stale."""
    import cloudpickle  # as loky (the local executor) does: transforms defined in a script

    data = cloudpickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    path = folder / f"plan-{hashlib.sha256(data).hexdigest()[:16]}.pkl"
    path.write_bytes(data)
    return path


@lru_cache(maxsize=4)
def _load_plan(path: str) -> _Job:
    return pickle.loads(Path(path).read_bytes())


# --------------------------------------------------------------------------- Pydra tasks


def run_node(record: dict, plan_file: str, cache_folder: str, number: int, state: dict,
             marker: str, last: bool = False) -> dict:  # fmt: skip
    """One node of one record, as a Pydra task runs it.

    ``state`` carries the keys of the earlier nodes and the error of the first that failed
    (after a failure the rest pass it on without running), the input checksums, the
    combined :class:`~.usage.Usage` of the tasks so far, and the files of the summaries of
    the products they made (``<marker>.<node>.pkl``). The ``last`` node writes ``state``
    to ``marker`` (a JSON file) for the writer, which reads it as soon as it appears.

    Any exception becomes the record's error: an exception that left the task would make
    Pydra drop the results of the whole batch.
    """
    if state["error"] is None:
        meter = None
        try:
            job = _load_plan(plan_file)
            meter = Meter(reset=os.getpid() != job.writer)
            with meter:
                # After node 0, the record as it settled its timing.
                rec = Record(
                    record["id"], record["files"], state.get("metadata", record["metadata"])
                )
                state = _node(job, rec, number, NodeCache(cache_folder), state, marker)
        except Exception as err:
            if isinstance(err, tuple(_FATAL.values())):  # the writer raises it
                state = {**state, "fatal": [type(err).__name__, str(err)]}
            if not isinstance(err, RecordError):
                err = RecordError(record["id"], None, f"node {number} to run",
                                  f"{type(err).__name__}: {err}")  # fmt: skip
            error = {"record": err.record, "path": err.path, "expected": err.expected,
                     "found": err.found}  # fmt: skip
            state = {**state, "error": error}
        if meter is not None and meter.usage is not None:  # a failed node's memory counts too
            state["usage"] = meter.usage.combine(_usage(state.get("usage"))).to_dict()
    if last:
        tmp = f"{marker}.tmp"
        Path(tmp).write_text(json.dumps(state))
        os.replace(tmp, marker)  # the writer never reads half a file
    return state


def _node(job: _Job, record: Record, number: int, store: NodeCache, state: dict,
          marker: str) -> dict:  # fmt: skip
    """Compute one node into the store and summarise the products it makes; the state
    after it (its ``usage`` is the caller's to add)."""
    plan = job.plan
    # Checksums first, as Plan.run: an unreadable file is then quarantined with the same
    # reason under every executor, not as an unreadable header of the memory estimate.
    checksums = state.get("checksums") or input_checksums(record, plan.inputs)
    if number == 0:  # where the record is loaded first: settle its TR from the header
        record, warnings = settle_timing(record, plan.inputs)
        state = {**state, "metadata": record.metadata, "warnings": list(warnings)}
        plan.check_memory(record)  # compute_node does not check the budget: before loading
    key, outputs = plan.compute_node(number, record, store, checksums)
    summaries = list(state.get("summaries", []))
    made = plan.node_products(number) if job.summarize is not None else ()
    if made and outputs is None:  # stored by an earlier build
        outputs = store.load(key)
    if made and outputs is not None:  # else the writer summarises them
        path = f"{marker}.{number}.pkl"
        with one_blas_thread():  # as the other executors summarise
            summary = job.summarize({name: outputs[name] for name in made})
        with open(path, "wb") as file:
            pickle.dump(summary, file, protocol=pickle.HIGHEST_PROTOCOL)
        summaries.append(path)
    return {**state, "keys": [*state["keys"], key], "checksums": checksums,
            "summaries": summaries}  # fmt: skip


def record_chain(record: dict, marker: str, plan_file: str, cache_folder: str,
                 n_nodes: int) -> dict:  # fmt: skip
    """A Pydra workflow constructor: one record's nodes as a chain of tasks."""
    from pydra.compose import workflow

    node_task = _tasks()[0]
    state: Any = {"keys": [], "error": None}
    for number in range(n_nodes):
        task = node_task(record=record, plan_file=plan_file, cache_folder=cache_folder,
                         number=number, state=state, marker=marker,
                         last=number == n_nodes - 1)  # fmt: skip
        state = workflow.add(task, name=f"node{number}").state
    return state


#: Errors of the machine, not of a record (a full or read-only store): a task hands them
#: to the writer, which stops the build with them as the other executors do.
_FATAL = {error.__name__: error for error in (DiskFullError, UnwritableError)}


def _usage(data: dict | None) -> Usage | None:
    return None if data is None else Usage.from_dict(data)


@lru_cache(maxsize=1)
def _tasks() -> tuple[Any, Any]:
    """The Pydra task classes, made on first use: importing Pydra costs a second."""
    from pydra.compose import python, workflow

    return (python.define(run_node, outputs=["state"]),
            workflow.define(record_chain, outputs=["state"]))  # fmt: skip


__all__ = ["SCHEDULER_COMMANDS", "Pydra", "check_scheduler", "record_chain", "run_node"]
