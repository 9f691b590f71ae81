"""CanICA from shards: the true networks, nilearn's maps, the cache, threads, arrays."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

from nishard import stream
from nishard.learn import CanICA, match_components


@pytest.fixture(scope="module")
def fitted(networks) -> CanICA:
    return CanICA(n_components=10, random_state=0).fit(networks.shards)


def test_every_true_network_is_recovered(fitted, truth_maps, networks):
    match = match_components(fitted.components_, truth_maps)
    assert len(match.reference) == 7
    assert match.worst >= 0.9, match.correlation
    image = fitted.components_img_
    mask = nib.load(networks.mask)
    assert image.shape == (*mask.shape, 10)
    np.testing.assert_allclose(image.affine, mask.affine)
    assert fitted.group_exact_ and fitted.n_samples_ == 12
    assert fitted.bytes_streamed_ == 12 * 300 * 3666 * 4
    assert 0 < fitted.explained_variance_total_ < 1
    assert np.all((fitted.explained_variance_ >= 0) & (fitted.explained_variance_ <= 1))
    assert fitted.memory_usage_["added"] > 0 and fitted.fit_time_ > 0


@pytest.mark.slow
def test_nilearn_gives_the_same_maps_on_the_same_data(fitted, truth_maps, networks):
    from nilearn.decomposition import CanICA as NilearnCanICA
    from nilearn.decomposition._base import _explained_variance

    samples = [s["bold"] for s in stream.open(networks.shards, "*").keys("bold").arrays()]
    images = [fitted.space_.mask.to_image(s) for s in samples]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = NilearnCanICA(
            mask=str(networks.mask),
            n_components=10,
            smoothing_fwhm=None,
            standardize=False,
            detrend=False,
            random_state=0,
            n_init=10,
        ).fit(images)
    theirs = reference.components_
    assert match_components(theirs, truth_maps).worst >= 0.9
    # The components of both that stand for the true networks are the same maps.
    ours_to_truth = match_components(fitted.components_, truth_maps)
    pairs = match_components(theirs, fitted.components_)
    partner = dict(zip(pairs.reference, pairs.correlation, strict=True))
    assert min(partner[c] for c in ours_to_truth.component) >= 0.9
    # The explained variance is nilearn's per-component score over all the data.
    expected = _explained_variance(np.concatenate(samples), fitted.components_)
    np.testing.assert_allclose(fitted.explained_variance_, expected, atol=1e-4)


def test_a_second_fit_reuses_the_cached_reductions(networks, tmp_path, capsys):
    first = CanICA(n_components=10, memory=tmp_path / "cache", score=False, verbose=1).fit(
        networks.shards
    )
    assert first.reduction_log_.cached == 0
    # The progress of the pass that reduces the subjects (plain lines: not a terminal).
    bar = capsys.readouterr().err
    assert "reduce: 12/12 samples (100 %)" in bar
    second = CanICA(
        n_components=10, memory=tmp_path / "cache", score=False, n_init=2, threshold=None
    ).fit(networks.shards)
    log = second.reduction_log_
    assert log.cached == 12 and not log.decoded and second.bytes_streamed_ == 0
    np.testing.assert_allclose(second.singular_values_, first.singular_values_)


def test_threads_and_arrays_give_the_same_maps(networks, fitted, monkeypatch):
    # Scored as ``fitted`` is: the components come sorted by explained variance.
    threaded = CanICA(n_components=10, n_jobs=2).fit(networks.shards)
    np.testing.assert_allclose(threaded.components_, fitted.components_, atol=1e-5)
    samples = list(stream.open(networks.shards, "*").keys("bold").arrays())
    from_arrays = CanICA(n_components=10, mask=networks.mask).fit(samples)
    np.testing.assert_allclose(from_arrays.components_, fitted.components_, atol=1e-5)
    assert from_arrays.components_img_.shape == fitted.components_img_.shape
    # Through a small MIGP buffer the result depends on the order subjects come in:
    # threads must hand them over in the stream's order.
    monkeypatch.setattr("nishard.learn.memory.MAX_CAPACITY", 40)
    serial, parallel = (
        CanICA(n_components=10, n_jobs=jobs, score=False).fit(networks.shards) for jobs in (1, 2)
    )
    assert not serial.group_exact_ and serial.memory_plan_.capacity == 40
    np.testing.assert_allclose(parallel.singular_values_, serial.singular_values_, rtol=1e-6)
    np.testing.assert_allclose(parallel.components_, serial.components_, atol=1e-5)


def test_transform_gives_time_courses(networks, fitted):
    sample = next(iter(stream.open(networks.shards, "*").keys("bold").arrays()))["bold"]
    (courses,) = fitted.transform([sample])
    assert courses.shape == (300, 10)


def test_the_learners_are_reached_from_the_package():
    import nishard as ns

    assert ns.learn.CanICA is CanICA
    assert ns.learn.DictLearning.__name__ == "DictLearning"


def test_the_cache_misses_when_the_product_or_the_reduction_changes(networks, tmp_path):
    cache = tmp_path / "cache"
    CanICA(n_components=10, memory=cache, score=False).fit(networks.shards)
    other_rows = CanICA(n_components=8, memory=cache, score=False).fit(networks.shards)
    assert other_rows.reduction_log_.cached == 0
    other_method = CanICA(n_components=10, memory=cache, score=False, reduction="randomized")
    assert other_method.fit(networks.shards).reduction_log_.cached == 0


def test_a_stopped_fit_resumes_from_the_reductions_it_cached(networks, tmp_path, monkeypatch):
    from nishard.learn.source import Shards

    whole = Shards.arrays

    def stopped(self, check=True):
        for count, item in enumerate(whole(self, check)):
            if count == 5:
                raise KeyboardInterrupt  # the user's Ctrl-C halfway through the subjects
            yield item

    with monkeypatch.context() as patch:
        patch.setattr(Shards, "arrays", stopped)
        with pytest.raises(KeyboardInterrupt):
            CanICA(n_components=10, memory=tmp_path / "cache", score=False).fit(networks.shards)
    resumed = CanICA(n_components=10, memory=tmp_path / "cache", score=False).fit(networks.shards)
    assert resumed.reduction_log_.cached == 5 and resumed.reduction_log_.samples == 12
    fresh = CanICA(n_components=10, score=False).fit(networks.shards)
    np.testing.assert_allclose(resumed.components_, fresh.components_, atol=1e-6)
