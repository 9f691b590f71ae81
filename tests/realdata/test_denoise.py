"""Denoising real runs: builds equal to nilearn's NiftiMasker with nilearn's confound loaders.

Each test builds ``Mask() + Clean(confounds=...)`` over the real derivative
(tests/realdata/layout.py) into WebDataset shards and compares every written sample with
``NiftiMasker(mask_img=<the run's mask>, standardize="zscore_sample", detrend=True,
high_pass=0.01, t_r=<the run's TR>).fit_transform(bold, confounds=..., sample_mask=...)``,
the confounds and sample mask given by nilearn's ``load_confounds_strategy`` (or
``load_confounds``) on the same files. Tolerance: max abs difference 1e-4 (z-scored).

Why the presets are compared with fewer regressors. On runs of 20-30 volumes nilearn's
presets at their defaults have as many regressors as volumes or more (``simple``: 27 on the
27 volumes sub-01 keeps, 30 on sub-02's 29; ``compcor``: 85; ``24P``: 24 on sub-03's 20).
The regression then removes the whole signal, and z-scoring what is left scales round-off
to unit variance: both libraries return noise (max differences of 4 to 6). So:

- the presets at their defaults are compared without standardization
  (:func:`test_presets_at_their_defaults_leave_the_same_residual`): the same censoring and
  the same residual (round-off where no degree of freedom is left; 24P leaves 1 and 3 on
  the nitime runs);
- the z-scored comparison uses the options both libraries accept that leave degrees of
  freedom: ``simple`` and ``scrubbing`` with ``motion="basic"`` (and ``wm_csf="basic"``),
  ``compcor`` with ``motion="basic"`` and ``n_compcor=5``; ``24P`` as it is.

Residual degrees of freedom (kept volumes - regressors - 2 for the trend) decide how a
written sample is compared:

- 3 or more: with NiftiMasker, 1e-4;
- 1 or 2 (``24P`` on sub-01: 27 volumes, 24 regressors): NiftiMasker cleans the image's
  float32 signals in float32, and on one degree of freedom its rounding reaches 5e-4
  (nishard, in float64, is within 1e-7 of a float64 least-squares fit). The reference is
  nilearn's ``signal.clean`` of NiftiMasker's own signals in float64, 1e-4;
- none (``24P`` on sub-03): nothing is left to compare; shape and kept volumes only.

Where nilearn cannot proceed, nishard quarantines the same record: ``scrubbing`` censors
all 30 volumes of sub-01 (framewise displacement above 0.2 mm in 29 of them), and a
Butterworth band-pass needs more volumes than the runs have (scipy pads 33 samples).

Observed max abs differences (nilearn 0.14.1), z-scored: simple 2.9e-5, scrubbing 2.9e-5,
compcor 5.3e-5, 24P 1.5e-6 (NiftiMasker, sub-02) and 6e-8 (float64 clean, sub-01). The
largest are sub-03's, whose scaled int16 nilearn reads as float64 and nishard as float32
(its samples' dtype): nishard is within 1.3e-7 of nilearn's clean of the float32 values.
Residuals of the presets at their defaults: at most 1.4e-4 on values up to 5,572 (sub-03's
float32 rounding again), 4e-6 on the nitime runs.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy
from nilearn.maskers import NiftiMasker
from nilearn.signal import clean as nilearn_clean

import nishard as ns
from nishard.archives import read_manifest
from nishard.errors import NishardError
from tests.realdata.conftest import SIMPLE_BASIC, build, quarantined

TOL = 1e-4
#: The options of every Clean here and of every NiftiMasker it is compared with.
CLEAN = {"standardize": "zscore_sample", "detrend": True, "high_pass": 0.01}


@dataclasses.dataclass(frozen=True)
class Case:
    """One confound model: nishard's ``Clean(confounds=...)`` and nilearn's loader call."""

    confounds: str | dict
    preset: str | None  # load_confounds_strategy's denoise_strategy; None: load_confounds
    options: dict

    def load(self, bold) -> tuple:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "all volumes censored", unused parameters
            if self.preset is None:
                return load_confounds(str(bold), **self.options)
            return load_confounds_strategy(str(bold), denoise_strategy=self.preset, **self.options)


P24 = Case("24P", None, {"strategy": ["motion"], "motion": "full"})
CASES = {
    "simple": Case(SIMPLE_BASIC, "simple", {"motion": "basic"}),
    "scrubbing": Case(
        {"strategy": "scrubbing", "motion": "basic", "wm_csf": "basic"},
        "scrubbing", {"motion": "basic", "wm_csf": "basic"},
    ),
    "compcor": Case(
        {"strategy": "compcor", "motion": "basic", "n_compcor": 5},
        "compcor", {"motion": "basic", "n_compcor": 5},
    ),
    "24P": P24,
}  # fmt: skip
DEFAULTS = {name: Case(name, name, {}) for name in ("simple", "scrubbing", "compcor")}
DEFAULTS["24P"] = P24


def masker(run, **options) -> NiftiMasker:
    return NiftiMasker(mask_img=str(run.mask), t_r=run.t_r, **options)


def kept_volumes(run, sample_mask) -> np.ndarray:
    return np.arange(run.n_volumes) if sample_mask is None else sample_mask


def max_diff(got, expected) -> float:
    assert got.shape == expected.shape
    return float(np.abs(got.astype(np.float64) - expected).max())


def _no_freedom_left(real, run, stopped: dict, confounds, kept) -> bool:
    """Whether the confounds, the mean and the trend use every kept volume; if so, check
    that nishard quarantined the run saying so (nilearn z-scores the rounding noise)."""
    if len(kept) - confounds.shape[1] - 2 > 0:
        return False
    entry = stopped.pop(run.record)
    assert entry["file"] == str(run.confounds.relative_to(real.root))
    assert entry["found"] == (
        f"{confounds.shape[1]} confound regressors and the mean and linear trend for "
        f"{len(kept)} kept volumes: no degree of freedom is left, standardizing would scale "
        "rounding noise up"
    )
    return True


@pytest.mark.parametrize("name", CASES)
def test_builds_equal_nifti_masker_with_load_confounds_strategy(real, records, tmp_path, name):
    case = CASES[name]
    manifest, samples = build(records, [ns.t.Mask(), ns.t.Clean(confounds=case.confounds, **CLEAN)],
                              tmp_path)  # fmt: skip
    stopped = quarantined(manifest)
    compared = 0
    for run in real.runs:
        confounds, sample_mask = case.load(run.bold)
        if sample_mask is not None and sample_mask.size == 0:
            # Every volume censored: nilearn cannot go on; nishard quarantines the record.
            with pytest.raises(ValueError, match="zero-size array"):
                masker(run, **CLEAN).fit_transform(str(run.bold), confounds=confounds,
                                                   sample_mask=sample_mask)  # fmt: skip
            entry = stopped.pop(run.record)
            assert entry["file"] == str(run.confounds.relative_to(real.root))
            assert f"all {run.n_volumes} volumes are censored" in entry["found"]
            continue
        kept = kept_volumes(run, sample_mask)
        dof = len(kept) - confounds.shape[1] - 2
        if _no_freedom_left(real, run, stopped, confounds, kept):
            continue
        sample = samples[run.record]
        np.testing.assert_array_equal(sample["volumes"], kept)
        if dof >= 3:
            expected = masker(run, **CLEAN).fit_transform(
                str(run.bold), confounds=confounds, sample_mask=sample_mask
            )
            assert max_diff(sample["bold"], expected) <= TOL, run.record
            compared += 1
        elif dof >= 1:
            signals = masker(run, standardize=None).fit_transform(str(run.bold)).astype(np.float64)
            expected = nilearn_clean(signals, confounds=confounds.to_numpy(), t_r=run.t_r,
                                     sample_mask=sample_mask, **CLEAN)  # fmt: skip
            assert max_diff(sample["bold"], expected) <= TOL, run.record
        else:  # quarantined above: see _no_freedom_left
            raise AssertionError(f"{run.record}: written with {dof} degrees of freedom")
    assert not stopped, f"quarantined by nishard only: {stopped}"
    assert compared >= 1
    counts = manifest["records"]
    assert counts["located"] == counts["written"] + counts["quarantined"] == len(real.runs)


@pytest.mark.parametrize("name", DEFAULTS)
def test_presets_at_their_defaults_leave_the_same_residual(real, records, tmp_path, name):
    # Without standardization, so that a residual of round-off stays round-off: relative
    # to the signal (values of 100 to 5,500), 1e-6 is a few float32 steps.
    case = DEFAULTS[name]
    options = {**CLEAN, "standardize": None}
    manifest, samples = build(records, [ns.t.Mask(), ns.t.Clean(confounds=case.confounds,
                                                               **options)], tmp_path)  # fmt: skip
    stopped = quarantined(manifest)
    for run in real.runs:
        confounds, sample_mask = case.load(run.bold)
        if sample_mask is not None and sample_mask.size == 0:
            assert f"all {run.n_volumes} volumes are censored" in stopped.pop(run.record)["found"]
            continue
        expected = masker(run, **options).fit_transform(
            str(run.bold), confounds=confounds, sample_mask=sample_mask
        )
        sample = samples[run.record]
        np.testing.assert_array_equal(sample["volumes"], kept_volumes(run, sample_mask))
        scale = np.abs(masker(run, standardize=None).fit_transform(str(run.bold))).max()
        assert max_diff(sample["bold"], expected) <= 1e-6 * scale, run.record
    assert not stopped


def test_a_band_pass_too_long_for_the_runs_is_the_same_quarantine(real, records, tmp_path):
    # scipy's sosfiltfilt pads 33 samples for an order-5 Butterworth band-pass: longer than
    # runs of 20-30 volumes. nilearn raises; nishard quarantines each run, naming its BOLD.
    band = {**CLEAN, "low_pass": 0.1}
    simple = CASES["simple"]  # few regressors: the filter, not the confounds, refuses
    with pytest.raises(NishardError, match="every one of the 3 records was quarantined"):
        build(records, [ns.t.Mask(), ns.t.Clean(confounds=simple.confounds, **band)], tmp_path)
    stopped = quarantined(read_manifest(tmp_path))
    for run in real.runs:
        confounds, sample_mask = simple.load(run.bold)
        with pytest.raises(ValueError, match="padlen"):
            masker(run, **band).fit_transform(str(run.bold), confounds=confounds,
                                              sample_mask=sample_mask)  # fmt: skip
        entry = stopped.pop(run.record)
        assert entry["file"] == str(run.bold.relative_to(real.root))
        # Said in the user's terms, not SciPy's padlen.
        kept = run.n_volumes if sample_mask is None else len(sample_mask)
        assert entry["found"].endswith(
            f"{kept} volumes to filter (the run's, less any censored), too few for a "
            "Butterworth filter of order 5: it pads 33 volumes at each end, so it needs more "
            "than 33"
        )
    assert not stopped
