"""What records cost the processes that ran them, and the peak the build's summary reports."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import nishard as ns
from nishard.workflow.pydra import Pydra
from nishard.workflow.usage import Meter, Tally, Usage, peak_rss
from tests.helpers import TINY_RES
from tests.workflow.dags import Hog

MIB = 1 << 20
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def test_a_meter_measures_the_peak_and_cpu_of_its_block():
    with Meter() as meter:
        block = np.ones(300 * MIB, dtype=np.uint8)
        block.sum()
        del block
    usage = meter.usage
    assert usage.pid == os.getpid()
    assert usage.peak >= 300 * MIB
    assert usage.cpu_s > 0 and usage.wall_s > 0
    assert Usage.from_dict(usage.to_dict()) == usage


def test_a_tally_keeps_each_workers_largest_peak():
    tally = Tally()
    for pid, peak in [(1, 10), (2, 50), (1, 30)]:
        tally.add(Usage(pid, peak, cpu_s=1.0, wall_s=1.0))
    tally.add(None)  # a record run in the writer's own process
    assert tally.peaks == {1: 30, 2: 50} and tally.cpu_s == {1: 2.0, 2: 1.0} == tally.wall_s
    huge = Usage(3, peak_rss() + (1 << 40), cpu_s=0.0, wall_s=0.0)
    tally.add(huge)
    assert tally.largest() == (3, huge.peak)
    assert "(worker process 3; the writer's" in tally.describe()


@pytest.mark.slow
@pytest.mark.parametrize(
    "executor", [ns.executors.local(2), Pydra(worker="cf", jobs=2)], ids=["local", "pydra"]
)
def test_the_summary_reports_a_workers_peak(executor, tiny, tmp_path, capsys):
    """Workers stay alive through the build, so the writer's RUSAGE_CHILDREN never sees
    them: each must report its own peak."""
    # More than this process ever held: only a worker's own report can show it.
    nbytes = peak_rss() + 256 * MIB
    records = ns.locate(tiny, schema=ns.schemas.fmriprep(res=TINY_RES))
    plan = ns.assemble([ns.t.Mask(), Hog(nbytes)])
    ns.write(records, plan, tmp_path / "out", executor=executor, progress=True)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    found = re.search(r"peak memory ([0-9.]+) (\w+) \(worker process (\d+); the writer's", line)
    assert found, line
    assert float(found.group(1)) * _UNITS[found.group(2)] >= nbytes
    assert int(found.group(3)) != os.getpid()
