"""clean() and its steps against nilearn.signal.clean (0.14) on float32 data.

Tolerances: TOL = 1e-4 max abs difference on z-scored output (the issue's parity bar).
psc output is in percent, so its tolerance is TOL * 100; unstandardized output is in the
data's units, so its tolerance is TOL times the largest absolute expected value.

nilearn 0.14.1's interpolation before a Butterworth filter with a sample mask indexes
with ``~sample_mask`` after turning the mask into int32 indices (``_interpolate_volumes``),
so it fills the volumes mirrored in time (``n - 1 - i`` for each kept ``i``) rather than
the censored ones. nishard fills the censored ones, as nilearn documents. The parity tests
of that path therefore use masks where the two agree (no censored volume's mirror is
censored), or hand nilearn data whose censored volumes are already filled by the same
spline (its refill then changes nothing), or cut the censored ends off before nilearn.
"""

import warnings

import nilearn.signal
import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import CubicSpline

from nishard.transforms import filters, regression
from nishard.transforms.filters import (
    butterworth,
    cosine_drift,
    detrend,
    fft_filter,
    interpolate_censored,
)
from nishard.transforms.regression import regress_out
from nishard.transforms.signal import clean, standardize

TOL = 1e-4
T_R = 2.0
N, V = 200, 500


@pytest.fixture(scope="module")
def x():
    """Baseline 100, noise, a per-feature linear drift and a shared 0.05 Hz oscillation."""
    rng = np.random.default_rng(0)
    t = np.arange(N)
    drift = 0.03 * t[:, None] * rng.normal(1.0, 0.3, V)
    wave = 3.0 * np.sin(2 * np.pi * 0.05 * T_R * t)[:, None] * rng.normal(size=V)
    return (100.0 + rng.normal(0.0, 5.0, (N, V)) + drift + wave).astype(np.float32)


@pytest.fixture(scope="module")
def conf():
    """24 n/a-free confounds: noise plus oscillations from 0.0025 to 0.15 Hz."""
    rng = np.random.default_rng(1)
    t = np.arange(N)
    return rng.normal(size=(N, 24)) + np.sin(np.outer(t, rng.uniform(0.03, 1.9, 24)))


def reference(signals, **kw):
    """nilearn.signal.clean with nishard's filter=None spelt False, warnings silenced."""
    kw["filter"] = kw.get("filter") or False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nilearn.signal.clean(signals, **kw)


def ours(signals, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clean(signals, **kw)


def tolerance(method, expected):
    """TOL on z-scores; TOL * 100 on percent signal change; TOL * data scale otherwise."""
    if method in ("zscore_sample", "zscore"):
        return TOL
    return TOL * 100 if method == "psc" else TOL * np.abs(expected).max()


FILTERS = {
    "none": {},
    "butterworth-low": {"filter": "butterworth", "low_pass": 0.1},
    "butterworth-high": {"filter": "butterworth", "high_pass": 0.01},
    "butterworth-band": {"filter": "butterworth", "low_pass": 0.1, "high_pass": 0.01},
    "cosine-high": {"filter": "cosine", "high_pass": 0.01},
}


@pytest.mark.parametrize("method", ["zscore_sample", "psc", None])
@pytest.mark.parametrize("confounds", ["none", "standardized", "raw"])
@pytest.mark.parametrize("filt", list(FILTERS))
@pytest.mark.parametrize("detrended", [True, False])
def test_equals_nilearn(x, conf, detrended, filt, confounds, method):
    """Every combination; tolerance: TOL on z-scores, TOL*100 on psc, TOL*scale on None.

    nilearn keeps float32 intermediates (worst here 2.7e-5 from its own float64 result,
    more with a larger baseline and no detrending); nishard accumulates in float64 and
    stays within TOL / 10 of nilearn run on the same data cast to float64.
    """
    kw = dict(t_r=T_R, detrend=detrended, standardize=method, **FILTERS[filt])
    if confounds != "none":
        kw.update(confounds=conf, standardize_confounds=confounds == "standardized")
    expected = reference(x, **kw)
    got = ours(x, **kw)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() <= tolerance(method, expected)
    exact = reference(x.astype(np.float64), **kw)
    assert np.abs(got - exact).max() <= tolerance(method, exact) / 10


MIRROR_SAFE = [40, 41, 90, 120, 121, 122]  # their mirrors 159, 158, 109, 79, 78, 77 are kept


@pytest.mark.parametrize("method", ["zscore_sample", "psc"])
@pytest.mark.parametrize("filt", ["butterworth-band", "butterworth-high", "none", "cosine-high"])
def test_sample_mask_equals_nilearn(x, conf, filt, method):
    """Censoring: interpolation before Butterworth, plain censoring without a filter and
    with cosines. Tolerance TOL on z-scores, TOL*100 on psc."""
    mask = np.ones(N, bool)
    mask[MIRROR_SAFE] = False
    kw = dict(t_r=T_R, confounds=conf, standardize=method, **FILTERS[filt])
    expected = reference(x, sample_mask=mask, **kw)
    got = ours(x, sample_mask=mask, **kw)
    assert got.shape == (N - len(MIRROR_SAFE), V)
    assert np.abs(got - expected).max() <= tolerance(method, expected)
    # Indices of kept volumes mean the same as the boolean mask.
    np.testing.assert_array_equal(ours(x, sample_mask=np.flatnonzero(mask), **kw), got)


def spline_filled(a, mask, extrapolate=False):
    kept, censored = np.flatnonzero(mask), np.flatnonzero(~mask)
    spline = CubicSpline(kept * T_R, a[kept].astype(np.float64), extrapolate=extrapolate)
    out = a.copy()
    out[censored] = spline(censored * T_R)
    return out


def test_censored_volumes_are_the_ones_interpolated(x, conf):
    """A symmetric mask, where nilearn 0.14.1 fills the wrong volumes: nishard equals nilearn
    given data already filled by the spline (tolerance TOL on z-scores), not nilearn's own
    fill."""
    mask = np.ones(N, bool)
    mask[[40, 159, 90, 100, 101]] = False  # 40 and 159 mirror each other
    kw = dict(t_r=T_R, low_pass=0.1, high_pass=0.01, filter="butterworth")
    got = ours(x, confounds=conf, sample_mask=mask, **kw)
    filled = reference(spline_filled(x, mask), confounds=spline_filled(conf, mask),
                       sample_mask=mask, **kw)  # fmt: skip
    assert np.abs(got - filled).max() <= TOL
    misfilled = reference(x, confounds=conf, sample_mask=mask, **kw)
    assert np.abs(got - misfilled).max() > 0.1


def test_censored_ends_are_left_out_or_extrapolated(x, conf):
    """Censored volumes at the ends: left out of filtering (default), or extrapolated.
    Tolerance TOL on z-scores."""
    mask = np.ones(N, bool)
    mask[[0, 1, 2, 60, 198, 199]] = False
    kw = dict(t_r=T_R, low_pass=0.1, high_pass=0.01, filter="butterworth")
    got = ours(x, confounds=conf, sample_mask=mask, **kw)
    inner = slice(3, 198)  # what nilearn documents: the ends are discarded before filtering
    expected = reference(x[inner], confounds=conf[inner], sample_mask=mask[inner], **kw)
    assert got.shape == (N - 6, V)
    assert np.abs(got - expected).max() <= TOL

    got = ours(x, confounds=conf, sample_mask=mask, extrapolate=True, **kw)
    expected = reference(spline_filled(x, mask, True), confounds=spline_filled(conf, mask, True),
                         sample_mask=mask, extrapolate=True, **kw)  # fmt: skip
    assert np.abs(got - expected).max() <= TOL


def test_interpolate_censored_is_the_cubic_spline(x):
    mask = np.ones(N, bool)
    mask[[0, 50, 51, 52, 130]] = False
    filled = interpolate_censored(x, mask, T_R)
    assert filled.dtype == np.float32
    assert np.isnan(filled[0]).all()  # before the first kept volume, without extrapolation
    expected = spline_filled(x, mask)
    np.testing.assert_allclose(filled[1:], expected[1:], rtol=1e-6)
    np.testing.assert_array_equal(filled[mask], x[mask])


@pytest.mark.parametrize(
    "kw",
    [
        dict(filter="butterworth", low_pass=0.1, high_pass=0.01, standardize="zscore_sample"),
        dict(filter="butterworth", high_pass=0.01, detrend=False, standardize="zscore"),
        dict(filter="cosine", high_pass=0.01, standardize="psc"),
        dict(filter=None, standardize="zscore_sample", censor=True),
        dict(filter="butterworth", low_pass=0.1, standardize=None, censor=True),
        dict(filter="fft", low_pass=0.1, high_pass=0.01, standardize="zscore_sample"),
        dict(filter="fft", high_pass=0.01, standardize="psc", censor=True),
        dict(filter="fft", low_pass=0.1, detrend=False, standardize=None),
    ],
    ids=[
        "band",
        "high-no-detrend",
        "cosine-psc",
        "censor",
        "low-censor-raw",
        "fft-band",
        "fft-high-censor-psc",
        "fft-low-raw",
    ],
)
def test_jax_equals_numpy(x, conf, kw):
    """Tolerance TOL on z-scores, TOL*100 on psc, TOL*scale on unstandardized output."""
    pytest.importorskip("jax")
    kw = dict(kw, t_r=T_R, confounds=conf)
    if kw.pop("censor", False):
        mask = np.ones(N, bool)
        mask[MIRROR_SAFE] = False
        kw["sample_mask"] = mask
    expected = ours(x, backend="numpy", **kw)
    got = ours(x, backend="jax", **kw)
    assert got.dtype == np.float32
    assert np.abs(got - expected).max() <= tolerance(kw["standardize"], expected)
    np.testing.assert_allclose(
        regress_out(x, conf, backend="jax"), regress_out(x, conf), atol=TOL * 100
    )


def test_steps_compose_to_clean(x, conf):
    """The fused clean equals its public steps one after the other (TOL on z-scores)."""
    kw = dict(t_r=T_R, low_pass=0.1, high_pass=0.01)
    steps = standardize(
        regress_out(butterworth(detrend(x), **kw), butterworth(detrend(conf), **kw)),
        "zscore_sample",
    )
    assert np.abs(clean(x, confounds=conf, **kw) - steps).max() <= TOL
    fft = standardize(fft_filter(detrend(x), **kw), "zscore")
    assert np.abs(clean(x, filter="fft", standardize="zscore", **kw) - fft).max() <= TOL


def test_steps_equal_nilearn(x, conf, monkeypatch):
    """Tolerances relative to the data scale (TOL times the largest absolute value)."""
    scale = TOL * np.abs(x).max()
    plain = dict(t_r=T_R, standardize=None, filter=False)
    assert np.abs(detrend(x) - reference(x, detrend=True, **plain)).max() <= scale
    assert np.abs(detrend(x, order=0) - (x - x.mean(axis=0))).max() <= scale
    expected = reference(x, detrend=False, confounds=conf, **plain)
    assert np.abs(regress_out(x, conf) - expected).max() <= scale
    for low, high in [(0.1, 0.01), (None, 0.01), (0.1, None), (0.3, None)]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            expected = nilearn.signal.butterworth(x, 1 / T_R, low, high, copy=True)
            got = butterworth(x, T_R, low, high)
            monkeypatch.setattr(filters, "DENSE_MAX_N", 100)  # SciPy's recursion, long runs
            recursive = butterworth(x, T_R, low, high)
            monkeypatch.undo()
        assert np.abs(got - expected).max() <= scale
        assert np.abs(recursive - expected).max() <= scale
        # 0.3 Hz is above Nyquist (0.25 Hz): lowered with a warning by both, attributed to
        # the caller.
        ours_warned = [w for w in caught if "as nilearn does" in str(w.message)]
        assert len(ours_warned) == (2 if low == 0.3 else 0)
        assert all(w.filename == __file__ for w in ours_warned)


def test_cosine_drift_terms(x, conf):
    expected = nilearn.signal.create_cosine_drift(0.01, np.arange(N) * T_R)[:, :-1]
    np.testing.assert_allclose(cosine_drift(N, T_R, 0.01), expected, atol=1e-12)
    assert cosine_drift(N, T_R, 0.01).shape == (N, 8)
    # filter="cosine" is regression on the drift terms appended to the confounds...
    drifts = cosine_drift(N, T_R, 0.01)
    by_hand = clean(x, t_r=T_R, filter=None, confounds=np.hstack([conf, drifts]))
    assert np.abs(clean(x, t_r=T_R, filter="cosine", high_pass=0.01, confounds=conf)
                  - by_hand).max() <= TOL  # fmt: skip
    # ...unless the confounds hold them already (nilearn: correlation above 0.9).
    with pytest.warns(UserWarning, match="cosine drift terms"):
        got = clean(x, t_r=T_R, filter="cosine", high_pass=0.01, confounds=drifts[:, :3])
    expected = reference(x, t_r=T_R, filter="cosine", high_pass=0.01, confounds=drifts[:, :3])
    assert np.abs(got - expected).max() <= TOL


def test_fft_filter_on_sinusoids():
    """Brick wall: sinusoids on Fourier bins inside the band pass unchanged, outside vanish."""
    t = np.arange(N) * T_R
    freqs = np.array([0.005, 0.05, 0.08, 0.2])  # bins 2, 20, 32, 80 of 1 / (N * T_R)
    waves = np.sin(2 * np.pi * freqs[None, :] * t[:, None]).astype(np.float32)
    mixed = waves.sum(axis=1, keepdims=True)
    band = fft_filter(mixed, T_R, low_pass=0.1, high_pass=0.01)
    assert band.dtype == np.float32
    np.testing.assert_allclose(band[:, 0], waves[:, 1] + waves[:, 2], atol=1e-5)
    np.testing.assert_allclose(fft_filter(mixed, T_R, low_pass=0.1)[:, 0],
                               waves[:, :3].sum(axis=1), atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(fft_filter(mixed, T_R, high_pass=0.1)[:, 0], waves[:, 3], atol=1e-5)
    offset = fft_filter(mixed + 10.0, T_R, high_pass=0.001)
    np.testing.assert_allclose(offset[:, 0], mixed[:, 0], atol=1e-5)  # the mean goes too


def test_constant_features_come_out_as_zeros(x):
    flat = x[:, :4].copy()
    flat[:, 1] = 42.0
    for method in ("zscore_sample", "zscore", "psc"):
        got = clean(flat, t_r=T_R, standardize=method, low_pass=0.1, high_pass=0.01)
        assert not got[:, 1].any() and np.isfinite(got).all()
    expected = reference(flat, t_r=T_R, low_pass=0.1, high_pass=0.01, filter="butterworth")
    assert np.abs(clean(flat, t_r=T_R, low_pass=0.1, high_pass=0.01) - expected).max() <= TOL


def test_inputs(x, conf):
    """float64 stays float64, the input is not modified, confounds come in any form."""
    before = x.copy()
    got = clean(x, t_r=T_R, low_pass=0.1, confounds=conf)
    np.testing.assert_array_equal(x, before)
    as64 = clean(x.astype(np.float64), t_r=T_R, low_pass=0.1, confounds=conf)
    assert as64.dtype == np.float64 and np.abs(as64 - got).max() <= TOL
    frame = pd.DataFrame(conf[:, :20])
    split = clean(x, t_r=T_R, low_pass=0.1, confounds=[frame, conf[:, 20:]])
    np.testing.assert_array_equal(split, got)


def test_nan_and_ensure_finite(x):
    """NaN raises unless ensure_finite=True, which zeroes it as nilearn does (TOL)."""
    bad = x[:, :20].copy()
    bad[5, 3] = np.nan
    bad[7, 9] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinite values in 2 feature"):
        clean(bad, t_r=T_R, low_pass=0.1)
    expected = reference(bad, t_r=T_R, low_pass=0.1, filter="butterworth", ensure_finite=True)
    got = clean(bad, t_r=T_R, low_pass=0.1, ensure_finite=True)
    assert np.abs(got - expected).max() <= TOL
    with pytest.raises(ValueError, match="confounds hold NaN"):
        clean(x, t_r=T_R, confounds=np.full((N, 2), np.nan))


def test_errors(x, conf):
    with pytest.raises(ValueError, match="needs the repetition time"):
        clean(x, low_pass=0.1)
    with pytest.raises(ValueError, match="needs the repetition time"):
        clean(x, filter="cosine", high_pass=0.01)
    with pytest.raises(ValueError, match="needs the repetition time"):
        clean(x, filter="fft", high_pass=0.01)
    with pytest.raises(ValueError, match="confounds have 199 rows but the signals 200"):
        clean(x, t_r=T_R, confounds=conf[1:])
    with pytest.raises(ValueError, match="must be below low_pass"):
        clean(x, t_r=T_R, low_pass=0.01, high_pass=0.1)
    with pytest.raises(ValueError, match="filter='cosine' needs high_pass"):
        clean(x, t_r=T_R, filter="cosine")
    with pytest.raises(ValueError, match="filter one of"):
        clean(x, t_r=T_R, filter="gaussian", low_pass=0.1)
    with pytest.raises(ValueError, match="standardize one of"):
        clean(x, t_r=T_R, standardize="robust")
    with pytest.raises(ValueError, match="removes every volume"):
        clean(x, t_r=T_R, sample_mask=np.zeros(N, bool))
    with pytest.raises(ValueError, match="increase strictly"):
        clean(x, t_r=T_R, sample_mask=np.array([3, 2, 5]))
    with pytest.raises(ValueError, match=r"a \(time, feature\) array"):
        clean(x[:, 0], t_r=T_R)
    with pytest.warns(UserWarning, match="without a filter"):
        clean(x, t_r=T_R, filter=None, low_pass=0.1)
    with pytest.warns(UserWarning, match="without detrend or standardize_confounds"):
        clean(x, t_r=T_R, detrend=False, confounds=conf, standardize_confounds=False)


def test_float32_rounding_is_caught_where_the_operator_removes_nearly_everything(monkeypatch):
    """Confounds that explain all but a millionth of the variance: the float32 product's
    rounding, relative to the input, would swamp what is left; those features are
    computed again in float64 and match nilearn run in float64."""
    rng = np.random.default_rng(5)
    conf = rng.normal(size=(N, 24))
    x = 1000.0 + conf @ rng.normal(size=(24, V)) * 50 + rng.normal(size=(N, V)) * 0.05
    x = x.astype(np.float32)
    kw = dict(t_r=T_R, detrend=True, low_pass=0.1, high_pass=0.01, filter="butterworth",
              confounds=conf, standardize="zscore_sample")  # fmt: skip
    exact = reference(x.astype(np.float64), **kw)
    assert np.abs(ours(x, **kw) - exact).max() <= TOL / 10
    # Without the check, the float32 product alone is far off: the test can fail.
    monkeypatch.setattr(regression, "FLOAT32_ERROR", np.inf)
    assert np.abs(ours(x, **kw) - exact).max() > TOL


def float32_blocks(monkeypatch, volumes: int, columns: int) -> list[tuple[int, int]]:
    """NumPy blocks of ``columns`` columns of a ``volumes``-long run; the list that gets,
    for each block taking the float32 route, its columns and how many were redone."""
    monkeypatch.setitem(regression._BLOCK_BYTES, "numpy", 8 * volumes * columns)
    seen: list[tuple[int, int]] = []
    block32 = regression._numpy_block32

    def counted(block, *args):
        out = block32(block, *args)
        seen.append((block.shape[1], out[-1]))
        return out

    monkeypatch.setattr(regression, "_numpy_block32", counted)
    return seen


@pytest.mark.parametrize("explained", [False, True])
def test_a_run_whose_columns_need_float64_is_computed_in_float64_after_its_first_block(
    monkeypatch, x, conf, explained
):
    """Where the first block's float32 products are mostly redone in float64 (confounds
    that explain nearly everything), the other blocks skip the float32 route; where they
    are not (the ordinary data), every block takes it. Both match nilearn."""
    rng = np.random.default_rng(5)
    if explained:
        x = 1000.0 + conf @ rng.normal(size=(24, V)) * 50 + rng.normal(size=(N, V)) * 0.05
        x = x.astype(np.float32)
    kw = dict(t_r=T_R, detrend=True, low_pass=0.1, high_pass=0.01, filter="butterworth",
              confounds=conf, standardize="zscore_sample")  # fmt: skip
    seen = float32_blocks(monkeypatch, N, 100)  # five blocks for the 500 features
    got = ours(x, **kw)
    assert [columns for columns, _ in seen] == ([100] if explained else [100] * 5)
    assert np.abs(got - reference(x.astype(np.float64), **kw)).max() <= TOL / 10


def test_an_hcp_length_run_leaves_the_float32_route_and_matches_nilearn(monkeypatch):
    """1,200 volumes at TR 0.72 s with fMRI's noise and drifts: the band-pass operator's
    rows are long, most columns of the first block are redone in float64, and the other
    blocks take the float64 route; every column within 1e-5 of nilearn."""
    rng = np.random.default_rng(7)
    n, v = 1200, 300
    t = np.linspace(0, 1, n)[:, None]
    x = (1000 + 10 * rng.normal(size=(n, v)) + 10 * t * rng.uniform(-1, 1, v)).astype(np.float32)
    conf = np.cumsum(rng.normal(size=(n, 24)), axis=0)
    kw = dict(t_r=0.72, detrend=True, low_pass=0.1, high_pass=0.01, filter="butterworth",
              confounds=conf, standardize="zscore_sample")  # fmt: skip
    seen = float32_blocks(monkeypatch, n, 100)
    got = ours(x, **kw)
    assert len(seen) == 1 and seen[0][1] > 0.5 * seen[0][0]
    assert np.abs(got - reference(x.astype(np.float64), **kw)).max() <= TOL / 10
