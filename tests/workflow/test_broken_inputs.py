"""Every broken file of a record is a RecordError naming the file, the record and what was
expected, with what the image I/O found (tests/test_imageio.py makes the broken files)."""

import nibabel as nib
import numpy as np
import pytest

from nishard.errors import RecordError
from nishard.records.table import Record
from nishard.workflow.headers import describe_inputs
from nishard.workflow.inputs import load_inputs
from tests.test_imageio import CASES, _bold, _cifti, _gifti, _save

BOLD = "a 4D NIfTI image (x, y, z, time)"
MASK = "a 3D NIfTI brain mask"
CIFTI = "a CIFTI-2 dense time series (.dtseries.nii: time x grayordinates)"
SURFACE = "a GIfTI functional surface (.func.gii: one data array per volume)"


def _record(tmp_path, bold=None, **files) -> Record:
    files = {"bold": str(bold or _save(tmp_path / "bold.nii.gz", _bold())), **files}
    return Record("sub-01_task-rest", {k: str(v) for k, v in files.items()}, {"t_r": 2.0})


def _error(record, kinds) -> RecordError:
    with pytest.raises(RecordError) as caught:
        load_inputs(record, kinds)
    return caught.value


@pytest.mark.parametrize(("name", "content", "found"), CASES, ids=[c[0] for c in CASES])
def test_a_broken_bold_is_a_record_error(tmp_path, name, content, found):
    bad = tmp_path / "sub-01_bold.nii.gz"
    bad.write_bytes(content(tmp_path))
    record = _record(tmp_path, bold=bad)
    err = _error(record, ("bold",))
    assert (err.record, err.path, err.expected) == (record.id, str(bad), BOLD)
    assert err.found.startswith(found), err.found


@pytest.mark.parametrize(("name", "content", "found"), CASES[:5], ids=[c[0] for c in CASES[:5]])
def test_a_broken_mask_is_a_record_error(tmp_path, name, content, found):
    bad = tmp_path / "sub-01_mask.nii.gz"
    bad.write_bytes(content(tmp_path))
    record = _record(tmp_path, mask=bad)
    err = _error(record, ("bold", "mask"))
    assert (err.record, err.path, err.expected) == (record.id, str(bad), MASK)
    assert err.found.startswith(found), err.found


def test_broken_cifti_and_gifti_files_are_record_errors(tmp_path):
    scalars = tmp_path / "maps.dtseries.nii"
    brain = nib.cifti2.BrainModelAxis.from_mask(np.array([1, 1]), "CORTEX_LEFT")
    axes = (nib.cifti2.ScalarAxis(["a"]), brain)
    nib.save(nib.Cifti2Image(np.ones((1, 2), np.float32), axes), scalars)
    mixed = tmp_path / "mixed.func.gii"
    arrays = [nib.gifti.GiftiDataArray(np.zeros(n, np.float32)) for n in (4, 5)]
    nib.save(nib.gifti.GiftiImage(darrays=arrays), mixed)
    empty = tmp_path / "empty.func.gii"
    empty.write_bytes(b"")
    cases = [
        ("cifti", tmp_path / "absent.dtseries.nii", CIFTI, "no such file"),
        ("cifti", scalars, CIFTI, "a first axis ScalarAxis"),
        ("surface_L", empty, SURFACE, "an empty file (0 bytes)"),
        ("surface_L", mixed, SURFACE, "2 data arrays of shapes [(4,), (5,)]"),
    ]
    for kind, path, expected, found in cases:
        err = _error(_record(tmp_path, **{kind: path}), (kind,))
        assert (err.path, err.expected, err.found) == (str(path), expected, found)


def test_good_cifti_and_gifti_files_load_and_are_described_from_headers(tmp_path):
    series = _bold(shape=(7, 5))
    cifti = _cifti(tmp_path / "run.dtseries.nii", series)
    gifti = _gifti(tmp_path / "run.func.gii", series)
    record = _record(tmp_path, cifti=cifti, surface_L=gifti)
    sample = load_inputs(record, ("cifti", "surface_L"))
    np.testing.assert_array_equal(sample["cifti"], series, strict=True)
    np.testing.assert_array_equal(sample["surface_L"], series, strict=True)
    specs = describe_inputs(record, ("bold", "cifti", "surface_L"))
    assert {k: s.shape for k, s in specs.items()} == {
        "bold": (5, 6, 4, 7),
        "cifti": (7, 5),
        "surface_L": (7, 5),
    }


def test_a_good_record_loads_as_nibabel_reads_it(tmp_path):
    bold = _save(tmp_path / "bold.nii.gz", _bold(np.float64) * 10, slope=0.5, inter=3.0)
    mask = _save(tmp_path / "mask.nii.gz", (_bold(shape=(5, 6, 4)) > 100).astype(np.uint8))
    sample = load_inputs(_record(tmp_path, bold=bold, mask=mask), ("bold", "mask"))
    np.testing.assert_array_equal(
        sample["bold"], np.asarray(nib.load(bold).dataobj, np.float32), strict=True
    )
    np.testing.assert_array_equal(sample["mask"], nib.load(mask).get_fdata() > 0)
    np.testing.assert_array_equal(sample["affine"], nib.load(bold).affine)
