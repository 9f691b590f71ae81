"""Per-record QC figures measured by the workers, against figures computed by hand."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import nishard as ns
from nishard.workflow import NodeCache
from nishard.workflow.qc import MAX_VOXELS, framewise_displacement, temporal_snr
from tests.helpers import TINY_RES


def _records(root):
    return ns.locate(root, schema=ns.schemas.fmriprep(res=TINY_RES))


def _tsnr_by_hand(record) -> float:
    bold = np.asarray(nib.load(record.files["bold"]).dataobj, dtype=np.float64)
    mask = np.asarray(nib.load(record.files["mask"]).dataobj) > 0
    voxels = bold[mask]  # (voxel, time)
    return float(np.median(voxels.mean(axis=1) / voxels.std(axis=1)))


def _fd_by_hand(record) -> np.ndarray:
    table = pd.read_csv(record.files["confounds"], sep="\t")
    return table["framewise_displacement"].to_numpy(dtype=float)[1:]


@pytest.fixture(scope="module")
def scrubbed(tiny, tmp_path_factory):
    """A build that censors volumes above 0.3 mm FD."""
    out = tmp_path_factory.mktemp("qc")
    clean = ns.t.Clean(confounds={"strategy": "scrubbing", "fd_threshold": 0.3})
    manifest = ns.write(_records(tiny), ns.assemble([ns.t.Mask(), clean]), out / "shards",
                        shards=ns.shards.by_count(4), progress=False)  # fmt: skip
    return out / "shards", manifest, _records(tiny)


def test_each_written_record_has_its_figures_equal_to_a_direct_computation(scrubbed):
    out, manifest, records = scrubbed
    qc = manifest["qc"]
    assert set(qc) == {r.id for r in records}
    for record in records:
        figures = qc[record.id]
        assert set(figures) == {"censored", "fd_max", "fd_mean", "tsnr", "volumes"}
        assert figures["volumes"] == nib.load(record.files["bold"]).shape[3]
        assert figures["tsnr"] == pytest.approx(_tsnr_by_hand(record), rel=1e-4)
        fd = _fd_by_hand(record)
        assert figures["fd_mean"] == pytest.approx(fd.mean(), rel=1e-4)
        assert figures["fd_max"] == pytest.approx(fd.max(), rel=1e-4)
    # Censored: what the shards hold, against the run's length.
    import webdataset as wds

    urls = [str(out / s["name"]) for s in manifest["shards"]]
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        figures = qc[sample["__key__"]]
        kept = len(sample["volumes.npy"])
        assert figures["censored"] == pytest.approx(1 - kept / figures["volumes"], rel=1e-4)
    assert any(f["censored"] > 0 for f in qc.values())  # the threshold censors some


def test_figures_are_the_same_from_the_node_cache(tiny, tmp_path, scrubbed):
    """A rerun that takes every node from the cache loads no input, and still reports the
    same figures (they are stored with the node's outputs)."""
    _, manifest, records = scrubbed
    pytest.importorskip("jax")
    clean = ns.t.Clean(confounds={"strategy": "scrubbing", "fd_threshold": 0.3}, backend="jax")
    # Two nodes (two backends): the masked BOLD (tSNR measured where the BOLD is loaded),
    # then its cleaning (FD, censoring), the only one that makes products: a rerun loads
    # the second from the cache and would never touch the first.
    plan = ns.assemble([ns.t.Mask(), clean])
    assert len(plan.nodes) == 2 and plan.nodes[0].loads == ("bold", "mask")
    cache = NodeCache(tmp_path / "cache")
    for record in list(records)[:2]:
        first = plan.run(record, cache)
        again = plan.run(record, cache)  # every node from the cache
        assert first.qc == again.qc == manifest["qc"][record.id]


def test_temporal_snr_subsamples_large_images_evenly():
    rng = np.random.default_rng(0)
    data = 100 + rng.standard_normal((3 * MAX_VOXELS, 30)).astype(np.float32)
    exact = float(np.median(data.mean(axis=1) / data.std(axis=1)))
    assert temporal_snr(data) == pytest.approx(exact, rel=0.02)
    assert temporal_snr(np.zeros((10, 5))) is None  # nothing varies


def test_framewise_displacement_from_motion_parameters_as_fmriprep():
    """Without the column (HCP's movement), FD is Power's: rotations on a 50 mm sphere."""
    motion = pd.DataFrame(
        {"trans_x": [0, 0.1, 0.1], "trans_y": [0, 0, -0.2], "trans_z": [0, 0, 0],
         "rot_x": [0, 0.001, 0.001], "rot_y": [0, 0, 0], "rot_z": [0, 0, 0.002]}
    )  # fmt: skip
    fd = framewise_displacement({"movement": (motion, None)})
    np.testing.assert_allclose(fd, [0.1 + 0.05, 0.2 + 0.1])
    assert framewise_displacement({}) is None
