"""Group PCA on its own: nilearn's multi-subject PCA, streamed (the first half of CanICA)."""

from __future__ import annotations

import time

from .decomposition import GroupDecomposition


class GroupPCA(GroupDecomposition):
    """The leading spatial principal components of a group, streamed from shards.

    Each subject is reduced to its ``n_components`` leading components, each normalised
    to unit length when ``do_cca`` (nilearn's ``_MultiPCA``), and the stack of all of them
    reduced again, incrementally within the memory budget
    (:class:`~nishard.learn.pca.GroupReducer`).

    Parameters
    ----------
    n_components : int
    do_cca : bool
        Normalise each subject component before the group step.
    key, split, mask, memory, memory_level, memory_budget, n_jobs, random_state
        See :class:`~nishard.learn.decomposition.GroupDecomposition` (``reduction``,
        ``score`` and ``verbose`` too).

    Attributes
    ----------
    components_ : ndarray, shape (n_components, features)
        Unit rows, by decreasing singular value.
    singular_values_ : ndarray
    components_img_, explained_variance_, fit_time_, peak_memory_, group_exact_
        As :class:`~nishard.learn.canica.CanICA`.
    memory_usage_, memory_, memory_plan_, shards_, n_samples_, mask_img_
        As :class:`~nishard.learn.canica.CanICA`.
    """

    def __init__(
        self,
        n_components: int = 20,
        *,
        do_cca: bool = True,
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

    @property
    def _accumulators(self) -> tuple[str, ...]:
        return ("unit",) if self.do_cca else ("scaled",)

    def _decompose(self, reducers, timings: dict) -> None:
        tick = time.perf_counter()
        reducer = reducers[self._accumulators[0]]
        self.components_, self.singular_values_ = reducer.components(int(self.n_components))
        timings["group"] = time.perf_counter() - tick
