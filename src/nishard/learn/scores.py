"""Explained variance of maps, accumulated over a stream of samples.

For each component ``c`` (normalised to unit length), nilearn's
``score(per_component=True)`` is ``1 - var(X - (X c) c.T) / var(X)`` over all values of
the concatenated data ``X`` (time x voxels). Every term of it is a running sum: with
``p = X c``, ``sum((X - p c.T)**2) = sum(X**2) - sum(p**2)`` and
``sum(X - p c.T) = sum(X) - sum(p) * sum(c)``; so it is computed sample by sample in
the memory of one sample. The joint figure is the share of ``sum(X**2)`` that the
least-squares fit of every frame on all components together explains.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


class Projection:
    """Least squares of each frame on maps: a sample's time courses, nilearn's transform.

    ``courses = X C.T (C C.T)^-1`` for maps ``C``, computed through the unit-normalised
    maps ``U = C / |C|`` (the projections ``X U.T`` are also what the explained variance
    sums): ``courses = (X U.T) (U U.T)^-1 / |C|``.

    Parameters
    ----------
    components : ndarray, shape (n, features)
    """

    def __init__(self, components: np.ndarray) -> None:
        comps = np.asarray(components, dtype=np.float64)
        norms = np.linalg.norm(comps, axis=1)
        norms[norms == 0] = 1.0
        unit = comps / norms[:, None]
        self.norms = norms
        self.sums = unit.sum(axis=1)  # of each unit map's values (the explained variance's)
        self.unit = unit.astype(np.float32)
        # Least squares on every component at once: inverse Gram of the unit maps.
        self.inverse = linalg.pinvh(unit @ unit.T)

    def project(self, data: np.ndarray) -> np.ndarray:
        """``X U.T``, shape (time, n), float64 (float32 products over the features)."""
        return (np.asarray(data, dtype=np.float32) @ self.unit.T).astype(np.float64)

    def courses(self, projections: np.ndarray) -> np.ndarray:
        """The least-squares time courses on the maps from :meth:`project`'s output."""
        return (projections @ self.inverse) / self.norms[None, :]

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """Time courses of one ``(time, features)`` sample, shape (time, n)."""
        return self.courses(self.project(data))


class ExplainedVariance:
    """Accumulate the explained variance of maps over samples.

    Parameters
    ----------
    components : ndarray, shape (n, features)
    """

    def __init__(self, components: np.ndarray) -> None:
        self.projection = Projection(components)
        self._sums = self.projection.sums
        self.entries = 0
        self.total = 0.0
        self.squares = 0.0
        self._p_squares = np.zeros(len(self._sums))
        self._p_sums = np.zeros(len(self._sums))
        self._joint = 0.0

    def observe(self, data: np.ndarray) -> np.ndarray:
        """Add one ``(time, features)`` sample; its projections on the unit maps, shape
        (time, n) (:meth:`Projection.courses` turns them into time courses)."""
        data = np.asarray(data, dtype=np.float32)
        projections = self.projection.project(data)
        self.entries += data.size
        self.total += float(data.sum(dtype=np.float64))
        self.squares += float(np.einsum("ij,ij->", data, data, dtype=np.float64))
        self._p_squares += (projections**2).sum(axis=0)
        self._p_sums += projections.sum(axis=0)
        inverse = self.projection.inverse
        self._joint += float(np.einsum("ti,ij,tj->", projections, inverse, projections))
        return projections

    def per_component(self) -> np.ndarray:
        """nilearn's per-component explained variance over everything observed."""
        if self.entries == 0:
            return np.zeros(len(self._sums))
        n = self.entries
        variance = self.squares / n - (self.total / n) ** 2
        residual_squares = self.squares - self._p_squares
        residual_sums = self.total - self._p_sums * self._sums
        residual = residual_squares / n - (residual_sums / n) ** 2
        if variance <= 0:
            return np.zeros(len(self._sums))
        return np.clip(1.0 - residual / variance, 0.0, 1.0)

    def joint(self) -> float:
        """Share of the sum of squares explained by all components together."""
        return 0.0 if self.squares == 0 else float(np.clip(self._joint / self.squares, 0, 1))
