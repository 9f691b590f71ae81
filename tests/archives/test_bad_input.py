"""A broken input file quarantines its record with a reason naming it; the rest is written."""

import gzip
import os

import nibabel as nib
import numpy as np
import pytest
import webdataset as wds

import nishard as ns
from tests.helpers import TINY_RES, bold_files


def _write(root, out):
    records = ns.locate(root, schema=ns.schemas.fmriprep(res=TINY_RES))
    plan = ns.assemble([ns.t.Mask(), ns.t.Standardize()])
    return records, ns.write(records, plan, out, shards=ns.shards.by_count(2), progress=False)


def _written_keys(out, manifest):
    urls = [str(out / s["name"]) for s in manifest["shards"]]
    return sorted(s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False))


def _break_empty(path):
    path.write_bytes(b"")


def _break_garbage(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _break_truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _break_not_4d(path):
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine), path)


def _break_nan(path):
    img = nib.load(path)
    data = np.asarray(img.dataobj).copy()
    data[data.shape[0] // 2, data.shape[1] // 2, data.shape[2] // 2, 0] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)


def _break_zero_mask(path):
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), path)


BOLD = "a 4D NIfTI image (x, y, z, time)"
MASK = "a 3D NIfTI brain mask"


@pytest.mark.parametrize(
    ("kind", "damage", "expected", "found"),
    [
        ("bold", _break_empty, BOLD, "an empty file (0 bytes)"),
        ("bold", _break_garbage, BOLD, "an unreadable file"),
        ("bold", _break_truncated, BOLD, "unreadable data (EOFError"),
        ("bold", _break_not_4d, BOLD, "a 3D image of shape"),
        ("bold", _break_nan, "finite values", "NaN or infinite values"),
        ("mask", _break_empty, MASK, "an empty file (0 bytes)"),
        ("mask", _break_garbage, MASK, "an unreadable file"),
        ("mask", _break_zero_mask, MASK, "an empty mask (no voxel above 0)"),
    ],
)
def test_a_broken_file_is_quarantined_and_the_rest_written(
    tiny_copy, tmp_path, kind, damage, expected, found
):
    bold = bold_files(tiny_copy)[1]
    bad = bold if kind == "bold" else _mask_of(bold)
    damage(bad)
    records, manifest = _write(tiny_copy, tmp_path)
    [entry] = manifest["quarantine"]
    assert entry["record"] in bad.name
    assert entry["file"] == str(bad.relative_to(tiny_copy))
    assert entry["expected"] == expected
    assert entry["found"].startswith(found)
    good = sorted(r.id for r in records if r.id != entry["record"])
    assert _written_keys(tmp_path, manifest) == good
    assert manifest["records"]["written"] == len(good)


def _mask_of(bold):
    return bold.with_name(bold.name.replace("_desc-preproc_bold", "_desc-brain_mask"))


def _cropped(data, affine):
    return data[1:], affine


def _shifted(data, affine):
    # The same shape, two voxels along x: a mask of another run's grid.
    moved = affine.copy()
    moved[:3, 3] += 2 * affine[:3, 0]
    return data, moved


@pytest.mark.parametrize("regrid", [_cropped, _shifted])
def test_a_mask_on_another_grid_is_quarantined(tiny_copy, tmp_path, regrid):
    bold = bold_files(tiny_copy)[0]
    mask = _mask_of(bold)
    img = nib.load(mask)
    data, affine = regrid(np.asarray(img.dataobj), img.affine)
    nib.save(nib.Nifti1Image(data, affine, img.header), mask)
    records, manifest = _write(tiny_copy, tmp_path)
    [entry] = manifest["quarantine"]
    assert entry["record"] in bold.name
    assert entry["file"] == str(mask.relative_to(tiny_copy))
    assert entry["expected"] == f"a mask on the BOLD grid {nib.load(bold).shape[:3]}"
    # The mask's own shape and affine, to compare with the BOLD's.
    assert entry["found"] == f"shape {data.shape} with affine\n{np.round(affine, 3)}"
    good = sorted(r.id for r in records if r.id != entry["record"])
    assert _written_keys(tmp_path, manifest) == good


def test_when_every_record_is_broken_the_build_fails_but_says_why(tiny_copy, tmp_path):
    for bold in bold_files(tiny_copy):
        with gzip.open(bold, "wb") as handle:
            handle.write(b"not a nifti")
    with pytest.raises(ns.NishardError, match=r"every one of the .* records was quarantined"):
        _write(tiny_copy, tmp_path)
    manifest = ns.read_manifest(tmp_path)
    assert len(manifest["quarantine"]) == len(bold_files(tiny_copy))
    assert manifest["shards"] == []


def _regrid(bold, change):
    """Put one record's BOLD and brain mask on another grid: same voxels, ``change @ affine``."""
    for path in (bold, _mask_of(bold)):
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), change @ img.affine, img.header), path)


def _rotated():
    # A subject's native space: its voxel axes turned by 30 degrees against the template's.
    angle = np.radians(30)
    change = np.eye(4)
    change[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return change, "in the BOLD's space", "axes rotated by 30.0 degrees"


def _far():
    change = np.eye(4)
    change[:3, 3] = 5000.0  # the same space, but the atlas covers none of the run
    return change, "overlapping the BOLD's field of view", "no non-zero voxel on the BOLD grid"


@pytest.mark.parametrize("grid", [_rotated, _far])
@pytest.mark.parametrize(
    ("step", "what"),
    [
        (lambda path: ns.t.Parcellate(path), "a 3D labels atlas of integer region values"),
        (lambda path: ns.t.Mask(source=path), "a 3D mask"),
    ],
    ids=["parcellate", "mask"],
)
def test_an_atlas_off_a_records_grid_is_quarantined_by_its_file(
    tiny_copy, tmp_path, atlas, grid, step, what
):
    bold = bold_files(tiny_copy)[1]
    change, expected, found = grid()
    _regrid(bold, change)
    records = ns.locate(tiny_copy, schema=ns.schemas.fmriprep(res=TINY_RES))
    plan = ns.assemble([step(atlas), ns.t.Standardize()])
    manifest = ns.write(records, plan, tmp_path, shards=ns.shards.by_count(2), progress=False)
    [entry] = manifest["quarantine"]
    assert entry["record"] in bold.name
    # The atlas lives outside the dataset: the file is relative to the dataset's root.
    assert os.path.normpath(tiny_copy / entry["file"]) == atlas
    assert entry["expected"].startswith(f"{what} {expected}")
    assert atlas not in entry["expected"]  # said once, in "file"
    assert entry["found"].startswith(found)
    good = sorted(r.id for r in records if r.id != entry["record"])
    assert _written_keys(tmp_path, manifest) == good
