"""The learners as scikit-learn and nilearn users expect them: parameters, caching, fitted
state, transform and inverse_transform, nothing of the data kept."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import joblib
import nibabel as nib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from nishard import stream
from nishard.learn import CanICA, DictLearning, GroupPCA, LearnError
from nishard.learn.source import ArraySource, Shards

ESTIMATORS = [CanICA, DictLearning, GroupPCA]


def subjects(count: int = 3, time: int = 60, features: int = 400) -> list[np.ndarray]:
    """Subjects mixing 4 sparse spatial sources, with noise: small and quick to learn."""
    rng = np.random.default_rng(0)
    sources = np.where(rng.random((4, features)) < 0.15, rng.standard_normal((4, features)), 0)
    return [
        (
            rng.standard_normal((time, 4)) @ sources + 0.1 * rng.standard_normal((time, features))
        ).astype(np.float32)
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def fitted(networks) -> CanICA:
    return CanICA(n_components=10, n_init=2, random_state=0).fit(networks.shards)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_an_unfitted_estimator_raises_not_fitted_error(cls, tmp_path):
    estimator = cls(n_components=3)
    with pytest.raises(NotFittedError):
        estimator.transform(subjects(1))
    with pytest.raises(NotFittedError):
        estimator.inverse_transform([np.zeros((5, 3))])
    with pytest.raises(NotFittedError):
        estimator.save(tmp_path / "maps")
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)
    estimator.fit(subjects())
    check_is_fitted(estimator)  # does not raise


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_parameters_round_trip_through_clone_and_set_params(cls, tmp_path):
    cache = joblib.Memory(tmp_path / "cache", verbose=0)
    given = {
        "n_components": 7,
        "key": "voxels",
        "split": "train",
        "mask": tmp_path / "mask.nii.gz",
        "memory": cache,
        "memory_level": 2,
        "memory_budget": "4GiB",
        "n_jobs": 3,
        "random_state": 42,
        "reduction": "gram",
        "score": False,
        "verbose": 1,
    }
    estimator = cls(**given)
    params = estimator.get_params()
    # Stored as given: no validation, no conversion in __init__ (scikit-learn's rule).
    assert {k: params[k] for k in given} == given and params["memory"] is cache
    copy = clone(estimator)
    assert copy is not estimator and type(copy) is cls
    assert copy.get_params().keys() == params.keys()
    for name, value in copy.get_params().items():
        if name == "memory":  # clone deep-copies what is not an estimator
            assert isinstance(value, joblib.Memory) and value.location == cache.location
        else:
            assert value == params[name], name
    assert estimator.set_params(n_components=3, memory_budget=None) is estimator
    assert estimator.n_components == 3 and estimator.memory_budget is None
    # Bad values are refused by fit, not by the constructor.
    wrong = cls(n_components=-1, memory="4GiB", memory_level=-1)
    assert clone(wrong).get_params()["memory"] == "4GiB"
    with pytest.raises(LearnError):
        wrong.fit(subjects())


def test_a_clone_of_a_fitted_estimator_is_unfitted():
    estimator = GroupPCA(n_components=3).fit(subjects())
    with pytest.raises(NotFittedError):
        clone(estimator).transform(subjects(1))


@pytest.mark.parametrize("size", ["4GiB", "512MB", " 1 kib ", "1024", 2**30, np.int64(2**20)])
def test_a_size_passed_as_memory_is_refused_naming_memory_budget(size, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"is a size.*memory_budget="):
        CanICA(n_components=3, memory=size).fit(subjects())
    assert list(tmp_path.iterdir()) == []  # joblib made no folder of that name


def test_memory_takes_a_folder_a_path_or_a_joblib_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A folder named like a size is still a folder when given as a path.
    named = CanICA(n_components=3, memory=Path("4GiB"), score=False).fit(subjects())
    assert named.memory_.location is not None and Path("4GiB").is_dir()
    assert isinstance(named.memory_, joblib.Memory)
    with pytest.raises(LearnError, match="memory: a folder"):
        CanICA(n_components=3, memory=3.5).fit(subjects())
    with pytest.raises(LearnError, match="memory_level must be a non-negative integer"):
        CanICA(n_components=3, memory_level="high").fit(subjects())
    unfitted = CanICA(n_components=3, score=False).fit(subjects())
    assert isinstance(unfitted.memory_, joblib.Memory) and unfitted.memory_.location is None


@pytest.mark.parametrize("kind", ["str", "path", "joblib"])
def test_a_second_fit_loads_the_reductions_from_memory(kind, networks, tmp_path):
    folder = tmp_path / "cache"
    memory = {"str": str(folder), "path": folder, "joblib": joblib.Memory(folder, verbose=0)}[kind]
    first = CanICA(n_components=10, n_init=1, memory=memory, score=False).fit(networks.shards)
    assert first.reduction_log_.cached == 0 and folder.is_dir()
    second = CanICA(n_components=10, n_init=1, memory=memory, score=False).fit(networks.shards)
    assert second.reduction_log_.cached == 12 and not second.reduction_log_.decoded
    np.testing.assert_array_equal(second.components_, first.components_)


def test_memory_level_0_caches_nothing(networks, tmp_path):
    folder = tmp_path / "cache"
    for _ in range(2):
        fit = CanICA(n_components=10, n_init=1, memory=folder, memory_level=0, score=False)
        assert fit.fit(networks.shards).reduction_log_.cached == 0
    assert not folder.exists() or not any(folder.rglob("output.pkl"))


@pytest.mark.parametrize("score", [True, False])
def test_fit_transform_equals_fit_then_transform(score):
    data = subjects()
    courses = CanICA(n_components=4, n_init=2, score=score).fit_transform(data)
    estimator = CanICA(n_components=4, n_init=2, score=score).fit(data)
    again = estimator.transform(data)
    assert len(courses) == len(again) == 3
    for one, other in zip(courses, again, strict=True):
        assert one.shape == (60, 4)
        np.testing.assert_allclose(one, other, rtol=1e-6, atol=1e-9)
    with pytest.raises(LearnError, match="a generator cannot"):
        CanICA(n_components=4).fit_transform(iter(data))


def test_fit_transform_of_shards_gives_each_samples_time_courses(networks, fitted):
    courses = CanICA(n_components=10, n_init=2, random_state=0).fit_transform(networks.shards)
    again = fitted.transform(networks.shards)
    assert len(courses) == len(again) == 12
    for one, other in zip(courses, again, strict=True):
        np.testing.assert_allclose(one, other, rtol=1e-5, atol=1e-7)


def test_transform_and_inverse_transform_are_nilearns(networks, fitted):
    """Time courses and images as nilearn's CanICA gives them: its transform and
    inverse_transform are those of a maps masker on the maps (least squares)."""
    from nilearn.maskers import NiftiMapsMasker

    sample = next(iter(stream.open(networks.shards, "*").keys("bold").arrays()))["bold"]
    (courses,) = fitted.transform(sample)
    maps = fitted.components_.astype(np.float64)
    # The least-squares projection of the data on the maps' span.
    projection = sample @ maps.T @ np.linalg.pinv(maps @ maps.T) @ maps
    (image,) = fitted.inverse_transform([courses])
    mask = nib.load(networks.mask).get_fdata() > 0
    back = image.get_fdata()[mask].T
    assert image.shape == (*mask.shape, 300)
    np.testing.assert_allclose(image.affine, nib.load(networks.mask).affine)
    np.testing.assert_allclose(back, projection, atol=1e-4 * np.abs(projection).max())
    # nilearn's decompositions: NiftiMapsMasker(components_img_, mask, resampling_target="maps")
    masker = NiftiMapsMasker(
        fitted.components_img_, mask_img=str(networks.mask), resampling_target="maps"
    ).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = masker.transform(fitted.space_.mask.to_image(sample))
        theirs_image = masker.inverse_transform(theirs)
    np.testing.assert_allclose(courses, theirs, rtol=1e-3, atol=1e-4 * np.abs(theirs).max())
    theirs_back = theirs_image.get_fdata()[mask].T
    np.testing.assert_allclose(back, theirs_back, atol=1e-3 * np.abs(theirs_back).max())
    # One array in, one image out; a wrong shape is named.
    assert fitted.inverse_transform(courses).shape == image.shape
    with pytest.raises(LearnError, match=r"expected \(time, 10\), found \(300, 3\)"):
        fitted.inverse_transform([courses[:, :3]])


def test_without_a_space_inverse_transform_gives_arrays():
    data = subjects()
    estimator = GroupPCA(n_components=4).fit(data)
    assert estimator.components_img_ is None and estimator.mask_img_ is None
    courses = estimator.transform(data)
    back = estimator.inverse_transform(courses)
    assert isinstance(back, list) and all(isinstance(b, np.ndarray) for b in back)
    maps = estimator.components_.astype(np.float64)
    expected = data[0] @ maps.T @ np.linalg.pinv(maps @ maps.T) @ maps
    np.testing.assert_allclose(back[0], expected, atol=1e-4)


def _walk(value, path: str, seen: set):
    """Every (path, value) reachable from an attribute: containers and nishard objects."""
    if id(value) in seen:
        return
    seen.add(id(value))
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}[{key!r}]", seen)
    elif isinstance(value, (list, tuple, set)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk(getattr(value, f.name), f"{path}.{f.name}", seen)
    elif type(value).__module__.startswith("nishard") and hasattr(value, "__dict__"):
        for key, item in vars(value).items():
            yield from _walk(item, f"{path}.{key}", seen)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_no_training_data_is_kept_on_the_estimator(cls):
    data = subjects()
    estimator = cls(n_components=4, score=True).fit(data)
    one_sample = data[0].size
    for path, value in _walk(vars(estimator), "estimator", set()):
        assert not isinstance(value, (ArraySource, Shards)), path
        assert not hasattr(value, "__next__"), path  # no stream, no generator
        if isinstance(value, np.ndarray):
            # Maps and small statistics only: nothing the size of a sample.
            assert value.size < one_sample, (path, value.shape)
            for sample in data:
                assert not np.shares_memory(value, sample), path


def test_a_fit_on_shards_keeps_their_description_not_their_samples(fitted, networks):
    described = fitted.shards_[str(networks.shards)]
    assert set(described) == {"manifest_sha256", "records", "splits", "quarantine", "dropped"}
    assert len(described["manifest_sha256"]) == 64 and described["records"]["written"] == 12
    for path, value in _walk(vars(fitted), "fitted", set()):
        assert not isinstance(value, (ArraySource, Shards)), path
        if isinstance(value, np.ndarray):
            assert value.size < 300 * 3666, (path, value.shape)
    assert fitted.n_features_in_ == 3666 and fitted.mask_img_.shape == (25, 30, 24)
