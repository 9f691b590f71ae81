"""Subject reduction and the incremental group PCA against plain SVDs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from nishard.learn import pca
from nishard.learn.pca import GroupReducer, reduction_method, subject_reduction


def low_rank(rng, rows: int, cols: int, rank: int, noise: float = 0.1) -> np.ndarray:
    spectrum = np.linspace(10, 2, rank)
    data = (rng.standard_normal((rows, rank)) * spectrum) @ rng.standard_normal((rank, cols))
    return (data + noise * rng.standard_normal((rows, cols))).astype(np.float32)


def subspace_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between the row spaces of a and b."""
    qa, _ = np.linalg.qr(a.T)
    qb, _ = np.linalg.qr(b.T)
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


@pytest.mark.parametrize("method", ["gram", "randomized"])
def test_subject_reduction_is_the_leading_svd(method):
    rng = np.random.default_rng(0)
    data = low_rank(rng, 120, 2000, rank=8)
    rows, singular = subject_reduction(data, 5, method=method)
    _, s, vt = np.linalg.svd(data.astype(np.float64), full_matrices=False)
    assert rows.shape == (5, 2000) and rows.dtype == np.float32
    np.testing.assert_allclose(singular, s[:5], rtol=1e-4)
    # Same vectors up to sign; the largest entry of each row is positive.
    np.testing.assert_allclose(np.abs(np.sum(rows * vt[:5], axis=1)), 1, atol=1e-4)
    assert np.all(rows[np.arange(5), np.abs(rows).argmax(axis=1)] > 0)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)


def test_short_runs_give_fewer_rows_and_the_cheaper_method_is_chosen():
    rows, singular = subject_reduction(np.ones((3, 50), np.float32) + np.eye(3, 50), 10)
    assert rows.shape == (3, 50) and singular.shape == (3,)
    assert reduction_method(200, 20) == "gram"
    assert reduction_method(1200, 20) == "randomized"
    with pytest.raises(ValueError, match="time, voxels"):
        subject_reduction(np.ones(5), 2)


def test_group_reducer_is_exact_while_every_row_fits():
    rng = np.random.default_rng(1)
    stack = low_rank(rng, 60, 3000, rank=12)
    reducer = GroupReducer(3000, capacity=60, keep=30, expected_rows=60)
    for start in range(0, 60, 10):
        reducer.add(stack[start : start + 10])
    components, singular = reducer.components(6)
    assert reducer.exact and reducer.rows_seen == 60
    _, s, vt = np.linalg.svd(stack.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(singular, s[:6], rtol=1e-4)
    np.testing.assert_allclose(np.abs(np.sum(components * vt[:6], axis=1)), 1, atol=1e-4)


def test_migp_keeps_the_leading_subspace_in_a_small_buffer():
    rng = np.random.default_rng(2)
    stack = low_rank(rng, 400, 3000, rank=6, noise=0.5)
    reducer = GroupReducer(3000, capacity=40, keep=20)
    for start in range(0, 400, 10):
        reducer.add(stack[start : start + 10])
    assert not reducer.exact and reducer.reductions >= 10
    assert reducer.nbytes == 40 * 3000 * 4  # never more than the buffer
    components, _ = reducer.components(6)
    _, _, vt = np.linalg.svd(stack.astype(np.float64), full_matrices=False)
    assert subspace_cosines(components, vt[:6]).min() > 0.99


def test_group_reducer_refuses_too_few_rows_and_bad_sizes():
    reducer = GroupReducer(10, capacity=8, keep=4)
    reducer.add(np.ones((3, 10), np.float32))
    with pytest.raises(ValueError, match="5 components asked of 3 rows"):
        reducer.components(5)
    with pytest.raises(ValueError, match="rows of 10 features"):
        reducer.add(np.ones((2, 11), np.float32))
    with pytest.raises(ValueError, match="keep < capacity"):
        GroupReducer(10, capacity=4, keep=4)


def test_group_pca_streams_the_exact_group_components(networks):
    from nishard import stream
    from nishard.learn import GroupPCA

    pca = GroupPCA(n_components=6, score=False).fit(networks.shards)
    stack = []
    for sample in stream.open(networks.shards, "*").keys("bold").arrays():
        rows, _ = subject_reduction(sample["bold"], 6, method="randomized")
        stack.append(rows)
    _, s, vt = np.linalg.svd(np.concatenate(stack).astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(pca.singular_values_, s[:6], rtol=1e-3)
    assert subspace_cosines(pca.components_, vt[:6]).min() > 0.999
    assert pca.components_img_.shape[-1] == 6


def test_a_buffer_that_grows_past_the_announced_rows_keeps_its_nominal_keep():
    from nishard.learn.pca import GroupReducer

    rows = np.random.default_rng(1).standard_normal((90, 40)).astype(np.float32)
    reducer = GroupReducer(40, capacity=60, keep=50, expected_rows=30)
    assert (reducer.capacity, reducer.keep) == (30, 30)  # sized for what was announced
    reducer.add(rows)  # three times as many rows come
    # Grown to 60 rows; full three times, each time folded into 50 rows, then 10 more.
    assert reducer.capacity == 60 and reducer.keep == 50 and reducer.reductions == 3
    assert reducer.stack().shape[0] == 60


def test_the_gram_on_threads_has_the_bits_of_the_blocks_one_after_the_other():
    rows = np.random.default_rng(3).standard_normal((90, 50_000), dtype=np.float32)
    block = 4096  # 13 blocks: more than the threads, so that each thread takes several
    with threadpool_limits(limits=1):
        assert pca.threads_allowed() == 1  # a limit set around the call holds
        serial = pca.gram(rows, block)
    with threadpool_limits(limits=2):
        threaded = pca.gram(rows, block)
    expected = np.zeros((90, 90))
    for start in range(0, rows.shape[1], block):
        part = rows[:, start : start + block].astype(np.float64)
        expected += part @ part.T
    np.testing.assert_allclose(serial, expected, rtol=1e-5, atol=1e-3)
    assert threaded.tobytes() == serial.tobytes()
    with ThreadPoolExecutor(1) as pool:  # off the main thread: its blocks in turn
        assert pool.submit(pca.gram, rows, block).result().tobytes() == serial.tobytes()


def test_small_eigendecompositions_have_the_same_bits_whatever_the_blas_threads():
    data = low_rank(np.random.default_rng(4), 600, 20_000, rank=30)
    products = pca.gram(data)
    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            values, vectors = pca.leading_eigen(products, 20)
            results.append(values.tobytes() + vectors.tobytes())
    assert results[0] == results[1]
    exact = np.linalg.eigvalsh(products)[::-1][:20]
    np.testing.assert_allclose(values, exact, rtol=1e-10)
