"""Memory: the measured peak of a fit, and the plan that keeps a fit inside a budget.

**Measured.** :class:`PeakMemory` resets the kernel's high-water mark of the process's
resident memory (``/proc/self/clear_refs``, Linux) when a fit starts and reads it
(``VmHWM``) when it ends: the true peak, whatever allocated it (NumPy, BLAS, the
decoders), not an estimate. Worker threads share the process, so their memory is in it.

**Planned.** A budget is the memory a fit may add to the process's resident memory when
it starts; the interpreter and the imported libraries (about 200 MB with nilearn and
scikit-learn loaded) are already there and are not counted. :func:`plan_memory` sizes
what the budget governs from the data's shape: how many subjects are reduced at once
(each holds its array), the rows of the group PCA buffer (MIGP), and it refuses a
budget that cannot hold one sample or the final unmixing. The number of subjects does
not enter: memory is set by the budget and the size of one sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..peak import current_rss, peak_rss, reset_peak
from ..units import format_bytes, parse_bytes
from .errors import LearnError

#: Fraction of the budget that the plan hands out; the rest absorbs allocator slack
#: (freed blocks not yet returned to the system, Python objects, BLAS buffers).
SAFETY = 0.8

#: The largest group buffer: its eigendecomposition costs ``capacity**3`` and each
#: reduction ``capacity**2 * voxels``; MIGP needs no more to be accurate.
MAX_CAPACITY = 4096


class PeakMemory:
    """Measure a block's peak resident memory: ``with PeakMemory() as m: ...; m.added``.

    Attributes
    ----------
    baseline : int
        Resident bytes when the block started.
    peak : int
        Peak resident bytes during the block (the process's peak where the kernel cannot
        reset it: then an upper bound).
    added : int
        ``peak - baseline``: what the block added, the figure a budget bounds.
    exact : bool
        Whether the high-water mark was reset at the start.
    """

    def __enter__(self) -> PeakMemory:
        self.exact = reset_peak()
        self.baseline = current_rss()
        self.peak = self.added = 0
        return self

    def __exit__(self, *exc) -> None:
        self.peak = max(peak_rss(), self.baseline)
        self.added = self.peak - self.baseline

    def to_dict(self) -> dict:
        return {
            "baseline": self.baseline,
            "peak": self.peak,
            "added": self.added,
            "exact": self.exact,
        }


@dataclass(frozen=True)
class MemoryPlan:
    """How a fit spends its budget.

    Attributes
    ----------
    budget : int or None
        Bytes (None: unbounded).
    jobs : int
        Subjects reduced at once.
    read_ahead : bool
        Whether the next sample is read while the last is reduced (then one sample more
        is held: the budget allowed it beside the smallest group buffer).
    capacity, keep : int
        Rows of each group buffer, and rows kept when one is full (MIGP).
    estimate : int
        Bytes the plan expects at its peak.
    """

    budget: int | None
    jobs: int
    read_ahead: bool
    capacity: int
    keep: int
    estimate: int

    def to_dict(self) -> dict:
        return asdict(self)


def parse_budget(memory: int | str | None) -> int | None:
    """``"1GiB"`` -> bytes; None stays None."""
    if memory is None:
        return None
    try:
        return parse_bytes(memory)
    except ValueError as err:
        raise LearnError(f"memory budget: {err}") from err


def reduction_workspace(
    n_features: int, n_timepoints: int, n_rows: int, method: str = "auto"
) -> int:
    """Bytes one subject reduction needs besides the subject's array (float32 work)."""
    from .pca import reduction_method

    if method == "auto":
        method = reduction_method(n_timepoints, n_rows)
    if method == "gram":  # the Gram matrix, its eigenvectors, the rows and a temporary
        return 2 * n_rows * n_features * 4 + 3 * n_timepoints**2 * 8
    return 6 * (n_rows + 10) * n_features * 4  # range finder, power iterations, B


def unmixing_bytes(n_features: int, n_components: int) -> int:
    """Bytes of the group components, their whitening, the maps and their threshold."""
    return 7 * n_components * n_features * 8 + 3 * (4 << 20)


def plan_memory(
    budget: int | None,
    *,
    n_features: int,
    sample_bytes: int,
    n_timepoints: int,
    n_rows: int,
    n_components: int,
    jobs: int = 1,
    accumulators: int = 1,
    total_rows: int | None = None,
    final_bytes: int = 0,
    method: str = "auto",
) -> MemoryPlan:
    """Size a fit to a budget.

    Parameters
    ----------
    budget : int or None
        Bytes the fit may add; None: no bound (every row is kept: exact group PCA).
    n_features : int
        Voxels (features) per sample.
    sample_bytes : int
        The largest sample's array, as streamed.
    n_timepoints : int
        The largest sample's time points.
    n_rows : int
        Rows of each subject reduction.
    n_components : int
        Group components.
    jobs : int
        Subjects to reduce at once, at most.
    accumulators : int
        Group buffers (CanICA 1; dictionary learning 2: normalised and raw rows).
    total_rows : int, optional
        Rows all subjects give, when known: no buffer larger than that.
    final_bytes : int
        Memory of the step after the group PCA besides the unmixing (dictionary learning).
    method : {"auto", "gram", "randomized"}
        How subjects are reduced.

    Returns
    -------
    MemoryPlan

    Raises
    ------
    LearnError
        When the budget cannot hold the reduction of one sample with a minimal group
        buffer, or the final unmixing.
    """
    row = n_features * 4
    work = reduction_workspace(n_features, n_timepoints, n_rows, method)
    most = (
        MAX_CAPACITY
        if total_rows is None
        else max(min(MAX_CAPACITY, total_rows), n_rows + n_components)
    )
    least = n_components + n_rows

    def stream(j: int, ahead: bool) -> int:
        # Each worker holds its sample; reading ahead, one more is being read (the stream
        # reads each array straight into its own memory, the next only when asked).
        return (j + ahead) * sample_bytes

    def buffers(c: int) -> int:
        return accumulators * (c * row + 4 * c * c * 8)

    def phase1(j: int, ahead: bool, c: int) -> int:
        return stream(j, ahead) + j * (work + n_rows * row) + buffers(c) + (4 << 20)

    final = unmixing_bytes(n_features, n_components) + final_bytes
    if budget is None:
        capacity = most
        keep = max(n_components, min(capacity - n_rows, capacity // 2))
        jobs = max(1, jobs)
        estimate = max(phase1(jobs, True, capacity), final)
        return MemoryPlan(None, jobs, True, capacity, keep, estimate)
    usable = int(budget * SAFETY)
    need = phase1(1, False, least)
    if need > usable or final > usable:
        raise LearnError(
            f"memory budget {format_bytes(budget)} too small: one sample of "
            f"{format_bytes(sample_bytes)} with its reduction needs about "
            f"{format_bytes(need / SAFETY)}, the unmixing of {n_components} components of "
            f"{n_features} features about {format_bytes(final / SAFETY)}; give at least "
            f"{format_bytes(max(need, final) / SAFETY)}"
        )
    # As many workers as fit beside a minimal buffer, reading ahead; reading ahead beats
    # a larger buffer: it hides the read behind the reduction, where a larger buffer only
    # makes MIGP's reductions rarer (and each one dearer).
    chosen, ahead = 1, False
    for j in range(max(1, jobs), 0, -1):
        if phase1(j, True, least) <= usable:
            chosen, ahead = j, True
            break
    capacity = least
    low, high = least, max(least, most)
    while low <= high:  # the largest buffer that fits
        mid = (low + high) // 2
        if phase1(chosen, ahead, mid) <= usable:
            capacity, low = mid, mid + 1
        else:
            high = mid - 1
    keep = max(n_components, min(capacity - n_rows, capacity // 2))
    estimate = max(phase1(chosen, ahead, capacity), final)
    return MemoryPlan(budget, chosen, ahead, capacity, keep, estimate)
