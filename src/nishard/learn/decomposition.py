"""What CanICA and dictionary learning share: stream, reduce, group, measure.

A fit reads the source once to reduce every subject and fold its components into the
group buffer(s) (:mod:`nishard.learn.subjects`, :mod:`nishard.learn.pca`), takes the
group components, hands them to the estimator's own step (FastICA, dictionary
learning), and, with ``score=True``, reads the source a second time for the explained
variance of the maps. Memory is planned from the budget before anything is read
(:mod:`nishard.learn.memory`) and measured while it runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .errors import LearnError
from .memory import MemoryPlan, PeakMemory, parse_budget, plan_memory
from .pca import GroupReducer
from .scores import ExplainedVariance
from .source import ArraySource, Shards
from .spaces import ArraySpace, resolve_space
from .subjects import ReductionLog, ReductionOptions, reduce_subjects


def open_source(source: object, key: str, split: str | None) -> Shards | ArraySource:
    """A :class:`Shards` or :class:`ArraySource` for what a user passes to ``fit``.

    Shard folders (a path or a list of paths), a :class:`Shards`, a 2D array (one
    subject), or an iterable of arrays or of the dicts ``nishard.stream.arrays`` yields.
    """
    if isinstance(source, (Shards, ArraySource)):
        return source
    if isinstance(source, (str, os.PathLike)):
        return Shards((Path(source),), key=key, split=split)
    if isinstance(source, np.ndarray):
        return ArraySource([source], key=key)
    if (
        isinstance(source, (list, tuple))
        and source
        and all(isinstance(item, (str, os.PathLike)) for item in source)
    ):
        return Shards(tuple(Path(item) for item in source), key=key, split=split)
    if isinstance(source, Iterable):
        return ArraySource(source if isinstance(source, (list, tuple)) else iter(source), key=key)
    raise LearnError(
        f"cannot learn from a {type(source).__name__}: give shard folders, arrays, or the "
        "samples of nishard.stream.arrays"
    )


class GroupDecomposition(TransformerMixin, BaseEstimator):
    """Base of the streaming multi-subject decompositions (not used directly).

    Parameters
    ----------
    n_components : int
        Maps to learn; also the components kept per subject (nilearn's choice).
    key : str
        The shards' product to learn from, ``(time, features)`` arrays.
    split : str, optional
        Only the samples of this split of the shards.
    mask : path or nibabel image, optional
        The mask of the features, to write maps as images; default: found from the
        shards (see :mod:`nishard.learn.masks`), and checked against them when given.
    memory : int or str, optional
        Budget of memory the fit may add to the process (``"1GiB"``); default: no bound
        (every subject's rows kept: the exact group PCA). Note: nilearn's ``memory`` is
        a cache; here that is ``cache``.
    cache : str, PathLike or joblib.Memory, optional
        Where subject reductions are stored and found again by a later fit.
    n_jobs : int
        Subjects reduced at once (threads), within the budget.
    random_state : int or None
        Seeds the randomized SVDs and the unmixing, as in nilearn.
    reduction : {"auto", "gram", "randomized"}
        How subjects are reduced (:func:`nishard.learn.pca.subject_reduction`).
    score : bool
        Compute ``explained_variance_`` with a second pass over the data.
    verbose : int
        1: progress bars of the passes over the data; 2: also each step; on stderr.
    """

    _accumulators: tuple[str, ...] = ("unit",)

    def __init__(
        self,
        n_components: int = 20,
        *,
        key: str = "bold",
        split: str | None = None,
        mask: object = None,
        memory: int | str | None = None,
        cache: object = None,
        n_jobs: int = 1,
        random_state: int | None = 0,
        reduction: str = "auto",
        score: bool = True,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.key = key
        self.split = split
        self.mask = mask
        self.memory = memory
        self.cache = cache
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.reduction = reduction
        self.score = score
        self.verbose = verbose

    # -- steps shared by the estimators ---------------------------------------------------

    def _say(self, message: str) -> None:
        if self.verbose > 1:
            print(f"[{type(self).__name__}] {message}", file=sys.stderr, flush=True)

    def _check_params(self) -> None:
        n = self.n_components
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise LearnError(f"n_components must be a positive integer, got {n!r}")
        if not isinstance(self.n_jobs, (int, np.integer)) or self.n_jobs < 1:
            raise LearnError(f"n_jobs must be a positive integer, got {self.n_jobs!r}")

    def _check_counts(self, n_features: int, rows: int | None, samples: int | None) -> None:
        n = int(self.n_components)
        if n > n_features:
            raise LearnError(
                f"n_components={n} but the samples have {n_features} features: at most "
                f"{n_features} components"
            )
        if rows is not None and rows < n:
            raise LearnError(
                f"n_components={n} but the {samples} samples hold only {rows} time points in "
                f"all (rows after subject reduction): fewer samples than components; ask "
                f"for at most {rows} components or give more data"
            )

    def _plan(self, data: Shards | ArraySource, n_features: int) -> MemoryPlan:
        n = int(self.n_components)
        if isinstance(data, Shards):
            n_time = data.n_timepoints or int(data.sample_bytes // (n_features * data.itemsize))
            total_rows = data.total_rows(n)
            sample_bytes = data.sample_bytes
            if data.itemsize != 4:  # the reduction works on a float32 copy of the sample
                sample_bytes += n_time * n_features * 4
        else:
            n_time, total_rows, sample_bytes = n, None, 0
        return plan_memory(
            parse_budget(self.memory),
            n_features=n_features,
            sample_bytes=sample_bytes,
            n_timepoints=n_time,
            n_rows=n,
            n_components=n,
            jobs=int(self.n_jobs),
            accumulators=len(self._accumulators),
            total_rows=total_rows,
            final_bytes=self._final_bytes(n_features, total_rows),
            method=self.reduction,
        )

    def _final_bytes(self, n_features: int, total_rows: int | None) -> int:
        return 0

    def fit(self, source: object, y: object = None) -> GroupDecomposition:
        """Learn the maps from shard folders, a :class:`Shards` or arrays.

        Parameters
        ----------
        source : path, list of paths, Shards, ndarray or iterable
            See :func:`open_source`.
        y : ignored

        Returns
        -------
        self
        """
        del y
        self._check_params()
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with PeakMemory() as peak:
            data = open_source(source, self.key, self.split)
            space = None
            if isinstance(data, Shards):
                n_features = data.n_features
                rows = data.total_rows(int(self.n_components))
                self._check_counts(n_features, rows, len(data.samples))
                space = resolve_space(data.folders, data.manifests, data.key, n_features, self.mask)
            else:
                n_features = data.n_features
            plan = self._plan(data, n_features) if n_features else None
            self._say(f"plan: {plan}")
            reducers, log = self._reduce(data, plan, timings)
            n_features = reducers[self._accumulators[0]].n_features
            self._check_counts(n_features, log.rows, log.samples)
            if space is None:
                space = resolve_space((), (), data.key, n_features, self.mask)
            self._decompose(reducers, timings)
            for reducer in reducers.values():
                reducer.release()
            self.components_ = np.asarray(self.components_, dtype=np.float32)
            self.space_ = space
            self.components_img_ = space.to_image(self.components_)
            self.explained_variance_ = None
            self.explained_variance_total_ = None
            if self.score:
                tick = time.perf_counter()
                self._score(data)
                timings["score"] = time.perf_counter() - tick
        self.fit_time_ = time.perf_counter() - started
        self.timings_ = timings
        self.reduction_log_ = log
        self.n_samples_ = log.samples
        self.n_timepoints_ = log.timepoints
        self.bytes_streamed_ = log.bytes
        self.memory_plan_ = plan
        self.peak_memory_ = peak.added
        self.memory_ = {
            **peak.to_dict(),
            "budget": parse_budget(self.memory),
            "plan": None if plan is None else plan.to_dict(),
        }
        self.source_ = data
        return self

    def _reduce(
        self, data: Shards | ArraySource, plan: MemoryPlan | None, timings: dict
    ) -> tuple[dict[str, GroupReducer], ReductionLog]:
        n = int(self.n_components)
        reducers: dict[str, GroupReducer] = {}
        options = ReductionOptions(n, self.reduction, self.random_state)

        def consume(reduced) -> None:
            if not reducers:
                features = reduced.rows.shape[1]
                active = plan or plan_memory(
                    parse_budget(self.memory),
                    n_features=features,
                    sample_bytes=0,
                    n_timepoints=reduced.n_timepoints,
                    n_rows=n,
                    n_components=n,
                    jobs=1,
                    accumulators=len(self._accumulators),
                )
                expected = data.total_rows(n) if isinstance(data, Shards) else None
                for name in self._accumulators:
                    reducers[name] = GroupReducer(features, active.capacity, active.keep, expected)
            for name, reducer in reducers.items():
                reducer.add(reduced.rows if name == "unit" else reduced.scaled)

        identities = [r.identity for r in data.samples] if isinstance(data, Shards) else None
        tick = time.perf_counter()
        log = reduce_subjects(
            data,
            options,
            consume,
            jobs=plan.jobs if plan else 1,
            cache=self.cache,
            identities=identities,
            progress=bool(self.verbose),
        )
        timings["reduce"] = time.perf_counter() - tick
        if not reducers:
            raise LearnError("no sample to learn from")
        self._say(f"reduced {log.samples} samples ({log.cached} from the cache)")
        self.group_exact_ = all(r.exact for r in reducers.values())
        return reducers, log

    def _decompose(self, reducers: dict[str, GroupReducer], timings: dict) -> None:
        raise NotImplementedError

    def _score(self, data: Shards | ArraySource) -> None:
        if isinstance(data, ArraySource) and not data.reusable:
            import warnings

            warnings.warn(
                "explained variance needs a second pass over the data, which a generator "
                "cannot give: pass a list, or shard folders",
                UserWarning,
                stacklevel=3,
            )
            return
        from tqdm.auto import tqdm

        scorer = ExplainedVariance(self.components_)
        total = len(data.samples) if isinstance(data, Shards) else len(data.items)
        with tqdm(total=total, unit="sample", desc="score", disable=not self.verbose) as bar:
            for _, sample in data.arrays():
                scorer.observe(sample)
                del sample
                bar.update(1)
        self.explained_variance_ = scorer.per_component()
        self.explained_variance_total_ = scorer.joint()

    # -- after fit ----------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise LearnError(f"this {type(self).__name__} is not fitted yet: call fit first")

    def transform(self, source: object) -> list[np.ndarray]:
        """Each sample's time courses of the maps (least squares of each frame on them).

        Parameters
        ----------
        source : as for :meth:`fit`

        Returns
        -------
        list of ndarray, shape (time, n_components)
        """
        self._check_fitted()
        data = open_source(source, self.key, self.split)
        maps = self.components_.astype(np.float64)
        inverse = np.linalg.pinv(maps @ maps.T)
        return [
            (np.asarray(sample, dtype=np.float32) @ self.components_.T).astype(np.float64) @ inverse
            for _, sample in data.arrays()
        ]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the maps as an image of their space (``.nii.gz``, ``.func.gii``,
        ``.dscalar.nii``) or ``.npy``; ``path`` without its extension."""
        self._check_fitted()
        return self.space_.save(self.components_, Path(path))

    @property
    def has_image(self) -> bool:
        return hasattr(self, "space_") and not isinstance(self.space_, ArraySpace)
