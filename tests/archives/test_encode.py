"""Compact dtypes in shards: bfloat16 and float16 come back exact through the real readers."""

import io

import ml_dtypes
import nibabel as nib
import numpy as np
import pytest
import torch
import webdataset as wds

import nishard as ns
from nishard.archives.encode import decode_npy, encode_npy, restore_dtype
from nishard.transforms import Mask, Standardize, apply_mask, standardize
from nishard.transforms.storage import Cast, Crop, Windows, cast, crop, windows
from tests.helpers import TINY_RES

BF16 = np.dtype(ml_dtypes.bfloat16)


@pytest.fixture
def values():
    return np.random.default_rng(0).normal(size=(30, 17)).astype(np.float32)


def _bits(array):
    return array.view(f"u{array.dtype.itemsize}")


@pytest.mark.parametrize("dtype", [BF16, np.dtype(ml_dtypes.float8_e4m3fn), np.float16])
@pytest.mark.parametrize("shape", [(30, 17), (), (2, 0, 3)])
def test_compact_arrays_round_trip_bit_for_bit(values, dtype, shape):
    array = values.ravel()[: int(np.prod(shape))].reshape(shape).astype(dtype)
    data = encode_npy(array)
    back = decode_npy(data)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(_bits(back), _bits(array))
    assert encode_npy(array.copy()) == data  # the same bytes for the same values


def test_bfloat16_npy_says_what_it_holds_and_cannot_be_misread(values):
    array = values.astype(BF16)
    plain = np.load(io.BytesIO(encode_npy(array)), allow_pickle=False)  # no nishard needed
    assert plain.dtype == np.dtype([("bfloat16", "<u2")])
    np.testing.assert_array_equal(plain.view(np.uint16), _bits(array))
    with pytest.raises(TypeError):
        torch.from_numpy(plain)
    with pytest.raises(TypeError):
        plain * 2.0


def test_non_contiguous_and_fortran_arrays_are_stored_in_c_order(values):
    for view in (values[:, ::3], np.asfortranarray(values), values.astype(BF16)[::2]):
        back = decode_npy(encode_npy(view))
        assert back.flags.c_contiguous
        np.testing.assert_array_equal(_bits(back), _bits(np.ascontiguousarray(view)))


def test_other_structured_arrays_are_left_alone():
    pairs = np.zeros(3, dtype=[("bfloat16", "<u4")])  # itemsize differs: not ours
    assert restore_dtype(pairs) is pairs
    named = np.zeros(3, dtype=[("time", "<u2")])
    assert restore_dtype(named) is named


def _build(root, out, transforms):
    records = ns.locate(root, schema=ns.schemas.fmriprep(res=TINY_RES))
    manifest = ns.write(
        records, ns.assemble(transforms), out, shards=ns.shards.by_count(4), progress=False
    )
    return records, manifest, [str(out / s["name"]) for s in manifest["shards"]]


def _direct(record, *steps):
    data = np.asarray(nib.load(record.files["bold"]).dataobj, dtype=np.float32)
    x = standardize(apply_mask(data, nib.load(record.files["mask"]).get_fdata() > 0))
    for step in steps:
        x = step(x)
    return x


STEPS = [Mask(), Standardize(), Crop(10, -10), Windows(40, 20)]


@pytest.fixture(scope="module")
def bf16_build(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("bf16")
    return (out, *_build(tiny, out, [*STEPS, Cast("bfloat16")]))


def test_webdataset_and_torch_read_bfloat16_shards(bf16_build):
    _, records, manifest, urls = bf16_build
    assert manifest["keys"]["bold"]["dtype"] == "bfloat16"
    expected = {
        r.id: _direct(r, lambda x: crop(x, 10, -10), lambda x: windows(x, 40, 20)) for r in records
    }
    seen = 0
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        raw = sample["bold.npy"]
        want = expected[sample["__key__"]]
        assert raw.shape == want.shape == (4, 40, want.shape[-1])
        bf16 = restore_dtype(raw)
        np.testing.assert_array_equal(_bits(bf16), _bits(cast(want, "bfloat16")))
        # PyTorch: the documented view; torch's own float32 -> bfloat16 rounding agrees.
        tensor = torch.from_numpy(raw.view(np.uint16)).view(torch.bfloat16)
        assert torch.equal(tensor, torch.from_numpy(want).to(torch.bfloat16))
        # jnp.bfloat16 is the ml_dtypes.bfloat16 dtype: JAX takes the array as it is (JAX is not
        # imported here: its threads would make the DataLoader's fork in test_write unsafe).
        assert bf16.dtype == BF16
        seen += 1
    assert seen == len(records)


def test_webdataset_reads_float16_shards_natively(tiny, tmp_path):
    records, manifest, urls = _build(tiny, tmp_path, [Mask(), Standardize(), Cast("float16")])
    assert manifest["keys"]["bold"]["dtype"] == "float16"
    by_id = {r.id: r for r in records}
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        bold = sample["bold.npy"]
        assert bold.dtype == np.float16
        want = _direct(by_id[sample["__key__"]]).astype(np.float16)
        np.testing.assert_array_equal(bold, want)
        assert torch.from_numpy(bold).dtype == torch.float16


def test_two_bfloat16_builds_are_byte_identical(tiny, bf16_build, tmp_path):
    out, _, manifest, _ = bf16_build
    _, again, _ = _build(tiny, tmp_path, [*STEPS, Cast("bfloat16")])
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in manifest["shards"]]
    for shard in manifest["shards"]:
        assert (tmp_path / shard["name"]).read_bytes() == (out / shard["name"]).read_bytes()
