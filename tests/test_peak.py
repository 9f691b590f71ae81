"""The process's resident memory and its resettable high-water mark."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from nishard import peak
from nishard.learn import memory
from nishard.workflow import usage

MIB = 1 << 20
BLOCK = 200 * MIB
SLACK = 4 * MIB

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM, clear_refs")


def _touch(nbytes: int) -> np.ndarray:
    """An array whose every page is written, so that it is resident (not just reserved)."""
    block = np.empty(nbytes, dtype=np.uint8)
    block.fill(1)
    return block


@linux
def test_the_peak_rises_by_a_touched_block_and_falls_after_a_reset():
    assert peak.reset_peak()
    before = peak.peak_rss()
    block = _touch(BLOCK)
    during = peak.peak_rss()
    # The kernel syncs its per-thread RSS counters lazily (in 64-page batches per thread),
    # so each figure is exact to a few pages, not to the byte: CI once saw 32 pages short.
    assert during - before >= BLOCK - SLACK
    assert peak.current_rss() >= BLOCK - SLACK
    del block
    # The mark stays where it was until reset, then follows resident memory down.
    assert peak.peak_rss() >= during - SLACK
    assert peak.reset_peak()
    after = peak.peak_rss()
    assert after <= during - BLOCK // 2
    assert after >= peak.current_rss() - SLACK


@linux
def test_the_peak_is_never_below_resident_memory():
    block = _touch(64 * MIB)
    assert peak.peak_rss() >= peak.current_rss() - SLACK
    del block


def test_without_proc_the_peak_falls_back_to_ru_maxrss(monkeypatch):
    """Where /proc cannot be read (macOS), the lifetime peak is an upper bound and a reset
    says it did nothing."""

    def no_proc(*args, **kwargs):
        raise OSError("no /proc")

    monkeypatch.setattr("builtins.open", no_proc)
    assert peak.current_rss() == 0
    assert peak.peak_rss() > 0
    assert peak.reset_peak() is False


def test_the_build_and_the_learners_measure_with_the_same_functions():
    assert usage.peak_rss is memory.peak_rss is peak.peak_rss
    assert usage.reset_peak is memory.reset_peak is peak.reset_peak
    assert memory.current_rss is peak.current_rss
