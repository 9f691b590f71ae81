"""CanICA's unmixing: each batched FastICA start is sklearn's run from the same seed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import scoreatpercentile
from sklearn.decomposition import fastica
from sklearn.utils import check_random_state

from nishard.learn import ica


@pytest.fixture(scope="module")
def components() -> np.ndarray:
    """Orthonormal mixtures of sparse sources, like group principal components."""
    rng = np.random.default_rng(0)
    sources = rng.laplace(size=(5000, 6)) ** 3
    mixed = sources @ rng.standard_normal((6, 6))
    return np.linalg.qr(mixed)[0].T


def test_each_start_is_sklearns_fastica(components):
    seeds = check_random_state(0).randint(np.iinfo(np.int32).max, size=4)
    white = ica.whiten(components)
    starts = ica.starting_matrices(0, 4, 6)
    unmixing, iterations = ica.fastica_runs(white, starts, precision="float64")
    fast, fast_iterations = ica.fastica_runs(white, starts, threads=2)  # float32 products
    assert fast_iterations == iterations
    for w, v in zip(unmixing, fast, strict=True):
        np.testing.assert_allclose(w, v, atol=1e-5)
    for seed, w, n_iter in zip(seeds, unmixing, iterations, strict=True):
        _, _, sources, expected = fastica(
            components.T,
            whiten="arbitrary-variance",
            fun="cube",
            random_state=seed,
            return_n_iter=True,
        )
        assert n_iter == expected
        np.testing.assert_allclose((w @ white).T / np.sqrt(5000), sources, atol=1e-10)


def test_unmix_keeps_the_sparsest_start_thresholds_and_flips(components):
    maps, info = ica.unmix(components, n_init=4, random_state=0, threshold="auto")
    assert info["chosen"] == int(np.argmin(info["sparsity"]))
    # nilearn's threshold: the (100 - 100 / n) percentile of |maps| over all maps.
    raw, _ = ica.unmix(components, n_init=4, random_state=0, threshold=None)
    flips = np.sign(np.sum(raw * maps, axis=1))
    cut = scoreatpercentile(np.abs(raw), 100 - 100 / 6)
    expected = np.where(np.abs(raw) < cut, 0, raw)
    np.testing.assert_allclose(maps, expected * flips[:, None])
    assert np.count_nonzero(maps) == pytest.approx(5000, rel=0.01)
    assert np.all(maps.max(axis=1) >= -maps.min(axis=1))  # every peak is positive


def test_threshold_edge_cases():
    maps = np.arange(12, dtype=float).reshape(3, 4)
    np.testing.assert_array_equal(ica.threshold_maps(maps.copy(), None), maps)  # no threshold
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = ica.threshold_maps(maps.copy(), 3.0)
    np.testing.assert_array_equal(kept, maps)
    assert "no threshold applied" in str(caught[0].message)


def test_a_start_that_does_not_converge_warns(components):
    with pytest.warns(Warning, match="did not converge in 2 iterations"):
        ica.unmix(components, n_init=2, max_iter=2)
