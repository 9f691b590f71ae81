"""Running statistics: NumPy's figures, mergeable across workers, equal to the writer's."""

from __future__ import annotations

import numpy as np

from nishard import stream
from nishard.learn import RunningStats, running_stats


def test_running_stats_are_numpys_and_merge_exactly():
    rng = np.random.default_rng(0)
    samples = [rng.normal(3, 2, size=(n, 5)) for n in (7, 1, 30, 12)]
    whole = np.concatenate(samples)
    one = RunningStats()
    for sample in samples:
        one.update(sample)
    left, right = RunningStats(), RunningStats()
    for sample in samples[:2]:
        left.update(sample)
    for sample in samples[2:]:
        right.update(sample)
    merged = left.merge(right)
    for stats in (one, merged):
        assert stats.count == 50 and stats.samples == 4
        np.testing.assert_allclose(stats.mean, whole.mean(axis=0))
        np.testing.assert_allclose(stats.variance(), whole.var(axis=0))
        np.testing.assert_allclose(stats.variance(ddof=1), whole.var(axis=0, ddof=1))
        np.testing.assert_array_equal(stats.minimum, whole.min(axis=0))
        np.testing.assert_array_equal(stats.maximum, whole.max(axis=0))
    assert RunningStats().merge(one).summary() == one.summary()


def test_running_stats_of_shards_equal_the_writers_side_file(networks):
    stats = running_stats(networks.shards, keys=["bold"])["bold"]
    with np.load(networks.shards / "all.stats.npz") as side:
        np.testing.assert_allclose(stats.mean, side["bold.mean"], atol=1e-12)
        np.testing.assert_allclose(stats.std, side["bold.std"], rtol=1e-12)
    whole = np.concatenate(
        [s["bold"] for s in stream.open(networks.shards, "*").keys("bold").arrays()]
    )
    np.testing.assert_array_equal(stats.maximum, whole.max(axis=0))
    # Two folders in two worker processes, merged: the statistics of both.
    both = running_stats([networks.shards, networks.shards], keys=["bold"], jobs=2)["bold"]
    assert both.count == 2 * stats.count
    np.testing.assert_allclose(both.mean, stats.mean, atol=1e-12)
    np.testing.assert_allclose(both.variance(), stats.variance(), rtol=1e-10)
