"""Non-steady-state volumes flagged in real fMRIPrep confounds are censored as nilearn does.

fMRIPrep marks the volumes acquired before the magnetization reached steady state with one
``non_steady_state_outlierXX`` column per volume (1 in that volume's row, 0 elsewhere).
nilearn's ``load_confounds(_strategy)`` always reads them, whatever the strategy: their
volumes leave the sample mask, the regressors are demeaned over the volumes kept, and the
columns are no regressors. The real derivative (tests/realdata/layout.py) has such columns
as fMRIPrep wrote them, in nilearn's own test files: sub-01's fMRIPrep 21 table flags its
first 3 volumes, sub-02's fMRIPrep 1.4 table its first one; sub-03's table has none (no
sample mask unless scrubbing censors a volume). No column had to be added.

Each build (Mask + Clean) is compared with ``NiftiMasker(...).fit_transform(bold,
confounds=..., sample_mask=...)`` on nilearn's ``load_confounds_strategy`` of the same run:
the kept volumes exactly, the signals to 1e-4 (z-scored, as tests/realdata/test_denoise.py
compares them). ``scrubbing`` at nilearn's thresholds censors every volume of sub-01 (the
same quarantine, tested there), so it is also run at thresholds that censor some of
sub-01's volumes for motion besides its non-steady ones: both censorings, the short
segments they leave, and the demeaning over what is left.

Censored volumes inside a run meet nilearn 0.14.1's bug before a Butterworth filter
(tests/transforms/test_clean.py): ``_interpolate_volumes`` indexes with ``~sample_mask``
on kept *indices*, so it refills the volumes mirrored in time instead of the censored ones,
which then enter the filter unfilled. nishard fills the censored ones, as nilearn documents.
NiftiMasker is therefore run with that one function corrected (:func:`fill_censored`); for
runs censored only at their start (the non-steady volumes alone) the correction changes
nothing, and for the run censored inside, the test shows that uncorrected nilearn differs.
"""

from __future__ import annotations

import dataclasses
import shutil

import nilearn.signal
import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import CubicSpline

import nishard as ns
from tests.realdata.conftest import SIMPLE_BASIC, build, quarantined
from tests.realdata.test_denoise import CLEAN, TOL, Case, masker, max_diff

BASIC = {"motion": "basic", "wm_csf": "basic"}
LOOSE = {**BASIC, "fd_threshold": 3.0, "std_dvars_threshold": 4.0}
CASES = {
    "simple": Case(SIMPLE_BASIC, "simple", {"motion": "basic"}),
    "scrubbing": Case({"strategy": "scrubbing", **BASIC}, "scrubbing", BASIC),
    "scrubbing-loose": Case({"strategy": "scrubbing", **LOOSE}, "scrubbing", LOOSE),
}
#: Volumes each table flags as non-steady-state (fMRIPrep's columns, as nilearn ships them).
NON_STEADY = {"01": [0, 1, 2], "02": [0], "03": []}


def fill_censored(volumes, sample_mask, t_r, extrapolate):
    """nilearn.signal._interpolate_volumes with the censored volumes filled (a boolean mask
    where nilearn writes ``~sample_mask`` of indices)."""
    frame_times = np.arange(volumes.shape[0]) * t_r
    censored = np.ones(volumes.shape[0], dtype=bool)
    censored[sample_mask] = False
    spline = CubicSpline(frame_times[sample_mask], volumes[sample_mask, :],
                         extrapolate=extrapolate)  # fmt: skip
    volumes[censored, :] = spline(frame_times)[censored, :]
    return volumes


def flagged(run) -> list[int]:
    table = pd.read_csv(run.confounds, sep="\t", na_values=["n/a"])
    columns = table.filter(like="non_steady_state_outlier")
    # One column per volume, one 1 in it: fMRIPrep's one-hot encoding.
    assert ((columns == 0) | (columns == 1)).all().all()
    assert (columns.sum() == 1).all()
    return sorted(np.flatnonzero(columns.sum(axis=1)).tolist())


def test_the_real_confounds_flag_their_first_volumes(real):
    assert {run.subject: flagged(run) for run in real.runs} == NON_STEADY


@pytest.mark.parametrize("name", CASES)
def test_non_steady_volumes_are_censored_as_nilearn_censors_them(
    real, records, tmp_path, monkeypatch, name
):
    case = CASES[name]
    buggy = nilearn.signal._interpolate_volumes
    monkeypatch.setattr(nilearn.signal, "_interpolate_volumes", fill_censored)
    steps = [ns.t.Mask(), ns.t.Clean(confounds=case.confounds, **CLEAN)]
    manifest, samples = build(records, steps, tmp_path)
    stopped = quarantined(manifest)
    motion_censored = 0
    for run in real.runs:
        confounds, sample_mask = case.load(run.bold)
        non_steady = NON_STEADY[run.subject]
        if sample_mask is not None and sample_mask.size == 0:
            # scrubbing at nilearn's thresholds: every volume of sub-01 (see test_denoise).
            assert (name, run.subject) == ("scrubbing", "01")
            assert f"all {run.n_volumes} volumes are censored" in stopped.pop(run.record)["found"]
            continue
        assert not any(c.startswith("non_steady_state") for c in confounds.columns)
        if non_steady:
            assert sample_mask is not None and not set(non_steady) & set(sample_mask)
        kept = np.arange(run.n_volumes) if sample_mask is None else sample_mask
        motion_censored += run.n_volumes - len(non_steady) - len(kept)
        sample = samples[run.record]
        np.testing.assert_array_equal(sample["volumes"], kept)
        assert len(kept) - confounds.shape[1] - 2 >= 3  # degrees of freedom left to compare
        expected = masker(run, **CLEAN).fit_transform(
            str(run.bold), confounds=confounds, sample_mask=sample_mask
        )
        assert max_diff(sample["bold"], expected) <= TOL, run.record
        inside = np.setdiff1d(np.arange(kept[0], kept[-1]), kept)
        if inside.size:  # censored between kept volumes: uncorrected nilearn leaves them in
            with monkeypatch.context() as patch:
                patch.setattr(nilearn.signal, "_interpolate_volumes", buggy)
                unfilled = masker(run, **CLEAN).fit_transform(
                    str(run.bold), confounds=confounds, sample_mask=sample_mask
                )
            assert max_diff(sample["bold"], unfilled) > 100 * TOL, run.record
    assert not stopped, f"quarantined by nishard only: {stopped}"
    if name == "scrubbing-loose":
        assert motion_censored > 0  # the case censors for motion too, on a non-steady run


def test_without_its_non_steady_column_a_run_keeps_every_volume(real, tmp_path):
    # sub-02 copied, its one non-steady-state column removed: nothing is censored, in both.
    run = real.run("02")
    root = tmp_path / "fmriprep"
    shutil.copytree(run.bold.parents[1], root / run.bold.parents[1].name)
    copy = dataclasses.replace(
        run, **{kind: root / getattr(run, kind).relative_to(real.root)
                for kind in ("bold", "mask", "confounds")},
    )  # fmt: skip
    table = pd.read_csv(copy.confounds, sep="\t", dtype=str, keep_default_na=False)
    table.drop(columns="non_steady_state_outlier00").to_csv(copy.confounds, sep="\t", index=False)
    case = CASES["simple"]
    confounds, sample_mask = case.load(copy.bold)
    assert sample_mask is None
    located = ns.locate(root, schema=ns.schemas.fmriprep(), stage=["bold", "mask", "confounds"])
    steps = [ns.t.Mask(), ns.t.Clean(confounds=case.confounds, **CLEAN)]
    _, samples = build(located, steps, tmp_path / "out")
    np.testing.assert_array_equal(samples[run.record]["volumes"], np.arange(run.n_volumes))
    expected = masker(copy, **CLEAN).fit_transform(str(copy.bold), confounds=confounds)
    assert max_diff(samples[run.record]["bold"], expected) <= TOL
