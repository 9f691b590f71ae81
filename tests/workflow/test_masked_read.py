"""A plan that masks first reads the mask's voxels volume by volume: the same products and
QC as masking the loaded run, bad values inside the brain still refused; the inputs'
checksums, hashed while the record is read, are the files' own, and an unreadable file is
still the record's error."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import nishard as ns
from nishard.checksums import sha256_file
from nishard.imageio.nifti import CHUNK
from nishard.workflow import inputs
from nishard.workflow.fusion import READ_BUFFERS
from nishard.workflow.inputs import load_inputs
from nishard.workflow.qc import measure_inputs
from tests.workflow.dags import BAND, outcome_products, records

CLEAN = ns.t.Clean(detrend=True, standardize="zscore_sample", confounds="24P", **BAND)


def _unfused(plan, record) -> tuple[dict, dict]:
    """The products and input QC of masking the whole loaded run (the steps one by one)."""
    sample = load_inputs(record, plan.inputs)
    qc = measure_inputs(sample)
    out = plan.apply(sample, record)
    return {key: out[key] for key in plan.products}, qc


@pytest.mark.parametrize(
    "steps", [[ns.t.Mask()], [ns.t.Mask(), CLEAN]], ids=["mask", "mask-clean"]
)  # fmt: skip
def test_masking_as_read_gives_the_products_and_qc_of_masking_the_run(tiny, steps):
    plan = ns.assemble(steps)
    assert plan.nodes[0].masks_on_read
    assert "(bold masked as it is read)" in plan.explain()
    for record in records(tiny)[:2]:
        outcome = plan.run(record)
        assert outcome.error is None
        products, qc = _unfused(plan, record)
        assert outcome.products.keys() == products.keys()
        for key, value in products.items():
            np.testing.assert_array_equal(outcome.products[key], value, strict=True)
        assert {k: v for k, v in outcome.qc.items() if k in qc} == qc
        assert qc["tsnr"] > 0


def test_only_a_first_mask_by_the_records_own_mask_is_read_masked(tiny):
    smooth_first = ns.assemble([ns.t.Smooth(fwhm=4.0), ns.t.Mask()])
    assert not any(node.masks_on_read for node in smooth_first.nodes)
    mask_path = records(tiny)[0].files["mask"]
    given = ns.assemble([ns.t.Mask(source=mask_path)])
    assert not given.nodes[0].masks_on_read
    assert "masked as it is read" not in given.explain()
    # The record's own path (the usual path) is masked as read, the given one not: both equal.
    record = records(tiny)[0]
    np.testing.assert_array_equal(
        outcome_products(ns.assemble([ns.t.Mask()]), record)["bold"],
        outcome_products(given, record)["bold"],
    )


def _set(path, voxel, value):
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32).copy()
    data[voxel] = value
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_bad_value_inside_the_brain_is_refused_one_outside_reaches_no_product(tiny_copy, value):
    plan = ns.assemble([ns.t.Mask()])
    inside, outside = records(tiny_copy)[:2]
    mask = np.asarray(nib.load(inside.files["mask"]).dataobj) > 0
    _set(inside.files["bold"], (*np.argwhere(mask)[len(np.argwhere(mask)) // 2], 3), value)
    outcome = plan.run(inside)
    assert outcome.products is None
    err = outcome.error
    assert (err.record, err.path, err.expected) == (
        inside.id, inside.files["bold"], "finite values"
    )  # fmt: skip
    assert err.found == "NaN or infinite values"

    mask = np.asarray(nib.load(outside.files["mask"]).dataobj) > 0
    before = outcome_products(plan, outside)["bold"]
    _set(outside.files["bold"], (*np.argwhere(~mask)[0], 3), value)
    np.testing.assert_array_equal(outcome_products(plan, outside)["bold"], before)


def test_the_checksums_hashed_while_reading_are_the_files_own(tiny):
    plan = ns.assemble([ns.t.Mask(), CLEAN])
    record = records(tiny)[0]
    outcome = plan.run(record)
    assert outcome.checksums == {
        record.files[kind]: sha256_file(record.files[kind]) for kind in plan.inputs
    }


def test_a_file_the_hash_cannot_read_is_the_records_error_though_it_loads(tiny, monkeypatch):
    """Root reads any file: the refusal is the OS's error, raised by the hash alone."""
    plan = ns.assemble([ns.t.Mask(), CLEAN])
    record = records(tiny)[0]

    def refused(path, *args, **kwargs):
        if path == record.files["confounds"]:
            raise PermissionError(13, "Permission denied", str(path))
        return sha256_file(path)

    monkeypatch.setattr(inputs, "sha256_file", refused)
    outcome = plan.run(record)
    assert outcome.products is None
    err = outcome.error
    assert (err.path, err.expected) == (record.files["confounds"], "a readable file")
    assert err.found.startswith("PermissionError: Permission denied (mode ")


def test_fusion_costs_the_read_by_the_readers_own_buffers():
    """fusion.py cannot import the reader (nibabel, ISA-L): its constant must follow it."""
    assert READ_BUFFERS == 2 * CHUNK
