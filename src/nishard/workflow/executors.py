"""Executors: run a plan over records, yielding outcomes in record order.

Besides the plan, ``map`` takes ``summarize``: a function of a record's products that the
executor runs where the products are made, in the worker, before they travel to the
writer. The writer uses it for each product's statistics, which would otherwise cost its
own process (the one that also writes every shard) a pass over every array. Whatever
runs where, the summaries are the same numbers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol

from ..records.table import Record
from ..registry import Registry
from ..threads import one_blas_thread
from .cache import NodeCache
from .handoff import handoff_folder, receive, share
from .plan import Outcome, Plan, Summarize
from .pydra import Pydra
from .task_runners import SlurmArray, Tasks
from .usage import Meter


class Executor(Protocol):
    """What ``write`` needs of an executor: outcomes of a plan, in record order."""

    name: ClassVar[str]

    def to_dict(self) -> dict: ...

    def map(
        self,
        plan: Plan,
        records: Iterable[Record],
        cache: NodeCache | None = None,
        summarize: Summarize | None = None,
    ) -> Iterator[Outcome]: ...


@dataclass(frozen=True)
class Serial:
    """One record after another in this process: the reference, and the easiest to debug."""

    name: ClassVar[str] = "serial"

    def to_dict(self) -> dict:
        return {"executor": self.name}

    def map(
        self,
        plan: Plan,
        records: Iterable[Record],
        cache: NodeCache | None = None,
        summarize: Summarize | None = None,
    ) -> Iterator[Outcome]:
        for record in records:
            yield summarized(plan.run(record, cache), summarize)


@dataclass(frozen=True)
class Local:
    """Records in parallel on local processes (joblib/loky), outcomes in record order.

    Large products come back through shared memory, not the result pipe
    (:mod:`.handoff`).

    Parameters
    ----------
    jobs : int
        Worker processes; -1 uses every core.
    """

    jobs: int = -1

    name: ClassVar[str] = "local"

    def to_dict(self) -> dict:
        return {"executor": self.name, "jobs": self.jobs}

    def map(
        self,
        plan: Plan,
        records: Iterable[Record],
        cache: NodeCache | None = None,
        summarize: Summarize | None = None,
    ) -> Iterator[Outcome]:
        from joblib import Parallel, delayed

        # Ordered generator with a small dispatch window: outcomes hold whole arrays,
        # so at most a few of them wait in memory for the writer.
        parallel = Parallel(n_jobs=self.jobs, return_as="generator", pre_dispatch="n_jobs")
        with handoff_folder() as folder:
            writer = os.getpid()
            tasks = (delayed(_run_and_share)(plan, record, cache, folder, summarize, writer)
                     for record in records)  # fmt: skip
            for outcome in parallel(tasks):
                yield receive(outcome)


def summarized(outcome: Outcome, summarize: Summarize | None) -> Outcome:
    """The outcome with the summaries of its products (unchanged without ``summarize``)."""
    if summarize is None or outcome.products is None:
        return outcome
    with one_blas_thread():  # the same numbers in the writer's process as in a worker
        return dataclasses.replace(outcome, summaries=summarize(outcome.products))


def _run_and_share(
    plan: Plan,
    record: Record,
    cache: NodeCache | None,
    folder,
    summarize: Summarize | None,
    writer: int,
) -> Outcome:
    """In a worker: run the plan, summarise the products and leave the large ones in the
    hand-off folder; the outcome says what it cost this process.

    ``writer``: the writer's process; with one job joblib runs the task there, and its
    peak must not be reset (the build's summary reports it).
    """
    with Meter(reset=os.getpid() != writer) as meter:
        outcome = share(summarized(plan.run(record, cache), summarize), folder)
    return dataclasses.replace(outcome, usage=meter.usage)


#: Executors by the name a YAML spec or the command line gives them: of records (serial,
#: local, pydra) and of shard tasks (tasks, slurm-array; :mod:`.task_runners`).
EXECUTORS: Registry = Registry(
    "executor", (Serial, Local, Pydra, Tasks, SlurmArray), key="executor"
)
