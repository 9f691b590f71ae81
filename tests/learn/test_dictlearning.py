"""Dictionary learning from shards: nilearn's DictLearning maps, from a bounded buffer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nishard import stream
from nishard.learn import DictLearning, match_components


@pytest.mark.slow
def test_nilearn_learns_the_same_maps(networks, truth_maps):
    from nilearn.decomposition import DictLearning as NilearnDictLearning

    ours = DictLearning(n_components=10, random_state=0).fit(networks.shards)
    assert ours.components_.shape == (10, 3666) and ours.n_steps_ > 0
    np.testing.assert_allclose(np.linalg.norm(ours.components_, axis=1), 1, atol=1e-5)
    mask = ours.space_.mask
    images = [
        mask.to_image(s["bold"]) for s in stream.open(networks.shards, "*").keys("bold").arrays()
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = NilearnDictLearning(
            mask=str(networks.mask),
            n_components=10,
            smoothing_fwhm=None,
            standardize=False,
            detrend=False,
            random_state=0,
        ).fit(images)
    # Same data, same initialisation, same voxel order and random draws: the same maps.
    pairs = match_components(ours.components_, theirs.components_)
    assert pairs.worst >= 0.9 and np.median(pairs.correlation) >= 0.99
    assert match_components(ours.components_, truth_maps).worst >= 0.85
    assert 0 < ours.explained_variance_total_ < 1


def test_a_small_buffer_keeps_the_leading_subspace(networks, monkeypatch):
    exact = DictLearning(n_components=10, random_state=0, score=False).fit(networks.shards)
    monkeypatch.setattr("nishard.learn.memory.MAX_CAPACITY", 40)  # 120 rows in all
    small = DictLearning(n_components=10, random_state=0, score=False).fit(networks.shards)
    assert exact.group_exact_ and not small.group_exact_
    assert small.memory_plan_.capacity == 40
    # MIGP keeps D's leading subspace: the maps stay close to the exact ones.
    assert np.median(match_components(small.components_, exact.components_).correlation) > 0.9
