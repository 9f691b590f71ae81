"""Bytes of a sample's fields, the same bytes for the same values on every run."""

from __future__ import annotations

import io
import json

import numpy as np


def encode_npy(array: np.ndarray) -> bytes:
    """NumPy ``.npy`` bytes of a C-contiguous copy of ``array`` (no pickles)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def encode_json(obj: object) -> bytes:
    """Canonical JSON: sorted keys, no NaN (those must be None already), UTF-8."""
    return json.dumps(obj, sort_keys=True, allow_nan=False, ensure_ascii=False).encode()
