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
from dataclasses import dataclass

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class Parts:
    """A field's bytes as buffers to write one after another, so an array is never copied
    into a bytes object on its way to the shard (the shard file gathers the small ones)."""

    buffers: tuple[bytes | memoryview, ...]

    @property
    def nbytes(self) -> int:
        return sum(memoryview(buffer).nbytes for buffer in self.buffers)

    def __bytes__(self) -> bytes:
        return b"".join(self.buffers)


def nbytes(data: bytes | Parts) -> int:
    """Size of a field's content, whether bytes or :class:`Parts`."""
    return data.nbytes if isinstance(data, Parts) else len(data)


def buffers(data: bytes | Parts) -> tuple[bytes | memoryview, ...]:
    """A field's content as buffers to write in order."""
    return data.buffers if isinstance(data, Parts) else (data,)


def npy_parts(array: np.ndarray) -> Parts:
    """The ``.npy`` of :func:`encode_npy` as its header and a view of the array's bytes.

    The view shares the array's memory where it is already C-contiguous and little-endian
    (or one byte per item); otherwise one copy is made, as ``np.save`` would.
    """
    # Not ascontiguousarray: it turns a 0-d array into shape (1,).
    array = np.asarray(array, order="C")
    if _is_ml_dtype(array.dtype):
        bits = array.view(f"u{array.dtype.itemsize}").astype(f"<u{array.dtype.itemsize}")
        array = bits.view([(array.dtype.name, bits.dtype)])
    if array.dtype.hasobject:
        raise ValueError(f"array of dtype {array.dtype}: objects would need a pickle")
    header = io.BytesIO()
    # np.save writes format 1.0 whenever the header fits, as it always does for our shapes.
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    data = memoryview(array.reshape(-1).view(np.uint8)) if array.size else b""
    return Parts((header.getvalue(), data))


def encode_npy(array: np.ndarray) -> bytes:
    """NumPy ``.npy`` bytes of ``array`` in C order, as ``np.save`` writes them (no pickles).

    An ``ml_dtypes`` array (bfloat16...) is written as its bits in a structured dtype named
    after its type; see the module docstring and :func:`decode_npy`.
    """
    return bytes(npy_parts(array))


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
