"""Which learned maps to doubt: those that match no true network, and those that look like noise.

Two measurable criteria say that a map looks like noise (each a heuristic, documented in
the report and the README):

- **spread**: ``mean(|x|) / rms(x)`` over the mask. A map whose values are drawn from a
  Gaussian, however smooth, has ``sqrt(2 / pi)`` = 0.80; a network map, most of it near 0
  and a few regions strong, has far less (0.25 to 0.45 for the synthetic networks and
  CanICA's or DictLearning's maps of them). At or above :data:`SPREAD_MAX` the map's
  weight is spread over the brain as noise's is.
- **neighbour correlation** (volumes only): the correlation of each voxel's value with the
  mean of its in-mask face neighbours. A map of brain regions is spatially smooth (0.8 to
  0.99 on an 8 mm grid); white or salt-and-pepper noise is about 0. Below
  :data:`NEIGHBOUR_MIN` the map has no spatial structure.

A component that fits structured noise with a sparse, smooth map passes both (the extra
components of a CanICA of the synthetic dataset do): when ground truth is given, it is
caught by the match, a map matching no true network with ``|r| >=`` :data:`MATCH_MIN`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ``mean|x| / rms(x)`` at or above which a map's values are spread as noise's are
#: (Gaussian: 0.80; the synthetic networks' true maps: 0.25 to 0.35).
SPREAD_MAX = 0.75

#: Neighbour correlation below which a volume map has no spatial structure (white noise: 0).
NEIGHBOUR_MIN = 0.5

#: The |spatial correlation| a map needs with its Hungarian-matched true network to count
#: as matching it (chance level on 3,666 voxels is about 0.05).
MATCH_MIN = 0.5


@dataclass(frozen=True)
class MapFlags:
    """What was measured on one map and why it is flagged, if it is.

    Attributes
    ----------
    component : int
    spread : float
        ``mean(|x|) / rms(x)`` over the features (NaN for a map of zeros).
    neighbour_correlation : float or None
        None for a space without a voxel grid (surfaces).
    truth : str or None
        The true network matched to the map (when ground truth is given).
    correlation : float or None
        ``|r|`` with it, or with the closest true network when none was matched.
    reasons : tuple of str
        Empty for a map not flagged.
    """

    component: int
    spread: float
    neighbour_correlation: float | None
    truth: str | None
    correlation: float | None
    reasons: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    @property
    def short(self) -> str:
        """The reasons in a few words, for a picture's title (empty when not flagged)."""
        words = []
        for reason in self.reasons:
            word = reason.split(":")[0].split(" (")[0]
            word = "no true network" if word.startswith("matches no") else word
            if word not in words:
                words.append(word)
        return ", ".join(words)

    def as_dict(self) -> dict:
        """JSON-able (NaN as None)."""
        return {
            "component": self.component,
            "spread": None if np.isnan(self.spread) else round(self.spread, 4),
            "neighbour_correlation": None
            if self.neighbour_correlation is None or np.isnan(self.neighbour_correlation)
            else round(self.neighbour_correlation, 4),
            "truth": self.truth,
            "correlation": None if self.correlation is None else round(self.correlation, 4),
            "reasons": list(self.reasons),
        }


def spread(values: np.ndarray) -> float:
    """``mean(|x|) / rms(x)``: 0.80 for Gaussian values, near 0 for a very sparse map."""
    magnitude = np.abs(np.asarray(values, dtype=np.float64))
    rms = np.sqrt(np.mean(magnitude**2))
    return float(magnitude.mean() / rms) if rms > 0 else float("nan")


def neighbour_correlation(mask: np.ndarray, values: np.ndarray) -> float:
    """Correlation of each in-mask voxel's value with the mean of its in-mask face neighbours.

    Parameters
    ----------
    mask : ndarray of bool, 3D
    values : ndarray, shape (mask.sum(),)
        The map at the mask's voxels, in the order of ``mask``'s True values.

    Returns
    -------
    float
        NaN when the map is constant or no voxel has a neighbour in the mask.
    """
    volume = np.zeros(mask.shape)
    volume[mask] = values
    padded = np.pad(volume, 1)
    inside = np.pad(mask, 1).astype(np.float64)
    sums = np.zeros(mask.shape)
    counts = np.zeros(mask.shape)
    core = tuple(slice(1, -1) for _ in range(3))
    for axis in range(3):
        for step in (1, -1):
            # np.roll on the padded arrays: the padding keeps voxels on opposite faces
            # from being counted as neighbours.
            sums += np.roll(padded, step, axis)[core]
            counts += np.roll(inside, step, axis)[core]
    has = mask & (counts > 0)
    own, around = volume[has], sums[has] / counts[has]
    if own.size < 2 or own.std() == 0 or around.std() == 0:
        return float("nan")
    return float(np.corrcoef(own, around)[0, 1])


def noise_reasons(spread_value: float, neighbours: float | None) -> list[str]:
    """The noise criteria a map fails, as the report words them."""
    if np.isnan(spread_value):
        return ["empty map (all zeros)"]
    reasons = []
    if spread_value >= SPREAD_MAX:
        reasons.append(
            f"noise-like: values spread as noise's (mean|x|/rms {spread_value:.2f} >= {SPREAD_MAX})"
        )
    if neighbours is not None and not np.isnan(neighbours) and neighbours < NEIGHBOUR_MIN:
        reasons.append(
            f"noise-like: no spatial structure (neighbour r {neighbours:.2f} < {NEIGHBOUR_MIN})"
        )
    return reasons


def flag_maps(
    maps: np.ndarray,
    mask: np.ndarray | None = None,
    match: dict | None = None,
) -> list[MapFlags]:
    """Measure every map and flag the doubtful ones.

    Parameters
    ----------
    maps : ndarray, shape (n, features)
    mask : ndarray of bool, 3D, optional
        The volume mask the features come from (None for surfaces: no neighbour
        criterion).
    match : dict, optional
        The report's truth match: ``pairs`` (``component``, ``name``, ``correlation``) and
        ``closest`` (per component, ``name`` and ``correlation`` of the closest true
        network). Without it no map is flagged for the truth.

    Returns
    -------
    list of MapFlags
        One per map, in the maps' order.
    """
    pairs = {p["component"]: p for p in (match or {}).get("pairs", [])}
    closest = (match or {}).get("closest") or []
    flags = []
    for index, values in enumerate(np.asarray(maps)):
        spread_value = spread(values)
        neighbours = None if mask is None else neighbour_correlation(mask, values)
        reasons = noise_reasons(spread_value, neighbours)
        truth = correlation = None
        if match is not None:
            pair = pairs.get(index)
            if pair is not None and pair["correlation"] >= MATCH_MIN:
                truth, correlation = pair["name"], float(pair["correlation"])
            else:
                near = closest[index] if index < len(closest) else None
                correlation = None if near is None else float(near["correlation"])
                where = "" if near is None else f" (closest {near['name']}, r {correlation:.2f})"
                reasons.insert(0, f"matches no true network{where}")
        flags.append(MapFlags(index, spread_value, neighbours, truth, correlation, tuple(reasons)))
    return flags
