"""Tests of the surface outputs of the synthetic datasets (``surfaces=True``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from nishard.datasets import SIZES, SynthDataset, generate
from nishard.datasets import grid as gr
from nishard.datasets import surface as sf
from nishard.datasets.synth import legendre_drifts

TINY = SIZES["tiny"]
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
N_VERTICES = 10242  # fsaverage5, per hemisphere


@pytest.fixture(scope="module")
def surf(tmp_path_factory: pytest.TempPathFactory) -> SynthDataset:
    """Two subjects (a control and a patient), one run each, with surfaces."""
    root = tmp_path_factory.mktemp("surf") / "fmriprep"
    return generate(root, "tiny", seed=0, subjects=2, sessions=1, surfaces=True)


@pytest.fixture(scope="module")
def samples(surf: SynthDataset) -> list[np.ndarray]:
    """Surface BOLD of every run, both hemispheres (left first), (T, 2 * 10242)."""
    from nilearn.surface import load_surf_data

    out = []
    for left, right in zip(surf.surface_paths("L"), surf.surface_paths("R"), strict=True):
        halves = [load_surf_data(str(p)) for p in (left, right)]
        assert all(h.shape == (N_VERTICES, TINY.n_timepoints) for h in halves)
        out.append(np.concatenate(halves).T)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_surface_file_names(surf: SynthDataset) -> None:
    for rid, bold in zip(surf.run_ids, surf.bold_paths, strict=True):
        func = bold.parent
        for name in (
            f"{rid}_hemi-L_space-fsaverage5_bold.func.gii",
            f"{rid}_hemi-L_space-fsaverage5_bold.json",
            f"{rid}_hemi-R_space-fsaverage5_bold.func.gii",
            f"{rid}_hemi-R_space-fsaverage5_bold.json",
            f"{rid}_space-fsLR_den-91k_bold.dtseries.nii",
            f"{rid}_space-fsLR_den-91k_bold.json",
        ):
            assert (func / name).is_file(), name
        sidecar = json.loads((func / f"{rid}_hemi-L_space-fsaverage5_bold.json").read_text())
        assert sidecar["RepetitionTime"] == TINY.t_r
    assert surf.surface_paths("R")[0].name.endswith("_hemi-R_space-fsaverage5_bold.func.gii")
    for hemi in ("L", "R"):
        assert surf.surface_truth_path(hemi).is_file()
    with pytest.raises(ValueError, match="hemi"):
        surf.surface_paths("X")


def test_gifti_files_read_as_fmriprep_ones(surf: SynthDataset, samples: list) -> None:
    image = nib.load(surf.surface_paths("L")[0])
    assert image.meta["AnatomicalStructurePrimary"] == "CortexLeft"
    assert len(image.darrays) == TINY.n_timepoints
    first = image.darrays[0]
    assert first.intent == nib.nifti1.intent_codes["NIFTI_INTENT_TIME_SERIES"]
    assert first.data.shape == (N_VERTICES,) and first.data.dtype == np.float32
    assert nib.load(surf.surface_paths("R")[0]).meta["AnatomicalStructurePrimary"] == "CortexRight"
    assert 800 < samples[0].mean() < 1200 and samples[0].min() > 0


def test_network_signal_is_recovered_on_the_surface(surf: SynthDataset, samples: list) -> None:
    from nilearn.surface import load_surf_data

    truth = np.concatenate([load_surf_data(str(surf.surface_truth_path(h))) for h in "LR"])
    assert truth.shape == (2 * N_VERTICES, len(TINY.networks))
    names = [d.meta["Name"] for d in nib.load(surf.surface_truth_path("L")).darrays]
    assert names == list(TINY.network_names)
    for i, rid in enumerate(surf.run_ids):
        timecourses = pd.read_csv(surf.timecourses_path(rid), sep="\t")
        physio = pd.read_csv(surf.truth_dir / "timecourses" / f"{rid}_physio.tsv", sep="\t")
        motion = pd.read_csv(surf.confounds_paths[i], sep="\t")[MOTION]
        n_time = len(timecourses)
        design = np.column_stack(
            [timecourses, physio, motion, legendre_drifts(n_time, 2), np.ones(n_time)]
        )
        beta = np.linalg.lstsq(design, samples[i].astype(np.float64), rcond=None)[0]
        for k, name in enumerate(TINY.network_names):
            r = np.corrcoef(beta[k], truth[:, k])[0, 1]
            assert r > 0.9, f"{rid} {name}: vertex map correlation {r:.3f}"


def test_cifti_has_grayordinate_structure_and_the_same_data(
    surf: SynthDataset, samples: list
) -> None:
    image = nib.load(surf.cifti_paths[0])
    series, models = image.header.get_axis(0), image.header.get_axis(1)
    assert isinstance(series, nib.cifti2.SeriesAxis) and isinstance(
        models, nib.cifti2.BrainModelAxis
    )
    assert series.size == TINY.n_timepoints and series.step == TINY.t_r and series.unit == "SECOND"
    assert image.nifti_header.get_intent()[0] == "ConnDenseSeries"
    structures = [name for name, _, _ in models.iter_structures()]
    expected = [f"CIFTI_STRUCTURE_{s}" for s in ("CORTEX_LEFT", "CORTEX_RIGHT")]
    expected += [f"CIFTI_STRUCTURE_{name}" for name, _, _ in sf.SUBCORTICAL]
    assert structures == expected
    assert models.nvertices == {
        "CIFTI_STRUCTURE_CORTEX_LEFT": N_VERTICES,
        "CIFTI_STRUCTURE_CORTEX_RIGHT": N_VERTICES,
    }
    grid = gr.load_grid(TINY.resolution_mm)
    np.testing.assert_array_equal(models.affine, grid.affine)
    assert tuple(models.volume_shape) == grid.shape
    data = np.asarray(image.dataobj)
    assert data.shape == (TINY.n_timepoints, models.size) and data.dtype == np.float32
    np.testing.assert_array_equal(data[:, : 2 * N_VERTICES], samples[0])
    # The volume part is the BOLD at the listed voxels.
    volume = np.asarray(nib.load(surf.bold_paths[0]).dataobj)
    i, j, k = models.voxel[models.volume_mask].T
    np.testing.assert_array_equal(data[:, models.volume_mask], volume[i, j, k].T)
    sidecar_path = surf.cifti_paths[0].with_name(f"{surf.run_ids[0]}_space-fsLR_den-91k_bold.json")
    sidecar = json.loads(sidecar_path.read_text())
    assert sidecar["RepetitionTime"] == TINY.t_r and str(models.size) in sidecar["Density"]


def test_surfaces_leave_the_volumes_unchanged_and_are_deterministic(
    surf: SynthDataset, synth: SynthDataset, tmp_path: Path
) -> None:
    # The first run of the fMRIPrep tiny dataset (no surfaces) has the same volume files.
    assert _sha(surf.bold_paths[0]) == _sha(synth.bold_paths[0])
    assert _sha(surf.confounds_paths[0]) == _sha(synth.confounds_paths[0])
    again = generate(tmp_path / "again", "tiny", seed=0, subjects=1, sessions=1, surfaces=True)
    func = again.bold_paths[0].parent
    files = sorted(func.iterdir())
    assert len(files) == 12
    for path in files:
        assert _sha(path) == _sha(surf.bold_paths[0].parent / path.name), path.name
    for hemi in ("L", "R"):
        assert _sha(again.surface_truth_path(hemi)) == _sha(surf.surface_truth_path(hemi))


def test_hcp_surfaces_are_cifti_raw_and_clean(tmp_path: Path) -> None:
    ds = generate(
        tmp_path / "hcp", "tiny", seed=0, subjects=1, sessions=1, layout="hcp", surfaces=True
    )
    raw_path, clean_path = ds.cifti_paths[0], ds.clean_cifti_paths[0]
    assert raw_path.name == "rfMRI_REST1_LR_Atlas_MSMAll.dtseries.nii"
    assert clean_path.name == "rfMRI_REST1_LR_Atlas_MSMAll_hp2000_clean.dtseries.nii"
    images = [nib.load(p) for p in (raw_path, clean_path)]
    raw, clean = (np.asarray(image.dataobj).astype(np.float64) for image in images)
    assert raw.shape == clean.shape and raw.shape[0] == TINY.n_timepoints
    models = images[0].header.get_axis(1)
    assert models.nvertices["CIFTI_STRUCTURE_CORTEX_LEFT"] == N_VERTICES
    i, j, k = models.voxel[models.volume_mask].T
    for data, volume_path in ((raw, ds.bold_paths[0]), (clean, ds.clean_paths[0])):
        volume = np.asarray(nib.load(volume_path).dataobj)
        np.testing.assert_array_equal(data[:, models.volume_mask], volume[i, j, k].T)
    rid = ds.run_ids[0]
    physio = pd.read_csv(ds.truth_dir / "timecourses" / f"{rid}_physio.tsv", sep="\t")
    regressors = np.column_stack([np.loadtxt(ds.movement_paths[0])[:, :6], physio])
    removed = raw - clean
    beta = np.linalg.lstsq(regressors, removed, rcond=None)[0]
    assert np.abs(removed - regressors @ beta).max() < 2e-3
    assert np.sqrt(np.mean(removed**2)) > 1.0
    assert not list(ds.bold_paths[0].parent.glob("*.func.gii"))


def test_the_fmriprep_schema_locates_every_surface_and_cifti_file(surf: SynthDataset) -> None:
    import nishard as ns

    records = ns.locate(
        surf.root,
        schema=ns.schemas.fmriprep(res=f"{surf.config.resolution_mm:g}"),
        stage=["bold", "mask", "confounds", "surface", "cifti"],
    )
    assert len(records) == len(surf.run_ids) and not records.dropped.size
    assert not records.unparsed
    assert sorted(records.frame["surface_L"]) == sorted(map(str, surf.surface_paths("L")))
    assert sorted(records.frame["cifti"]) == sorted(map(str, surf.cifti_paths))
    assert records.frame["t_r"].eq(surf.config.t_r).all()
