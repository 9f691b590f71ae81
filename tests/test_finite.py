"""all_finite: any single NaN or infinity, wherever it is, in any float dtype."""

from __future__ import annotations

import numpy as np
import pytest

from nishard.finite import all_finite


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 517, -1])
def test_one_non_finite_value_anywhere_is_found(dtype, bad, where):
    data = np.random.default_rng(0).standard_normal((30, 40)).astype(dtype)
    assert all_finite(data)
    data.reshape(-1)[where] = bad
    assert not all_finite(data)


def test_extreme_finite_values_empty_and_integer_arrays_are_finite():
    big = np.finfo(np.float32).max
    assert all_finite(np.array([big, -big, big], dtype=np.float32))  # a sum would overflow
    assert all_finite(np.empty((0, 5), dtype=np.float32))
    assert all_finite(np.arange(10))
