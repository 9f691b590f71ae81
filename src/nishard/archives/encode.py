"""Bytes of a sample's fields, the same bytes for the same values on every run.

Arrays are NumPy ``.npy`` (no pickles): numpy, webdataset's default decoder and any other
reader load them without nishard. float16 and float32 are NumPy dtypes and need nothing
more.

bfloat16 is not a NumPy dtype but an ``ml_dtypes`` one, and ``np.save`` writes it as an
opaque ``|V2`` that no reader can tell from raw bytes. An ``ml_dtypes`` array (bfloat16,
or a float8) is therefore stored as its bit pattern, little-endian, in a one-field
structured dtype named after its type: a bfloat16 array is a ``.npy`` of
``[('bfloat16', '<u2')]``. Such a file loads anywhere, says what it holds, and fails
loudly when used as numbers by mistake (torch.from_numpy and arithmetic refuse it),
where a plain ``uint16`` would train a model on integers in silence. The manifest lists
the product with dtype ``bfloat16``. To read it:

- NumPy or JAX: :func:`restore_dtype` (or :func:`decode_npy` on the bytes) gives an
  ``ml_dtypes.bfloat16`` array, which ``jax.numpy.asarray`` takes as ``jnp.bfloat16``;
  with webdataset,
  ``.decode().map_dict(**{"bold.npy": restore_dtype})``.
- PyTorch: ``torch.from_numpy(array.view(np.uint16)).view(torch.bfloat16)``, where
  ``array`` is what webdataset's ``.decode()`` gives for the field.

A ``.pth`` of a torch.bfloat16 tensor was the alternative: it would hand PyTorch users a
tensor at once, but it needs torch to write (an optional dependency of nishard) and to
read (JAX users too), and it is a pickle, which webdataset refuses under
``enforce_security``.
"""

from __future__ import annotations

import io
import json

import ml_dtypes
import numpy as np


def encode_npy(array: np.ndarray) -> bytes:
    """NumPy ``.npy`` bytes of a C-contiguous copy of ``array`` (no pickles).

    An ``ml_dtypes`` array (bfloat16...) is written as its bits in a structured dtype named
    after its type; see the module docstring and :func:`decode_npy`.
    """
    # Not ascontiguousarray: it turns a 0-d array into shape (1,).
    array = np.asarray(array, order="C")
    if _is_ml_dtype(array.dtype):
        bits = array.view(f"u{array.dtype.itemsize}").astype(f"<u{array.dtype.itemsize}")
        array = bits.view([(array.dtype.name, bits.dtype)])
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    """The array of :func:`encode_npy` bytes, bfloat16 (``ml_dtypes``) restored."""
    return restore_dtype(np.load(io.BytesIO(data), allow_pickle=False))


def restore_dtype(array: np.ndarray) -> np.ndarray:
    """An ``ml_dtypes`` array from its stored form (``[('bfloat16', '<u2')]``); any other
    array unchanged.

    Parameters
    ----------
    array : ndarray
        As ``np.load`` or webdataset's ``.decode()`` give it.

    Returns
    -------
    ndarray
        For a stored bfloat16 array, an ``ml_dtypes.bfloat16`` array of the same shape
        sharing its memory on little-endian machines.
    """
    names = array.dtype.names
    if names is None or len(names) != 1:
        return array
    field = array.dtype.fields[names[0]][0]
    target = _ml_dtype(names[0])
    if target is None or field.kind != "u" or field.itemsize != target.itemsize:
        return array
    return array.view(field).astype(f"={field.str[1:]}", copy=False).view(target)


def encode_json(obj: object) -> bytes:
    """Canonical JSON: sorted keys, no NaN (those must be None already), UTF-8."""
    return json.dumps(obj, sort_keys=True, allow_nan=False, ensure_ascii=False).encode()


def _is_ml_dtype(dtype: np.dtype) -> bool:
    return dtype.kind == "V" and dtype.names is None and dtype.type.__module__ == "ml_dtypes"


def _ml_dtype(name: str) -> np.dtype | None:
    scalar = getattr(ml_dtypes, name, None)
    if not isinstance(scalar, type):
        return None
    dtype = np.dtype(scalar)
    return dtype if _is_ml_dtype(dtype) else None
