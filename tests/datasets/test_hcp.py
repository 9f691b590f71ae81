"""Tests of the HCP layout of the synthetic datasets (``tiny`` preset, ``layout="hcp"``)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from nishard.datasets import SIZES, SynthDataset, generate, hcp
from nishard.datasets.synth import legendre_drifts

TINY = SIZES["tiny"]
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


@pytest.fixture(scope="module")
def hcp_ds(tmp_path_factory: pytest.TempPathFactory) -> SynthDataset:
    return generate(tmp_path_factory.mktemp("hcp") / "HCP", "tiny", seed=0, layout="hcp")


@pytest.fixture(scope="module")
def volumes(hcp_ds: SynthDataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(raw, clean) masked BOLD of every run, (T, V) float64."""
    mask = np.asarray(nib.load(hcp_ds.mask_paths[0]).dataobj) > 0
    out = {}
    for rid, raw, clean in zip(hcp_ds.run_ids, hcp_ds.bold_paths, hcp_ds.clean_paths, strict=True):
        out[rid] = tuple(
            np.asarray(nib.load(p).dataobj)[mask].T.astype(np.float64) for p in (raw, clean)
        )
    return out


@pytest.fixture(scope="module")
def true_maps(hcp_ds: SynthDataset) -> np.ndarray:
    mask = np.asarray(nib.load(hcp_ds.mask_paths[0]).dataobj) > 0
    return np.asarray(nib.load(hcp_ds.truth_dir / "networks.nii.gz").dataobj)[mask].T


def _truth(ds: SynthDataset, run_id: str, kind: str) -> np.ndarray:
    return pd.read_csv(ds.truth_dir / "timecourses" / f"{run_id}_{kind}.tsv", sep="\t").to_numpy()


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------------------------
# Layout and files
# --------------------------------------------------------------------------------------------


def test_hcp_layout_names(hcp_ds: SynthDataset) -> None:
    subjects = pd.read_csv(hcp_ds.truth_dir / "subjects.tsv", sep="\t", dtype=str)
    ids = list(subjects.participant_id)
    assert len(ids) == len(set(ids)) == TINY.n_subjects
    assert all(re.fullmatch(r"[1-9]\d{5}", i) for i in ids)
    expected_runs = [f"{i}_rfMRI_REST{s}_LR" for i in ids for s in (1, 2)]
    assert list(hcp_ds.run_ids) == expected_runs
    for rid, bold in zip(hcp_ds.run_ids, hcp_ds.bold_paths, strict=True):
        subject, name = rid.split("_", 1)
        results = hcp_ds.root / subject / "MNINonLinear" / "Results" / name
        assert bold == results / f"{name}.nii.gz"
        assert {p.name for p in results.iterdir()} == {
            f"{name}.nii.gz",
            f"{name}_hp2000_clean.nii.gz",
            "Movement_Regressors.txt",
        }
        assert (hcp_ds.root / subject / "MNINonLinear" / "brainmask_fs.8.nii.gz").is_file()
    top = {p.name for p in hcp_ds.root.iterdir()}
    assert top == {*ids, "truth", "unrestricted_behavioral.csv"}
    assert json.loads((hcp_ds.truth_dir / "generator.json").read_text())["layout"] == "hcp"
    with pytest.raises(ValueError, match="fmriprep layout only"):
        hcp_ds.confounds_paths  # noqa: B018


def test_hcp_images_carry_tr_and_mask(hcp_ds: SynthDataset) -> None:
    for path in (*hcp_ds.bold_paths[:2], *hcp_ds.clean_paths[:2]):
        image = nib.load(path)
        assert image.shape == (25, 30, 24, TINY.n_timepoints)
        assert image.get_data_dtype() == np.float32
        assert image.header["pixdim"][4] == pytest.approx(TINY.t_r)
        assert image.header.get_xyzt_units() == ("mm", "sec")
    mask = nib.load(hcp_ds.mask_paths[0])
    values = np.asarray(mask.dataobj)
    assert mask.shape == (25, 30, 24)
    assert set(np.unique(values)) == {0.0, 1.0} and values.sum() == 3666


def test_movement_regressors_follow_hcp(hcp_ds: SynthDataset, synth: SynthDataset) -> None:
    text = hcp_ds.movement_paths[0].read_text()
    lines = text.splitlines()
    assert len(lines) == TINY.n_timepoints
    assert all(re.fullmatch(r"( *-?\d+\.\d{6} ){12}", line) for line in lines)
    table = np.loadtxt(hcp_ds.movement_paths[0])
    assert table.shape == (TINY.n_timepoints, 12)
    np.testing.assert_array_equal(table[0, 6:], 0.0)
    np.testing.assert_allclose(table[1:, 6:], np.diff(table[:, :6], axis=0), atol=1.5e-6)
    # The same run in the fMRIPrep layout: same motion, rotations in radians there.
    fmriprep = pd.read_csv(synth.confounds_paths[0], sep="\t")[MOTION].to_numpy()
    np.testing.assert_allclose(table[:, :3], fmriprep[:, :3], atol=1e-6)
    np.testing.assert_allclose(table[:, 3:6], np.degrees(fmriprep[:, 3:]), atol=1e-6)
    assert np.abs(table[:, 3:6]).max() > 0.05  # degrees, not radians


def test_behavioral_csv(hcp_ds: SynthDataset, synth: SynthDataset) -> None:
    table = pd.read_csv(hcp_ds.participants_path, dtype={"Subject": str})
    assert hcp_ds.participants_path.name == "unrestricted_behavioral.csv"
    assert list(table.columns) == ["Subject", "Gender", "Age", "diagnosis", "site"]
    assert list(table.Subject) == sorted(table.Subject)
    assert table.Age.str.fullmatch(r"\d\d-\d\d").all()
    # Same subjects as the fMRIPrep layout, in subject order in truth/subjects.tsv.
    ids = pd.read_csv(hcp_ds.truth_dir / "subjects.tsv", sep="\t", dtype=str).participant_id
    participants = pd.read_csv(synth.participants_path, sep="\t")
    merged = table.set_index("Subject").loc[list(ids)]
    assert list(merged.Gender) == list(participants.sex)
    assert list(merged.Age) == [hcp.age_band(a) for a in participants.age]
    assert list(merged.diagnosis) == list(participants.diagnosis)
    assert list(merged.site) == list(participants.site)


# --------------------------------------------------------------------------------------------
# Content and ground truth
# --------------------------------------------------------------------------------------------


def test_same_truth_and_data_as_the_fmriprep_layout(
    hcp_ds: SynthDataset, synth: SynthDataset, volumes: dict
) -> None:
    for hcp_id, fmriprep_id in zip(hcp_ds.run_ids, synth.run_ids, strict=True):
        for kind in ("timecourses", "physio"):
            assert (hcp_ds.truth_dir / "timecourses" / f"{hcp_id}_{kind}.tsv").read_bytes() == (
                synth.truth_dir / "timecourses" / f"{fmriprep_id}_{kind}.tsv"
            ).read_bytes()
    mask = np.asarray(nib.load(synth.mask_paths[0]).dataobj) > 0
    fmriprep = np.asarray(nib.load(synth.bold_paths[0]).dataobj)[mask].T
    raw = volumes[hcp_ds.run_ids[0]][0]
    np.testing.assert_allclose(raw, fmriprep, rtol=2e-6, atol=1e-3)  # float32 rounding only
    truth = {
        name: pd.read_csv(ds.truth_dir / "subjects.tsv", sep="\t")
        for name, ds in (("hcp", hcp_ds), ("fmriprep", synth))
    }
    for column in ("diagnosis", "coupling"):
        assert list(truth["hcp"][column]) == list(truth["fmriprep"][column])


def test_clean_is_raw_minus_motion_and_physio(hcp_ds: SynthDataset, volumes: dict) -> None:
    for i, rid in enumerate(hcp_ds.run_ids[:3]):
        raw, clean = volumes[rid]
        removed = raw - clean
        movement = np.loadtxt(hcp_ds.movement_paths[i])[:, :6]
        regressors = np.column_stack([movement, _truth(hcp_ds, rid, "physio")])
        beta = np.linalg.lstsq(regressors, removed, rcond=None)[0]
        residual = removed - regressors @ beta
        # Exact up to float32 rounding of ~1000-valued data and 1e-6 rounding of the file.
        assert np.abs(residual).max() < 2e-3
        assert np.sqrt(np.mean(removed**2)) > 5.0


def test_network_maps_are_recovered_from_raw_and_clean(
    hcp_ds: SynthDataset, volumes: dict, true_maps: np.ndarray
) -> None:
    n_time = TINY.n_timepoints
    base = [legendre_drifts(n_time, TINY.drift_order), np.ones(n_time)]
    for i, rid in enumerate(hcp_ds.run_ids):
        raw, clean = volumes[rid]
        timecourses = _truth(hcp_ds, rid, "timecourses")
        movement = np.loadtxt(hcp_ds.movement_paths[i])[:, :6]
        full = np.column_stack([timecourses, _truth(hcp_ds, rid, "physio"), movement, *base])
        reduced = np.column_stack([timecourses, *base])
        for data, design in ((raw, full), (clean, reduced)):
            beta = np.linalg.lstsq(design, data, rcond=None)[0]
            for k in range(true_maps.shape[0]):
                r = np.corrcoef(beta[k], true_maps[k])[0, 1]
                assert r > 0.9, f"{rid} network {k}: {r:.3f}"


def test_diagnosis_effect_in_clean_data(
    hcp_ds: SynthDataset, volumes: dict, true_maps: np.ndarray
) -> None:
    runs = pd.read_csv(hcp_ds.truth_dir / "runs.tsv", sep="\t", dtype={"participant_id": str})
    assert list(runs.run_id) == list(hcp_ds.run_ids)
    assert set(runs.session) == {"REST1", "REST2"} and set(runs.run) == {"LR"}
    subjects = pd.read_csv(hcp_ds.truth_dir / "subjects.tsv", sep="\t", dtype=str)
    diagnosis = subjects.set_index("participant_id").diagnosis.loc[runs.participant_id]
    effect = json.loads((hcp_ds.truth_dir / "effect.json").read_text())
    first, second = (TINY.network_names.index(n) for n in effect["coupled_networks"])
    drifts = np.column_stack([legendre_drifts(TINY.n_timepoints, 2), np.ones(TINY.n_timepoints)])
    estimated = []
    for rid in hcp_ds.run_ids:
        clean = volumes[rid][1]
        clean = clean - drifts @ np.linalg.lstsq(drifts, clean, rcond=None)[0]
        series = np.linalg.lstsq(true_maps.T, clean.T, rcond=None)[0]
        estimated.append(np.corrcoef(series[first], series[second])[0, 1])
    by_group = pd.Series(estimated, index=diagnosis.to_numpy()).groupby(level=0).mean()
    assert by_group["patient"] - by_group["control"] > 0.2


# --------------------------------------------------------------------------------------------
# Determinism, options, building blocks
# --------------------------------------------------------------------------------------------


def test_hcp_is_deterministic_and_subjects_are_stable(hcp_ds: SynthDataset, tmp_path: Path) -> None:
    small = generate(tmp_path / "small", "tiny", seed=0, subjects=2, sessions=1, layout="hcp")
    assert small.run_ids == (hcp_ds.run_ids[0], hcp_ds.run_ids[2])
    full, part = _tree(hcp_ds.root), _tree(small.root)
    subject_files = [k for k in part if k.split("/")[0] in {r.split("_")[0] for r in small.run_ids}]
    assert len(subject_files) == 2 * 4
    for key in subject_files:
        assert part[key] == full[key], key
    other = generate(tmp_path / "other", "tiny", seed=1, subjects=1, sessions=1, layout="hcp")
    assert other.run_ids[0].split("_")[0] != small.run_ids[0].split("_")[0]


def test_hcp_refuses_what_it_cannot_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most 2 session"):
        generate(tmp_path / "a", "tiny", sessions=3, layout="hcp")
    with pytest.raises(ValueError, match="runs"):
        generate(tmp_path / "b", "tiny", runs=3, layout="hcp")
    with pytest.raises(ValueError, match="unknown layout"):
        generate(tmp_path / "c", "tiny", layout="bids")
    assert not any(tmp_path.iterdir())


def test_two_runs_per_session_and_regeneration(tmp_path: Path) -> None:
    ds = generate(
        tmp_path / "ds", "tiny", seed=2, subjects=1, sessions=0, runs=2, timepoints=40, layout="hcp"
    )
    assert [r.split("_", 1)[1] for r in ds.run_ids] == ["rfMRI_REST1_LR", "rfMRI_REST1_RL"]
    assert nib.load(ds.bold_paths[1]).shape[-1] == 40
    again = generate(tmp_path / "ds", "tiny", seed=2, subjects=1, sessions=0, runs=1, timepoints=40)
    assert again.layout == "fmriprep" and not (tmp_path / "ds" / ds.run_ids[0][:6]).exists()


def test_hcp_building_blocks() -> None:
    assert [hcp.age_band(a) for a in (18.0, 21.9, 22.0, 25.9, 26.0, 30.9, 31.2, 36.0, 69.9)] == [
        "18-21",
        "18-21",
        "22-25",
        "22-25",
        "26-30",
        "26-30",
        "31-35",
        "36-40",
        "66-70",
    ]
    ids = hcp.subject_ids(0, 30)
    assert ids[:5] == hcp.subject_ids(0, 5) and len(set(ids)) == 30
    assert hcp.run_name("rest", 0, 1) == "rfMRI_REST1_LR"
    assert hcp.run_name("rest", 2, 2) == "rfMRI_REST2_RL"
    assert hcp.run_name("wm", 1, 2) == "tfMRI_WM_RL"
    motion = np.zeros((3, 6))
    motion[1] = [0.1, -0.2, 0.3, np.radians(1.0), 0.0, -np.radians(0.5)]
    text = hcp.movement_regressors(motion)
    assert text.splitlines()[1] == (
        "  0.100000  -0.200000   0.300000   1.000000   0.000000  -0.500000 "
        "  0.100000  -0.200000   0.300000   1.000000   0.000000  -0.500000 "
    )
    np.testing.assert_allclose(np.loadtxt(text.splitlines())[2, 6:], [-0.1, 0.2, -0.3, -1, 0, 0.5])
