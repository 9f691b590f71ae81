"""Match maps to reference maps: Hungarian assignment on absolute spatial correlation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..imageio import load as load_image


def spatial_correlation(maps: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Pearson correlation of every map with every reference map over the features.

    Parameters
    ----------
    maps : ndarray, shape (n, features)
    reference : ndarray, shape (m, features)

    Returns
    -------
    ndarray, shape (m, n)
    """
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(maps, dtype=np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :]
    norms[norms == 0] = np.inf
    return (a @ b.T) / norms


@dataclass(frozen=True)
class Match:
    """Which map matches each reference map, and how well.

    Attributes
    ----------
    reference : ndarray of int
        Reference indices (all of them, when there are at least as many maps).
    component : ndarray of int
        The matched map of each.
    correlation : ndarray
        Absolute spatial correlation of each pair.
    """

    reference: np.ndarray
    component: np.ndarray
    correlation: np.ndarray

    @property
    def worst(self) -> float:
        """The smallest matched correlation."""
        return float(self.correlation.min()) if self.correlation.size else 0.0


def match_components(maps: np.ndarray, reference: np.ndarray) -> Match:
    """Pair each reference map with a distinct map, maximising the summed |correlation|.

    Parameters
    ----------
    maps, reference
        As for :func:`spatial_correlation`.

    Returns
    -------
    Match
    """
    from scipy.optimize import linear_sum_assignment

    similarity = np.abs(spatial_correlation(maps, reference))
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    return Match(rows, cols, similarity[rows, cols])


def image_maps(image, mask) -> np.ndarray:
    """The maps of a 4D image (or path) at a mask's voxels, shape (maps, voxels).

    The image is resampled to the mask's grid (linear interpolation) when it is on
    another grid.
    """
    image = load_image(image) if not hasattr(image, "affine") else image
    if image.shape[:3] != mask.mask.shape or not np.allclose(image.affine, mask.affine):
        from nilearn.image import resample_img

        image = resample_img(
            image,
            target_affine=mask.affine,
            target_shape=mask.mask.shape,
            interpolation="linear",
            force_resample=True,
            copy_header=True,
        )
    data = np.asanyarray(image.dataobj)
    if data.ndim == 3:
        data = data[..., None]
    return data[mask.mask].T.astype(np.float64)
