"""Bad input gives a clear error: missing key, mixed masks, too few samples, tiny budgets."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import nishard as ns
from nishard.learn import CanICA, LearnError
from tests.learn.conftest import build


def moved_mask(source, out, drop: int = 0):
    """The mask with one voxel moved (same count) or ``drop`` voxels removed."""
    image = nib.load(source)
    data = np.asanyarray(image.dataobj) > 0
    inside, outside = np.argwhere(data), np.argwhere(~data)
    if drop:
        for index in inside[:drop]:
            data[tuple(index)] = False
    else:
        data[tuple(inside[0])] = False
        data[tuple(outside[len(outside) // 2])] = True
    nib.save(nib.Nifti1Image(data.astype(np.uint8), image.affine), out)
    return out


def test_a_key_the_shards_lack_is_named_with_those_they_have(networks):
    with pytest.raises(LearnError, match=r"no key 'confounds' in the shards; they hold \['bold'"):
        CanICA(key="confounds").fit(networks.shards)


def test_shards_of_different_masks_are_refused(networks, tmp_path):
    same_count = moved_mask(networks.mask, tmp_path / "moved.nii.gz")
    other = build(networks.data, tmp_path / "moved", ns.t.Mask(source=str(same_count)), 12)
    with pytest.raises(LearnError, match="shards of different masks mixed"):
        CanICA(n_components=5).fit([networks.shards, other])
    fewer = moved_mask(networks.mask, tmp_path / "eroded.nii.gz", drop=10)
    smaller = build(networks.data, tmp_path / "eroded", ns.t.Mask(source=str(fewer)), 12)
    with pytest.raises(LearnError, match=r"different feature counts .*3666.*3656"):
        CanICA(n_components=5).fit([networks.shards, smaller])
    with pytest.raises(LearnError, match="differs from the one"):
        CanICA(n_components=5, mask=same_count).fit(networks.shards)
    with pytest.raises(LearnError, match="3656 voxels but the samples of 'bold' have 3666"):
        CanICA(n_components=5, mask=fewer).fit(networks.shards)


def test_fewer_samples_than_components_is_refused(networks):
    with pytest.raises(LearnError, match="fewer samples than components"):
        CanICA(n_components=12).fit(
            [np.ones((5, 100), np.float32), np.eye(5, 100, dtype=np.float32)]
        )
    with pytest.raises(LearnError, match="n_components=4000 but the samples have 3666 features"):
        CanICA(n_components=4000).fit(networks.shards)
    with pytest.raises(LearnError, match=r"no sample of split 'train'.*splits there: \['all'\]"):
        CanICA(split="train").fit(networks.shards)


def test_bad_options_and_budgets_are_refused(networks):
    with pytest.raises(LearnError, match=r"budget 1\.00 MiB too small.*give at least"):
        CanICA(n_components=10, memory_budget="1MiB").fit(networks.shards)
    with pytest.raises(LearnError, match="memory budget: a size like"):
        CanICA(memory_budget="lots").fit(networks.shards)
    with pytest.raises(LearnError, match="threshold 30 exceeds the number of maps"):
        CanICA(n_components=10, threshold=30).fit(networks.shards)
    with pytest.raises(LearnError, match="n_components must be a positive integer"):
        CanICA(n_components=0).fit(networks.shards)
    with pytest.raises(LearnError, match="cannot learn from a int"):
        CanICA().fit(3)


def test_samples_without_time_points_or_with_nan_are_named():
    good = np.random.default_rng(0).standard_normal((20, 50)).astype(np.float32)
    broken = good.copy()
    broken[3, 7] = np.nan
    with pytest.raises(LearnError, match="sample 1: NaN or infinite values"):
        CanICA(n_components=3).fit([good, broken])
    # Found by the reduction (the Gram's trace), for each route, with the same message.
    for reduction in ("gram", "randomized"):
        for bad in (np.inf, -np.inf):
            broken[3, 7] = bad
            with pytest.raises(LearnError, match="sample 1: NaN or infinite values"):
                CanICA(n_components=3, reduction=reduction).fit([good, broken])
    # Finite, but past what float32 products can square: named as such, not as NaN.
    huge = good * np.float32(1e20)
    with pytest.raises(LearnError, match="sample 0: values so large that their squares"):
        CanICA(n_components=3).fit([huge, good])
    with pytest.raises(LearnError, match=r"sample 1: no time points \(shape \(0, 50\)\)"):
        CanICA(n_components=3).fit([good, good[:0]])
    with pytest.raises(LearnError, match="threshold must be a non-negative ratio"):
        CanICA(n_components=3, threshold=-1.0).fit([good])
