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


class ExplainedVariance:
    """Accumulate the explained variance of maps over samples.

    Parameters
    ----------
    components : ndarray, shape (n, features)
    """

    def __init__(self, components: np.ndarray) -> None:
        comps = np.asarray(components, dtype=np.float64)
        norms = np.linalg.norm(comps, axis=1)
        norms[norms == 0] = 1.0
        unit = comps / norms[:, None]
        self._unit = unit.astype(np.float32)
        self._sums = unit.sum(axis=1)
        # Least squares on every component at once: inverse Gram of the components.
        self._inverse = linalg.pinvh(unit @ unit.T)
        self.entries = 0
        self.total = 0.0
        self.squares = 0.0
        self._p_squares = np.zeros(len(comps))
        self._p_sums = np.zeros(len(comps))
        self._joint = 0.0

    def observe(self, data: np.ndarray) -> None:
        """Add one ``(time, features)`` sample."""
        data = np.asarray(data, dtype=np.float32)
        projections = (data @ self._unit.T).astype(np.float64)  # (time, n)
        self.entries += data.size
        self.total += float(data.sum(dtype=np.float64))
        self.squares += float(np.einsum("ij,ij->", data, data, dtype=np.float64))
        self._p_squares += (projections**2).sum(axis=0)
        self._p_sums += projections.sum(axis=0)
        self._joint += float(np.einsum("ti,ij,tj->", projections, self._inverse, projections))

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
