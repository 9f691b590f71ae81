"""Tests of the synthetic fMRIPrep dataset generator (``tiny`` preset)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from nishard.datasets import SIZES, SynthConfig, SynthDataset, generate
from nishard.datasets import confounds as cf
from nishard.datasets import grid as gr
from nishard.datasets import networks as nw
from nishard.datasets.synth import legendre_drifts

TINY = SIZES["tiny"]
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
SPACE_RES = "space-MNI152NLin2009cAsym_res-8"


@pytest.fixture(scope="session")
def runs(synth: SynthDataset) -> pd.DataFrame:
    return pd.read_csv(synth.truth_dir / "runs.tsv", sep="\t", dtype={"spike_frames": str})


@pytest.fixture(scope="session")
def masked(synth: SynthDataset) -> dict[str, np.ndarray]:
    """Masked BOLD of every run, (T, V) float64."""
    mask = np.asarray(nib.load(synth.mask_paths[0]).dataobj) > 0
    return {
        rid: np.asarray(nib.load(path).dataobj)[mask].T.astype(np.float64)
        for rid, path in zip(synth.run_ids, synth.bold_paths, strict=True)
    }


@pytest.fixture(scope="session")
def true_maps(synth: SynthDataset) -> np.ndarray:
    mask = np.asarray(nib.load(synth.mask_paths[0]).dataobj) > 0
    return np.asarray(nib.load(synth.truth_dir / "networks.nii.gz").dataobj)[mask].T


def _confounds(synth: SynthDataset, i: int) -> pd.DataFrame:
    return pd.read_csv(synth.confounds_paths[i], sep="\t")


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------------------------
# Layout and files
# --------------------------------------------------------------------------------------------


def test_layout_follows_fmriprep_names(synth: SynthDataset) -> None:
    assert len(synth.run_ids) == TINY.n_subjects * TINY.n_sessions * TINY.n_runs
    assert synth.run_ids[0] == "sub-01_ses-01_task-rest_run-1"
    for rid, bold in zip(synth.run_ids, synth.bold_paths, strict=True):
        sub, ses = rid.split("_")[:2]
        func = synth.root / sub / ses / "func"
        assert bold == func / f"{rid}_{SPACE_RES}_desc-preproc_bold.nii.gz"
        for name in (
            f"{rid}_{SPACE_RES}_desc-preproc_bold.json",
            f"{rid}_{SPACE_RES}_desc-brain_mask.nii.gz",
            f"{rid}_desc-confounds_timeseries.tsv",
            f"{rid}_desc-confounds_timeseries.json",
        ):
            assert (func / name).is_file(), name
    description = json.loads((synth.root / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "nishard synth"
    assert {"Name", "BIDSVersion"} <= description.keys()
    truth = {p.name for p in synth.truth_dir.iterdir()}
    expected = {"networks.nii.gz", "networks.tsv", "subjects.tsv", "runs.tsv", "effect.json"}
    assert expected | {"README.md", "timecourses"} <= truth


def test_bold_and_mask_images(synth: SynthDataset) -> None:
    expected_affine = np.array(
        [[8, 0, 0, -98], [0, 8, 0, -134], [0, 0, 8, -72], [0, 0, 0, 1]], dtype=float
    )
    for bold_path, mask_path in zip(synth.bold_paths, synth.mask_paths, strict=True):
        bold, mask = nib.load(bold_path), nib.load(mask_path)
        assert bold.shape == (25, 30, 24, TINY.n_timepoints)
        assert bold.get_data_dtype() == np.float32
        assert mask.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(bold.affine, expected_affine)
        np.testing.assert_array_equal(mask.affine, expected_affine)
        assert bold.header.get_zooms() == (8.0, 8.0, 8.0, 2.0)
        assert bold.header.get_xyzt_units() == ("mm", "sec")
        sidecar = json.loads(bold_path.with_name(bold_path.name[:-7] + ".json").read_text())
        assert sidecar["RepetitionTime"] == 2.0 == TINY.t_r
        assert sidecar["TaskName"] == "rest"
        assert sidecar["SkullStripped"] is False
    data = np.asarray(nib.load(synth.bold_paths[0]).dataobj)
    inside = np.asarray(nib.load(synth.mask_paths[0]).dataobj) > 0
    assert inside.sum() == 3666
    assert np.all(data[~inside] == 0)
    assert data[inside].min() > 0
    assert 800 < data[inside].mean() < 1200


def test_participants_table(synth: SynthDataset) -> None:
    table = pd.read_csv(synth.participants_path, sep="\t")
    assert list(table.columns) == ["participant_id", "age", "sex", "diagnosis", "site"]
    assert list(table.participant_id) == [f"sub-{i:02d}" for i in range(1, 7)]
    assert table.age.dtype == float and table.age.between(18, 70).all()
    assert set(table.sex) <= {"M", "F"}
    assert set(table.site) <= {"siteA", "siteB", "siteC"}
    counts = table.diagnosis.value_counts()
    assert counts["control"] == 4 and counts["patient"] == 2
    sidecar = json.loads((synth.root / "participants.json").read_text())
    assert set(sidecar) == set(table.columns)


def test_demo_groups_are_balanced_but_unequal() -> None:
    from nishard.datasets.synth import diagnosis_of

    groups = [diagnosis_of(n) for n in range(1, 25)]
    assert groups.count("control") == 13 and groups.count("patient") == 11


# --------------------------------------------------------------------------------------------
# Confounds
# --------------------------------------------------------------------------------------------


def test_confounds_columns_and_na(synth: SynthDataset) -> None:
    table = _confounds(synth, 0)
    assert len(table) == TINY.n_timepoints
    required = {
        "global_signal",
        "csf",
        "white_matter",
        "csf_wm",
        "dvars",
        "std_dvars",
        "framewise_displacement",
        "rmsd",
        "a_comp_cor_00",
        "cosine00",
    }
    for base in ["global_signal", "csf", "white_matter", *MOTION]:
        required |= {base, f"{base}_derivative1", f"{base}_power2", f"{base}_derivative1_power2"}
    assert required <= set(table.columns)
    assert list(table.columns[:4]) == [
        "global_signal",
        "global_signal_derivative1",
        "global_signal_derivative1_power2",
        "global_signal_power2",
    ]
    assert not any(re.fullmatch(r"cosine_\d+", c) for c in table.columns)
    # floor(2 * 120 frames * 2 s / 128 s) cosines
    assert [c for c in table.columns if c.startswith("cosine")] == [
        "cosine00",
        "cosine01",
        "cosine02",
    ]
    first_na = {"framewise_displacement", "dvars", "std_dvars", "rmsd"} | {
        c for c in table.columns if c.endswith("_derivative1") or c.endswith("derivative1_power2")
    }
    header, first = synth.confounds_paths[0].read_text().splitlines()[:2]
    raw = dict(zip(header.split("\t"), first.split("\t"), strict=True))
    assert {c for c, v in raw.items() if v == "n/a"} == first_na
    assert not table.iloc[1:].isna().any().any()
    assert not table.iloc[0].drop(list(first_na)).isna().any()


def test_confounds_follow_their_definitions(synth: SynthDataset, masked: dict) -> None:
    table = _confounds(synth, 0)
    bold = masked[synth.run_ids[0]]
    np.testing.assert_allclose(table.global_signal, bold.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(table.global_signal_power2, table.global_signal**2, rtol=1e-12)
    np.testing.assert_allclose(
        table.white_matter_derivative1[1:], np.diff(table.white_matter), rtol=1e-9, atol=1e-9
    )
    motion = table[MOTION].to_numpy()
    fd = np.abs(np.diff(motion[:, :3], axis=0)).sum(1) + 50 * np.abs(
        np.diff(motion[:, 3:], axis=0)
    ).sum(1)
    np.testing.assert_allclose(table.framewise_displacement[1:], fd, rtol=1e-9)
    np.testing.assert_allclose(table.trans_x_derivative1_power2[1:], np.diff(motion[:, 0]) ** 2)
    # Components are orthonormal and orthogonal to the high-pass basis, as after fMRIPrep's
    # cosine pre-filter.
    comps = table.filter(regex=r"^a_comp_cor_\d\d$").to_numpy()
    np.testing.assert_allclose(comps.T @ comps, np.eye(comps.shape[1]), atol=1e-8)
    cosines = table.filter(regex=r"^cosine\d\d$").to_numpy()
    np.testing.assert_allclose(cosines.T @ comps, 0, atol=1e-8)


def test_confounds_json_matches_fmriprep(synth: SynthDataset) -> None:
    table = _confounds(synth, 0)
    meta = json.loads(synth.confounds_paths[0].with_suffix(".json").read_text())
    acomp = [c for c in table.columns if c.startswith("a_comp_cor_")]
    assert 1 <= len(acomp) <= 10
    cumulative = [meta[c]["CumulativeVarianceExplained"] for c in acomp]
    assert cumulative == sorted(cumulative)
    assert cumulative[-1] >= 0.5 and (len(acomp) == 1 or cumulative[-2] < 0.5)
    for c in acomp:
        entry = meta[c]
        assert entry["Method"] == "aCompCor" and entry["Mask"] == "combined"
        assert entry["Retained"] is True
        assert {"SingularValue", "VarianceExplained"} <= entry.keys()
    for c in (c for c in table.columns if c.startswith(("c_comp_cor", "w_comp_cor"))):
        assert meta[c]["Mask"] == ("CSF" if c.startswith("c_") else "WM")
    dropped = [k for k in meta if k.startswith("dropped_")]
    assert dropped and all(meta[k]["Retained"] is False for k in dropped)
    assert meta["global_signal"] == {"Method": "Mean"}


def test_motion_outliers_flag_fd_and_dvars(synth: SynthDataset, runs: pd.DataFrame) -> None:
    for i in range(len(synth.run_ids)):
        table = _confounds(synth, i)
        flagged = (table.framewise_displacement > 0.5) | (table.std_dvars > 1.5)
        outliers = table.filter(regex=r"^motion_outlier\d\d$")
        assert outliers.sum(axis=0).eq(1).all()
        assert sorted(np.flatnonzero(outliers.sum(axis=1))) == list(np.flatnonzero(flagged))
        spikes = [int(f) for f in runs.spike_frames[i].split(";")]
        assert set(spikes) <= set(np.flatnonzero(flagged))


# --------------------------------------------------------------------------------------------
# nilearn reads it as real fMRIPrep output
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("simple", {"csf", "white_matter", "trans_x_derivative1_power2", "cosine00"}),
        ("compcor", {"a_comp_cor_00", "rot_z_power2", "cosine02"}),
        ("scrubbing", {"csf_derivative1_power2", "white_matter_power2", "rot_x"}),
    ],
)
def test_nilearn_load_confounds_strategy(
    synth: SynthDataset, runs: pd.DataFrame, strategy: str, expected: set[str]
) -> None:
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    for i, bold in enumerate(synth.bold_paths[:4]):
        confounds, sample_mask = load_confounds_strategy(str(bold), strategy)
        assert confounds.shape[0] == TINY.n_timepoints
        assert expected <= set(confounds.columns)
        assert not confounds.isna().any().any()
        if strategy == "compcor":
            n_acomp = sum(c.startswith("a_comp_cor") for c in _confounds(synth, i).columns)
            assert sum(c.startswith("a_comp_cor") for c in confounds.columns) == n_acomp
        if strategy == "scrubbing":
            spikes = [int(f) for f in runs.spike_frames[i].split(";")]
            removed = set(range(TINY.n_timepoints)) - set(sample_mask)
            assert set(spikes) <= removed
            assert len(removed) <= 3 * len(spikes)
        else:
            assert sample_mask is None


def test_nilearn_masker_reads_the_run(synth: SynthDataset) -> None:
    from nilearn.maskers import NiftiMasker

    masker = NiftiMasker(mask_img=str(synth.mask_paths[0]), t_r=TINY.t_r, standardize=None)
    signals = masker.fit_transform(str(synth.bold_paths[0]))
    assert signals.shape == (TINY.n_timepoints, 3666)


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------


def _truth_design(synth: SynthDataset, i: int) -> np.ndarray:
    rid = synth.run_ids[i]
    timecourses = pd.read_csv(synth.timecourses_path(rid), sep="\t")
    physio = pd.read_csv(synth.truth_dir / "timecourses" / f"{rid}_physio.tsv", sep="\t")
    motion = _confounds(synth, i)[MOTION]
    n_time = len(timecourses)
    return np.column_stack(
        [timecourses, physio, motion, legendre_drifts(n_time, TINY.drift_order), np.ones(n_time)]
    )


def test_network_maps_are_recovered_from_every_run(
    synth: SynthDataset, masked: dict, true_maps: np.ndarray
) -> None:
    names = pd.read_csv(synth.truth_dir / "networks.tsv", sep="\t").name.tolist()
    assert names == list(TINY.network_names) and len(names) == true_maps.shape[0]
    for i, rid in enumerate(synth.run_ids):
        beta = np.linalg.lstsq(_truth_design(synth, i), masked[rid], rcond=None)[0]
        for k, name in enumerate(names):
            r = np.corrcoef(beta[k], true_maps[k])[0, 1]
            assert r > 0.9, f"{rid} {name}: spatial correlation {r:.3f}"


def test_true_maps_are_smooth_peaked_and_distinct(true_maps: np.ndarray) -> None:
    np.testing.assert_allclose(true_maps.max(axis=1), 1.0)
    overlap = np.corrcoef(true_maps)
    np.fill_diagonal(overlap, 0)
    assert overlap.max() < 0.3


def test_diagnosis_effect_is_in_truth_and_data(
    synth: SynthDataset, runs: pd.DataFrame, masked: dict, true_maps: np.ndarray
) -> None:
    subjects = pd.read_csv(synth.truth_dir / "subjects.tsv", sep="\t").set_index("participant_id")
    group = subjects.groupby("diagnosis").coupling.mean()
    assert group["patient"] - group["control"] > 0.3
    # Every run carries exactly its subject's coupling.
    np.testing.assert_allclose(runs.coupling, subjects.coupling.loc[runs.participant_id], atol=1e-5)
    effect = json.loads((synth.truth_dir / "effect.json").read_text())
    first, second = (TINY.network_names.index(n) for n in effect["coupled_networks"])
    estimated = []
    for i, rid in enumerate(synth.run_ids):
        n_time = masked[rid].shape[0]
        nuisance = np.column_stack(
            [_confounds(synth, i)[MOTION], legendre_drifts(n_time, 2), np.ones(n_time)]
        )
        clean = masked[rid] - nuisance @ np.linalg.lstsq(nuisance, masked[rid], rcond=None)[0]
        series = np.linalg.lstsq(true_maps.T, clean.T, rcond=None)[0]
        estimated.append(np.corrcoef(series[first], series[second])[0, 1])
    diagnosis = subjects.diagnosis.loc[runs.participant_id].to_numpy()
    table = runs.assign(estimated=estimated, diagnosis=diagnosis)
    by_group = table.groupby("diagnosis").estimated.mean()
    assert by_group["patient"] - by_group["control"] > 0.2
    assert np.corrcoef(table.estimated, table.coupling)[0, 1] > 0.8


# --------------------------------------------------------------------------------------------
# Determinism and options
# --------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_files(synth: SynthDataset, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", "tiny", seed=0)
    assert _tree(again.root) == _tree(synth.root)


def test_other_seed_changes_data_and_subjects_are_stable(
    synth: SynthDataset, tmp_path: Path
) -> None:
    other = generate(tmp_path / "other", "tiny", seed=1, subjects=1, sessions=1)
    assert _tree(other.root)[_rel(other, 0)] != _tree(synth.root)[_rel(synth, 0)]
    # Fewer subjects and sessions, same seed: the files of the remaining run are unchanged.
    fewer = generate(tmp_path / "fewer", "tiny", seed=0, subjects=1, sessions=1)
    assert fewer.run_ids == (synth.run_ids[0],)
    assert _tree(fewer.root)[_rel(fewer, 0)] == _tree(synth.root)[_rel(synth, 0)]


def _rel(ds: SynthDataset, i: int) -> str:
    return ds.bold_paths[i].relative_to(ds.root).as_posix()


def test_overrides_without_sessions(tmp_path: Path) -> None:
    ds = generate(tmp_path / "ds", "tiny", seed=3, subjects=1, sessions=0, runs=2, timepoints=40)
    assert ds.run_ids == ("sub-01_task-rest_run-1", "sub-01_task-rest_run-2")
    assert ds.bold_paths[1].parent == tmp_path / "ds" / "sub-01" / "func"
    assert nib.load(ds.bold_paths[1]).shape[-1] == 40
    runs = pd.read_csv(ds.truth_dir / "runs.tsv", sep="\t")
    assert runs.session.isna().all()


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown size"):
        generate(tmp_path, "huge")
    with pytest.raises(ValueError, match="seed"):
        generate(tmp_path, "tiny", seed=-1)
    with pytest.raises(ValueError, match="n_subjects"):
        generate(tmp_path, "tiny", subjects=0)
    with pytest.raises(ValueError, match="coupled_networks"):
        SynthConfig(1, 0, 1, 40, 8, 2.0, coupled_networks=("default_mode", "nope"))


# --------------------------------------------------------------------------------------------
# Pure building blocks
# --------------------------------------------------------------------------------------------


def test_grid_compartments() -> None:
    grid = gr.load_grid(8)
    assert grid.shape == (25, 30, 24)
    counts = np.bincount(grid.compartment, minlength=4)
    assert counts[gr.GM] > counts[gr.WM] > counts[gr.CSF] > 50
    assert grid.coords.shape == (grid.n_voxels, 3)
    with pytest.raises(ValueError):
        gr.load_grid(0)


def test_resample_nearest_subsamples_a_nested_grid() -> None:
    data = np.arange(4 * 6 * 8).reshape(4, 6, 8)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    coarse_affine, shape = gr.coarser_grid(affine, data.shape, 4)
    assert shape == (2, 3, 4)
    out = gr.resample_nearest(data, affine, coarse_affine, shape)
    np.testing.assert_array_equal(out, data[::2, ::2, ::2])


def test_band_limited_and_coupling() -> None:
    rng = np.random.default_rng(0)
    signals = nw.network_timecourses(rng, 300, 2.0, 5, (0, 3), 0.45)
    np.testing.assert_allclose(signals.std(axis=0), 1.0)
    corr = np.corrcoef(signals.T)
    assert corr[0, 3] == pytest.approx(0.45)
    off = corr.copy()
    off[0, 3] = off[3, 0] = 0
    np.testing.assert_allclose(off, np.eye(5), atol=1e-10)
    freqs = np.fft.rfftfreq(300, d=2.0)
    power = np.abs(np.fft.rfft(signals, axis=0)) ** 2
    outside = (freqs < 0.01) | (freqs > 0.1)
    assert power[outside].max() < 1e-20 * power.max()


def test_motion_and_displacement() -> None:
    params = np.zeros((4, 6))
    params[2, 0] = 0.3
    params[2, 5] = 0.01
    fd = cf.framewise_displacement(params)
    assert np.isnan(fd[0])
    np.testing.assert_allclose(fd[1:], [0.0, 0.8, 0.8])
    rms = cf.rms_displacement(params)
    assert np.isnan(rms[0]) and rms[1] == 0 and rms[2] > 0.3
    motion, spikes = cf.motion_parameters(np.random.default_rng(1), 200, 3)
    assert motion.shape == (200, 6) and len(spikes) == 3
    fd = cf.framewise_displacement(motion)
    assert set(spikes) <= set(np.flatnonzero(fd > 0.5))


def test_cosine_basis() -> None:
    basis = cf.cosine_basis(120, 2.0)
    assert basis.shape == (120, 3)
    np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(basis.sum(axis=0), 0, atol=1e-12)


def test_regenerating_replaces_an_earlier_dataset_and_refuses_other_folders(tmp_path):
    from nishard.datasets import generate as gen
    from nishard.errors import NishardError

    big = gen(tmp_path / "ds", "tiny", seed=0, subjects=3, sessions=0, runs=1, timepoints=40)
    small = gen(tmp_path / "ds", "tiny", seed=0, subjects=2, sessions=0, runs=1, timepoints=40)
    assert len(big.bold_paths) == 3
    found = sorted((tmp_path / "ds").glob("sub-*/func/*_desc-preproc_bold.nii.gz"))
    assert found == sorted(small.bold_paths)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(NishardError, match="not empty and holds no earlier synthetic dataset"):
        gen(tmp_path / "mine", "tiny")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
