"""Per-feature statistics: streamed moments equal numpy's over the concatenated data."""

from __future__ import annotations

import hashlib

import ml_dtypes
import numpy as np
import pytest
import webdataset as wds

import nishard as ns
from nishard.archives import stats as stats_module
from nishard.archives.stats import (
    Moments,
    SplitStats,
    load_block,
    sample_moments,
    save_block,
    write_npz,
)
from nishard.builder.splits import Random
from tests.builder.test_write import TRANSFORMS, _records

#: float64 throughout: the streamed result agrees with numpy's two-pass one to rounding.
RTOL, ATOL = 1e-12, 1e-12


def _rows(array):
    return array.reshape(-1, array.shape[-1] if array.ndim else 1).astype(np.float64)


@pytest.mark.parametrize(
    "shapes",
    [[(7, 5), (3, 5), (11, 5)], [(4,), (4,), (4,)], [(), (), ()], [(2, 3, 6), (5, 1, 6)]],
)
def test_moments_equal_numpy_over_all_axes_but_the_last(shapes, monkeypatch):
    monkeypatch.setattr(stats_module, "CHUNK", 12)  # several chunks per sample
    rng = np.random.default_rng(0)
    arrays = [rng.normal(3.0, 2.0, shape).astype(np.float32) for shape in shapes]
    moments = Moments()
    for array in arrays:
        moments.observe(array)
    data = np.concatenate([_rows(a) for a in arrays])
    np.testing.assert_allclose(moments.mean, data.mean(axis=0), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(moments.std, data.std(axis=0), rtol=RTOL, atol=ATOL)
    summary = moments.summary()
    assert (summary["count"], summary["samples"]) == (len(data), len(arrays))
    assert summary["features"] == data.shape[1]
    assert summary["mean"] == pytest.approx(data.mean(), rel=RTOL, abs=ATOL)
    assert summary["std"] == pytest.approx(data.std(), rel=RTOL)
    assert (summary["min"], summary["max"]) == (data.min(), data.max())


def test_blocks_merge_to_the_whole_and_survive_a_file_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    arrays = [rng.normal(size=(n, 4)) for n in (3, 9, 2, 6)]
    split = SplitStats()
    for i, array in enumerate(arrays):
        split.observe({"x": array, "flag": array > 0})
        if i % 2:
            block = split.close_block()
            save_block(tmp_path / f"{i}.npz", block)
            restored = load_block(tmp_path / f"{i}.npz")
            assert restored["x"].mean.tobytes() == block["x"].mean.tobytes()
            assert restored["x"].m2.tobytes() == block["x"].m2.tobytes()
    total = split.total()
    data = np.concatenate(arrays)
    np.testing.assert_allclose(total["x"].mean, data.mean(axis=0), rtol=RTOL)
    np.testing.assert_allclose(total["flag"].mean, (data > 0).mean(axis=0), rtol=RTOL)


def test_keys_without_statistics_say_why():
    varying, complex_ = Moments(), Moments()
    varying.observe(np.ones((2, 3)))
    varying.observe(np.ones((2, 4)))
    complex_.observe(np.ones(3, dtype=np.complex64))
    assert "features (last axis) varies: 3 and 4" in varying.summary()["skipped"]
    assert "not real numbers" in complex_.summary()["skipped"]
    half = Moments()
    half.observe(np.array([[1.5, -2.0]], dtype=ml_dtypes.bfloat16))
    assert half.mean.tolist() == [1.5, -2.0]


def test_npz_side_files_are_deterministic_and_load_with_numpy(tmp_path):
    arrays = {"bold.mean": np.arange(3.0), "bold.std": np.ones(3)}
    write_npz(tmp_path / "a.npz", arrays)
    write_npz(tmp_path / "b.npz", dict(reversed(arrays.items())))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as loaded:
        assert sorted(loaded.files) == sorted(arrays)
        np.testing.assert_array_equal(loaded["bold.mean"], arrays["bold.mean"])


def test_manifest_statistics_per_split_equal_numpy_over_the_split_samples(tiny, tmp_path):
    split = Random(fractions={"train": 0.5, "test": 0.5}, seed=2)
    manifest = ns.write(_records(tiny), ns.assemble(TRANSFORMS), tmp_path, split=split,
                        shards=ns.shards.by_count(2), progress=False)  # fmt: skip
    for name in ("train", "test"):
        urls = [str(tmp_path / s["name"]) for s in manifest["shards"] if s["split"] == name]
        bolds = [s["bold.npy"] for s in wds.WebDataset(urls, shardshuffle=False).decode()]
        data = np.concatenate([b.astype(np.float64) for b in bolds])  # (time, voxels) each
        entry = manifest["stats"][name]
        side = (tmp_path / entry["file"]).read_bytes()
        assert hashlib.sha256(side).hexdigest() == entry["sha256"]
        with np.load(tmp_path / entry["file"]) as vectors:
            np.testing.assert_allclose(vectors["bold.mean"], data.mean(0), rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(vectors["bold.std"], data.std(0), rtol=RTOL, atol=ATOL)
            assert vectors["bold.mean"].dtype == np.float64
        summary = entry["keys"]["bold"]
        assert summary["samples"] == len(bolds) and summary["count"] == len(data)
        assert summary["features"] == data.shape[1]
        assert summary["mean"] == pytest.approx(data.mean(), abs=ATOL)
        assert summary["std"] == pytest.approx(data.std(), rel=RTOL)


def _state(split: SplitStats) -> list:
    """Every number of a split's moments, as bytes: equal means equal bits."""
    return [(name, m.count, m.samples, m.skipped, m.low, m.high,
             None if m.mean is None else (m.mean.tobytes(), m.m2.tobytes()))
            for name, m in split.total().items()]  # fmt: skip


def test_moments_made_apart_merge_to_the_same_bits_as_observing(monkeypatch):
    """What a worker computes (sample_moments) and the writer merges (add) equals what
    the writer would get observing the arrays itself, bit for bit."""
    monkeypatch.setattr(stats_module, "CHUNK", 12)  # several chunks per sample
    rng = np.random.default_rng(1)
    samples = [
        {"bold": rng.normal(size=(9, 5)).astype(np.float32), "age": np.float64(30 + i),
         "half": rng.normal(size=(4, 5)).astype(ml_dtypes.bfloat16),
         "empty": np.zeros((0, 5), np.float32), "text": np.array(["a", "b"])}
        for i in range(4)
    ]  # fmt: skip
    observed, added = SplitStats(), SplitStats()
    for products in samples:
        observed.observe(products)
        added.add(dict(reversed(sample_moments(products).items())))  # any order of keys
    assert _state(added) == _state(observed)
    assert added.total()["empty"].samples == 4 and added.total()["text"].skipped
