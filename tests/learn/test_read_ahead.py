"""Reading the next sample while the last is reduced: order, memory, errors, early exit."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import numpy as np
import pytest

from nishard.learn import CanICA, plan_memory, subjects
from nishard.learn.subjects import read_ahead

#: The stand-ins of samples alive now.
ALIVE: weakref.WeakSet = weakref.WeakSet()


class Sample:
    """Stands for a sample's array."""

    def __init__(self, number: int) -> None:
        self.number = number
        ALIVE.add(self)


def samples(count: int, log: list, stop_at: int | None = None):
    try:
        for number in range(count):
            if number == stop_at:
                raise OSError(f"sample {number}: truncated shard")
            log.append(("read", number, threading.current_thread().name))
            yield Sample(number)
    finally:
        log.append(("closed",))


def test_items_come_in_order_and_memory_holds_two_at_most():
    log: list = []
    peak = 0
    numbers = []
    for sample in read_ahead(samples(8, log)):
        time.sleep(0.02)  # the reduction: the next sample is read meanwhile
        gc.collect()
        peak = max(peak, len(ALIVE))
        numbers.append(sample.number)
        del sample
    assert numbers == list(range(8))
    # The one being worked on and the one read ahead: never a third.
    assert peak == 2
    reads = [entry for entry in log if entry[0] == "read"]
    assert all(name.startswith("nishard-read-ahead") for _, _, name in reads)
    assert log[-1] == ("closed",)


def test_an_error_reading_ahead_reaches_the_caller_after_the_samples_before_it():
    log: list = []
    got = []
    with pytest.raises(OSError, match="sample 3: truncated shard"):
        for sample in read_ahead(samples(8, log, stop_at=3)):
            got.append(sample.number)
    assert got == [0, 1, 2] and log[-1] == ("closed",)


def test_leaving_early_stops_reading_and_closes_the_source():
    log: list = []
    stream = read_ahead(samples(100, log))
    first = next(stream)
    assert first.number == 0
    stream.close()
    reads = [entry[1] for entry in log if entry[0] == "read"]
    # The read of sample 1 is cancelled if it has not started, else waited for.
    assert reads in ([0], [0, 1]) and log[-1] == ("closed",)


def test_the_plan_reads_ahead_only_where_the_budget_holds_two_samples():
    shape = {"n_features": 200_000, "n_timepoints": 600, "n_rows": 20, "n_components": 20}
    sample = 600 * 200_000 * 4  # 480 MB
    roomy = plan_memory(2**31, sample_bytes=sample, **shape)
    assert roomy.read_ahead and roomy.jobs == 1
    assert roomy.estimate >= 2 * sample and roomy.estimate <= 2**31 * 0.8
    tight = plan_memory(2**30, sample_bytes=sample, **shape)  # one sample fits, not two
    assert not tight.read_ahead and tight.estimate < 2 * sample
    assert tight.capacity > 20  # the room two samples would take goes to the buffer
    assert plan_memory(None, sample_bytes=sample, **shape).read_ahead


def test_reading_ahead_changes_nothing_in_the_fit(networks, monkeypatch):
    ahead = CanICA(n_components=10, memory_budget="1GiB", score=False).fit(networks.shards)
    assert ahead.memory_plan_.read_ahead
    read = []
    monkeypatch.setattr(subjects, "read_ahead", lambda items: read.append(1) or iter(items))
    serial = CanICA(n_components=10, memory_budget="1GiB", score=False).fit(networks.shards)
    assert read == [1]  # the fit went through the serial reader this time
    np.testing.assert_array_equal(ahead.components_, serial.components_)
