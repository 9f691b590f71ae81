"""Parcellating real runs: region signals equal to nilearn's NiftiLabelsMasker.

The atlas is made on the grid of nitime's runs (sub-01 and sub-02 share it): k-means of the
voxel coordinates (mm) in the union of their EPI masks, 8 parcels labelled 10, 20, ... 80
(labels need not be contiguous). nibabel's run (sub-03) lies elsewhere in space, on a grid
rotated by 11.8 degrees from nitime's: neither library can parcellate it with this atlas.

Tolerances: raw region means 1e-6 relative (sums of the same float32 values; observed
4e-8); cleaned and z-scored signals 1e-4 absolute (observed 3e-5).
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from nilearn.interfaces.fmriprep import load_confounds_strategy
from nilearn.maskers import NiftiLabelsMasker
from sklearn.cluster import KMeans

import nishard as ns
from tests.realdata.conftest import SIMPLE_BASIC, build, quarantined

LABELS_RTOL = 1e-6
TOL = 1e-4
CLEAN = {"standardize": "zscore_sample", "detrend": True, "high_pass": 0.01}
ON_GRID = ("01", "02")  # the runs on the atlas's grid


@pytest.fixture(scope="module")
def atlas(real, tmp_path_factory) -> str:
    masks = [nib.load(real.run(s).mask) for s in ON_GRID]
    brain = np.logical_or(*(np.asarray(m.dataobj) > 0 for m in masks))
    voxels = np.argwhere(brain)
    millimetres = nib.affines.apply_affine(masks[0].affine, voxels)
    parcels = KMeans(n_clusters=8, n_init=4, random_state=0).fit_predict(millimetres)
    labels = np.zeros(brain.shape, np.int16)
    labels[tuple(voxels.T)] = (parcels + 1) * 10
    path = tmp_path_factory.mktemp("atlas") / "kmeans_atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels, masks[0].affine), path)
    return str(path)


def labels_masker(atlas, **options) -> NiftiLabelsMasker:
    return NiftiLabelsMasker(atlas, strategy="mean", **options)


def fit_transform(masker, bold, **inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # regions outside the mask dropped
        return masker.fit_transform(str(bold), **inputs)


@pytest.mark.parametrize("mask", [False, True])
def test_region_means_equal_nifti_labels_masker(real, records, atlas, mask):
    plan = ns.assemble([ns.t.Parcellate(atlas, mask=mask)])
    for subject in ON_GRID:
        run = real.run(subject)
        masker = labels_masker(atlas, **({"mask_img": str(run.mask)} if mask else {}))
        expected = fit_transform(masker, run.bold)
        outcome = plan.run(records[run.record])
        assert outcome.error is None
        got = outcome.products
        np.testing.assert_allclose(got["bold"], expected, rtol=LABELS_RTOL, atol=0)
        np.testing.assert_array_equal(got["regions"], list(masker.region_ids_.values())[1:])
        if not mask:  # every parcel, whichever mask it was drawn from
            np.testing.assert_array_equal(got["regions"], np.arange(10, 90, 10))


def test_a_build_of_cleaned_regions_equals_nifti_labels_masker(real, records, atlas, tmp_path):
    steps = [ns.t.Parcellate(atlas, mask=True), ns.t.Clean(confounds=SIMPLE_BASIC, **CLEAN)]
    manifest, samples = build(records, steps, tmp_path)
    for subject in ON_GRID:
        run = real.run(subject)
        confounds, sample_mask = load_confounds_strategy(
            str(run.bold), denoise_strategy="simple", motion="basic"
        )
        masker = labels_masker(atlas, mask_img=str(run.mask), t_r=run.t_r, **CLEAN)
        expected = fit_transform(masker, run.bold, confounds=confounds, sample_mask=sample_mask)
        sample = samples[run.record]
        assert sample["bold"].shape == expected.shape
        assert np.abs(sample["bold"] - expected).max() <= TOL
        np.testing.assert_array_equal(sample["regions"], list(masker.region_ids_.values())[1:])
        np.testing.assert_array_equal(sample["volumes"], sample_mask)

    # sub-03: nilearn finds the resampled atlas empty; nishard refuses the rotated atlas.
    run = real.run("03")
    with pytest.raises(ValueError, match="field of view"):
        fit_transform(labels_masker(atlas), run.bold)
    entry = quarantined(manifest)[run.record]
    assert list(quarantined(manifest)) == [run.record]
    assert entry["file"].endswith("kmeans_atlas.nii.gz")
    assert "rotated by 11.8 degrees" in entry["found"]
