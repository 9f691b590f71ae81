"""Every quarantine names its file: a run the math cannot handle (an all-zero run reaching
a correlation) is quarantined naming the record's BOLD file and saying why."""

from __future__ import annotations

import nibabel as nib
import numpy as np

import nishard as ns
from tests.helpers import TINY_RES, bold_files


def test_an_all_zero_run_names_its_bold_file_and_says_it_is_constant(tiny_copy, atlas, tmp_path):
    zero = bold_files(tiny_copy)[1]
    image = nib.load(zero)
    flat = nib.Nifti1Image(np.zeros(image.shape, np.float32), image.affine, image.header)
    nib.save(flat, zero)
    records = ns.locate(tiny_copy, schema=ns.schemas.fmriprep(res=TINY_RES))
    plan = ns.assemble([ns.t.Parcellate(atlas), ns.t.Connectivity(kind="correlation")])
    manifest = ns.write(records, plan, tmp_path / "out", progress=False)
    [entry] = manifest["quarantine"]
    assert entry["file"] == str(zero.relative_to(tiny_copy))
    assert "every region is constant over time" in entry["found"]
    assert "the run itself is constant" in entry["found"]
    assert manifest["records"]["written"] == len(records) - 1
