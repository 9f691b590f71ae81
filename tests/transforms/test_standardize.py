"""Standardization equals nilearn's (zscore_sample, psc) and scipy's (zscore) on the same data."""

import numpy as np
import pytest
import scipy.stats
from nilearn.signal import clean

from nishard.transforms import Standardize, standardize

TOL = 1e-4  # float32 data, z-scored output: max abs difference


@pytest.fixture
def signals():
    rng = np.random.default_rng(0)
    x = rng.normal(100.0, 5.0, size=(120, 50)).astype(np.float32)
    x[:, 3] = 42.0  # a constant feature: nilearn gives zeros, not NaN
    return x


@pytest.mark.parametrize("method", ["zscore_sample", "psc"])
def test_equals_nilearn_clean(signals, method):
    expected = clean(signals, detrend=False, standardize=method, filter=False, t_r=2.0)
    ours = standardize(signals, method)
    assert ours.dtype == np.float32
    assert np.abs(ours - expected).max() <= TOL * (100 if method == "psc" else 1)
    assert np.isfinite(ours).all()


def test_zscore_equals_scipy(signals):
    ours = standardize(signals, "zscore")
    varying = np.arange(signals.shape[1]) != 3  # scipy gives NaN for the constant column
    expected = scipy.stats.zscore(signals[:, varying].astype(np.float64), axis=0, ddof=0)
    assert np.abs(ours[:, varying] - expected).max() <= TOL


def test_constant_features_come_out_as_zeros(signals):
    assert not standardize(signals)[:, 3].any()


def test_refuses_what_it_cannot_standardize(signals):
    with pytest.raises(ValueError, match="at least 2 time points"):
        standardize(signals[:1])
    with pytest.raises(ValueError, match="method one of"):
        Standardize(method="robust")


def test_transform_is_pure(signals):
    sample = {"bold": signals.copy()}
    out = Standardize()(sample)
    np.testing.assert_array_equal(sample["bold"], signals)
    assert out is not sample
