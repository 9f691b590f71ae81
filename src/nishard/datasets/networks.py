"""Ground-truth resting-state networks: spatial maps and band-limited time courses.

The maps are sums of Gaussian blobs centred on canonical MNI coordinates of the large-scale
networks; the time courses are Gaussian noise band-passed to the resting-state band. All
functions are pure; the random ones take a ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Coordinate = tuple[float, float, float]


@dataclass(frozen=True)
class NetworkSpec:
    """One network: a name, a description and the MNI centres (mm) of its nodes."""

    name: str
    description: str
    centres: tuple[Coordinate, ...]


# Node coordinates are rounded MNI positions of the usual seeds of each network. Nodes of
# different networks are at least about 20 mm apart so that the maps overlap little.
DEFAULT_NETWORKS: tuple[NetworkSpec, ...] = (
    NetworkSpec(
        "default_mode",
        "Default mode: posterior cingulate/precuneus, ventral and dorsal medial prefrontal, "
        "bilateral angular gyri, bilateral middle temporal gyri",
        (
            (0.0, -54.0, 28.0),
            (0.0, 52.0, -6.0),
            (0.0, 50.0, 28.0),
            (-46.0, -68.0, 32.0),
            (48.0, -64.0, 30.0),
            (-60.0, -14.0, -18.0),
            (60.0, -10.0, -18.0),
        ),
    ),
    NetworkSpec(
        "visual",
        "Visual: bilateral calcarine, cuneus, bilateral lateral occipital cortex",
        (
            (-10.0, -88.0, 2.0),
            (12.0, -86.0, 4.0),
            (0.0, -76.0, 14.0),
            (-40.0, -80.0, -6.0),
            (42.0, -78.0, -6.0),
        ),
    ),
    NetworkSpec(
        "sensorimotor",
        "Sensorimotor: bilateral dorsal and ventral pre/postcentral gyri, supplementary motor area",
        (
            (-38.0, -24.0, 58.0),
            (38.0, -24.0, 58.0),
            (0.0, -14.0, 62.0),
            (-56.0, -10.0, 32.0),
            (56.0, -8.0, 32.0),
        ),
    ),
    NetworkSpec(
        "auditory",
        "Auditory: bilateral superior temporal gyri (Heschl's gyrus, planum temporale)",
        ((-54.0, -20.0, 8.0), (56.0, -16.0, 8.0), (-58.0, -38.0, 16.0), (60.0, -34.0, 16.0)),
    ),
    NetworkSpec(
        "frontoparietal_left",
        "Left frontoparietal (executive control): left dorsolateral and anterior prefrontal, "
        "left inferior parietal, left posterior inferior temporal",
        ((-44.0, 28.0, 32.0), (-30.0, 52.0, 10.0), (-40.0, -50.0, 50.0), (-56.0, -50.0, -10.0)),
    ),
    NetworkSpec(
        "frontoparietal_right",
        "Right frontoparietal (executive control): right dorsolateral and anterior prefrontal, "
        "right inferior parietal, right posterior inferior temporal",
        ((44.0, 30.0, 32.0), (32.0, 52.0, 10.0), (42.0, -50.0, 50.0), (58.0, -48.0, -10.0)),
    ),
    NetworkSpec(
        "salience",
        "Salience: dorsal anterior cingulate, bilateral anterior insula, bilateral supramarginal "
        "gyri",
        (
            (4.0, 22.0, 32.0),
            (-36.0, 16.0, 0.0),
            (38.0, 18.0, 0.0),
            (-58.0, -40.0, 40.0),
            (60.0, -38.0, 40.0),
        ),
    ),
)

RESTING_BAND_HZ: tuple[float, float] = (0.01, 0.1)


def _node_union(coords: np.ndarray, spec: NetworkSpec, sigma_mm: float) -> np.ndarray:
    # Probabilistic union 1 - prod(1 - g): smooth, and every node peaks near 1 however close
    # its neighbours are (a sum would let clustered nodes dwarf isolated ones).
    outside = np.ones(coords.shape[0])
    for centre in spec.centres:
        d2 = np.sum((coords - np.asarray(centre)) ** 2, axis=1)
        outside *= 1.0 - np.exp(-d2 / (2.0 * sigma_mm**2))
    return 1.0 - outside


def network_maps(
    coords: np.ndarray,
    specs: Sequence[NetworkSpec] = DEFAULT_NETWORKS,
    sigma_mm: float = 15.0,
    floor: float = 0.01,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Spatially smooth network maps with a peak of 1 inside the brain.

    Parameters
    ----------
    coords : numpy.ndarray
        MNI coordinates (mm) of the points to evaluate, shape (V, 3): the in-brain voxels.
    specs : sequence of NetworkSpec
        The networks.
    sigma_mm : float
        Standard deviation of each Gaussian node.
    floor : float
        Values below this fraction of the peak are set to 0, so that each map has a finite
        support and maps of different networks barely overlap.
    reference : numpy.ndarray, optional
        Points (mm) whose maximum scales each map to 1, shape (R, 3); default ``coords``.
        Evaluating at other points (surface vertices) with the voxels as reference gives the
        same function as the volume maps (which may then slightly exceed 1).

    Returns
    -------
    numpy.ndarray
        float32, shape (K, V); with the default reference each row has maximum exactly 1.
    """
    maps = np.zeros((len(specs), coords.shape[0]), dtype=np.float64)
    for k, spec in enumerate(specs):
        maps[k] = _node_union(coords, spec, sigma_mm)
        peak = maps[k].max() if reference is None else _node_union(reference, spec, sigma_mm).max()
        if peak <= 0:
            raise ValueError(f"network {spec.name!r} has no node inside the brain")
        maps[k] /= peak
    maps[maps < floor] = 0.0
    return maps.astype(np.float32)


def map_peaks(maps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """MNI coordinates (mm) of the maximum of each map.

    Parameters
    ----------
    maps : numpy.ndarray
        Shape (K, V).
    coords : numpy.ndarray
        Shape (V, 3).

    Returns
    -------
    numpy.ndarray
        Shape (K, 3).
    """
    return coords[np.argmax(maps, axis=1)]


def band_limited(
    rng: np.random.Generator,
    n_timepoints: int,
    t_r: float,
    n_signals: int,
    band_hz: tuple[float, float] = RESTING_BAND_HZ,
) -> np.ndarray:
    """Gaussian time courses band-passed (FFT) to a frequency band, zero mean, unit variance.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_timepoints : int
    t_r : float
        Repetition time (s).
    n_signals : int
    band_hz : tuple of float
        Pass band (Hz), both edges included.

    Returns
    -------
    numpy.ndarray
        float64, shape (n_timepoints, n_signals).
    """
    freqs = np.fft.rfftfreq(n_timepoints, d=t_r)
    keep = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    if keep.sum() < 2:
        raise ValueError(
            f"{n_timepoints} time points at TR {t_r} s leave fewer than 2 frequencies in "
            f"{band_hz} Hz; use a longer run"
        )
    white = rng.standard_normal((n_timepoints, n_signals))
    spectrum = np.fft.rfft(white, axis=0)
    spectrum[~keep] = 0.0
    signals = np.fft.irfft(spectrum, n=n_timepoints, axis=0)
    signals -= signals.mean(axis=0)
    return signals / signals.std(axis=0)


def decorrelate(signals: np.ndarray) -> np.ndarray:
    """Make zero-mean columns exactly uncorrelated with unit variance (symmetric whitening).

    ``Z (Z'Z / T)^(-1/2)`` is the uncorrelated set closest to ``Z``; its columns are linear
    combinations of the inputs, so band-limited inputs stay band-limited.

    Parameters
    ----------
    signals : numpy.ndarray
        Zero-mean columns, shape (T, K), with K well below the number of frequencies kept.

    Returns
    -------
    numpy.ndarray
        Shape (T, K).
    """
    cov = signals.T @ signals / signals.shape[0]
    eigvals, eigvecs = np.linalg.eigh(cov)
    return signals @ (eigvecs / np.sqrt(eigvals)) @ eigvecs.T


def couple(signals: np.ndarray, first: int, second: int, r: float) -> np.ndarray:
    """Make two columns correlate with exactly ``r`` (sample Pearson correlation).

    Column ``second`` is replaced by ``r * first + sqrt(1 - r**2) * residual``, where the
    residual is its own part orthogonal to ``first``: both stay in the pass band (linear
    combinations of band-limited signals) and keep unit variance.

    Parameters
    ----------
    signals : numpy.ndarray
        Zero-mean, unit-variance columns, shape (T, K).
    first, second : int
        Column indices.
    r : float
        Target correlation in (-1, 1).

    Returns
    -------
    numpy.ndarray
        A new array, shape (T, K).
    """
    if not -1.0 < r < 1.0:
        raise ValueError(f"coupling must lie in (-1, 1), got {r}")
    out = signals.copy()
    a = out[:, first]
    b = out[:, second] - a * (a @ out[:, second]) / (a @ a)
    b /= b.std()
    out[:, second] = r * a + np.sqrt(1.0 - r**2) * b
    return out


def network_timecourses(
    rng: np.random.Generator,
    n_timepoints: int,
    t_r: float,
    n_networks: int,
    coupled: tuple[int, int],
    coupling: float,
    band_hz: tuple[float, float] = RESTING_BAND_HZ,
) -> np.ndarray:
    """Band-limited unit-variance network time courses with one coupled pair.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_timepoints : int
    t_r : float
        Repetition time (s).
    n_networks : int
    coupled : tuple of int
        Indices of the two coupled networks.
    coupling : float
        Their exact sample correlation.
    band_hz : tuple of float
        Pass band (Hz).

    Returns
    -------
    numpy.ndarray
        float64, shape (n_timepoints, n_networks).
    """
    signals = decorrelate(band_limited(rng, n_timepoints, t_r, n_networks, band_hz))
    return couple(signals, coupled[0], coupled[1], coupling)
