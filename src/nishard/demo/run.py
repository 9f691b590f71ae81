"""The main job: synthetic dataset -> shards -> read back -> train -> learn networks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..datasets import SIZES, generate
from ..errors import NishardError
from ..pipeline import build
from ..spec import load_spec

#: CanICA of the demo: the synthetic dataset's 7 networks among 10 maps, in a budget a
#: third of the voxel data it streams (48 runs x 120 frames x 29,398 voxels: 677 MB).
N_COMPONENTS = 10
LEARN_BUDGET = "200MiB"

CLEAN = {"confounds": "simple", "low_pass": 0.1, "high_pass": 0.01, "standardize": "zscore_sample"}


def demo_spec(resolution: str, jobs: int) -> dict:
    """The spec the demo runs and writes as ``spec.yaml``; its paths are relative to that file."""
    return {
        "input": {
            "path": "data",
            "schema": {"name": "fmriprep", "space": "MNI152NLin2009cAsym", "res": resolution},
            "stage": ["bold", "mask", "confounds"],
            "variables": {"table": "participants", "columns": ["age", "sex", "diagnosis", "site"]},
            "filters": [{"name": "complete", "variables": False}],
        },
        "transforms": [
            # Two products of each run: its network time series (then their connectivity)
            # and its voxels. The synthetic dataset's own network maps stand in for a
            # published probabilistic atlas (DiFuMo, MSDL), which cannot be downloaded here.
            {
                "maps": {
                    "atlas": "data/truth/networks.nii.gz",
                    "mask": True,
                    "output": "timeseries",
                    "regions_key": None,
                }
            },
            {"mask": {"key": "bold"}},
            {"clean": CLEAN},
            {"clean": {**CLEAN, "key": "timeseries"}},
            {
                "connectivity": {
                    "key": "timeseries",
                    "kind": "correlation",
                    "vectorize": True,
                    "discard_diagonal": True,
                    "keep_timeseries": False,
                }
            },
        ],
        "output": {
            "path": "shards",
            "products": ["bold", "connectivity"],
            "formats": [{"name": "webdataset"}, {"name": "tfrecord"}],
            "shards": {"max_bytes": "128MB"},
            # Whole subjects per split, diagnosis balanced across train, val and test.
            "split": {
                "name": "stratified",
                "by": ["diagnosis"],
                "group": "subject",
                "fractions": {"train": 0.7, "val": 0.15, "test": 0.15},
                "seed": 0,
            },
        },
        "execution": {"executor": "local", "jobs": jobs},
    }


def read_back(folder: Path, manifest: dict) -> dict:
    """Stream every sample with the ``webdataset`` library and check what came back."""
    import webdataset as wds

    urls = [str(folder / s["name"]) for s in manifest["shards"] if s["format"] == "webdataset"]
    count, shapes, worst = 0, set(), 0.0
    split_of = {str(folder / s["name"]): s["split"] for s in manifest["shards"]}
    subjects: dict[str, set] = {}
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        bold = sample["bold.npy"]
        meta = sample["json"]
        shapes.add(bold.shape)
        # z-scored over time: every voxel has mean 0 and sd 1 (ddof=1)
        worst = max(worst, float(np.abs(bold.mean(axis=0)).max()),
                    float(np.abs(bold.std(axis=0, ddof=1) - 1).max()))  # fmt: skip
        subjects.setdefault(split_of[sample["__url__"]], set()).add(meta.get("subject"))
        if not meta.get("subject") or "diagnosis" not in meta:
            raise NishardError(f"sample {sample['__key__']}: metadata lacks subject/diagnosis")
        count += 1
    return {
        "samples": count,
        "shapes": sorted(shapes),
        "max_deviation_from_zscore": worst,
        "subjects": subjects,
    }


def run_demo(out: str | Path = "nishard-demo", size: str = "demo", seed: int = 0,
             jobs: int = 2) -> dict:  # fmt: skip
    """Generate the synthetic dataset, build its shards, read them back, say what was made.

    Returns
    -------
    dict
        Paths and figures of the run (also printed).
    """
    import yaml

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    stamp = out / "data.stamp.json"
    # The preset itself, not only its name: a changed preset regenerates the data.
    wanted = {"size": size, "seed": seed, "config": repr(SIZES[size])}
    started = time.perf_counter()
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        print(f"[1/5] synthetic dataset already in {data} (size={size}, seed={seed})")
    else:
        print(f"[1/5] generating the {size!r} synthetic fMRIPrep dataset in {data} ...")
        generate(data, size=size, seed=seed)
        stamp.write_text(json.dumps(wanted))
    t_synth = time.perf_counter() - started

    resolution = f"{SIZES[size].resolution_mm:g}"
    spec_path = out / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(demo_spec(resolution, jobs), sort_keys=False))
    print(f"[2/5] building shards from {spec_path} ...")
    started = time.perf_counter()
    pipeline = load_spec(spec_path)
    manifest = build(pipeline)
    t_build = time.perf_counter() - started

    print("[3/5] reading the shards back with the webdataset library ...")
    check = read_back(pipeline.output, manifest)
    counts = manifest["records"]
    total_bytes = sum(s["bytes"] for s in manifest["shards"])
    print()
    print(f"dataset   {data}  ({counts['located']} runs, ground truth in {data / 'truth'})")
    print(f"spec      {spec_path}  (repeat with: nishard build {spec_path})")
    print(f"shards    {pipeline.output}  {len(manifest['shards'])} shards, "
          f"{total_bytes / 1e6:.1f} MB, {counts['written']} samples written, "
          f"{counts['quarantined']} quarantined")  # fmt: skip
    print(f"manifest  {pipeline.output / 'manifest.json'}")
    print(f"read back {check['samples']} samples, bold shapes {check['shapes']}, "
          f"max |mean|, |sd-1| over voxels {check['max_deviation_from_zscore']:.2e}")  # fmt: skip
    sizes = {name: len(subs) for name, subs in sorted(check["subjects"].items())}
    shared = set.intersection(*check["subjects"].values()) if len(sizes) > 1 else set()
    if shared:
        raise NishardError(f"subjects {sorted(shared)} are in more than one split")
    diagnosis = manifest["splits"]["variables"].get("diagnosis", {}).get("counts", {})
    print(f"splits    subjects per split {sizes}, none in two; diagnosis per split {diagnosis}")
    print("formats   WebDataset tar and TFRecord shards of every sample")

    print("\n[4/5] training a linear classifier of diagnosis on the connectivity shards ...")
    from .classifier import train_classifier

    started = time.perf_counter()
    trained = train_classifier(pipeline.output, key="connectivity", label="diagnosis")
    t_train = time.perf_counter() - started
    print(f"classify  diagnosis from {trained['features']} connectivity features "
          f"(PyTorch, ns.stream...torch(), {trained['epochs']} epochs, {trained['n_train']} "
          f"training runs): test accuracy {trained['test_accuracy']:.2f} on "
          f"{trained['n_test']} runs, chance {trained['chance']:.2f}")  # fmt: skip

    print(f"\n[5/5] learning the networks from the voxel shards (CanICA, {LEARN_BUDGET}) ...")
    from ..learn import CanICA, canica_report
    from ..units import format_bytes

    started = time.perf_counter()
    ica = CanICA(
        n_components=N_COMPONENTS, key="bold", memory_budget=LEARN_BUDGET, n_jobs=jobs, verbose=1
    ).fit(pipeline.output)  # fmt: skip
    learned = canica_report(ica, out / "canica", truth=data / "truth" / "networks.nii.gz")
    t_learn = time.perf_counter() - started
    fit = learned["results"]
    pairs = fit["truth_match"]["pairs"]
    found = sum(p["correlation"] >= 0.9 for p in pairs)
    print(f"canica    {fit['n_components']} maps from {fit['samples']} runs "
          f"({format_bytes(fit['bytes_streamed'])} streamed in a budget of {LEARN_BUDGET}; "
          f"peak memory {format_bytes(fit['memory']['added'])}, measured) in "
          f"{fit['fit_time_s']:.1f} s")  # fmt: skip
    print(f"truth     {found} of {len(pairs)} true networks matched by a map with |r| >= 0.9 "
          f"(worst {fit['truth_match']['worst']:.2f})")  # fmt: skip
    print(f"maps      {learned['components']}")
    print(f"report    {learned['report']}")
    print(f"time      synth {t_synth:.1f} s, build {t_build:.1f} s, train {t_train:.1f} s, "
          f"learn {t_learn:.1f} s")  # fmt: skip
    return {"out": str(out), "manifest": manifest, "check": check, "classifier": trained,
            "canica": fit}  # fmt: skip
