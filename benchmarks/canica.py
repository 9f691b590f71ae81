"""CanICA out of core: nishard from shards against nilearn on the same cleaned data.

The data: a synthetic fMRIPrep dataset with known networks (``nishard synth``'s generator:
``--subjects`` runs of ``--timepoints`` volumes on the 2 mm MNI grid, 235,375 brain
voxels, networks of 10 mm nodes), cleaned once by nishard (the run's mask, 24 motion
confounds, 0.01-0.1 Hz Butterworth, z-score) into WebDataset shards. Made once in
``--cache`` and reused.

- nilearn (the anchor), given its best chance: the cleaned runs as uncompressed NIfTI
  (memory-mapped, no gzip), ``CanICA(mask=<mask>, smoothing_fwhm=None, standardize=False,
  detrend=False, n_components, n_init, random_state=0, n_jobs)``: no smoothing and no
  re-cleaning of clean data.
- nishard: ``CanICA(n_components, n_init, random_state=0, memory_budget=--memory-budget,
  n_jobs).fit(<shards>)``, streaming the shards (no explained-variance pass, as nilearn
  computes none).

Each side runs once, in a fresh process that imports its libraries, fits, and reports the
fit's wall time and the process's peak resident memory (the kernel's high-water mark,
``VmHWM``, over the process's whole life, imports included; with ``--jobs`` > 1 nilearn
works in loky worker processes, whose peaks are added). The maps of each are matched to
the true networks (Hungarian assignment on |spatial correlation|) and to each other.

    python benchmarks/canica.py [--subjects 8] [--timepoints 200] [--components 20]
                                [--n-init 10] [--memory-budget 350MiB] [--jobs 1] [--cache DIR]

Prints the figures, then one line of JSON: ``time_ratio`` and ``memory_ratio`` (nilearn's
over nishard's), ``match_nishard`` and ``match_nilearn`` (the smallest matched
correlation with the true networks), ``peak_rss_mb`` (nishard's) and ``budget_mb``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

NISHARD = """
import json, sys, time, warnings
import numpy as np
from nishard.learn import CanICA
args = json.loads(sys.argv[1])
warnings.simplefilter("ignore")
started = time.perf_counter()
ica = CanICA(n_components=args["components"], n_init=args["n_init"], random_state=0,
             memory_budget=args["memory_budget"], n_jobs=args["jobs"], score=False)
ica.fit(args["shards"])
seconds = time.perf_counter() - started
np.save(args["out"], ica.components_)
print(json.dumps({"seconds": seconds, "timings": ica.timings_,
                  "fit_added": ica.memory_usage_["added"],
                  "plan": ica.memory_plan_.to_dict() if ica.memory_plan_ else None,
                  "exact": ica.group_exact_, "streamed": ica.bytes_streamed_}))
"""

NILEARN = """
import json, sys, time, warnings
import numpy as np
from nilearn.decomposition import CanICA
args = json.loads(sys.argv[1])
warnings.simplefilter("ignore")
started = time.perf_counter()
ica = CanICA(mask=args["mask"], n_components=args["components"], n_init=args["n_init"],
             smoothing_fwhm=None, standardize=False, detrend=False, random_state=0,
             n_jobs=args["jobs"]).fit(args["images"])
seconds = time.perf_counter() - started
np.save(args["out"], ica.components_)
print(json.dumps({"seconds": seconds}))
"""

#: A child's peak: its own, and its loky workers' (children still alive are summed).
PEAK_FUNCTION = """
def _peak():
    import psutil
    def hwm(pid):
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return 0
        return 0
    me = psutil.Process()
    return hwm(me.pid) + sum(hwm(c.pid) for c in me.children(recursive=True))
"""
#: Ends a child: prints that peak.
PEAK = PEAK_FUNCTION + 'print(json.dumps({"peak": _peak()}))\n'


def dataset(cache: Path, subjects: int, timepoints: int):
    """The synthetic dataset, its cleaned shards and their uncompressed NIfTI copies."""
    from threadpoolctl import threadpool_limits

    import nishard as ns
    from nishard import stream
    from nishard.datasets import SIZES, generate
    from nishard.learn import Shards
    from nishard.learn.spaces import resolve_space

    stamp = cache / "stamp.json"
    wanted = {"subjects": subjects, "timepoints": timepoints, "version": 1}
    data, shards, images = cache / "data", cache / "shards", cache / "nifti"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == wanted):
        config = dataclasses.replace(
            SIZES["large"], n_subjects=subjects, n_timepoints=timepoints, network_sigma_mm=10.0
        )
        # One BLAS thread: the generator's small products crawl when threads wait for a
        # core that another process holds.
        with threadpool_limits(limits=1):
            print(f"generating {subjects} runs of {timepoints} volumes (2 mm) in {data} ...")
            made = generate(data, size=config, seed=0)
            print("cleaning them into shards ...")
            records = ns.locate(data, schema=ns.schemas.fmriprep(res="2"))
            plan = ns.assemble(
                [
                    ns.t.Mask(source=str(made.mask_paths[0])),
                    ns.t.Clean(
                        confounds="24P", low_pass=0.1, high_pass=0.01, standardize="zscore_sample"
                    ),
                ]
            )
            ns.write(records, plan, shards, shards=ns.shards.by_size("1GB"), progress=False)
        print("writing the cleaned runs as uncompressed NIfTI for nilearn ...")
        source = Shards(shards)
        mask = resolve_space(source.folders, source.manifests, "bold", source.n_features).mask
        images.mkdir(exist_ok=True)
        mask.mask_image().to_filename(cache / "mask.nii")
        for sample in stream.open(shards, "*").keys("bold").arrays():
            image = mask.to_image(sample["bold"])
            image.to_filename(images / f"{sample['__key__']}.nii")
            del image, sample
        stamp.write_text(json.dumps(wanted))
    return data, shards, cache / "mask.nii", sorted(str(p) for p in images.glob("*.nii"))


def run(code: str, args: dict) -> dict:
    """Run one side in a fresh process; its JSON figures and its peak resident memory."""
    script = textwrap.dedent(code) + textwrap.dedent(PEAK)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)], capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"the child failed:\n{done.stderr[-3000:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    figures = {k: v for line in lines for k, v in line.items()}
    figures["process_s"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--timepoints", type=int, default=200)
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--n-init", type=int, default=10)
    parser.add_argument("--memory-budget", default="350MiB", help="nishard's budget")
    parser.add_argument("--jobs", type=int, default=1, help="n_jobs of both")
    parser.add_argument("--cache", default="/tmp/nishard-bench-canica")
    options = parser.parse_args()

    from nishard.learn import match_components
    from nishard.learn.masks import load_volume_mask
    from nishard.learn.matching import image_maps
    from nishard.units import parse_bytes

    cache = Path(options.cache)
    cache.mkdir(parents=True, exist_ok=True)
    data, shards, mask_path, images = dataset(cache, options.subjects, options.timepoints)
    common = {"components": options.components, "n_init": options.n_init, "jobs": options.jobs}
    print(f"nishard: CanICA from {shards} (budget {options.memory_budget}) ...")
    ours = run(
        NISHARD,
        {
            **common,
            "shards": str(shards),
            "memory_budget": options.memory_budget,
            "out": str(cache / "nishard.npy"),
        },
    )
    print(f"nilearn: CanICA on {len(images)} uncompressed NIfTI files ...")
    theirs = run(
        NILEARN,
        {**common, "images": images, "mask": str(mask_path), "out": str(cache / "nilearn.npy")},
    )

    mask = load_volume_mask(mask_path)
    truth = image_maps(data / "truth" / "networks.nii.gz", mask)
    our_maps, their_maps = np.load(cache / "nishard.npy"), np.load(cache / "nilearn.npy")
    match_ours, match_theirs = (
        match_components(our_maps, truth),
        match_components(their_maps, truth),
    )
    between = match_components(their_maps, our_maps)
    partner = dict(zip(between.reference, between.correlation, strict=True))
    agreement = min(partner[c] for c in match_ours.component)
    streamed = ours["streamed"]
    mb = 2**20
    print()
    print(
        f"data      {len(images)} runs x {options.timepoints} volumes x {mask.n_voxels} voxels "
        f"({streamed / 2**30:.2f} GiB of float32 streamed), {options.components} components, "
        f"{options.n_init} starts, n_jobs {options.jobs}"
    )
    print(
        f"nishard   {ours['seconds']:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in ours["timings"].items())
        + f"), peak RSS {ours['peak'] / mb:.0f} MB "
        f"(the fit added {ours['fit_added'] / mb:.0f} MB; budget {options.memory_budget})"
    )
    print(f"nilearn   {theirs['seconds']:.1f} s, peak RSS {theirs['peak'] / mb:.0f} MB")
    print(
        f"truth     worst matched |r|: nishard {match_ours.worst:.3f}, nilearn "
        f"{match_theirs.worst:.3f}; nishard vs nilearn on the network maps {agreement:.3f}"
    )
    print(
        f"ratios    time {theirs['seconds'] / ours['seconds']:.2f}x, memory "
        f"{theirs['peak'] / ours['peak']:.2f}x (nilearn's over nishard's)"
    )
    print(
        json.dumps(
            {
                "time_ratio": round(theirs["seconds"] / ours["seconds"], 3),
                "memory_ratio": round(theirs["peak"] / ours["peak"], 3),
                "match_nishard": round(match_ours.worst, 4),
                "match_nilearn": round(match_theirs.worst, 4),
                "match_between": round(float(agreement), 4),
                "peak_rss_mb": round(ours["peak"] / mb, 1),
                "budget_mb": round(parse_bytes(options.memory_budget) / mb, 1),
                "nishard_s": round(ours["seconds"], 2),
                "nilearn_s": round(theirs["seconds"], 2),
                "nilearn_peak_rss_mb": round(theirs["peak"] / mb, 1),
                "fit_added_mb": round(ours["fit_added"] / mb, 1),
                "streamed_gib": round(streamed / 2**30, 3),
                "runs": len(images),
                "timepoints": options.timepoints,
                "voxels": mask.n_voxels,
                "components": options.components,
                "n_init": options.n_init,
                "jobs": options.jobs,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
