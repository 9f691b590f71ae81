"""Loading a record's files: a run with any non-finite value is refused, whichever it is."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from nishard.errors import RecordError
from nishard.workflow.inputs import load_bold
from tests.helpers import bold_files
from tests.workflow.dags import records


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, None])
@pytest.mark.parametrize("where", [0, -1])  # the first and the last value of the run
def test_a_run_holding_one_non_finite_value_is_refused(tiny_copy, value, where):
    path = bold_files(tiny_copy)[0]
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32).copy()
    if value is not None:
        data.reshape(-1, order="A")[where] = value
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    [record] = [r for r in records(tiny_copy) if r.files["bold"] == str(path)]
    if value is None:
        np.testing.assert_array_equal(load_bold(record, str(path), {}), data)
        return
    with pytest.raises(RecordError, match="NaN or infinite values"):
        load_bold(record, str(path), {})
