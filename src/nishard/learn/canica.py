"""CanICA out of core: nilearn's algorithm fed by the shards, in a memory budget.

Varoquaux et al. 2010 (NeuroImage 51), as ``nilearn.decomposition.CanICA`` (0.14)
computes it: each subject's data reduced to its ``n_components`` leading spatial
principal components; the stack of every subject's components, each normalised to unit
length (the "CCA" step), reduced to ``n_components`` group components; FastICA on those
from ``n_init`` starts, the sparsest kept; thresholded; signed so that each map's peak
is positive. Here subjects are streamed and reduced one at a time (cached and in
parallel threads), and the group step is incremental (:class:`GroupReducer`), so that
memory is set by the budget, not by the number of subjects.

Data are taken as given: clean, mask and standardize them when building the shards
(nilearn's CanICA defaults to smoothing 6 mm, detrending and standardizing itself).
"""

from __future__ import annotations

import time

import numpy as np

from .decomposition import GroupDecomposition
from .errors import LearnError
from .ica import unmix


class CanICA(GroupDecomposition):
    """Canonical ICA of resting-state data, streamed from shards.

    Parameters
    ----------
    n_components : int
        Maps to learn (nilearn's default 20).
    do_cca : bool
        Normalise each subject component to unit length before the group PCA.
    threshold : "auto", float or None
        Keep about ``ratio * voxels`` non-zero values over all maps (``"auto"``: 1);
        None: no threshold. A float must not exceed ``n_components``.
    n_init : int
        FastICA starts; the sparsest result is kept (nilearn: 10).
    max_iter, tol : int, float
        FastICA's stopping rule (sklearn's defaults).
    precision : {"float32", "float64"}
        Arithmetic of FastICA's products over voxels: float32 with float64 sums (twice as
        fast; updates within 1e-7 of sklearn's) or float64 (sklearn's, to rounding).
    key, split, mask, memory, memory_level, memory_budget, n_jobs, random_state
        See :class:`~nishard.learn.decomposition.GroupDecomposition` (``reduction``,
        ``score`` and ``verbose`` too).

    Attributes
    ----------
    components_ : ndarray, shape (n_components, features), float32
        The maps.
    components_img_ : nibabel image or None
        The maps as a 4D NIfTI (GIfTI, CIFTI for surface keys); None without a mask.
    explained_variance_ : ndarray, shape (n_components,) or None
        Share of the data's variance each map explains (nilearn's
        ``score(per_component=True)`` over all samples).
    explained_variance_total_ : float or None
        Share explained by all maps together (least squares).
    singular_values_ : ndarray
        Of the group PCA (nilearn's ``variance_``).
    ica_info_ : dict
        Iterations and sparsity of each start, and the start kept.
    fit_time_, peak_memory_ : float, int
        Seconds, and bytes the fit added to the process at its peak (measured).
    memory_usage_ : dict
        Baseline, peak and added resident bytes, the budget and the plan.
    memory_plan_ : MemoryPlan or None
        How the budget was spent (subjects at once, group buffer rows).
    memory_ : joblib.Memory
        The cache ``memory`` names (location None: no cache), as in nilearn.
    group_exact_ : bool
        Whether every subject's rows fit the group buffer (the group PCA is then exact).
    mask_img_ : Nifti1Image or None
        The mask of volume features.
    n_samples_, n_timepoints_, n_features_in_, bytes_streamed_ : int
        What the fit read.
    shards_ : dict
        Per shard folder: its manifest's sha256 and the counts the report shows (records,
        splits, quarantine); empty for arrays. The fit keeps no sample.

    Examples
    --------
    >>> ica = CanICA(20, memory_budget="1GiB", memory="nishard_cache")  # doctest: +SKIP
    >>> courses = ica.fit_transform("shards/")  # a (time, 20) array per sample # doctest: +SKIP
    >>> ica.components_img_.to_filename("canica.nii.gz")  # doctest: +SKIP
    >>> ica.report("canica/")  # maps, PNGs, report.html; no second fit  # doctest: +SKIP
    """

    def __init__(
        self,
        n_components: int = 20,
        *,
        do_cca: bool = True,
        threshold: float | str | None = "auto",
        n_init: int = 10,
        max_iter: int = 200,
        tol: float = 1e-4,
        precision: str = "float32",
        key: str = "bold",
        split: str | None = None,
        mask: object = None,
        memory: object = None,
        memory_level: int = 1,
        memory_budget: int | str | None = None,
        n_jobs: int = 1,
        random_state: int | None = 0,
        reduction: str = "auto",
        score: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            n_components,
            key=key,
            split=split,
            mask=mask,
            memory=memory,
            memory_level=memory_level,
            memory_budget=memory_budget,
            n_jobs=n_jobs,
            random_state=random_state,
            reduction=reduction,
            score=score,
            verbose=verbose,
        )
        self.do_cca = do_cca
        self.threshold = threshold
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.precision = precision

    @property
    def _accumulators(self) -> tuple[str, ...]:
        return ("unit",) if self.do_cca else ("scaled",)

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.n_init, (int, np.integer)) or self.n_init < 1:
            raise LearnError(f"n_init must be a positive integer, got {self.n_init!r}")
        threshold = self.threshold
        if threshold not in (None, "auto") and not isinstance(threshold, (int, float)):
            raise LearnError(f"threshold must be None, 'auto' or a number, got {threshold!r}")
        if isinstance(threshold, (int, float)) and threshold < 0:
            raise LearnError(f"threshold must be a non-negative ratio, got {threshold!r}")
        if isinstance(threshold, (int, float)) and threshold > self.n_components:
            raise LearnError(
                f"threshold {threshold} exceeds the number of maps ({self.n_components}): "
                "it is a ratio of voxels to keep, at most n_components"
            )

    def _decompose(self, reducers, timings: dict) -> None:
        tick = time.perf_counter()
        reducer = reducers[self._accumulators[0]]
        components, singular = reducer.components(int(self.n_components))
        reducer.release()
        timings["group"] = time.perf_counter() - tick
        self._say(f"group PCA: {components.shape}, exact={self.group_exact_}")
        tick = time.perf_counter()
        maps, info = unmix(
            components,
            n_init=int(self.n_init),
            random_state=self.random_state,
            threshold=self.threshold,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            precision=self.precision,
        )
        timings["ica"] = time.perf_counter() - tick
        self.singular_values_ = singular
        self.ica_info_ = info
        self.components_ = maps
