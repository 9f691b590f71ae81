"""What a synthetic dataset is made of: its configuration, the presets, the names it uses.

:class:`SynthConfig` holds every parameter of the generative model and of the dataset's size;
``SIZES`` the presets ``tiny``, ``demo`` and ``large``. The constants name what every layout
and the truth share: the template space, the layouts, the CIFTI file suffixes, the
``GeneratedBy`` name that marks a folder as one this package wrote.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from . import networks as nw

#: The ``GeneratedBy`` name of the datasets this package writes.
GENERATOR = "nishard synth"

SPACE = "MNI152NLin2009cAsym"
LAYOUTS = ("fmriprep", "hcp")
CIFTI_FMRIPREP = "space-fsLR_den-91k_bold.dtseries.nii"
CIFTI_HCP = "Atlas_MSMAll"


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic dataset.

    Amplitudes are fractions of the local baseline intensity ``B(v)`` (about ``baseline``):
    ``network_amplitude`` at a network's peak per unit of its time course, ``motion_amplitude``
    at the brain edge per 0.2 mm of displacement, ``drift_amplitude`` per unit of each Legendre
    polynomial, ``physio_amplitude`` per unit of the first (unit-variance) slow physiological
    source in white matter (1.5 times that in CSF, a quarter in grey matter), ``noise_sd`` the
    standard deviation of the white noise.
    """

    n_subjects: int
    n_sessions: int  # 0: no ses- level
    n_runs: int
    n_timepoints: int
    resolution_mm: int
    t_r: float
    task: str = "rest"
    baseline: float = 1000.0
    network_amplitude: float = 0.02
    motion_amplitude: float = 0.01
    drift_amplitude: float = 0.02
    noise_sd: float = 0.01
    physio_amplitude: float = 0.01
    drift_order: int = 2
    network_sigma_mm: float = 15.0
    band_hz: tuple[float, float] = nw.RESTING_BAND_HZ
    coupled_networks: tuple[str, str] = ("default_mode", "frontoparietal_left")
    coupling_control: float = 0.2
    coupling_patient: float = 0.6
    coupling_jitter: float = 0.05
    spikes_per_minute: float = 1.0
    networks: tuple[nw.NetworkSpec, ...] = field(default=nw.DEFAULT_NETWORKS, repr=False)

    def __post_init__(self) -> None:
        checks = {
            "n_subjects": self.n_subjects >= 1,
            "n_sessions": self.n_sessions >= 0,
            "n_runs": self.n_runs >= 1,
            "n_timepoints": self.n_timepoints >= 10,
            "t_r": self.t_r > 0,
            "drift_order": self.drift_order >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(f"invalid SynthConfig: {values}")
        names = [spec.name for spec in self.networks]
        missing = [name for name in self.coupled_networks if name not in names]
        if missing or self.coupled_networks[0] == self.coupled_networks[1]:
            raise ValueError(
                f"coupled_networks must be two distinct names among {names}, "
                f"got {self.coupled_networks}"
            )

    @property
    def network_names(self) -> tuple[str, ...]:
        """Names of the networks, in the order of ``truth/networks.nii.gz``."""
        return tuple(spec.name for spec in self.networks)


SIZES: dict[str, SynthConfig] = {
    # Tests: a few seconds, 12 runs of 4 minutes on an 8 mm grid (3,666 brain voxels). Not
    # shorter: 2 minutes hold only 11 frequencies of the 0.01-0.1 Hz band, too few to recover
    # every network map from a single run at these amplitudes.
    "tiny": SynthConfig(
        n_subjects=6, n_sessions=2, n_runs=1, n_timepoints=120, resolution_mm=8, t_r=2.0
    ),
    # Examples and the tutorial: 48 runs of 120 frames on the 4 mm grid (29,398 brain voxels).
    # Nodes of 10 mm: with 15 mm ones the default-mode map overlaps its neighbours so much
    # that CanICA splits it (|r| 0.4-0.7 with 10 maps, against 0.92 or more for every
    # network with 10 mm nodes). A clear group effect (coupling 0 against 0.8, measured
    # -0.06 against 0.52 after denoising; 0.2 against 0.6 measures 0.07 against 0.28, sd
    # 0.17), so that the demo's classifier, trained on 34 runs, finds it.
    "demo": SynthConfig(
        n_subjects=24,
        n_sessions=0,
        n_runs=2,
        n_timepoints=120,
        resolution_mm=4,
        t_r=2.0,
        network_sigma_mm=10.0,
        coupling_control=0.0,
        coupling_patient=0.8,
    ),
    # Benchmarks, HCP-like: 1200 frames at TR 0.72 s on the 2 mm grid (5.3 GB per run raw).
    "large": SynthConfig(
        n_subjects=8, n_sessions=0, n_runs=1, n_timepoints=1200, resolution_mm=2, t_r=0.72
    ),
}


def resolve_config(
    size: str | SynthConfig,
    subjects: int | None,
    sessions: int | None,
    runs: int | None,
    timepoints: int | None,
) -> SynthConfig:
    """A preset (or a full configuration) with the given counts overridden (None: kept)."""
    if isinstance(size, SynthConfig):
        config = size
    elif size in SIZES:
        config = SIZES[size]
    else:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)} or a SynthConfig")
    overrides = {
        "n_subjects": subjects,
        "n_sessions": sessions,
        "n_runs": runs,
        "n_timepoints": timepoints,
    }
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
