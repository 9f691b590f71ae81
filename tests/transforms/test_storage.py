"""Crop, windows and cast: exact slices, exact windows, nearest rounding, loud overflow."""

import ml_dtypes
import numpy as np
import pytest

from nishard.spec import _build
from nishard.transforms.storage import Cast, Crop, Windows, cast, crop, windows


@pytest.fixture
def run():
    rng = np.random.default_rng(0)
    return rng.normal(size=(20, 7)).astype(np.float32)


@pytest.mark.parametrize(
    "start, stop", [(0, None), (3, None), (3, 11), (-5, None), (2, -3), (-8, -2), (0, 20)]
)
def test_crop_is_the_python_slice(run, start, stop):
    out = crop(run, start, stop)
    np.testing.assert_array_equal(out, run[start:stop])
    assert out.flags.c_contiguous and not np.shares_memory(out, run)


def test_crop_cuts_the_last_axis_of_a_4d_image():
    image = np.arange(2 * 3 * 4 * 10, dtype=np.float32).reshape(2, 3, 4, 10)
    np.testing.assert_array_equal(crop(image, 2, -1), image[..., 2:-1])


@pytest.mark.parametrize(
    "start, stop, message",
    [
        (0, 25, r"crop \[0:25\] needs more volumes than the run's 20"),
        (-25, None, r"crop \[-25:\] needs more"),
        (5, -15, "is empty"),
        (20, None, "is empty"),
    ],
)
def test_crop_refuses_a_run_too_short(run, start, stop, message):
    with pytest.raises(ValueError, match=message):
        crop(run, start, stop)


def test_crop_options_are_checked_before_any_data():
    with pytest.raises(ValueError, match="empty"):
        Crop(start=10, stop=5)
    with pytest.raises(ValueError, match="integer number of volumes"):
        Crop(start=2.5)
    with pytest.raises(ValueError, match="integer number of volumes"):
        Crop(stop=True)
    Crop(start=-10, stop=5)  # depends on the run length: checked on the data


@pytest.mark.parametrize("length, step", [(5, None), (5, 5), (6, 4), (4, 1), (20, 3), (7, 50)])
def test_windows_are_the_slices_and_drop_the_tail(run, length, step):
    out = windows(run, length, step)
    hop = length if step is None else step
    starts = range(0, len(run) - length + 1, hop)
    expected = np.stack([run[s : s + length] for s in starts])
    np.testing.assert_array_equal(out, expected)
    assert out.shape == ((len(run) - length) // hop + 1, length, run.shape[1])
    assert out.flags.c_contiguous and not np.shares_memory(out, run)


def test_windows_refuse_what_they_cannot_cut(run):
    with pytest.raises(ValueError, match="a window of 21 volumes is longer than the run's 20"):
        windows(run, 21)
    with pytest.raises(ValueError, match=r"\(time, features\)"):
        windows(run[None], 5)
    for bad in ({"length": 0}, {"length": 5, "step": 0}, {"length": 2.0}, {"length": True}):
        with pytest.raises(ValueError, match="positive number of volumes"):
            Windows(**bad)


def test_cast_rounds_to_nearest():
    x = np.random.default_rng(1).normal(0, 100, size=10_000)
    for name, dtype, bits in (("bfloat16", ml_dtypes.bfloat16, 8), ("float16", np.float16, 11)):
        out = cast(x, name)
        assert out.dtype == np.dtype(dtype)
        error = np.abs(out.astype(np.float64) - x)
        # Round to nearest: within half a unit in the last place of the value.
        ulp = 2.0 ** (np.floor(np.log2(np.abs(x))) - (bits - 1))
        assert (error <= ulp / 2).all()
    assert cast(x.astype(np.float32), "float32").dtype == np.float32


def test_float16_overflow_is_an_error_not_inf():
    assert cast(np.array([65504.0, -65519.0]), "float16").tolist() == [65504.0, -65504.0]
    with pytest.raises(ValueError, match=r"1 values overflow float16 \(largest magnitude 65520"):
        cast(np.array([1.0, -65520.0]), "float16")
    with pytest.raises(ValueError, match="overflow bfloat16"):
        cast(np.array([1e39]), "bfloat16")
    with pytest.raises(ValueError, match="overflow float32"):
        cast(np.array([1e39]), "float32")
    kept = cast(np.array([np.nan, np.inf, -np.inf]), "float16")
    assert np.isnan(kept[0]) and kept[1] == np.inf and kept[2] == -np.inf


def test_cast_transform_casts_only_its_keys_and_names_the_key(run):
    sample = {"bold": run, "confounds": run[:, :2].copy(), "meta": {}}
    out = Cast("bfloat16", keys=("bold",))(sample)
    assert out["bold"].dtype == ml_dtypes.bfloat16
    assert out["confounds"].dtype == np.float32 and sample["bold"].dtype == np.float32
    assert Cast("float16", keys="bold").keys == ("bold",)
    with pytest.raises(ValueError, match=r"confounds: \d+ values overflow float16"):
        Cast("float16", keys=("bold", "confounds"))({**sample, "confounds": run * 1e5})
    with pytest.raises(ValueError, match="dtype one of float32, float16, bfloat16"):
        Cast("float64")
    with pytest.raises(ValueError, match="one or more sample keys"):
        Cast(keys=())


def test_transforms_read_and_write_their_key_and_are_pure(run):
    sample = {"ts": run.copy()}
    for step, shape in (
        (Crop(2, -2, key="ts"), (16, 7)),
        (Windows(8, 4, key="ts"), (4, 8, 7)),
        (Cast("float16", keys=("ts",)), (20, 7)),
    ):
        out = step(sample)
        assert step.reads == step.writes == ("ts",)
        assert out["ts"].shape == shape and out is not sample
        np.testing.assert_array_equal(sample["ts"], run)


def test_yaml_options_build_the_transforms():
    assert _build(Cast, {"dtype": "bfloat16", "keys": ["bold", "mask"]}, "t").keys == (
        "bold",
        "mask",
    )
    assert _build(Crop, {"start": 5, "stop": -5}, "t") == Crop(5, -5)
    assert _build(Windows, {"length": 30, "step": 10}, "t") == Windows(30, 10)
