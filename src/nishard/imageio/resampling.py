"""Images given by path (atlases, masks) put on a record's BOLD grid, as nilearn resamples.

:func:`resample_to_grid` equals ``nilearn.image.resample_img`` (and ``resample_to_img``):
the same voxel-to-voxel transform handed to ``scipy.ndimage.affine_transform``, with zeros
outside the source's field of view. :func:`image_on_grid` adds what a pipeline needs around
it: files read once per process, and errors that name the file when it cannot be in the
BOLD's space (wrong dimensions, non-integer labels, an oblique rotation, no overlap).
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import numpy as np

from ..errors import SampleError
from ..registry import not_one_of

Interpolation = Literal["nearest", "linear", "continuous"]

#: Spline order of each interpolation, as nilearn names them.
ORDERS: dict[str, int] = {"nearest": 0, "linear": 1, "continuous": 3}

#: Largest rotation (degrees) between the voxel axes of a given image and of the BOLD that is
#: taken for rounding. Images of one template space differ by axis flips or permutations at
#: most; an oblique rotation means one of them is in a subject's native space.
MAX_ROTATION_DEG = 1.0

#: How an image is used, for the messages: (its dimensions, what it is).
Role = Literal["labels", "maps", "mask"]
_ROLES: dict[str, tuple[int, str]] = {
    "labels": (3, "a 3D labels atlas of integer region values"),
    "maps": (4, "a 4D probabilistic maps atlas (x, y, z, map)"),
    "mask": (3, "a 3D mask"),
}


def resample_to_grid(
    data: np.ndarray,
    affine: np.ndarray,
    shape: tuple[int, ...],
    target_affine: np.ndarray,
    interpolation: Interpolation = "nearest",
    *,
    clip: bool = False,
) -> np.ndarray:
    """Resample a 3D or 4D array from its grid to another, as ``nilearn.image.resample_img``.

    Parameters
    ----------
    data : ndarray, shape (x, y, z) or (x, y, z, k)
        Finite values; a 4D array is resampled volume by volume.
    affine : ndarray (4, 4)
        Voxel-to-world transform of ``data``.
    shape : tuple
        The target grid; only its first three entries are used.
    target_affine : ndarray (4, 4)
    interpolation : {"nearest", "linear", "continuous"}
        Spline order 0, 1 or 3; points outside ``data``'s field of view are 0.
    clip : bool
        Clip the result to the range of ``data`` and 0 (nilearn's ``resample_img``
        default, which its maskers use; ``resample_to_img`` does not clip).

    Returns
    -------
    ndarray, shape ``shape[:3] (+ (k,))``
        The dtype of ``data``, except signed integers under ``continuous``
        interpolation, which become float (float64 for 64-bit integers), as in nilearn.
        When the grids already agree (same shape, affines equal to ``np.allclose``) a copy
        of ``data``.
    """
    from scipy.ndimage import affine_transform

    if interpolation not in ORDERS:
        raise ValueError(not_one_of("interpolation", interpolation, ORDERS))
    if data.ndim not in (3, 4):
        raise ValueError(f"a 3D or 4D array to resample, got shape {data.shape}")
    target = tuple(int(n) for n in shape[:3])
    affine = np.asarray(affine, dtype=np.float64)
    target_affine = np.asarray(target_affine, dtype=np.float64)
    if data.shape[:3] == target and np.allclose(affine, target_affine):
        return data.copy()
    # The map from target voxel indices to source voxel indices; identity when the
    # affines are equal so that a pure crop or pad does not pick up rounding.
    if np.array_equal(affine, target_affine):
        transform = np.eye(4)
    else:
        transform = np.linalg.inv(affine) @ target_affine
    matrix, offset = transform[:3, :3], transform[:3, 3]
    if np.array_equal(np.diag(np.diag(matrix)), matrix):
        # scipy then takes its separable zoom-and-shift path, as nilearn lets it.
        matrix = np.diag(matrix)
    dtype = data.dtype
    if interpolation == "continuous" and dtype.kind == "i":
        dtype = np.dtype(np.float64 if dtype.itemsize == 8 else np.float32)
    out = np.zeros(target + data.shape[3:], dtype=dtype, order="F")
    volumes = [()] if data.ndim == 3 else [(k,) for k in range(data.shape[3])]
    full = (slice(None),) * 3
    for k in volumes:
        volume = out[full + k]
        affine_transform(data[full + k], matrix, offset, target, volume, ORDERS[interpolation])
    if clip:
        out.clip(min(data.min(), 0), max(data.max(), 0), out=out)
    return out


def rotation_between(affine: np.ndarray, target_affine: np.ndarray) -> float:
    """Degrees by which the voxel axes of two grids differ, flips and permutations aside.

    0 for grids of one space sampled in any axis order and direction (RAS and LAS copies of
    an MNI atlas); tens of degrees for an MNI atlas against a subject's oblique native grid.
    """
    a = _directions(affine)
    b = _directions(target_affine)
    relative = b.T @ a  # the rotation from one set of voxel axes to the other
    # The nearest signed permutation: each axis goes to the axis it points along most.
    perm = np.zeros((3, 3))
    rows = np.abs(relative).argmax(axis=0)
    if len(set(rows.tolist())) < 3:
        return 90.0
    perm[rows, range(3)] = np.sign(relative[rows, range(3)])
    residual = relative @ perm.T
    cos = np.clip((np.trace(residual) - 1) / 2, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))


def _directions(affine: np.ndarray) -> np.ndarray:
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    norms = np.linalg.norm(linear, axis=0)
    if (norms == 0).any():
        raise ValueError(f"a voxel-to-world affine of full rank, got\n{np.round(affine, 3)}")
    # Orthonormalize: shears in headers are rounding, not part of the space.
    u, _, vt = np.linalg.svd(linear / norms)
    return u @ vt


def world_box(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest world coordinates (mm) of a grid's voxel centres."""
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in shape[:3]], indexing="ij"))
    corners = corners.reshape(3, -1)
    world = np.asarray(affine)[:3, :3] @ corners + np.asarray(affine)[:3, 3:4]
    return world.min(axis=1), world.max(axis=1)


def _box(shape: tuple[int, ...], affine: np.ndarray) -> str:
    low, high = world_box(shape, affine)
    return " x ".join(
        f"[{lo:g}, {hi:g}]" for lo, hi in zip(low.round(1), high.round(1), strict=True)
    )


def load_image(path: str | os.PathLike, role: Role) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI image given by path, checked for its role and read once per process.

    Parameters
    ----------
    path : str or PathLike
    role : {"labels", "maps", "mask"}
        ``labels``: 3D (or 4D with one volume) of integer values, returned as int32 or
        int64; ``maps``: 4D, returned as float32; ``mask``: 3D, returned as bool (> 0).

    Returns
    -------
    data, affine : read-only ndarrays
        Shared between calls: copy before modifying.

    Raises
    ------
    SampleError
        Naming the file, what the role needs and what the file holds.
    """
    file = os.fspath(path)
    try:
        stat = os.stat(file)
    except OSError as err:
        raise SampleError(None, _ROLES[role][1], f"no readable file ({err})", path=file) from err
    # Keyed by modification time and size too, so that a file rewritten while the process
    # lives is read again.
    return _load_image(file, stat.st_mtime_ns, stat.st_size, role)


@functools.lru_cache(maxsize=16)
def _load_image(file: str, mtime_ns: int, size: int, role: Role):
    from . import ImageError, load, read

    ndim, expected = _ROLES[role]
    try:
        img = load(file)
        data = read(img, file)
    except ImageError as err:
        raise SampleError(None, expected, err.found, path=file) from err
    if role != "maps" and data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]  # a single volume stored as 4D, as nilearn accepts
    if data.ndim != ndim:
        found = f"a {data.ndim}D image of shape {data.shape}"
        raise SampleError(None, expected, found, path=file)
    if data.dtype.kind not in "biuf":
        raise SampleError(None, expected, f"values of type {data.dtype}", path=file)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        found = f"{int((~np.isfinite(data)).sum())} NaN or infinite values"
        raise SampleError(None, expected, found, path=file)
    if role == "labels":
        data = _integer_labels(data, expected, file)
    elif role == "maps":
        data = data.astype(np.float32, copy=False)
    else:
        data = data > 0
    data.setflags(write=False)
    affine = np.array(img.affine, dtype=np.float64)
    affine.setflags(write=False)
    return data, affine


def _integer_labels(data: np.ndarray, expected: str, file: str) -> np.ndarray:
    if data.dtype.kind == "f":
        fractional = data != np.round(data)
        if fractional.any():
            example = data[fractional].flat[0]
            raise SampleError(
                None,
                expected,
                f"{int(fractional.sum())} voxels of non-integer value (e.g. {example:g})",
                path=file,
            )
    wide = np.abs(data).max(initial=0) >= 2**31
    return data.astype(np.int64 if wide else np.int32)


def image_on_grid(
    path: str | os.PathLike,
    role: Role,
    shape: tuple[int, ...],
    affine: np.ndarray,
) -> np.ndarray:
    """A labels atlas, maps atlas or mask file resampled to a BOLD grid, as nilearn's maskers do.

    Labels and masks are resampled by nearest neighbour, maps linearly with clipping
    (``NiftiMapsMasker``). Results are kept per process for the last few grids.

    Parameters
    ----------
    path : str or PathLike
    role : {"labels", "maps", "mask"}
    shape : tuple
        The BOLD's shape; the first three entries are the grid.
    affine : ndarray (4, 4)
        The BOLD's affine.

    Returns
    -------
    ndarray, read-only
        Shape ``shape[:3]`` (plus the maps axis for ``maps``).

    Raises
    ------
    SampleError
        When the file is not what ``role`` needs, its axes are rotated against the BOLD's
        by more than :data:`MAX_ROTATION_DEG` (another space), or none of its non-zero
        voxels falls inside the BOLD's field of view.
    """
    load_image(path, role)  # checks the file's role, once per file
    file = os.fspath(path)
    stat = os.stat(file)
    grid = tuple(int(n) for n in shape[:3])
    target = np.asarray(affine, dtype=np.float64)
    return _on_grid(file, stat.st_mtime_ns, stat.st_size, role, grid, target.tobytes())


@functools.lru_cache(maxsize=16)
def _on_grid(file, mtime_ns, size, role, grid, target_bytes) -> np.ndarray:
    data, source_affine = _load_image(file, mtime_ns, size, role)
    target = np.frombuffer(target_bytes, dtype=np.float64).reshape(4, 4)
    what = _ROLES[role][1]
    angle = rotation_between(source_affine, target)
    if angle > MAX_ROTATION_DEG:
        raise SampleError(
            None,
            f"{what} in the BOLD's space (axes parallel to the BOLD's, up to flips)",
            f"axes rotated by {angle:.1f} degrees (affine\n{np.round(source_affine, 3)}\n"
            f"against the BOLD's\n{np.round(target, 3)}): another space?",
            path=file,
        )
    if role == "maps":
        out = resample_to_grid(data, source_affine, grid, target, "linear", clip=True)
    else:
        source = data.view(np.uint8) if role == "mask" else data  # scipy takes no bool
        out = resample_to_grid(source, source_affine, grid, target, "nearest")
        if role == "mask":
            out = out.view(bool)
    if not out.any():
        raise SampleError(
            None,
            f"{what} overlapping the BOLD's field of view {_box(grid, target)} mm",
            f"no non-zero voxel on the BOLD grid "
            f"(the image spans {_box(data.shape, source_affine)} mm)",
            path=file,
        )
    out = np.ascontiguousarray(out)
    out.setflags(write=False)
    return out
