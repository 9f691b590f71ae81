"""The text that describes a synthetic dataset: ``truth/README.md`` (the generative model,
the layout, the surfaces, the files) and the content of ``dataset_description.json`` and
``participants.json``."""

from __future__ import annotations

from .._version import __version__
from . import hcp
from .config import CIFTI_FMRIPREP, CIFTI_HCP, GENERATOR, SPACE, SynthConfig
from .grid import CSF, GM, WM
from .simulation import (
    EDGE_LENGTH_MM,
    MOTION_REFERENCE_MM,
    PHYSIO_NAMES,
    PHYSIO_SCALES,
    PHYSIO_WEIGHT,
    SITES,
    TISSUE_INTENSITY,
    SurfaceContext,
)


def dataset_description(seed: int) -> dict[str, object]:
    """``dataset_description.json`` of the fMRIPrep layout: a derivative this package made."""
    return {
        "BIDSVersion": "1.8.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": GENERATOR,
                "Version": __version__,
                "Description": "Synthetic fMRIPrep-style derivatives with known ground truth "
                f"(seed {seed}); see truth/README.md.",
            }
        ],
        "Name": "nishard synthetic resting-state dataset",
    }


def participants_sidecar(config: SynthConfig) -> dict[str, object]:
    """``participants.json``: the columns of ``participants.tsv``, their levels and units."""
    return {
        "participant_id": {"Description": "Unique participant identifier"},
        "age": {"Description": "Age of the participant at the first scan", "Units": "year"},
        "sex": {
            "Description": "Sex of the participant",
            "Levels": {"F": "female", "M": "male"},
        },
        "diagnosis": {
            "Description": "Diagnostic group",
            "Levels": {
                "control": "healthy control",
                "patient": "patient (stronger "
                f"{config.coupled_networks[0]}-{config.coupled_networks[1]} coupling)",
            },
        },
        "site": {
            "Description": "Acquisition site",
            "Levels": {s: f"site {s[-1]}" for s in SITES},
        },
    }


def _layout_readme(config: SynthConfig, layout: str, surface: SurfaceContext | None) -> str:
    c = config
    if layout == "fmriprep":
        text = f"""## Layout: fMRIPrep

BIDS derivatives as fMRIPrep 23/24 writes them:
`sub-<label>/[ses-<label>/]func/<run_id>_space-{SPACE}_res-{c.resolution_mm}_desc-preproc_bold.nii.gz`
(+ `.json` with RepetitionTime), `..._desc-brain_mask.nii.gz`,
`<run_id>_desc-confounds_timeseries.tsv` (+ `.json`); `participants.tsv` and
`dataset_description.json` at the root. The motion parameters m_j are the confounds'
trans_x .. rot_z (mm, radians).
"""
    else:
        name = hcp.run_name(c.task, 1, 1)
        text = f"""## Layout: HCP

The HCP S1200 minimally preprocessed layout, for the same runs, time courses and truth as the
fMRIPrep layout with the same seed (sessions 1-2 are REST1/REST2, runs 1-2 are LR/RL):

- `<subject>/MNINonLinear/Results/{name}/{name}.nii.gz`: the BOLD Y (TR in pixdim[4]).
- `..._hp2000_clean.nii.gz`: the "ICA-FIX cleaned" data, Y without the motion and
  physiological parts: B(v) * [1 + a_net sum_k M_k s_k + a_drift sum_p C_p L_p + sd_noise e]
  (same noise). Y minus it is exactly B(v) * [sum_j W_j m_j / {MOTION_REFERENCE_MM} mm +
  sum_q P_q r_q] up to float32 rounding. HCP's 2000 s high-pass is not emulated: the drifts
  stay.
- `Movement_Regressors.txt`: 12 columns, no header, one row per frame, as HCP's FLIRT-based
  motion correction writes them (`%10.6f ` each): trans x, y, z (mm), rot x, y, z (DEGREES,
  the truth's radians times 180/pi), then their backward differences (0 on the first row).
- `<subject>/MNINonLinear/brainmask_fs.{c.resolution_mm}.nii.gz`: the brain mask (float32 0/1).
- `unrestricted_behavioral.csv`: Subject (six-digit labels drawn from the seed), Gender (M/F),
  Age in HCP's bands (22-25, 26-30, 31-35; the synthetic ages span 18-70, so 18-21 and
  further five-year bands 36-40, ... are added); `diagnosis` and `site` are this dataset's
  own columns (not HCP's), carrying the group effect.
- Real HCP grids are 91x109x91 at 2 mm (FSL's MNI152); this one is nilearn's
  {SPACE} grid at {c.resolution_mm} mm, as in the fMRIPrep layout.
"""
    if surface is None:
        return text
    counts = dict(surface.grayordinates.structures)
    n_sub = sum(n for s, n in counts.items() if not s.startswith("CORTEX"))
    if layout == "fmriprep":
        files = (
            "- `<run_id>_hemi-L_space-fsaverage5_bold.func.gii` and `hemi-R` (+ `.json`): one\n"
            "  float32 NIFTI_INTENT_TIME_SERIES data array per frame, as FreeSurfer and fMRIPrep\n"
            "  write them; `nilearn.surface.load_surf_data` reads (10242, T).\n"
            f"- `<run_id>_{CIFTI_FMRIPREP}` (+ `.json`): CIFTI-2 dense time series."
        )
    else:
        files = (
            f"- `{hcp.run_name(c.task, 1, 1)}_{CIFTI_HCP}.dtseries.nii` and "
            f"`..._{CIFTI_HCP}_hp2000_clean.dtseries.nii`:\n"
            "  CIFTI-2 dense time series of the raw and cleaned data."
        )
    return (
        text
        + f"""
## Surfaces

The same model evaluated at the {surface.surface.n_vertices} vertices of nilearn's packaged
fsaverage5 mesh (midpoint of the white and pial surfaces, coordinates taken as MNI mm; fsaverage
is MNI305, a few mm away): the network maps as functions of position (scaled by the volume's
peak, so they may slightly exceed 1), the subject's and run's smooth fields at the vertices,
grey-matter tissue factors, the motion edge factor of the nearest voxel, the same time courses;
only the white noise is drawn anew (`SeedSequence([seed, subject, session, run],
spawn_key=(1,))`).

{files}

The CIFTI files have the structure of HCP grayordinates but not their size: CORTEX_LEFT and
CORTEX_RIGHT are the fsaverage5 vertices (all 10242 each, no medial-wall mask; fsLR 32k is not
packaged), followed by {n_sub} voxels of the {c.resolution_mm} mm grid in the 19 subcortical
structures (approximate MNI centroids and radii, not an atlas; see
`nishard.datasets.surface.SUBCORTICAL`): {surface.grayordinates.size} grayordinates, not 91,282.
The surface part holds the vertex samples (the data of the GIfTI files in the fMRIPrep layout),
the volume part the BOLD of the same run (raw or cleaned) at those voxels.

- `truth/networks_hemi-L_space-fsaverage5.func.gii`, `hemi-R`: M_k at the vertices, one named
  data array per network (`load_surf_data` reads (10242, K)).
"""
    )


def readme(config: SynthConfig, layout: str, surface: SurfaceContext | None) -> str:
    """``truth/README.md``: the generative model, the layout, the surfaces and the files."""
    c = config
    names = ", ".join(f"{k}: {name}" for k, name in enumerate(c.network_names))
    motion_source = (
        "the six motion parameters of the confounds file (trans_x/y/z in mm, rot_x/y/z\n"
        "  in radians"
        if layout == "fmriprep"
        else "the six motion parameters (translations in mm, rotations in radians; degrees\n"
        "  in Movement_Regressors.txt"
    )
    regressors = (
        "motion parameters" if layout == "fmriprep" else "Movement_Regressors.txt columns 1-6"
    )
    return f"""# Ground truth of this synthetic dataset

Generated by nishard {__version__} (`nishard.datasets.synth.generate`, layout `{layout}`).

## Model

Inside the brain mask (0 outside), for voxel v and frame t:

    Y(v,t) = B(v) * [1 + a_net * sum_k M_k(v) s_k(t)
                        + sum_j W_j(v) m_j(t) / {MOTION_REFERENCE_MM} mm
                        + a_drift * sum_p C_p(v) L_p(t)
                        + sum_q P_q(v) r_q(t)
                        + sd_noise * e(v,t)]

- B(v): baseline, {c.baseline:g} times a tissue factor (GM 1, WM {TISSUE_INTENSITY[WM]},
  CSF {TISSUE_INTENSITY[CSF]}) times (1 + 0.08 * a smooth random field); one per subject.
- M_k: network maps (`networks.nii.gz`, volume k; peak 1): union 1 - prod(1 - g) of
  Gaussian nodes g (sigma {c.network_sigma_mm:g} mm) at the MNI coordinates of
  `networks.tsv`, set to 0 below 0.01. Networks: {names}.
- s_k: band-limited ({c.band_hz[0]:g}-{c.band_hz[1]:g} Hz, FFT), zero-mean, unit-variance time
  courses (`timecourses/<run_id>_timecourses.tsv`), drawn per run. The pair
  {c.coupled_networks[0]} / {c.coupled_networks[1]} has a sample correlation of exactly the
  subject's coupling in every run (`subjects.tsv`, `runs.tsv`): controls
  {c.coupling_control:g}, patients {c.coupling_patient:g}, plus N(0, {c.coupling_jitter:g})
  per subject (`effect.json`). All other pairs have a sample correlation of exactly 0.
- m_j: {motion_source} times 50 mm), a smooth random walk plus about {c.spikes_per_minute:g}
  spike(s) per minute (one displaced frame, listed in `runs.tsv`, FD > 0.5 mm there and just
  after). W_j: smooth random fields (per subject) times exp(-(depth - voxel size) /
  {EDGE_LENGTH_MM:g} mm): strongest at the brain's edge, where {MOTION_REFERENCE_MM} mm of
  motion changes the signal by about {c.motion_amplitude:.1%}.
- L_p: Legendre polynomials of degree 1..{c.drift_order} on the run (time mapped to [-1, 1]);
  C_p: a global N(0, 1) coefficient plus 0.5 times a smooth random field, per run.
- r_q: {len(PHYSIO_NAMES)} slow physiological sources (respiration volume, heart rate,
  vasomotion: band-limited {c.band_hz[0]:g}-{c.band_hz[1]:g} Hz, unit variance;
  `timecourses/<run_id>_physio.tsv`), drawn per run. P_q: {c.physio_amplitude:g} times
  {PHYSIO_SCALES} (source q) times a tissue weight (GM {PHYSIO_WEIGHT[GM]}, WM
  {PHYSIO_WEIGHT[WM]}, CSF {PHYSIO_WEIGHT[CSF]}) times (0.3 + a smooth random field); per
  subject. They make the white matter and CSF signals low-dimensional, so that aCompCor
  retains a few components, as with real data.
- e: white Gaussian noise, N(0, 1), per voxel and frame.

Amplitudes (fractions of B): a_net = {c.network_amplitude:g}, motion {c.motion_amplitude:g},
a_drift = {c.drift_amplitude:g}, physiological {c.physio_amplitude:g}, sd_noise =
{c.noise_sd:g}. Everything is float32.

## Grid and runs

{c.n_subjects} subjects, {c.n_sessions or "no"} sessions, {c.n_runs} run(s) per
session, {c.n_timepoints} frames at TR {c.t_r:g} s, {SPACE} at {c.resolution_mm} mm
(nilearn's packaged MNI152 brain mask). White matter and CSF (for the confounds) come from
nilearn's MNI152 tissue masks.

{_layout_readme(config, layout, surface)}
## Files

- `networks.nii.gz`, `networks.tsv`: the maps M_k, their names, peaks and nodes (MNI mm).
- `subjects.tsv`: participant_id, diagnosis, coupling (the subject's true correlation).
- `runs.tsv`: per run, its BOLD file (HCP: also the cleaned one), session and run (HCP:
  REST1/REST2 and LR/RL), realized coupling and the frames of the motion spikes.
- `timecourses/<run_id>_timecourses.tsv`: s_k of the run, one named column per network.
- `timecourses/<run_id>_physio.tsv`: r_q of the run.
- `effect.json`: the coupled pair and the coupling per group.
- `generator.json`: the generator, layout, seed and whether surfaces were written.

## Using the truth

- Regressing a run's masked BOLD on [s_k, r_q, {regressors}, Legendre drifts,
  intercept] returns beta maps proportional to B(v) * M_k(v) (spatial correlation with M_k
  above 0.9 for every network and run of the `tiny` preset).
- Extracting network time courses (e.g. spatial regression on `networks.nii.gz` after
  confound removal) and correlating the coupled pair separates the groups: patients higher.
- The motion spikes are the frames a scrubbing strategy (FD > 0.5 mm or std_dvars > 1.5)
  should remove.

Seeding: `default_rng([seed, subject])` for subject-level draws (demographics, coupling,
baseline and spatial weights), `[seed, subject, session, run]` for run-level ones (time courses,
motion, drift, noise), with 1-based numbers (session 0 without sessions); HCP subject labels
from `default_rng([seed])`; the maps are fixed. Adding subjects or runs changes nothing already
generated.
"""
