"""Connectivity equals nilearn's ConnectivityMeasure (0.14.1) and scikit-learn's estimators."""

import itertools

import numpy as np
import pytest
import sklearn.covariance
from nilearn.connectome import ConnectivityMeasure, sym_matrix_to_vec, vec_to_sym_matrix

from nishard.spec import _build
from nishard.transforms.connectivity import (
    Connectivity,
    connectivity,
    empirical_covariance,
    ledoit_wolf,
    sym_to_vec,
    vec_to_sym,
)
from nishard.transforms.storage import windows

TOL64 = 1e-10  # float64 input: max abs difference (observed <= 2e-13)
TOL32 = 2e-7  # float32 output vs nilearn on float64 copies: float32 rounding, relative to max |x|
TOL32_NILEARN = 5e-6  # float32 output vs nilearn's own float32 arithmetic (observed ~1e-6)

KINDS = ["correlation", "partial correlation", "covariance"]
ESTIMATORS = ["ledoit_wolf", "empirical"]


def _series(rng, n=100, p=12, dtype=np.float64):
    """Correlated regions with unequal means and scales, as parcel averages are."""
    mixing = rng.normal(size=(p, p)) + 2 * np.eye(p)
    x = rng.normal(size=(n, p)) @ mixing * rng.uniform(0.5, 3, size=p) + rng.normal(50, 10, p)
    return x.astype(dtype)


@pytest.fixture
def subjects():
    rng = np.random.default_rng(0)
    return [_series(rng, n) for n in (100, 80, 130)]


def _nilearn(subjects, kind, estimator, **kwargs):
    cov = None if estimator == "ledoit_wolf" else sklearn.covariance.EmpiricalCovariance()
    return ConnectivityMeasure(kind=kind, cov_estimator=cov, **kwargs).fit_transform(subjects)


def _ours(subjects, kind, estimator, **kwargs):
    return np.stack([connectivity(x, kind, estimator=estimator, **kwargs) for x in subjects])


@pytest.mark.parametrize("shape", [(100, 12), (40, 60), (30, 1), (2, 5)])
def test_ledoit_wolf_equals_sklearn(shape):
    x = _series(np.random.default_rng(1), *shape)
    cov, shrinkage = ledoit_wolf(x)
    expected_cov, expected_shrinkage = sklearn.covariance.ledoit_wolf(x)
    np.testing.assert_allclose(cov, expected_cov, rtol=1e-12, atol=1e-12)
    assert shrinkage == pytest.approx(expected_shrinkage, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(
        empirical_covariance(x), sklearn.covariance.empirical_covariance(x), rtol=1e-12
    )


@pytest.mark.parametrize(
    "kind, estimator, vectorize, discard_diagonal, standardize",
    list(itertools.product(KINDS, ESTIMATORS, [False, True], [False, True], [True, False])),
)
def test_equals_nilearn(subjects, kind, estimator, vectorize, discard_diagonal, standardize):
    options = dict(vectorize=vectorize, discard_diagonal=discard_diagonal, standardize=standardize)
    expected = _nilearn(subjects, kind, estimator, **options)
    ours = _ours(subjects, kind, estimator, **options)
    assert ours.dtype == np.float64
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).max() <= TOL64


@pytest.mark.parametrize("kind, estimator", list(itertools.product(KINDS, ESTIMATORS)))
def test_float32_is_float64_math_rounded(kind, estimator):
    rng = np.random.default_rng(2)
    subjects = [_series(rng, 150, 20, np.float32) for _ in range(2)]
    ours = _ours(subjects, kind, estimator)
    assert ours.dtype == np.float32
    exact = _nilearn([s.astype(np.float64) for s in subjects], kind, estimator)
    scale = np.abs(exact).max()
    assert np.abs(ours - exact).max() <= TOL32 * scale
    # nilearn itself computes in float32 (scikit-learn keeps the input dtype).
    assert np.abs(ours - _nilearn(subjects, kind, estimator)).max() <= TOL32_NILEARN * scale


@pytest.mark.parametrize("vectorize", [False, True])
def test_windowed_series_give_one_matrix_per_window(vectorize):
    series = _series(np.random.default_rng(3), 200, 8)
    cut = windows(series, 50, 30)
    ours = connectivity(cut, "partial correlation", vectorize=vectorize)
    expected = _nilearn(list(cut), "partial correlation", "ledoit_wolf", vectorize=vectorize)
    assert ours.shape == expected.shape == (len(cut), *expected.shape[1:])
    assert len(cut) == 6
    assert np.abs(ours - expected).max() <= TOL64


def test_standardize_changes_only_the_shrunk_correlation(subjects):
    x = subjects[0]
    for kind in ("covariance", "partial correlation"):
        np.testing.assert_array_equal(
            connectivity(x, kind, standardize=True), connectivity(x, kind, standardize=False)
        )
    lw = [connectivity(x, standardize=s) for s in (True, False)]
    assert np.abs(lw[0] - lw[1]).max() > 1e-3
    emp = [connectivity(x, estimator="empirical", standardize=s) for s in (True, False)]
    assert np.abs(emp[0] - emp[1]).max() <= 1e-12


def test_vectors_are_nilearns_and_invert(subjects):
    mats = _ours(subjects, "covariance", "ledoit_wolf")
    for discard in (False, True):
        vec = sym_to_vec(mats, discard_diagonal=discard)
        np.testing.assert_array_equal(vec, sym_matrix_to_vec(mats, discard_diagonal=discard))
    vec = sym_to_vec(mats)
    np.testing.assert_allclose(vec_to_sym(vec), vec_to_sym_matrix(vec), rtol=1e-15)
    np.testing.assert_allclose(vec_to_sym(vec), mats, rtol=1e-15)
    diagonal = np.diagonal(mats, axis1=1, axis2=2)
    no_diag = sym_to_vec(mats, discard_diagonal=True)
    np.testing.assert_allclose(vec_to_sym(no_diag, diagonal), mats, rtol=1e-15)
    # The norm is kept: the diagonal divided by sqrt(2) makes |vec|^2 = |matrix|_F^2 / 2.
    assert np.linalg.norm(vec[0]) ** 2 == pytest.approx(np.linalg.norm(mats[0]) ** 2 / 2)
    with pytest.raises(ValueError, match="no triangle"):
        vec_to_sym(np.zeros(4))


def test_partial_correlation_spelled_with_an_underscore(subjects):
    np.testing.assert_array_equal(
        connectivity(subjects[0], "partial_correlation"),
        connectivity(subjects[0], "partial correlation"),
    )
    assert Connectivity(kind="partial_correlation").kind == "partial correlation"


def test_a_constant_region_with_ledoit_wolf_matches_nilearn(subjects):
    x = subjects[0].copy()
    x[:, 4] = 7.0
    for kind in KINDS:
        ours = connectivity(x, kind)
        assert np.isfinite(ours).all()
        assert np.abs(ours - _nilearn([x], kind, "ledoit_wolf")[0]).max() <= TOL64


def test_refuses_what_nilearn_would_turn_into_nan(subjects):
    x = subjects[0].copy()
    x[:, [2, 5]] = 3.0
    for kind in ("correlation", "partial correlation"):
        with pytest.raises(ValueError, match=r"constant over time \(regions \[2, 5\]\)"):
            connectivity(x, kind, estimator="empirical")
    assert np.isfinite(connectivity(x, "covariance", estimator="empirical")).all()
    with pytest.raises(ValueError, match="every region is constant"):
        connectivity(np.ones((20, 3)), "correlation", standardize=False)
    short = subjects[0][:10]  # 10 time points, 12 regions: a singular empirical covariance
    with pytest.raises(ValueError, match="more time points than regions"):
        connectivity(short, "partial correlation", estimator="empirical")
    assert np.isfinite(connectivity(short, "partial correlation")).all()


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((1, 4)), "at least 2 time points"),
        (np.zeros(10), r"\(time, regions\)"),
        (np.zeros((2, 3, 4, 5)), r"\(time, regions\)"),
        (np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0]]), "NaN or infinite"),
        (np.array([[1.0, 2.0], [np.inf, 1.0], [3.0, 4.0]]), "NaN or infinite"),
    ],
)
def test_refuses_bad_series(bad, message):
    with pytest.raises(ValueError, match=message):
        connectivity(bad)


def test_refuses_bad_options():
    with pytest.raises(ValueError, match="kind one of"):
        Connectivity(kind="tangent")
    with pytest.raises(ValueError, match="estimator one of"):
        Connectivity(estimator="oas")
    with pytest.raises(ValueError, match="keep_timeseries"):
        Connectivity(output="bold")


def test_transform_writes_the_output_key_and_is_pure(subjects):
    series = subjects[0].astype(np.float32)
    sample = {"bold": series.copy(), "meta": {"t_r": 2.0}}
    step = Connectivity(vectorize=True, discard_diagonal=True)
    out = step(sample)
    assert out is not sample and set(sample) == {"bold", "meta"}
    np.testing.assert_array_equal(sample["bold"], series)
    np.testing.assert_array_equal(out["bold"], series)
    assert out["connectivity"].shape == (12 * 11 // 2,)
    assert out["connectivity"].dtype == np.float32
    assert (step.reads, step.writes, step.drops) == (("bold",), ("connectivity",), ())
    dropped = Connectivity(output="fc", keep_timeseries=False)
    assert set(dropped(sample)) == {"fc", "meta"}
    assert dropped.drops == ("bold",)
    replaced = Connectivity(output="bold", keep_timeseries=False)
    assert replaced(sample)["bold"].shape == (12, 12) and replaced.drops == ()


def test_yaml_options_build_the_transform():
    options = {"kind": "partial_correlation", "estimator": "empirical", "vectorize": True}
    step = _build(Connectivity, options, "transforms[0].connectivity")
    assert step == Connectivity("partial correlation", "empirical", vectorize=True)
    assert step.to_dict()["connectivity"]["kind"] == "partial correlation"
