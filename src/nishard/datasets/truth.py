"""The ``truth/`` folder: what made the dataset (maps, time courses, couplings, the effect),
its generator and its README."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._version import __version__
from . import hcp
from . import networks as nw
from . import surface as sf
from .config import GENERATOR
from .layouts import surface_truth_name
from .simulation import DIAGNOSES, PHYSIO_NAMES, Context, Run, RunModel, Subject
from .text import readme
from .writers import write_json, write_nifti, write_table


def write_truth(truth: Path, context: Context, subjects: Sequence[Subject]) -> None:
    """Every dataset-level file of ``truth/``: generator, subjects, effect, README, maps."""
    config, grid, maps = context.config, context.grid, context.maps
    truth.mkdir(parents=True, exist_ok=True)
    write_json(
        truth / "generator.json",
        {
            "GeneratedBy": [{"Name": GENERATOR, "Version": __version__}],
            "layout": context.layout,
            "seed": context.seed,
            "surfaces": context.surface is not None,
        },
    )
    write_table(
        truth / "subjects.tsv",
        pd.DataFrame(
            {
                "participant_id": [s.label for s in subjects],
                "diagnosis": [s.diagnosis for s in subjects],
                "coupling": [s.coupling for s in subjects],
            }
        ),
    )
    write_json(
        truth / "effect.json",
        {
            "coupled_networks": list(config.coupled_networks),
            "measure": "Pearson correlation between the two networks' true time courses; every "
            "run of a subject has exactly the subject's coupling",
            "coupling_mean": {
                "control": config.coupling_control,
                "patient": config.coupling_patient,
            },
            "coupling_jitter_sd": config.coupling_jitter,
            "coupling_observed_mean": {
                d: round(float(np.mean([s.coupling for s in subjects if s.diagnosis == d])), 6)
                for d in DIAGNOSES
                if any(s.diagnosis == d for s in subjects)
            },
            "seed": context.seed,
        },
    )
    (truth / "README.md").write_text(
        readme(config, context.layout, context.surface), encoding="utf-8"
    )
    write_nifti(truth / "networks.nii.gz", grid.to_volume(maps), grid.affine)
    peaks = nw.map_peaks(maps, grid.coords)
    write_table(
        truth / "networks.tsv",
        pd.DataFrame(
            {
                "index": range(len(config.networks)),
                "name": [spec.name for spec in config.networks],
                "description": [spec.description for spec in config.networks],
                "peak_x": peaks[:, 0],
                "peak_y": peaks[:, 1],
                "peak_z": peaks[:, 2],
                "nodes": [
                    "; ".join(" ".join(f"{c:g}" for c in node) for node in spec.centres)
                    for spec in config.networks
                ],
            }
        ),
    )
    if context.surface is not None:
        surface = context.surface
        for hemi in sf.HEMISPHERES:
            sf.write_maps_gifti(
                truth / surface_truth_name(hemi),
                surface.maps[:, surface.surface.hemisphere(hemi)],
                list(config.network_names),
                hemi,
            )


def write_run_truth(
    run: Run, model: RunModel, context: Context, files: dict[str, str]
) -> dict[str, object]:
    """Write a run's true time courses; return its row of ``truth/runs.tsv``.

    ``files`` are the run's BOLD files relative to the dataset root, as the row names them
    (``bold``; ``clean`` in the HCP layout).
    """
    config = context.config
    truth = run.root / "truth" / "timecourses"
    truth.mkdir(parents=True, exist_ok=True)
    names = list(config.network_names)
    write_table(
        truth / f"{run.run_id}_timecourses.tsv", pd.DataFrame(model.timecourses, columns=names)
    )
    write_table(
        truth / f"{run.run_id}_physio.tsv", pd.DataFrame(model.physio, columns=list(PHYSIO_NAMES))
    )
    pair = [names.index(n) for n in config.coupled_networks]
    realized = np.corrcoef(model.timecourses[:, pair].T)[0, 1]
    if context.layout == "hcp":
        session, run_label = run.name.split("_")[1], hcp.DIRECTIONS[run.run - 1]
    else:
        session, run_label = (f"ses-{run.session:02d}" if run.session else "n/a"), run.run
    return {
        "run_id": run.run_id,
        "participant_id": run.subject.label,
        "session": session,
        "run": run_label,
        **files,
        "coupling": round(float(realized), 6),
        "spike_frames": ";".join(str(int(f)) for f in model.spikes) or "n/a",
    }
