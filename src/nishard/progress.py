"""Progress of long work: a bar on a terminal, plain lines in a log, nothing when quiet.

On a terminal, :func:`bar` is tqdm's bar. Elsewhere (a SLURM log, a CI log, ``2> file``)
tqdm's carriage-return frames pile up into one line of thousands of characters, so a
:class:`Lines` reporter prints one plain line every few seconds instead (count, rate,
time left) and one at the end. ``NISHARD_QUIET=1`` (``--quiet`` on the command line,
inherited by the processes a build starts) silences both, and :func:`say`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

#: Seconds between two lines of a :class:`Lines` reporter (``NISHARD_PROGRESS_EVERY``).
EVERY = 5.0


def quiet() -> bool:
    """Whether progress and summaries are silenced (``NISHARD_QUIET``)."""
    return os.environ.get("NISHARD_QUIET", "").lower() in ("1", "true", "yes")


def say(text: str) -> None:
    """A line of progress or summary on stderr, unless quiet."""
    if not quiet():
        print(text, file=sys.stderr, flush=True)


def bar(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    leave: bool = True,
    **options: Any,
) -> Any:
    """tqdm's bar on a terminal, :class:`Lines` otherwise; a silent one when ``disable``
    or quiet. Used as tqdm is: ``update``, ``set_postfix``, ``write``, ``close``,
    iteration, ``with``. ``options`` go to tqdm (``unit_scale``...); lines of bytes
    (``unit="B"``) count MiB."""
    from tqdm.auto import tqdm

    if disable or quiet():
        return Silent(iterable)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, **options)
    return Lines(iterable, total=total, desc=desc, unit=unit)


class Lines:
    """Progress as plain lines: ``build: 120/480 records (25 %), 3.1 records/s, about
    116 s left``, at most every :data:`EVERY` seconds, and a last line on close."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it") -> None:  # fmt: skip
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            self.total = len(iterable)  # type: ignore[arg-type]
        self.n = 0
        self.postfix = ""
        self.every = float(os.environ.get("NISHARD_PROGRESS_EVERY", EVERY))
        self._start = self._last = time.perf_counter()
        self._closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update()
        self.close()

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.perf_counter() - self._last >= self.every:
            self._line()

    def set_postfix(self, refresh: bool = True, **values: object) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def write(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._line(final=True)

    def _line(self, final: bool = False) -> None:
        now = time.perf_counter()
        self._last = now
        elapsed = now - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        scale, unit = (2**20, "MiB") if self.unit == "B" else (1, f"{self.unit}s")
        done, total = self.n / scale, (self.total or 0) / scale
        count = f"{done:.0f}/{total:.0f}" if self.total else f"{done:.0f}"
        share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        parts = [f"{self.desc}: {count} {unit}{share}", f"{rate / scale:.1f} {unit}/s"]
        if final:
            parts.append(f"{elapsed:.1f} s")
        elif self.total and rate > 0:
            parts.append(f"about {(self.total - self.n) / rate:.0f} s left")
        if self.postfix:
            parts.append(self.postfix)
        print(", ".join(parts), file=sys.stderr, flush=True)


class Silent(Lines):
    """A bar that says nothing, its ``write`` included."""

    def write(self, text: str) -> None:
        pass

    def _line(self, final: bool = False) -> None:
        pass
