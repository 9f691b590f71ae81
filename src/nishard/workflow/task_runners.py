"""Runners of shard tasks: each group of a build a process (or a SLURM array element) of
its own, writing its own shard files; the coordinator sees partial manifests only.

A record executor (:mod:`.executors`) hands every record's products to the one process
that writes the shards. A task runner instead runs one command per shard group, the
command nishard gives it (``nishard build --output OUT --shard-task K``): the task reads
the build's saved work order, computes its records on a pool of its own and writes its
group's shard in every format. No sample byte passes through the runner's process.

- :class:`Tasks`: tasks as local processes, ``jobs`` at a time;
- :class:`SlurmArray`: an sbatch array, one element per task (``--array=...%jobs``,
  chunked where there are more tasks than the cluster's ``MaxArraySize``), and a merge
  job that runs ``nishard merge OUT`` once every element ended (``afterany``): the build
  completes even when the coordinator that submitted it is gone.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..errors import NishardError
from ..progress import say
from ..units import format_bytes, parse_bytes

#: A task's command line, from its number (or a shell word such as ``$task``) and its
#: record workers.
TaskCommand = Callable[[str, int], list[str]]

#: sacct states of an element that ended without its task finishing.
FAILED = ("FAILED", "OUT_OF_MEMORY", "TIMEOUT", "CANCELLED", "NODE_FAIL", "PREEMPTED",
          "BOOT_FAIL", "DEADLINE")  # fmt: skip
#: Folders each node has of its own on most clusters.
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run")
#: Seconds to wait, once the merge job has ended, for the accounting database to list
#: the end of every array element (slurmdbd records it a moment after the job ends).
ACCOUNTING_LAG = 30.0

#: sacct states of a job still to end.
ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING",
          "COMPLETING")  # fmt: skip


@dataclass(frozen=True)
class TaskFailure:
    """A task that ended without its partial manifest: its number and why (SLURM's state
    or the process's last line of error)."""

    task: int
    reason: str


@dataclass
class Progress:
    """Plain progress lines of a coordinator: tasks done, running, failed, rate, time left.

    One line when something changed, at most every ``every`` seconds (and at the end):
    a log file gets readable lines, not terminal frames.
    """

    total: int
    label: str
    enabled: bool = True
    every: float = 5.0
    _start: float = field(default_factory=time.perf_counter)
    _last: float = 0.0
    _said: tuple = ()

    def update(self, done: int, running: int, failed: int, final: bool = False) -> None:
        now = time.perf_counter()
        state = (done, running, failed)
        if not self.enabled or state == self._said or (now - self._last < self.every and not final):
            return
        self._said, self._last = state, now
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = self.total - done - failed
        eta = f", about {left / rate:.0f} s left" if rate > 0 and left > 0 else ""
        say(f"{self.label}: {done}/{self.total} tasks done, {running} running, {failed} "
              f"failed; {rate * 60:.1f} tasks/min{eta}")  # fmt: skip


@dataclass(frozen=True)
class Tasks:
    """Shard tasks as local processes: ``jobs`` groups at a time, each writing its own
    shard files with ``task_jobs`` record workers.

    For a machine with many cores and a build of many groups: no single writer process
    paces the build. The coordinator merges the partial manifests when all have ended.

    Parameters
    ----------
    jobs : int
        Tasks at once; -1: as many as cores (divided by ``task_jobs``).
    task_jobs : int
        Record workers inside each task (1: the task computes its records itself).
    """

    jobs: int = -1
    task_jobs: int = 1

    name: ClassVar[str] = "tasks"
    merges: ClassVar[bool] = False
    groups: ClassVar[bool] = True

    def to_dict(self) -> dict:
        return {"executor": self.name, "jobs": self.jobs, "task_jobs": self.task_jobs}

    def check(self, folder: Path) -> None:
        """Nothing to check beyond the folders (checked by the build)."""

    def run(self, numbers: Sequence[int], command: TaskCommand, home: Path,
            progress: bool = True) -> list[TaskFailure]:  # fmt: skip
        """Run the tasks ``numbers``; those that failed, with their last line of error."""
        logs = home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        jobs = self.jobs if self.jobs > 0 else max(1, (os.cpu_count() or 1) // self.task_jobs)
        todo = list(numbers)
        running: dict[int, tuple[subprocess.Popen, Path]] = {}
        failures: list[TaskFailure] = []
        done = 0
        meter = Progress(len(todo), "tasks", progress)
        try:
            while todo or running:
                while todo and len(running) < jobs:
                    number = todo.pop(0)
                    log = logs / f"task-{number}.log"
                    with open(log, "wb") as out:
                        process = subprocess.Popen(
                            command(str(number), self.task_jobs), stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        )  # fmt: skip
                    running[number] = (process, log)
                for number, (process, log) in list(running.items()):
                    if process.poll() is None:
                        continue
                    del running[number]
                    if process.returncode == 0:
                        done += 1
                    else:
                        failures.append(TaskFailure(number, last_line(log, process.returncode)))
                meter.update(done, len(running), len(failures))
                time.sleep(0.05)
        finally:
            for process, _ in running.values():  # the coordinator stopped: so do its tasks
                process.kill()
                process.wait()
        meter.update(done, 0, len(failures), final=True)
        return failures


@dataclass(frozen=True)
class SlurmArray:
    """Shard tasks as the elements of a SLURM array, then a merge job (``afterany``).

    Parameters
    ----------
    jobs : int or None
        Elements running at once (``--array=...%jobs``); None: as SLURM schedules them.
    task_jobs : int
        CPUs of each element (``--cpus-per-task``), its record workers.
    mem : str or None
        Memory of each element (``--mem``); None: from the plan's estimate of a record's
        peak times ``task_jobs``, plus 1 GiB for the process.
    sbatch : tuple of str
        Other sbatch options, as on the command line (``--partition=short``,
        ``--time=2:00:00``, ``--account=...``); given to the array and the merge job.
    max_array_size : int or None
        Elements per array; None: the cluster's ``MaxArraySize`` (``scontrol show config``).
    poll : float
        Seconds between two looks at the jobs' states.
    """

    jobs: int | None = None
    task_jobs: int = 1
    mem: str | None = None
    sbatch: tuple[str, ...] = ()
    max_array_size: int | None = None
    poll: float = 2.0

    name: ClassVar[str] = "slurm-array"
    merges: ClassVar[bool] = True
    groups: ClassVar[bool] = True

    def __post_init__(self) -> None:
        sbatch = self.sbatch
        if isinstance(sbatch, str):
            sbatch = tuple(shlex.split(sbatch))
        object.__setattr__(self, "sbatch", tuple(str(option) for option in sbatch))
        if self.mem is not None:
            parse_bytes(self.mem)  # a bad size fails here, with its value
        if self.task_jobs < 1:
            raise ValueError(f"task_jobs must be 1 or more, got {self.task_jobs}")

    def to_dict(self) -> dict:
        return {
            "executor": self.name, "jobs": self.jobs, "task_jobs": self.task_jobs,
            "mem": self.mem, "sbatch": list(self.sbatch),
            "max_array_size": self.max_array_size,
        }  # fmt: skip

    def check(self, folder: Path) -> None:
        """One clear error before anything is submitted: SLURM's commands missing, or
        sbatch refusing the options (tried with ``--test-only``, which submits nothing)."""
        for command in ("sbatch", "sacct", "scontrol", "sinfo", "squeue"):
            if shutil.which(command) is None:
                raise NishardError(
                    f"no {command} on PATH: the slurm-array executor submits with sbatch and "
                    "watches with sacct; build on a machine that submits to the cluster (a "
                    "login node)"
                )
        local = next((p for p in NODE_LOCAL if Path(folder).resolve().is_relative_to(p)), None)
        if local is not None and _nodes() > 1:
            raise NishardError(
                f"{folder} is under {local}, which each node of a cluster has of its own: the "
                "array's elements would see neither the saved work order nor each other's "
                "shards; build into a folder every node sees (project or scratch space)"
            )
        test = ["sbatch", "--test-only", *self._options(1), "--wrap", "true"]
        answer = _run(test)
        if answer.returncode != 0:
            raise NishardError(f"sbatch refuses the options {shlex.join(self._options(1))}: "
                               f"{_reason(answer)}")  # fmt: skip

    def run(self, numbers: Sequence[int], command: TaskCommand, home: Path,
            progress: bool = True, merge: Sequence[str] = (), label: str = "nishard",
            peak: int | None = None) -> list[TaskFailure]:  # fmt: skip
        """Submit the tasks ``numbers`` as arrays and ``merge`` as a job after them; wait
        until the merge job ended; the tasks that failed, with SLURM's reason."""
        queued = _run(["squeue", "-h", "-n", f"{label},{label}-merge", "-o", "%i"]).stdout.split()
        if queued:
            # A killed coordinator's jobs live on: submitting again would run their
            # tasks twice at once.
            raise NishardError(
                f"jobs {', '.join(sorted(set(queued)))} of this build are still queued or "
                "running; wait for them (their merge job completes the build) or scancel "
                "them, then run the build again"
            )
        where = home / "slurm"
        where.mkdir(parents=True, exist_ok=True)
        script = where / "task.sh"
        words = " ".join(shlex.quote(w) for w in command("$task", self.task_jobs))
        script.write_text(
            "#!/bin/bash\nset -euo pipefail\n"
            'task=$(( SLURM_ARRAY_TASK_ID + ${NISHARD_TASK_OFFSET:-0} ))\n'
            f"exec {words.replace(shlex.quote('$task'), '$task')}\n"
        )  # fmt: skip
        memory = self._memory(peak)
        size = self.max_array_size or max_array_size()
        elements: dict[str, dict[int, int]] = {}  # job id: array index -> task
        for offset, chunk in chunks(numbers, size):
            options = [*self._options(memory), f"--job-name={label}",
                       f"--output={where}/task-%A_%a.log",
                       f"--array={array_spec([n - offset for n in chunk], self.jobs)}",
                       f"--export=ALL,NISHARD_TASK_OFFSET={offset}"]  # fmt: skip
            job = _submit([*options, str(script)])
            elements[job] = {n - offset: n for n in chunk}
        depend = ":".join(elements) or None
        merge_options = [*self.sbatch, f"--job-name={label}-merge",
                         f"--output={where}/merge-%j.log"]  # fmt: skip
        if depend:
            merge_options.append(f"--dependency=afterany:{depend}")
        merging = _submit([*merge_options, "--wrap", shlex.join(merge)])
        if progress:
            say(f"slurm-array: submitted {len(numbers)} tasks as {len(elements)} array "
                  f"job(s) {', '.join(elements) or '-'} ({format_bytes(memory)} each), merge "
                  f"job {merging}; logs in {where}")  # fmt: skip
        return self._watch(elements, merging, len(numbers), progress, where)

    def _options(self, memory: int) -> list[str]:
        options = [f"--cpus-per-task={self.task_jobs}", f"--mem={max(1, memory >> 20)}M"]
        return [*options, *self.sbatch]

    def _memory(self, peak: int | None) -> int:
        if self.mem is not None:
            return parse_bytes(self.mem)
        return (peak or 0) * self.task_jobs + (1 << 30)

    def _watch(self, elements: dict[str, dict[int, int]], merging: str, total: int,
               progress: bool, where: Path) -> list[TaskFailure]:  # fmt: skip
        meter = Progress(total, "slurm-array", progress)
        settled = None  # when the merge job ended
        while True:
            states = job_states([*elements, merging])
            tasks = _element_states(elements, states)
            done = sum(state == "COMPLETED" for state in tasks.values())
            running = sum(state == "RUNNING" for state in tasks.values())
            failed = sum(state.split()[0] in FAILED for state in tasks.values())
            meter.update(done, running, failed)
            merge_state = states.get(merging, "PENDING")
            if merge_state.split()[0] not in ACTIVE:
                # The merge ran after every element (afterany), but the accounting
                # database may not list an element's end yet: ask again for a while.
                settled = settled or time.monotonic()
                pending = any(state.split()[0] in ACTIVE for state in tasks.values())
                if not pending or time.monotonic() - settled > ACCOUNTING_LAG:
                    break
            time.sleep(self.poll)
        meter.update(done, 0, failed, final=True)
        logs = {
            task: where / f"task-{job}_{index}.log"
            for job, by_index in elements.items()
            for index, task in by_index.items()
        }
        failures = [TaskFailure(task, _with_log(state, logs[task]))
                    for task, state in sorted(tasks.items()) if state != "COMPLETED"]  # fmt: skip
        if merge_state != "COMPLETED" and not failures:
            logs = sorted(where.glob(f"merge-{merging}.log"))
            why = last_line(logs[0], 1) if logs else merge_state
            raise NishardError(f"the merge job {merging} ended {merge_state}: {why}")
        return failures


def _element_states(elements: dict[str, dict[int, int]], states: dict[str, str]) -> dict[int, str]:
    """Each task's state, from sacct's states of the array elements that ran it."""
    return {
        task: states.get(f"{job}_{index}", "PENDING")
        for job, by_index in elements.items()
        for index, task in by_index.items()
    }


def chunks(numbers: Sequence[int], size: int) -> list[tuple[int, list[int]]]:
    """The task numbers in arrays of indices below ``size`` (SLURM's MaxArraySize): each
    chunk with the offset its indices are counted from."""
    out: list[tuple[int, list[int]]] = []
    for number in sorted(numbers):
        if not out or number - out[-1][0] >= size:
            out.append((number, []))
        out[-1][1].append(number)
    return out


def array_spec(indices: Sequence[int], jobs: int | None = None) -> str:
    """``0-3,7,9-10%2``: sorted indices as sbatch's ``--array`` ranges."""
    parts: list[str] = []
    ordered = sorted(indices)
    start = previous = ordered[0]
    for index in [*ordered[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    return ",".join(parts) + ("" if jobs is None else f"%{jobs}")


def max_array_size() -> int:
    """The cluster's ``MaxArraySize`` (indices run below it); SLURM's default, 1001, when
    ``scontrol`` does not say."""
    answer = _run(["scontrol", "show", "config"])
    for line in answer.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return 1001


def job_states(jobs: Sequence[str]) -> dict[str, str]:
    """sacct's state of each job and array element (``123_4``) of ``jobs``."""
    answer = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(jobs)])
    states = {}
    for line in answer.stdout.splitlines():
        job, _, state = line.partition("|")
        head, _, indices = job.partition("_[")
        if not indices:
            states[job] = state.strip()
            continue
        # Elements that never started are listed together: 12_[0-3,7%2]
        for part in indices.rstrip("]").split("%")[0].split(","):
            first, _, last = part.partition("-")
            if first.isdigit():
                for index in range(int(first), int(last or first) + 1):
                    states[f"{head}_{index}"] = state.strip()
    return states


def _nodes() -> int:
    """The cluster's number of nodes, as sinfo lists them."""
    return len(set(_run(["sinfo", "-h", "-N", "-o", "%N"]).stdout.split()))


def _submit(options: list[str]) -> str:
    answer = _run(["sbatch", "--parsable", *options])
    if answer.returncode != 0:
        raise NishardError(f"sbatch refused the job: {_reason(answer)}")
    return answer.stdout.strip().split(";")[0]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NishardError(f"{argv[0]} did not answer: {err}") from None


def _reason(answer: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (answer.stderr + answer.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {answer.returncode}"


def _with_log(state: str, log: Path) -> str:
    """SLURM's state of a failed element, with the last line its task wrote (its error)."""
    if not log.is_file():  # cancelled before it started
        return state
    return f"{state} ({last_line(log, 1)})"


def last_line(log: Path, code: int) -> str:
    """The last non-empty line a task wrote (its error), else its exit status."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        lines = []
    lines = [line for line in lines if line]
    return lines[-1] if lines else f"exit status {code}"


def runs_groups(executor: object) -> bool:
    """Whether ``executor`` runs shard tasks (each group a task of its own) rather than
    records for one writer: ``tasks``, ``slurm-array``, ``pydra`` with ``per="group"``."""
    return bool(getattr(executor, "groups", False))
