"""Names and text formats of the HCP S1200 minimally preprocessed release.

One subject, one run::

    <subject>/MNINonLinear/Results/rfMRI_REST1_LR/rfMRI_REST1_LR.nii.gz
    <subject>/MNINonLinear/Results/rfMRI_REST1_LR/rfMRI_REST1_LR_hp2000_clean.nii.gz
    <subject>/MNINonLinear/Results/rfMRI_REST1_LR/Movement_Regressors.txt
    <subject>/MNINonLinear/brainmask_fs.2.nii.gz

Subjects are six-digit numbers; resting runs are ``rfMRI_REST{1,2}_{LR,RL}`` (two days, two
phase-encoding directions each), task runs ``tfMRI_<TASK>_{LR,RL}``; demographics come as a
CSV (``unrestricted_*.csv``: Subject, Gender, Age in bands, ...).
"""

from __future__ import annotations

import math

import numpy as np

#: Phase-encoding directions, the two runs of a session in HCP order.
DIRECTIONS = ("LR", "RL")
MAX_SESSIONS = 2  # REST1 and REST2: the two days of resting-state scans
SUBJECT_ID_RANGE = (100000, 1000000)  # six digits, as 100307 ... 996782
MOVEMENT_FILE = "Movement_Regressors.txt"
BEHAVIORAL_FILE = "unrestricted_behavioral.csv"


def check_config(n_sessions: int, n_runs: int, task: str) -> None:
    """Refuse configurations the HCP layout cannot name.

    Parameters
    ----------
    n_sessions : int
        0 or 1 (one day) or 2 (REST1 and REST2); task runs have one session.
    n_runs : int
        1 (LR) or 2 (LR and RL).
    task : str
    """
    max_sessions = MAX_SESSIONS if task == "rest" else 1
    if n_sessions > max_sessions or n_runs > len(DIRECTIONS):
        raise ValueError(
            f"the hcp layout names at most {max_sessions} session(s) and {len(DIRECTIONS)} runs "
            f"per session for task {task!r} (rfMRI_REST1/2 x LR/RL); got "
            f"{n_sessions} sessions and {n_runs} runs"
        )


def subject_ids(seed: int, n_subjects: int) -> list[str]:
    """Distinct six-digit subject labels, drawn from ``default_rng([seed])``.

    The draws are sequential and repeats are skipped, so the first ``n`` labels do not
    depend on how many more are asked for.

    Parameters
    ----------
    seed : int
    n_subjects : int

    Returns
    -------
    list of str
    """
    rng = np.random.default_rng([seed])
    ids: list[str] = []
    while len(ids) < n_subjects:
        label = str(int(rng.integers(*SUBJECT_ID_RANGE)))
        if label not in ids:
            ids.append(label)
    return ids


def run_name(task: str, session: int, run: int) -> str:
    """HCP name of a run: ``rfMRI_REST<session>_<LR|RL>`` or ``tfMRI_<TASK>_<LR|RL>``.

    Parameters
    ----------
    task : str
    session : int
        1-based; 0 (no session level) is the first day.
    run : int
        1-based: 1 is LR, 2 is RL.

    Returns
    -------
    str
    """
    direction = DIRECTIONS[run - 1]
    if task == "rest":
        return f"rfMRI_REST{max(session, 1)}_{direction}"
    return f"tfMRI_{task.upper()}_{direction}"


def age_band(age: float) -> str:
    """The HCP age band of an age in years: ``22-25``, ``26-30``, ``31-35``, ...

    HCP's own bands are 22-25, 26-30, 31-35 and 36+; the synthetic ages span 18-70, so
    the bands go on in five-year steps (36-40, 41-45, ...) and start with 18-21.

    Parameters
    ----------
    age : float

    Returns
    -------
    str
    """
    years = math.floor(age)
    if years < 18:
        return "<18"
    if years <= 21:
        return "18-21"
    if years <= 25:
        return "22-25"
    low = 26 + 5 * ((years - 26) // 5)
    return f"{low}-{low + 4}"


def movement_regressors(motion: np.ndarray) -> str:
    """The text of ``Movement_Regressors.txt`` for motion parameters.

    As HCP's FLIRT-based motion correction writes it: per frame, translations x, y, z (mm)
    and rotations x, y, z (degrees), then their backward differences (0 for the first frame)
    computed from the printed values; every value as ``%10.6f`` followed by a space.

    Parameters
    ----------
    motion : numpy.ndarray
        Shape (T, 6): translations (mm) then rotations (radians), fMRIPrep's order and units.

    Returns
    -------
    str
    """
    params = np.column_stack([motion[:, :3], np.degrees(motion[:, 3:])])
    printed = np.array([[float(f"{v:.6f}") for v in row] for row in params])
    derivative = np.vstack([np.zeros((1, 6)), np.diff(printed, axis=0)])
    table = np.column_stack([printed, derivative])
    return "".join("".join(f"{v:10.6f} " for v in row) + "\n" for row in table)
