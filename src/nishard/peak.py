"""Resident memory of this process: now, and its high-water mark, which can be reset.

On Linux the kernel keeps the high-water mark of a process's resident memory (``VmHWM``
in ``/proc/self/status``) and resets it to the current resident memory when ``5`` is
written to ``/proc/self/clear_refs``. A block's true peak, whatever allocated it (NumPy,
BLAS, a decoder, a worker thread), is then read after resetting the mark when the block
starts. Where the kernel offers neither, the peak is the process's lifetime
``ru_maxrss``: an upper bound.

Both a build's workers (:mod:`nishard.workflow.usage`, the cost of each record) and the
learners (:mod:`nishard.learn.memory`, the peak a budget bounds) measure with this module.
"""

from __future__ import annotations

import resource
import sys


def _status(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes; None where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss() -> int:
    """Resident memory of this process now, in bytes (0 where unknown)."""
    return _status("VmRSS") or 0


def peak_rss() -> int:
    """Peak resident memory of this process in bytes (since the last :func:`reset_peak`)."""
    peak = _status("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def reset_peak() -> bool:
    """Reset the high-water mark to the current resident memory; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False
