"""The Clean transform through a plan equals NiftiMasker with nilearn's confounds, per record.

Tolerance: float32 data, z-scored output: max abs difference 1e-4 (the issue's bound).
"""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy
from nilearn.maskers import NiftiMasker

from nishard.errors import SampleError, SpecError
from nishard.records import Fmriprep, locate
from nishard.spec import parse_spec
from nishard.transforms import Clean, ConfoundStrategy, Mask
from nishard.workflow import assemble
from tests.helpers import TINY_RES

BAND = {"low_pass": 0.1, "high_pass": 0.01}


def first_record(root):
    table = locate(root, Fmriprep(res=TINY_RES), stage=["bold", "mask", "confounds"])
    return next(iter(table))


def masker(record, **options) -> NiftiMasker:
    return NiftiMasker(mask_img=record.files["mask"], t_r=record.metadata["t_r"], **options)


def run(record, *steps):
    outcome = assemble([Mask(), *steps]).run(record)
    if outcome.error is not None:
        raise outcome.error
    return outcome.products


@pytest.mark.parametrize(
    ("strategy", "nilearn_kwargs"),
    [
        ("24P", {"strategy": ["motion"], "motion": "full"}),
        ("36P", {"strategy": ["motion", "wm_csf", "global_signal"], "motion": "full",
                 "wm_csf": "full", "global_signal": "full"}),
    ],
)  # fmt: skip
def test_confound_models_equal_nifti_masker(tiny, strategy, nilearn_kwargs):
    record = first_record(tiny)
    confounds, sample_mask = load_confounds(record.files["bold"], **nilearn_kwargs)
    assert sample_mask is None and confounds.shape[1] == int(strategy[:2])
    expected = masker(record, standardize="zscore_sample", detrend=True, **BAND).fit_transform(
        record.files["bold"], confounds=confounds
    )
    products = run(record, Clean(confounds=strategy, **BAND))
    assert np.abs(products["bold"] - expected).max() <= 1e-4
    np.testing.assert_array_equal(products["volumes"], np.arange(len(expected)))


@pytest.mark.parametrize("preset", ["simple", "scrubbing", "compcor"])
def test_presets_with_censoring_equal_nifti_masker(tiny, preset):
    record = first_record(tiny)
    confounds, sample_mask = load_confounds_strategy(record.files["bold"], denoise_strategy=preset)
    expected = masker(record, standardize="zscore_sample", detrend=True, **BAND).fit_transform(
        record.files["bold"], confounds=confounds, sample_mask=sample_mask
    )
    products = run(record, Clean(confounds=preset, **BAND))
    assert products["bold"].shape == expected.shape
    assert np.abs(products["bold"] - expected).max() <= 1e-4
    kept = np.arange(len(confounds)) if sample_mask is None else sample_mask
    np.testing.assert_array_equal(products["volumes"], kept)


def test_scrubbing_censors_the_synthetic_motion_spikes(tiny):
    # The synthetic runs carry motion spikes (FD > 0.5 mm) by construction: scrubbing must
    # remove volumes from at least one run, and exactly those nilearn removes.
    table = locate(tiny, Fmriprep(res=TINY_RES), stage=["bold", "mask", "confounds"])
    censored = 0
    for record in table:
        _, sample_mask = load_confounds_strategy(record.files["bold"], "scrubbing")
        products = run(record, Clean(confounds="scrubbing", filter=None))
        if sample_mask is not None:
            np.testing.assert_array_equal(products["volumes"], sample_mask)
            censored += 120 - len(sample_mask)
        assert len(products["bold"]) == len(products["volumes"])
    assert censored > 0


def test_without_confounds_equals_nifti_masker_and_writes_no_volumes(tiny):
    record = first_record(tiny)
    expected = masker(record, standardize="psc", detrend=False, high_pass=0.01).fit_transform(
        record.files["bold"]
    )
    products = run(record, Clean(standardize="psc", detrend=False, high_pass=0.01))
    assert set(products) == {"bold"}
    # psc is in percent: 1e-4 relative to its scale of about 1-10 %
    assert np.abs(products["bold"] - expected).max() <= 1e-4


def test_takes_the_tr_of_each_record_and_refuses_a_record_without_one(tiny):
    record = first_record(tiny)
    other_tr = dataclasses.replace(record, metadata={**record.metadata, "t_r": 1.0})
    a = run(record, Clean(**BAND))["bold"]
    b = run(other_tr, Clean(**BAND))["bold"]
    assert np.abs(a - b).max() > 0.1  # the cutoffs move with the TR
    np.testing.assert_array_equal(run(other_tr, Clean(t_r=2.0, **BAND))["bold"], a)

    no_tr = dataclasses.replace(record, metadata={**record.metadata, "t_r": None})
    outcome = assemble([Mask(), Clean(**BAND)]).run(no_tr)
    assert outcome.products is None
    assert outcome.error.path == record.files["bold"]
    assert "RepetitionTime" in outcome.error.expected and outcome.error.record == record.id
    # No filter: no TR needed.
    assert run(no_tr, Clean(filter=None))["bold"].shape == a.shape


def broken_confounds(tiny_copy, change):
    record = first_record(tiny_copy)
    path = record.files["confounds"]
    table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    change(table).to_csv(path, sep="\t", index=False, na_rep="n/a")
    return record


def quarantined(record, step):
    outcome = assemble([Mask(), step]).run(record)
    assert outcome.products is None and outcome.error.record == record.id
    return outcome.error


def test_a_confounds_file_with_other_rows_is_quarantined(tiny_copy):
    record = broken_confounds(tiny_copy, lambda t: t.iloc[:-3])
    error = quarantined(record, Clean(confounds="24P"))
    assert error.path == record.files["confounds"]
    assert "117 rows" in error.found and "120 volumes" in error.found


def test_a_missing_confound_column_is_named(tiny_copy):
    record = broken_confounds(tiny_copy, lambda t: t.drop(columns=["trans_x_derivative1"]))
    error = quarantined(record, Clean(confounds="simple"))
    assert error.path == record.files["confounds"]
    assert "'trans_x_derivative1'" in error.found and "simple" in error.expected


@pytest.mark.parametrize("content", ["", "garbage without tabs\n1\n2\n"])
def test_an_empty_or_unparsable_confounds_file_is_quarantined(tiny_copy, content):
    record = first_record(tiny_copy)
    with open(record.files["confounds"], "w") as f:
        f.write(content)
    error = quarantined(record, Clean(confounds="24P"))
    assert error.path == record.files["confounds"] and "confounds table" in error.expected


def test_constant_and_non_finite_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    x[:, 1] = 7.0
    out = Clean(filter=None)({"bold": x, "meta": {}})["bold"]
    np.testing.assert_array_equal(out[:, 1], 0.0)  # nilearn: constant features are zeros
    assert np.abs(out[:, [0, 2, 3]].std(axis=0, ddof=1) - 1).max() < 1e-5
    x[3, 2] = np.nan
    with pytest.raises(SampleError, match="NaN or infinite values in 1 feature"):
        Clean(filter=None)({"bold": x, "meta": {}})
    fixed = Clean(filter=None, ensure_finite=True)({"bold": x, "meta": {}})["bold"]
    assert np.isfinite(fixed).all()


def test_needs_a_time_by_feature_array():
    with pytest.raises(SampleError, match="mask or parcellate first"):
        Clean()({"bold": np.zeros((2, 2, 2, 10), np.float32), "meta": {"t_r": 2.0}})


def test_yaml_options_round_trip_and_are_checked(tiny):
    spec = {
        "input": {"path": str(tiny), "schema": {"name": "fmriprep", "res": TINY_RES}},
        "transforms": [
            "mask",
            {"clean": {"confounds": {"strategy": "simple", "global_signal": "basic"},
                       "low_pass": 0.1, "high_pass": 0.01, "detrend": 2}},
        ],
        "output": {"path": "out"},
    }  # fmt: skip
    pipeline = parse_spec(spec, tiny)
    clean = pipeline.transforms[1]
    assert clean.detrend == 2 and clean.low_pass == 0.1
    assert clean.confounds == ConfoundStrategy(
        name="simple", high_pass=True, motion="full", wm_csf="basic", global_signal="basic"
    )
    again = parse_spec({**spec, "transforms": pipeline.spec["transforms"]}, tiny)
    assert again.transforms == pipeline.transforms
    assert again.spec["transforms"] == pipeline.spec["transforms"]
    assert pipeline.transforms[1] in assemble(pipeline.transforms).steps

    for bad, message in [
        ({"low_pass": "0.1"}, "low_pass (must be )?a (positive )?number"),
        ({"detrend": "yes"}, "detrend must be true/false or an integer"),
        ({"confounds": {"strategy": "simple", "motoin": "full"}}, "unknown confound option"),
        ({"confounds": "simpel"}, "confound strategy one of"),
        ({"low_pass": 0.01, "high_pass": 0.1}, "must be below low_pass"),
    ]:
        with pytest.raises(SpecError, match=message):
            parse_spec({**spec, "transforms": ["mask", {"clean": bad}]}, tiny)


def test_hcp_movement_regressors_feed_the_motion_strategies(tmp_path):
    # HCP ships Movement_Regressors.txt (mm and degrees) instead of fMRIPrep's table: 24P
    # on it must equal nilearn's clean with the 24 regressors built by hand from the file.
    from nilearn.signal import clean as nilearn_clean

    from nishard.datasets import generate
    from nishard.records import Hcp

    root = tmp_path / "hcp"
    generate(root, "tiny", seed=0, layout="hcp", subjects=1)
    table = locate(root, Hcp(res=TINY_RES), stage=["bold", "mask", "movement"])
    record = next(iter(table))
    raw = np.loadtxt(record.files["movement"])
    raw[:, [3, 4, 5, 9, 10, 11]] = np.radians(raw[:, [3, 4, 5, 9, 10, 11]])
    regressors = np.hstack([raw, raw**2])
    step = Clean(confounds="24P", confounds_file="movement", **BAND)
    outcome = assemble([Mask(), step]).run(record)
    assert outcome.error is None
    # Indexed with HCP's protocol TR; the worker took the synthetic header's instead.
    header = float(nib.load(record.files["bold"]).header.get_zooms()[3])
    assert record.metadata["t_r"] == 0.72 and outcome.record.metadata["t_r"] == header != 0.72
    assert outcome.record.metadata["t_r_source"] == "header"
    assert outcome.warnings == (
        (record.files["bold"], f"the header's repetition time {header:g} s differs from the "
         "protocol's 0.72 s; the header's is used"),
    )  # fmt: skip
    masked = run(record)["bold"]
    expected = nilearn_clean(
        masked, detrend=True, standardize="zscore_sample", confounds=regressors,
        t_r=header, **BAND,
    )  # fmt: skip
    assert np.abs(outcome.products["bold"] - expected).max() <= 1e-4

    with open(record.files["movement"], "w") as f:
        f.write("1 2 3\n4 5 6\n")
    error = assemble([Mask(), step]).run(record).error
    assert error.path == record.files["movement"] and "12 whitespace-separated" in error.expected
