"""What CanICA and dictionary learning share: stream, reduce, group, measure.

A fit reads the source once to reduce every subject and fold its components into the
group buffer(s) (:mod:`nishard.learn.subjects`, :mod:`nishard.learn.pca`), takes the
group components, hands them to the estimator's own step (FastICA, dictionary
learning), and, with ``score=True``, reads the source a second time for the explained
variance of the maps and sorts them by it. Memory is planned from the budget before anything is read
(:mod:`nishard.learn.memory`) and measured while it runs.

The estimators follow scikit-learn's and nilearn's conventions: ``memory`` is a joblib
cache (with ``memory_level``), the budget is ``memory_budget``; parameters are stored as
given (``get_params``, ``set_params``, ``clone``) and checked by ``fit``; an unfitted
estimator raises ``NotFittedError``; ``transform`` gives each sample's time courses and
``inverse_transform`` images, as nilearn's decompositions do; the fitted estimator keeps
descriptions of its data (folders, manifest checksums, counts), never the data.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..units import parse_bytes
from .errors import LearnError
from .memory import MemoryPlan, PeakMemory, parse_budget, plan_memory
from .pca import GroupReducer
from .scores import ExplainedVariance, Projection
from .source import ArraySource, Shards
from .spaces import ArraySpace, VolumeSpace, resolve_space
from .subjects import ReductionLog, ReductionOptions, as_memory, reduce_subjects


def open_source(source: object, key: str, split: str | None) -> Shards | ArraySource:
    """A :class:`Shards` or :class:`ArraySource` for what a user passes to ``fit``.

    Shard folders (a path or a list of paths), a :class:`Shards`, a 2D array (one
    subject), or an iterable of arrays or of the dicts ``nishard.stream.open(...).arrays()`` yields.
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
        "samples of nishard.stream.open(...).arrays()"
    )


def check_memory_param(memory: object) -> None:
    """Refuse a budget given as ``memory=``: a size (``"4GiB"``, ``512_000_000``) that
    joblib would take for the name of a cache folder.

    Raises
    ------
    LearnError
        A ``ValueError``, naming ``memory_budget=``.
    """
    if isinstance(memory, bool):
        raise LearnError(f"memory: a folder, a joblib.Memory or None, got {memory!r}")
    if isinstance(memory, (int, np.integer)) or isinstance(memory, str):
        try:
            parse_bytes(int(memory) if isinstance(memory, np.integer) else memory)
        except ValueError:
            if not isinstance(memory, str):
                raise LearnError(
                    f"memory: a folder, a joblib.Memory or None, got {memory!r}"
                ) from None
            return
        raise LearnError(
            f"memory={memory!r} is a size, but memory= is the cache of the subject "
            "reductions (a folder or a joblib.Memory, as in nilearn and scikit-learn): "
            f"give the budget as memory_budget={memory!r} (a cache folder of that name: "
            "pass a pathlib.Path)"
        )
    if memory is not None and not isinstance(memory, os.PathLike):
        if not (hasattr(memory, "cache") and hasattr(memory, "location")):
            raise LearnError(
                f"memory: a folder (str or path), a joblib.Memory or None, got a "
                f"{type(memory).__name__}"
            )


def shards_description(data: Shards) -> dict[str, dict]:
    """What a fit keeps of its shard folders: each manifest's sha256 and the facts the
    report shows (records, splits, quarantine, dropped), no sample."""
    from ..archives.inspect import summarize
    from ..archives.manifest import MANIFEST
    from ..checksums import sha256_file

    described = {}
    for folder, manifest in zip(data.folders, data.manifests, strict=True):
        facts = summarize(manifest)
        try:
            digest = sha256_file(folder / MANIFEST)
        except OSError:
            digest = None
        described[str(folder)] = {
            "manifest_sha256": digest,
            **{k: facts.get(k) for k in ("records", "splits", "quarantine", "dropped")},
        }
    return described


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
    memory : str, PathLike or joblib.Memory, optional
        The cache, as in nilearn and scikit-learn: a folder or a ``joblib.Memory`` where
        subject reductions are stored under each sample's content identity and found
        again by a later fit (other ICA options, a fit that was stopped); None: no
        cache. A size (``"4GiB"``) is refused: that is ``memory_budget``.
    memory_level : int
        How much is cached, as nilearn's: 0 nothing, 1 or more the subject reductions
        (the step that reads the data). Default 1, so that giving ``memory`` is enough
        (nilearn's default is 0, raised to 1 with a warning when ``memory`` is given).
    memory_budget : int or str, optional
        Memory the fit may add to the process (``"1GiB"``, bytes); default: no bound
        (every subject's rows kept: the exact group PCA).
    n_jobs : int
        Subjects reduced at once (threads), within the budget.
    random_state : int or None
        Seeds the randomized SVDs and the unmixing, as in nilearn.
    reduction : {"auto", "gram", "randomized"}
        How subjects are reduced (:func:`nishard.learn.pca.subject_reduction`).
    score : bool
        Compute ``explained_variance_`` with a second pass over the data, and list the
        components in decreasing explained variance (nilearn keeps the algorithm's
        order; matched maps are the same either way).
    verbose : int
        1: progress bars of the passes over the data; 2: also each step; on stderr.

    Notes
    -----
    Parameters are stored as given and checked by :meth:`fit`, as scikit-learn asks:
    ``get_params``, ``set_params`` and ``sklearn.base.clone`` round-trip.
    """

    _accumulators: tuple[str, ...] = ("unit",)

    def __init__(
        self,
        n_components: int = 20,
        *,
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
        self.n_components = n_components
        self.key = key
        self.split = split
        self.mask = mask
        self.memory = memory
        self.memory_level = memory_level
        self.memory_budget = memory_budget
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
        check_memory_param(self.memory)
        level = self.memory_level
        if not isinstance(level, (int, np.integer)) or isinstance(level, bool) or level < 0:
            raise LearnError(f"memory_level must be a non-negative integer, got {level!r}")
        parse_budget(self.memory_budget)

    def _cache(self):
        """The ``joblib.Memory`` the subject reductions go to, or None (level 0, none)."""
        return self.memory_ if self.memory_level >= 1 else None

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
            parse_budget(self.memory_budget),
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

    def fit(self, X: object, y: object = None) -> GroupDecomposition:
        """Learn the maps from samples: shard folders, a :class:`Shards` or arrays.

        Parameters
        ----------
        X : path, list of paths, Shards, ndarray or iterable
            The samples, ``(time, features)`` each: see :func:`open_source`.
        y : ignored

        Returns
        -------
        self
        """
        del y
        self._fit(X)
        return self

    def fit_transform(self, X: object, y: object = None) -> list[np.ndarray]:
        """Fit, then give each sample's time courses: ``fit(X).transform(X)``, with one
        pass over the data fewer when ``score`` (the time courses are taken in the pass
        that computes the explained variance).

        Parameters
        ----------
        X : as for :meth:`fit`
            A list, shard folders or a :class:`Shards`: samples read twice (a generator
            cannot be).
        y : ignored

        Returns
        -------
        list of ndarray, shape (time, n_components)
            One per sample, in the order of :meth:`fit`'s stream.
        """
        del y
        data = open_source(X, self.key, self.split)
        if isinstance(data, ArraySource) and not data.reusable:
            raise LearnError(
                "fit_transform reads the samples twice (to learn the maps, then to project "
                "the samples on them), which a generator cannot give: pass a list, or "
                "shard folders"
            )
        courses: list[np.ndarray] = []
        self._fit(data, courses)
        if self.score:
            return courses
        return self.transform(data)

    def _fit(self, source: object, courses: list | None = None) -> None:
        self._check_params()
        self.memory_ = as_memory(self.memory)
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
            del reducers
            self.components_ = np.asarray(self.components_, dtype=np.float32)
            self.space_ = space
            self.components_img_ = space.to_image(self.components_)
            self.mask_img_ = space.mask.mask_image() if isinstance(space, VolumeSpace) else None
            self.explained_variance_ = None
            self.explained_variance_total_ = None
            if self.score:
                tick = time.perf_counter()
                self._score(data, courses)
                timings["score"] = time.perf_counter() - tick
                self._sort_by_explained_variance(courses)
        self.fit_time_ = time.perf_counter() - started
        self.timings_ = timings
        self.reduction_log_ = log
        self.n_samples_ = log.samples
        self.n_timepoints_ = log.timepoints
        self.n_features_in_ = int(n_features)
        self.bytes_streamed_ = log.bytes
        self.memory_plan_ = plan
        self.peak_memory_ = peak.added
        self.memory_usage_ = {
            **peak.to_dict(),
            "budget": parse_budget(self.memory_budget),
            "plan": None if plan is None else plan.to_dict(),
        }
        # A description of the data, never the data (nor a stream of it).
        self.shards_ = shards_description(data) if isinstance(data, Shards) else {}

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
                    parse_budget(self.memory_budget),
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
            ahead=plan.read_ahead if plan else False,
            memory=self._cache(),
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

    def _score(self, data: Shards | ArraySource, courses: list | None = None) -> None:
        if isinstance(data, ArraySource) and not data.reusable:
            import warnings

            warnings.warn(
                "explained variance needs a second pass over the data, which a generator "
                "cannot give: pass a list, or shard folders",
                UserWarning,
                stacklevel=4,
            )
            return
        from ..progress import bar as progress_bar

        scorer = ExplainedVariance(self.components_)
        total = len(data.samples) if isinstance(data, Shards) else len(data.items)
        with progress_bar(
            total=total, unit="sample", desc="score", disable=not self.verbose
        ) as bar:
            for _, sample, _ in data.arrays():
                projections = scorer.observe(sample)
                del sample
                if courses is not None:  # fit_transform: the time courses of this pass
                    courses.append(scorer.projection.courses(projections))
                bar.update(1)
        self.explained_variance_ = scorer.per_component()
        self.explained_variance_total_ = scorer.joint()

    def _sort_by_explained_variance(self, courses: list | None) -> None:
        """Components in decreasing explained variance (ties kept in place): the order
        is the data's, not the order the algorithm happened to give them in, so fits
        under different budgets or seeds list the same maps in the same places."""
        if self.explained_variance_ is None:
            return
        order = np.argsort(-np.asarray(self.explained_variance_), kind="stable")
        self.components_ = self.components_[order]
        self.explained_variance_ = np.asarray(self.explained_variance_)[order]
        self.components_img_ = self.space_.to_image(self.components_)
        for i, course in enumerate(courses or ()):
            courses[i] = course[:, order]

    # -- after fit ----------------------------------------------------------------------

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "components_")

    def transform(self, X: object) -> list[np.ndarray]:
        """Each sample's time courses of the maps, as nilearn's ``transform``.

        Each frame is regressed on the maps (least squares, as nilearn's maps masker
        does): ``courses = X C.T (C C.T)^-1``.

        Parameters
        ----------
        X : as for :meth:`fit`
            Samples: shard folders (read with the estimator's ``key`` and ``split``), a
            :class:`Shards`, one ``(time, features)`` array or arrays.

        Returns
        -------
        list of ndarray, shape (time, n_components), float64
            One per sample, in the stream's order (a list even for one array).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        """
        check_is_fitted(self)
        data = open_source(X, self.key, self.split)
        project = Projection(self.components_)
        courses = []
        for _, sample, _ in data.arrays():
            if sample.shape[1] != self.components_.shape[1]:
                raise LearnError(
                    f"samples of {sample.shape[1]} features for maps of {self.components_.shape[1]}"
                )
            courses.append(project(sample))
            del sample
        return courses

    def inverse_transform(self, loadings: list[np.ndarray] | np.ndarray) -> list | object:
        """Time courses back to data: ``loadings @ components_``, as images.

        Parameters
        ----------
        loadings : list of ndarray, shape (time, n_components), or one such array
            Time courses, e.g. :meth:`transform`'s.

        Returns
        -------
        list of images or ndarrays (one image or ndarray for one array)
            Images of the fit's space when it knows it, as nilearn gives them: a 4D NIfTI
            (one volume per frame) through the mask; a GIfTI time series for a surface
            key; a CIFTI-2 dense time series (frames counted from 0, step 1) for
            grayordinates. Without a known space (arrays fitted without ``mask``), the
            ``(time, features)`` arrays.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        """
        check_is_fitted(self)
        single = isinstance(loadings, np.ndarray)
        items = [loadings] if single else loadings
        if not isinstance(items, (list, tuple)):
            raise TypeError(
                f"loadings: a list of (time, n_components) arrays, got a {type(loadings).__name__}"
            )
        maps = self.components_.astype(np.float64)
        images = []
        for index, item in enumerate(items):
            courses = np.asarray(item, dtype=np.float64)
            if courses.ndim != 2 or courses.shape[1] != len(maps):
                raise LearnError(
                    f"loadings {index}: expected (time, {len(maps)}), found {courses.shape}"
                )
            images.append(self.space_.to_series(courses @ maps))
        return images[0] if single else images

    def save(self, path: str | os.PathLike) -> Path:
        """Write the maps as an image of their space (``.nii.gz``, ``.func.gii``,
        ``.dscalar.nii``) or ``.npy``; ``path`` without its extension."""
        check_is_fitted(self)
        return self.space_.save(self.components_, Path(path))

    def report(
        self,
        out: str | os.PathLike,
        *,
        truth: object = None,
        plots: bool = True,
        n_jobs: int | None = None,
    ) -> dict:
        """Maps, pictures, ``results.json`` and ``report.html`` of this fit, in ``out``;
        nothing is fitted again. See :func:`nishard.learn.report.learn_report`."""
        from .report import learn_report

        return learn_report(self, out, truth=truth, plots=plots, n_jobs=n_jobs)

    @property
    def has_image(self) -> bool:
        return hasattr(self, "space_") and not isinstance(self.space_, ArraySpace)
