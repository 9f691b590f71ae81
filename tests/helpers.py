"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from nishard.datasets import SIZES

TINY_RES = f"{SIZES['tiny'].resolution_mm:g}"


def bold_files(root: Path) -> list[Path]:
    return sorted(root.glob("sub-*/**/func/*_desc-preproc_bold.nii.gz"))


def write_spec(folder: Path, data: Path, **changes) -> Path:
    """A pipeline spec file in ``folder`` reading ``data``; ``changes`` replace sections."""
    import yaml

    spec = {
        "input": {
            "path": str(data),
            "schema": {"name": "fmriprep", "res": TINY_RES},
            "variables": ["age", "sex", "diagnosis", "site"],
        },
        "transforms": [{"mask": {}}, {"standardize": {"method": "zscore_sample"}}],
        "output": {"path": "shards", "shards": {"max_samples": 3}},
        "execution": {"executor": "serial"},
    }
    spec.update(changes)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
