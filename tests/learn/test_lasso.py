"""Lasso codes by coordinate descent over many samples at once: the lasso's own solution."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import sparse_encode
from sklearn.exceptions import ConvergenceWarning

from nishard.learn.lasso import lasso_codes


def _problem(seed: int = 0, atoms: int = 8, features: int = 60, samples: int = 500):
    """Unit atoms, correlated as a learned dictionary's are, and samples that mix a few."""
    rng = np.random.default_rng(seed)
    dictionary = rng.standard_normal((atoms, features)) + 0.5 * rng.standard_normal(features)
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    mixing = rng.standard_normal((samples, atoms)) * (rng.random((samples, atoms)) < 0.3)
    data = 5 * mixing @ dictionary + 0.3 * rng.standard_normal((samples, features))
    return dictionary, data


def _optimality(codes, dictionary, data, alpha):
    """The lasso's conditions: on a nonzero code the residual's correlation equals
    ``alpha * sign``; on a zero one it is at most ``alpha``. Their worst violations."""
    correlation = (data - codes @ dictionary) @ dictionary.T
    active = codes != 0
    on = np.abs(correlation[active] - alpha * np.sign(codes[active])).max(initial=0)
    off = np.maximum(np.abs(correlation[~active]) - alpha, 0).max(initial=0)
    return on, off


def _objective(codes, dictionary, data, alpha):
    return 0.5 * ((data - codes @ dictionary) ** 2).sum() + alpha * np.abs(codes).sum()


@pytest.mark.parametrize("alpha", [0.5, 2.0, 6.0])
def test_codes_meet_the_lasso_optimality_conditions(alpha):
    dictionary, data = _problem()
    codes = lasso_codes(dictionary, data, alpha)
    active = codes != 0
    assert 0.05 < active.mean() < 0.95  # both kinds of conditions are tested
    on, off = _optimality(codes, dictionary, data, alpha)
    assert on < 1e-7 * alpha and off == 0


def test_codes_are_scikit_learns_sparse_encode_or_closer_to_the_optimum():
    dictionary, data = _problem(seed=1)
    codes = lasso_codes(dictionary, data, 2.0)
    theirs = sparse_encode(data, dictionary, algorithm="lasso_cd", alpha=2.0)
    np.testing.assert_allclose(codes, theirs, atol=1e-5 * np.abs(theirs).max())
    ours, best = _objective(codes, dictionary, data, 2.0), _objective(theirs, dictionary, data, 2.0)
    assert ours <= best * (1 + 1e-12)


def test_float32_samples_are_solved_in_double_precision():
    dictionary, data = _problem(seed=2)
    single = data.astype(np.float32)
    codes = lasso_codes(dictionary.astype(np.float32), single, 2.0)
    assert codes.dtype == np.float64
    expected = lasso_codes(dictionary.astype(np.float32).astype(float), single.astype(float), 2.0)
    np.testing.assert_array_equal(codes, expected)


def test_the_blocks_change_only_the_rounding():
    dictionary, data = _problem(seed=3)
    whole = lasso_codes(dictionary, data, 2.0)
    np.testing.assert_array_equal(lasso_codes(dictionary, data, 2.0), whole)
    blocks = lasso_codes(dictionary, data, 2.0, block=50)
    np.testing.assert_array_equal(lasso_codes(dictionary, data, 2.0, block=50, threads=3), blocks)
    for codes in (
        lasso_codes(dictionary, data, 2.0, block=7),
        lasso_codes(dictionary, data[123:124], 2.0),
    ):
        part = whole[123:124] if len(codes) == 1 else whole
        np.testing.assert_array_equal(codes != 0, part != 0)
        np.testing.assert_allclose(codes, part, rtol=1e-12, atol=1e-12)


def test_a_zero_atom_and_a_large_alpha_give_zero_codes():
    dictionary, data = _problem(seed=4)
    dictionary[2] = 0
    codes = lasso_codes(dictionary, data, 2.0)
    assert not codes[:, 2].any() and codes.any()
    on, off = _optimality(codes, dictionary, data, 2.0)
    assert on < 1e-7 and off == 0
    # Zero is the solution exactly when no atom correlates with the sample beyond alpha.
    beyond = np.abs(data @ dictionary.T).max() * 1.001
    assert not lasso_codes(dictionary, data, beyond).any()
    assert not lasso_codes(dictionary, np.zeros_like(data), 2.0).any()


def test_too_few_sweeps_warn_with_the_count():
    dictionary, data = _problem(seed=5)
    with pytest.warns(ConvergenceWarning, match=r"of 500 samples"):
        lasso_codes(dictionary, data, 0.5, max_sweeps=2)


def test_bad_shapes_and_alpha_are_refused():
    dictionary, data = _problem()
    with pytest.raises(ValueError, match="features"):
        lasso_codes(dictionary, data[:, :-1], 1.0)
    with pytest.raises(ValueError, match="alpha"):
        lasso_codes(dictionary, data, -1.0)
