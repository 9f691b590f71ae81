"""What running a record cost the process that ran it: peak resident memory and CPU time.

A worker process (loky, Pydra's ``cf``) lives through many records and is still alive when
the build ends, so the parent's ``RUSAGE_CHILDREN``, which counts only children that have
exited and been waited for, never sees it. Each worker therefore measures itself around
each record and sends a :class:`Usage` back with the record's outcome.

On Linux the kernel's high-water mark of resident memory (``VmHWM``) is reset when a
record starts (``/proc/self/clear_refs``), so a worker's peak is that of the record, not of
whatever the process ran before (a reused loky worker may have run another build).
Elsewhere the peak is the process's lifetime ``ru_maxrss``: an upper bound.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field

from ..peak import peak_rss, reset_peak


@dataclass(frozen=True)
class Usage:
    """The cost of one record (or one node) in the process that ran it.

    Attributes
    ----------
    pid : int
        The process.
    peak : int
        Peak resident memory of the process while it ran the record, in bytes.
    cpu_s : float
        CPU time (user + system, every thread of the process) the record took.
    wall_s : float
        Wall-clock time the record took.
    """

    pid: int
    peak: int
    cpu_s: float
    wall_s: float

    def to_dict(self) -> dict:
        return {"pid": self.pid, "peak": self.peak, "cpu_s": self.cpu_s, "wall_s": self.wall_s}

    @classmethod
    def from_dict(cls, data: dict) -> Usage:
        return cls(int(data["pid"]), int(data["peak"]), float(data["cpu_s"]),
                   float(data["wall_s"]))  # fmt: skip

    def combine(self, other: Usage | None) -> Usage:
        """Both costs as one (a record's nodes run as separate tasks): the larger peak,
        the summed times, the process of the larger peak."""
        if other is None:
            return self
        top = self if self.peak >= other.peak else other
        return Usage(top.pid, top.peak, self.cpu_s + other.cpu_s, self.wall_s + other.wall_s)


class Meter:
    """Measure a block: ``with Meter() as meter: ...``, then ``meter.usage``.

    Parameters
    ----------
    reset : bool
        Reset the process's high-water mark first, so that the peak is the block's. Only
        for a worker process: in the caller's process it would lose the peak of what ran
        before (which the build's summary reports too).
    """

    def __init__(self, reset: bool = True) -> None:
        self.reset = reset
        self.usage: Usage | None = None

    def __enter__(self) -> Meter:
        if self.reset:
            reset_peak()
        self._cpu = _cpu_s()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.usage = Usage(os.getpid(), peak_rss(), _cpu_s() - self._cpu,
                           time.perf_counter() - self._wall)  # fmt: skip


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Tally:
    """What a build's processes cost: each worker's largest peak and its CPU time.

    Attributes
    ----------
    peaks : dict of int to int
        Largest peak resident memory reported by each worker process, by pid.
    cpu_s : dict of int to float
        CPU seconds each worker process spent on records, by pid.
    wall_s : dict of int to float
        Wall-clock seconds each worker process spent on records, by pid: more than its
        CPU seconds when it waited (for the disk, or for a core another process held).
    """

    peaks: dict[int, int] = field(default_factory=dict)
    cpu_s: dict[int, float] = field(default_factory=dict)
    wall_s: dict[int, float] = field(default_factory=dict)

    def add(self, usage: Usage | None) -> None:
        """Count one record's usage (None: it ran in the writer's process)."""
        if usage is None:
            return
        self.peaks[usage.pid] = max(self.peaks.get(usage.pid, 0), usage.peak)
        self.cpu_s[usage.pid] = self.cpu_s.get(usage.pid, 0.0) + usage.cpu_s
        self.wall_s[usage.pid] = self.wall_s.get(usage.pid, 0.0) + usage.wall_s

    def largest(self) -> tuple[int, int]:
        """The largest peak of any process, this one included, and its pid."""
        pid, peak = os.getpid(), peak_rss()
        for worker, worker_peak in self.peaks.items():
            if worker_peak > peak:
                pid, peak = worker, worker_peak
        return pid, peak

    def describe(self) -> str:
        """``peak memory 1.20 GiB (worker 1234; the writer's 310 MiB)``."""
        from ..units import format_bytes

        pid, peak = self.largest()
        own = peak_rss()
        if pid == os.getpid():
            where = "this process" if not self.peaks else "the writer's process"
            return f"peak memory {format_bytes(peak)} ({where})"
        return (
            f"peak memory {format_bytes(peak)} (worker process {pid}; the writer's "
            f"{format_bytes(own)})"
        )
