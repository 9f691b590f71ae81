"""Executors: run a plan over records, yielding outcomes in record order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from ..records.table import Record
from .plan import Outcome, Plan


@dataclass(frozen=True)
class Serial:
    """One record after another in this process: the reference, and the easiest to debug."""

    name: ClassVar[str] = "serial"

    def to_dict(self) -> dict:
        return {"executor": self.name}

    def map(self, plan: Plan, records: Iterable[Record]) -> Iterator[Outcome]:
        for record in records:
            yield plan.run(record)


@dataclass(frozen=True)
class Local:
    """Records in parallel on local processes (joblib/loky), outcomes in record order.

    Parameters
    ----------
    n_jobs : int
        Worker processes; -1 uses every core.
    """

    n_jobs: int = -1

    name: ClassVar[str] = "local"

    def to_dict(self) -> dict:
        return {"executor": self.name, "jobs": self.n_jobs}

    def map(self, plan: Plan, records: Iterable[Record]) -> Iterator[Outcome]:
        from joblib import Parallel, delayed

        # Ordered generator with a small dispatch window: outcomes hold whole arrays,
        # so at most a few of them wait in memory for the writer.
        parallel = Parallel(n_jobs=self.n_jobs, return_as="generator", pre_dispatch="n_jobs")
        yield from parallel(delayed(plan.run)(record) for record in records)


#: Executors by the name a YAML spec or the command line gives them.
EXECUTORS: dict[str, type] = {Serial.name: Serial, Local.name: Local}


def serial() -> Serial:
    """Run records one after another; see :class:`Serial`."""
    return Serial()


def local(n_jobs: int = -1) -> Local:
    """Run records on local processes; see :class:`Local`."""
    return Local(n_jobs=n_jobs)
