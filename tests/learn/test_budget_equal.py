"""Beyond-RAM fits equal in-RAM fits: under a budget too small to keep every subject's
rows (MIGP's group buffer holds a fraction of them), CanICA and DictLearning give the
maps of the fit that holds everything, in the same order (by explained variance).

DictLearning makes its full pass over the voxels here (early stopping off): nilearn's
early stop ends learning after ~110 mini-batches, where two fits whose group subspaces
differ by rounding can settle two maps differently (0.97, or 0.87 for another order of the
same initial atoms), small budget or not."""

from __future__ import annotations

import numpy as np
import pytest

from nishard.learn import CanICA, DictLearning, match_components
from tests.learn.test_memory import big_shards  # noqa: F401 (a fixture: 20 runs, 320 MB)


@pytest.mark.slow
@pytest.mark.parametrize("learner, budget", [(CanICA, "40MB"), (DictLearning, "48MB")])
def test_a_small_budget_gives_the_maps_of_a_budget_that_holds_everything(
    big_shards,  # noqa: F811
    learner,
    budget,
):
    folder, _ = big_shards
    options = {} if learner is CanICA else {"tol": 0, "max_no_improvement": None}
    everything = learner(n_components=6, random_state=0, **options).fit(folder)
    small = learner(n_components=6, random_state=0, memory_budget=budget, **options).fit(folder)
    assert everything.group_exact_ and not small.group_exact_
    # The buffer kept at most half of the 120 rows the subjects give.
    assert small.memory_plan_.capacity <= 60 < 120 == everything.memory_plan_.capacity
    match = match_components(small.components_, everything.components_)
    assert match.worst >= 0.99, match.correlation
    assert list(match.component) == list(match.reference) == list(range(6))  # same places
    np.testing.assert_allclose(small.explained_variance_, everything.explained_variance_,
                               rtol=0.02)  # fmt: skip
    assert np.all(np.diff(small.explained_variance_) <= 0)  # sorted, decreasing
