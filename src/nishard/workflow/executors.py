"""Executors: run a plan over records, yielding outcomes in record order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol

from ..records.table import Record
from .cache import NodeCache
from .handoff import handoff_folder, receive, share
from .plan import Outcome, Plan
from .pydra import Pydra


class Executor(Protocol):
    """What ``write`` needs of an executor: outcomes of a plan, in record order."""

    name: ClassVar[str]

    def to_dict(self) -> dict: ...

    def map(
        self, plan: Plan, records: Iterable[Record], cache: NodeCache | None = None
    ) -> Iterator[Outcome]: ...


@dataclass(frozen=True)
class Serial:
    """One record after another in this process: the reference, and the easiest to debug."""

    name: ClassVar[str] = "serial"

    def to_dict(self) -> dict:
        return {"executor": self.name}

    def map(
        self, plan: Plan, records: Iterable[Record], cache: NodeCache | None = None
    ) -> Iterator[Outcome]:
        for record in records:
            yield plan.run(record, cache)


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
        self, plan: Plan, records: Iterable[Record], cache: NodeCache | None = None
    ) -> Iterator[Outcome]:
        from joblib import Parallel, delayed

        # Ordered generator with a small dispatch window: outcomes hold whole arrays,
        # so at most a few of them wait in memory for the writer.
        parallel = Parallel(n_jobs=self.jobs, return_as="generator", pre_dispatch="n_jobs")
        with handoff_folder() as folder:
            tasks = (delayed(_run_and_share)(plan, record, cache, folder) for record in records)
            for outcome in parallel(tasks):
                yield receive(outcome)


def _run_and_share(plan: Plan, record: Record, cache: NodeCache | None, folder) -> Outcome:
    """In a worker: run the plan and leave large products in the hand-off folder."""
    return share(plan.run(record, cache), folder)


#: Executors by the name a YAML spec or the command line gives them.
EXECUTORS: dict[str, type] = {Serial.name: Serial, Local.name: Local, Pydra.name: Pydra}
