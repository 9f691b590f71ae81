"""Dictionary learning out of core, initialised from CanICA, as nilearn's DictLearning.

Mensch et al. 2016, as ``nilearn.decomposition.DictLearning`` (0.14) computes it: the
subject reductions are stacked into ``D`` (reduced time x voxels); CanICA on ``D``
(one start, no threshold) gives initial maps, each divided by its sum of
squares; the initial dictionary is the ridge regression of ``D`` on those maps, each
column normalised; online (mini-batch) dictionary learning then learns sparse spatial
codes of the voxels (the samples) on a dense temporal dictionary; the maps are the codes,
normalised, each signed so that it has more positive than negative values.

Out of core: ``D`` grows with the number of subjects, so it is held as its MIGP
reduction ``W = U.T D`` (:class:`GroupReducer`), exactly ``D`` rotated while every row
fits the budget. Dictionary learning is equivariant under such a rotation of the
features (the lasso codes depend on the dictionary only through inner products, which a
rotation keeps), so learning on ``W`` learns the same maps as on ``D``; past the budget,
``W`` keeps ``D``'s leading subspace. The voxels are shuffled once (seeded) and fed to
scikit-learn's ``MiniBatchDictionaryLearning`` in that order, without its own copy. The
voxels' codes on the learned dictionary, nilearn's maps, are the same lasso that
scikit-learn's ``transform`` solves, solved for blocks of voxels at once
(:func:`~nishard.learn.lasso.lasso_codes`).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .decomposition import GroupDecomposition
from .errors import LearnError
from .ica import unmix
from .lasso import lasso_codes
from .pca import blas_threads, block_size, threads_allowed


def initial_dictionary(maps: np.ndarray, stack: np.ndarray, alpha: float = 1e-8) -> np.ndarray:
    """nilearn's initial dictionary: ridge loadings of the stack on the maps.

    Parameters
    ----------
    maps : ndarray, shape (n, voxels)
        Initial maps (already scaled as nilearn does).
    stack : ndarray, shape (r, voxels)
        The (reduced) subject components.
    alpha : float
        Ridge penalty (nilearn: 1e-8).

    Returns
    -------
    ndarray, shape (n, r)
        Loadings, each column of unit norm.
    """
    cross = np.zeros((maps.shape[0], stack.shape[0]))
    step = block_size(stack.shape[0])
    for start in range(0, stack.shape[1], step):
        block = stack[:, start : start + step].astype(np.float64)
        cross += maps[:, start : start + step] @ block.T
    system = maps @ maps.T + alpha * np.eye(maps.shape[0])
    loadings = np.linalg.solve(system, cross)
    norms = np.sqrt((loadings**2).sum(axis=0))
    norms[norms == 0] = 1.0
    return loadings / norms[None, :]


class DictLearning(GroupDecomposition):
    """Sparse dictionary learning of resting-state maps, streamed from shards.

    Parameters
    ----------
    n_components : int
        Maps to learn.
    n_epochs : int
        Passes over the voxels at most. Learning stops earlier when the dictionary stops
        changing (``tol``) or the smoothed cost stops improving (``max_no_improvement``),
        which scikit-learn checks from its 101st mini-batch: at nilearn's defaults it
        stops at the earliest after 101 or 111 (after 111 on the test data, 0.60 of a
        pass over its 3,666 voxels), often a fraction of a pass for a brain mask. The
        dictionary then depends on the path (the initial atoms' order, the rounding of
        BLAS), as nilearn's does. With ``tol=0, max_no_improvement=None`` it makes
        exactly ``n_epochs`` passes, far less dependent on the path. nilearn asks for
        ``n_epochs`` times as many passes as a pass has mini-batches: the two stop at the
        same step when the early stop comes within ``n_epochs`` passes; otherwise this
        one stops after them where nilearn goes on (at ``n_epochs=1``, always for a mask
        of 100 mini-batches or fewer: 2,000 voxels at ``batch_size=20``).
    alpha : float
        Sparsity of the maps (nilearn: 10).
    batch_size : int
        Voxels per mini-batch (nilearn: 20).
    method : {"cd", "lars"}
        Lasso solver of the mini-batches. The final codes of the voxels are the same
        lasso's solution either way, by coordinate descent over blocks of voxels.
    tol, max_no_improvement : float, int
        scikit-learn's early stopping (on the running cost of the mini-batches).
    key, split, mask, memory, memory_level, memory_budget, n_jobs, random_state
        See :class:`~nishard.learn.decomposition.GroupDecomposition` (``reduction``,
        ``score`` and ``verbose`` too).

    Attributes
    ----------
    components_, components_img_, explained_variance_, explained_variance_total_,
    fit_time_, peak_memory_, memory_usage_, memory_, group_exact_, shards_
        As :class:`~nishard.learn.canica.CanICA`.
    components_init_ : ndarray, shape (n_components, features)
        The CanICA maps it started from.
    n_steps_ : int
        Mini-batches processed.
    passes_ : float
        Passes over the voxels those mini-batches made (``n_steps_`` over the
        mini-batches of a pass): below ``n_epochs`` only when early stopping ended
        learning, and below 1 when the dictionary was learned from part of the voxels.
    """

    _accumulators = ("unit", "scaled")

    def __init__(
        self,
        n_components: int = 20,
        *,
        n_epochs: int = 1,
        alpha: float = 10.0,
        batch_size: int = 20,
        method: str = "cd",
        tol: float = 1e-3,
        max_no_improvement: int = 10,
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
        self.n_epochs = n_epochs
        self.alpha = alpha
        self.batch_size = batch_size
        self.method = method
        self.tol = tol
        self.max_no_improvement = max_no_improvement

    def _check_params(self) -> None:
        super()._check_params()
        if self.method not in ("cd", "lars"):
            raise LearnError(f"method: 'cd' or 'lars', got {self.method!r}")
        if not isinstance(self.n_epochs, (int, np.integer)) or self.n_epochs < 1:
            raise LearnError(f"n_epochs must be a positive integer, got {self.n_epochs!r}")
        if self.alpha < 0:
            raise LearnError(f"alpha must be non-negative, got {self.alpha!r}")

    def _final_bytes(self, n_features: int, total_rows: int | None) -> int:
        # The codes and the dictionary learner's per-voxel statistics, in float64.
        return 3 * n_features * int(self.n_components) * 8

    def _decompose(self, reducers, timings: dict) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.utils import check_random_state

        n = int(self.n_components)
        tick = time.perf_counter()
        components, _ = reducers["unit"].components(n)
        reducers["unit"].release()
        timings["group"] = time.perf_counter() - tick
        tick = time.perf_counter()
        # nilearn's initial CanICA has one start and threshold n_components, which keeps
        # every value: no threshold.
        maps, _ = unmix(components, n_init=1, random_state=self.random_state, threshold=None)
        del components
        timings["init"] = time.perf_counter() - tick
        self.components_init_ = maps.astype(np.float32)
        squares = (maps**2).sum(axis=1)
        squares[squares == 0] = 1.0
        maps /= squares[:, None]  # nilearn divides by the sum of squares, not the norm
        stack = reducers["scaled"].stack()
        dictionary = initial_dictionary(maps, stack)
        del maps
        # The voxels are the samples: one C-ordered copy of the stack's transpose, in the
        # order scikit-learn's own shuffle would give (same random state, same draws: a
        # row shuffle permutes as an index shuffle does), without its second copy.
        random_state = check_random_state(self.random_state)
        order = np.arange(stack.shape[1])
        random_state.shuffle(order)
        voxels = np.ascontiguousarray(stack.T[order])
        reducers["scaled"].release()
        del stack
        tick = time.perf_counter()
        with warnings.catch_warnings():
            # The lasso of float32 data stops at float32's precision, above its tolerance
            # (as in nilearn, which passes float32 data too): one warning per mini-batch.
            warnings.simplefilter("ignore", ConvergenceWarning)
            codes, learner = self._learn(voxels, dictionary, random_state)
        self.n_steps_ = int(learner.n_steps_)
        self.passes_ = self.n_steps_ / -(-voxels.shape[0] // int(self.batch_size))
        del voxels
        maps = np.empty((n, codes.shape[0]))
        maps[:, order] = codes.T
        del codes
        norms = np.sqrt((maps**2).sum(axis=1))
        norms[norms == 0] = 1.0
        maps /= norms[:, None]
        # nilearn: more positive than negative values (empirically, more positive-looking).
        flip = (maps > 0).sum(axis=1) < (maps < 0).sum(axis=1)
        maps[flip] *= -1
        timings["dictionary"] = time.perf_counter() - tick
        self.components_ = maps

    def _learn(self, voxels: np.ndarray, dictionary: np.ndarray, random_state):
        """Fit scikit-learn's mini-batch learner on the voxels; every voxel's codes."""
        from sklearn.decomposition import MiniBatchDictionaryLearning

        learner = MiniBatchDictionaryLearning(
            n_components=int(self.n_components),
            alpha=self.alpha,
            # Passes over the voxels, as scikit-learn (>= 1.1) reads max_iter. nilearn
            # 0.14 passes n_epochs times the mini-batches of a pass there (an older
            # scikit-learn's count of mini-batches): a bound its early stopping reaches
            # long before, so the defaults learn the same dictionary (but see n_epochs).
            max_iter=int(self.n_epochs),
            fit_algorithm=self.method,
            batch_size=int(self.batch_size),
            shuffle=False,
            dict_init=dictionary.astype(voxels.dtype),
            random_state=random_state,
            tol=self.tol,
            max_no_improvement=self.max_no_improvement,
        ).fit(voxels)
        # The codes are the lasso that nilearn asks of learner.transform, solved for blocks
        # of voxels at once instead of one Lasso fit a voxel in a Python loop (most of the
        # step's time there), and to a tighter tolerance.
        threads = threads_allowed()
        with blas_threads(1):
            codes = lasso_codes(learner.components_, voxels, self.alpha, threads=threads)
        return codes, learner
