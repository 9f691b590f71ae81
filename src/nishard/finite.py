"""Whether a large array holds only finite values, without a temporary the array's size."""

from __future__ import annotations

import numpy as np


def all_finite(data: np.ndarray) -> bool:
    """True when no value of ``data`` is NaN or infinite (an empty array included).

    The smallest and largest values are finite exactly when every value is (a NaN makes
    both NaN). Two vectorised passes and no temporary, where ``isfinite(data).all()``
    would allocate a boolean array a quarter the size of a float32 run (1.3 GB for a 2 mm
    run of 1200 volumes); a float64 sum, one pass, casts and runs half as fast.

    Parameters
    ----------
    data : ndarray
        Any numeric array.

    Returns
    -------
    bool
    """
    return data.size == 0 or bool(np.isfinite(data.min()) and np.isfinite(data.max()))
