"""DictLearning's last step: the lasso codes of every voxel on the learned dictionary.

Once the dictionary is learned, each voxel's codes (its loadings on the ``n_components``
maps) are one lasso: ``argmin_c 0.5 * ||x - c @ D||**2 + alpha * ||c||_1``, with ``x`` the
voxel's values in the reduced data. nilearn's DictLearning gets them from scikit-learn
(``MiniBatchDictionaryLearning.transform`` -> ``sparse_encode(algorithm="lasso_cd")``),
which fits one ``Lasso`` per voxel in a Python loop; nishard's ``lasso_codes`` runs the same
coordinate descent for blocks of voxels at once.

The data, as in ``benchmarks/scale.py``'s DictLearning at its largest point: ``--features``
reduced rows (the group buffer, 273) for up to 235,375 voxels (the 2 mm MNI brain), float32,
made of ``--atoms`` sparse maps (30 % of the voxels each) mixed with a shared component, and
noise; the dictionary is learned from them by scikit-learn's
``MiniBatchDictionaryLearning`` as DictLearning runs it (``alpha=10``, batches of 20,
untimed). These are as hard as the real thing: in the stack and dictionary of
``scale.py``'s 4 GB DictLearning, 17 % of the codes are nonzero, the atoms' largest
correlation is 0.83 and their Gram's condition number 99; here 17 %, 0.70 and 103.

At each of ``--sizes`` voxels both code the same voxels, alternating, ``--repeats`` times
(the fastest counts), with one worker each, then with ``--workers`` each (scikit-learn's
``n_jobs``, joblib's processes; nishard's ``threads``, which DictLearning sets to the BLAS
threads allowed). Each answer is checked against the lasso's optimality conditions (the
residual's correlation with an atom is ``alpha * sign`` of a nonzero code, at most
``alpha`` for a zero one): the worst violation, as a fraction of ``alpha``. Ends with one
JSON line: per size both sides' times, ``ratio`` (scikit-learn's time over nishard's, with
as many workers), ``max_abs_diff`` (as a fraction of the largest code), the violations,
and each side's marginal seconds per 100,000 voxels.

    python benchmarks/lasso_codes.py [--sizes 25000,100000,235375] [--features 273]
                                     [--atoms 20] [--workers 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import warnings

import numpy as np

ALPHA = 10.0


def make_data(voxels: int, features: int, atoms: int) -> np.ndarray:
    """(voxels, features) float32: sparse maps mixed over the features, with noise."""
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((atoms, voxels)) * (rng.random((atoms, voxels)) < 0.3)
    # A component shared by every map's time course correlates the atoms, as in fMRI.
    mixing = rng.standard_normal((features, atoms)) + 0.7 * rng.standard_normal((features, 1))
    stack = mixing @ maps + 0.3 * rng.standard_normal((features, voxels))
    return np.ascontiguousarray(stack.T, dtype=np.float32)


def learn_dictionary(samples: np.ndarray, atoms: int) -> np.ndarray:
    """A dictionary learned as DictLearning learns it (untimed)."""
    from sklearn.decomposition import MiniBatchDictionaryLearning

    learner = MiniBatchDictionaryLearning(
        n_components=atoms,
        alpha=ALPHA,
        batch_size=20,
        max_iter=1,  # passes, as DictLearning(n_epochs=1); the early stop ends it sooner
        shuffle=False,
        random_state=0,
        fit_algorithm="cd",
    ).fit(samples)
    return learner.components_


def violation(codes: np.ndarray, dictionary: np.ndarray, samples: np.ndarray) -> float:
    """The worst breach of the lasso's optimality conditions, as a fraction of alpha."""
    atoms = dictionary.astype(np.float64)
    worst = 0.0
    for start in range(0, len(samples), 20000):
        part, x = codes[start : start + 20000], samples[start : start + 20000].astype(np.float64)
        correlation = (x - part @ atoms) @ atoms.T
        active = part != 0
        on = np.abs(correlation[active] - ALPHA * np.sign(part[active])).max(initial=0)
        off = np.maximum(np.abs(correlation[~active]) - ALPHA, 0).max(initial=0)
        worst = max(worst, on, off)
    return worst / ALPHA


def scikit_learn(dictionary: np.ndarray, samples: np.ndarray, workers: int) -> np.ndarray:
    """What ``MiniBatchDictionaryLearning.transform`` runs for DictLearning's codes."""
    from sklearn.decomposition import sparse_encode

    return sparse_encode(
        samples, dictionary, algorithm="lasso_cd", alpha=ALPHA, max_iter=1000, n_jobs=workers
    )


def nishard(dictionary: np.ndarray, samples: np.ndarray, workers: int) -> np.ndarray:
    from nishard.learn.lasso import lasso_codes
    from nishard.learn.pca import blas_threads

    with blas_threads(1):  # as DictLearning runs it
        return lasso_codes(dictionary, samples, ALPHA, threads=workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25000,100000,235375", help="voxels coded")
    parser.add_argument("--features", type=int, default=273, help="reduced rows a voxel")
    parser.add_argument("--atoms", type=int, default=20, help="the dictionary's atoms")
    parser.add_argument("--workers", type=int, default=2, help="the second runs' workers")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    from sklearn.exceptions import ConvergenceWarning

    # scikit-learn's float32 lasso stops at float32's precision, above its tolerance: one
    # warning a voxel, silenced as DictLearning (and nilearn) silence it.
    warnings.simplefilter("ignore", ConvergenceWarning)
    data = make_data(sizes[-1], args.features, args.atoms)
    dictionary = learn_dictionary(data, args.atoms)
    print(f"{args.atoms} atoms x {args.features} features, alpha {ALPHA}; codes of up to "
          f"{sizes[-1]:,} voxels, float32")  # fmt: skip
    print(f"{'voxels':>8} {'workers':>7} {'scikit-learn':>13} {'nishard':>9} {'ratio':>6} "
          f"{'max_abs_diff':>13} {'violation (sklearn, nishard)':>30}")  # fmt: skip
    rows = []
    for size, workers in itertools.product(sizes, sorted({1, args.workers})):
        samples = data[:size]
        times: dict[str, list[float]] = {"scikit_learn": [], "nishard": []}
        codes = {}
        for _ in range(args.repeats):
            for name, code in (("scikit_learn", scikit_learn), ("nishard", nishard)):
                tick = time.perf_counter()
                codes[name] = code(dictionary, samples, workers)
                times[name].append(time.perf_counter() - tick)
        theirs, ours = codes["scikit_learn"], codes["nishard"]
        row = {
            "voxels": size,
            "workers": workers,
            "scikit_learn_s": round(min(times["scikit_learn"]), 3),
            "nishard_s": round(min(times["nishard"]), 3),
            "max_abs_diff": float(np.abs(ours - theirs).max() / np.abs(theirs).max()),
            "violation_scikit_learn": violation(theirs, dictionary, samples),
            "violation_nishard": violation(ours, dictionary, samples),
            "nonzero": round(float((ours != 0).mean()), 4),
        }
        row["ratio"] = round(row["scikit_learn_s"] / row["nishard_s"], 1)
        rows.append(row)
        print(f"{size:>8,} {workers:>7} {row['scikit_learn_s']:>12.2f}s "
              f"{row['nishard_s']:>8.2f}s {row['ratio']:>5.1f}x {row['max_abs_diff']:>13.1e} "
              f"{row['violation_scikit_learn']:>14.1e}, "
              f"{row['violation_nishard']:.1e}")  # fmt: skip

    def marginal(key: str, workers: int) -> list[float]:
        points = [r for r in rows if r["workers"] == workers]
        return [
            round((b[key] - a[key]) / (b["voxels"] - a["voxels"]) * 1e5, 3)
            for a, b in itertools.pairwise(points)
        ]

    largest = [r for r in rows if r["voxels"] == sizes[-1]]
    summary = {
        "benchmark": "lasso_codes",
        "atoms": args.atoms,
        "features": args.features,
        "alpha": ALPHA,
        "sizes": rows,
        "scikit_learn_s_per_100k": {w: marginal("scikit_learn_s", w) for w in {1, args.workers}},
        "nishard_s_per_100k": {w: marginal("nishard_s", w) for w in {1, args.workers}},
        "ratio": {r["workers"]: r["ratio"] for r in largest},
        "max_abs_diff": max(r["max_abs_diff"] for r in rows),
        "max_violation_nishard": max(r["violation_nishard"] for r in rows),
    }
    for workers in sorted({1, args.workers}):
        print(f"marginal s per 100,000 voxels with {workers} worker(s): scikit-learn "
              f"{summary['scikit_learn_s_per_100k'][workers]}, nishard "
              f"{summary['nishard_s_per_100k'][workers]}")  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
