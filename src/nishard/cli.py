"""The ``nishard`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import NishardError, SpecError

#: The exit status of ``nishard build --fail-on-quarantine`` when records were quarantined.
QUARANTINED = 3


def _synth(args: argparse.Namespace) -> None:
    from .datasets import generate

    dataset = generate(
        args.out, size=args.size, seed=args.seed, subjects=args.subjects,
        sessions=args.sessions, runs=args.runs, timepoints=args.timepoints,
        layout=args.layout, surfaces=args.surfaces,
    )  # fmt: skip
    print(
        f"wrote {len(dataset.run_ids)} runs to {dataset.root}, ground truth in {dataset.truth_dir}"
    )


def _build(args: argparse.Namespace) -> int | None:
    from .pipeline import build
    from .spec import executor_from, load_spec

    if args.shard_task is not None:
        _shard_task(args)
        return None
    if args.spec is None:
        raise SpecError("nishard build needs a spec (only --shard-task runs without one)")
    pipeline = load_spec(args.spec)
    executor = None
    if args.worker and args.executor not in (None, "pydra"):
        raise SpecError("--worker is an option of --executor pydra")
    if args.executor or args.jobs or args.worker:
        name = "pydra" if args.worker else args.executor or "local"
        options = {"worker": args.worker} if args.worker else {}
        executor = executor_from(name, args.jobs, **options)
    pipeline = pipeline.with_overrides(
        output=args.output,
        executor=executor,
        memory_budget=args.memory_budget,
        cache=args.cache_dir,
    )
    manifest = build(pipeline, resume=not args.restart)
    counts = manifest["records"]
    print(
        f"wrote {counts['written']} samples in {len(manifest['shards'])} shards to "
        f"{pipeline.output}; quarantined {counts['quarantined']}, dropped {counts['dropped']}"
    )
    if args.fail_on_quarantine and counts["quarantined"]:
        print(f"nishard: {counts['quarantined']} records quarantined (--fail-on-quarantine); "
              f"their reasons are in the manifest's quarantine", file=sys.stderr)  # fmt: skip
        return QUARANTINED
    return None


def _shard_task(args: argparse.Namespace) -> None:
    from .builder.work import run_task
    from .spec import load_spec

    if args.output is None and args.spec is None:
        raise SpecError("--shard-task needs the build's spec or its --output folder")
    if args.executor or args.worker or args.restart:
        raise SpecError("--shard-task runs one task of the saved build: no --executor, "
                        "--worker or --restart")  # fmt: skip
    out = args.output or load_spec(args.spec).output
    if "://" in str(out):
        raise SpecError(f"{out}: shard tasks write to a folder every node sees")
    partial = run_task(Path(out), args.shard_task, jobs=args.jobs or 1)
    print(f"shard task {args.shard_task}: {partial.written} samples in "
          f"{len(partial.shards)} shards, {len(partial.quarantine)} quarantined")  # fmt: skip


def _merge(args: argparse.Namespace) -> None:
    from .builder.work import merge_tasks

    manifest = merge_tasks(Path(args.out))
    counts = manifest["records"]
    print(
        f"merged: {counts['written']} samples in {len(manifest['shards'])} shards in "
        f"{args.out}; quarantined {counts['quarantined']}, dropped {counts['dropped']}"
    )


def _index(args: argparse.Namespace) -> None:
    from .records import SCHEMAS, Participants, locate

    schema_cls = SCHEMAS[args.schema]
    options = (("space", args.space), ("res", args.res), ("task", args.task),
               ("metadata", args.metadata and args.metadata.split(",")))  # fmt: skip
    given = {k: v for k, v in options if v}
    refused = sorted(set(given) - set(schema_cls.__dataclass_fields__))
    if refused:
        raise SpecError(f"--{', --'.join(refused)} not for --schema {args.schema}")
    if args.schema == "regex":
        if not args.pattern or any("=" not in item for item in args.pattern):
            raise SpecError("--schema regex needs --pattern COLUMN=REGEX (one per file column)")
        given["patterns"] = dict(item.split("=", 1) for item in args.pattern)
    try:
        schema = schema_cls(**given)
    except ValueError as err:
        raise SpecError(f"--schema {args.schema}: {err}") from err
    stage = args.stage.split(",") if args.stage else None
    if args.participants:
        variables = Participants(path=str(Path(args.participants).absolute()))
    else:  # the dataset's own participants.tsv, when it has one
        try:
            Participants().find(Path(args.root))
            variables = Participants()
        except SpecError:
            variables = None
    records = locate(args.root, schema=schema, stage=stage, variables=variables, level=args.level)
    used = records.spec["stage"]
    default = "" if stage else f" ({args.schema} default; --stage to change)"
    print(f"stage: {', '.join(used)}{default}")
    print(f"filters: {', '.join(f['name'] for f in records.spec['filters'])} ({_COMPLETE})")
    print(records.summary())
    records.to_parquet(args.output)
    print(f"wrote {args.output}")
    if len(records.dropped) and not len(records):
        raise SpecError(_all_dropped(records, schema, used, args.output))


#: What the filter ``nishard index`` applies keeps, for its summary and --help.
_COMPLETE = "a record needs every staged file and a repetition time"


def _all_dropped(records, schema, stage: list[str], output: str) -> str:
    """The error of an index whose runs were all dropped: the reasons counted, one a line,
    and the stage that would keep the runs when what they lack is a staged kind."""
    groups = records.dropped_by_reason()
    lines = [f"all {len(records.dropped)} runs found were dropped:"]
    lines += [f"  {len(ids)} x {reason}" for reason, ids in groups.items()]
    parts = {part for reason in groups for part in reason.split("; ")}
    lacking = [
        kind
        for kind in stage
        if any(part.startswith(f"no {c} file") for c in schema.kinds[kind] for part in parts)
    ]
    kept = [kind for kind in stage if kind not in lacking]
    if lacking and kept:
        lines.append(f"to index them without {', '.join(lacking)}: --stage {','.join(kept)}")
    lines.append(f"the table, with each run's reason, is in {output}")
    return "\n".join(lines)


def _plan(args: argparse.Namespace) -> None:
    from .pipeline import locate_records, plan_for
    from .spec import load_spec

    pipeline = load_spec(args.spec).with_overrides(memory_budget=args.memory_budget)
    plan = plan_for(pipeline, locate_records(pipeline))
    print(plan.explain())
    if args.draw:
        plan.draw(args.draw)
        print(f"drawn to {args.draw}")


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(args.out, size=args.size, seed=args.seed, jobs=args.jobs)


def _verify(args: argparse.Namespace) -> None:
    from .archives.verify import verify

    report = verify(_folder(args), progress=not args.no_progress)
    print(report.to_text())
    if not report.ok:
        raise NishardError(f"{len(report.problems)} problems in {args.shards}")


def _inspect(args: argparse.Namespace) -> None:
    import json

    from .archives.inspect import inspect, summarize
    from .archives.manifest import read_manifest

    if args.json:  # the manifest read as inspect reads it, for scripts
        try:
            manifest = read_manifest(_folder(args))
        except (OSError, ValueError) as err:
            raise NishardError(f"no readable manifest in {args.shards}: {err}") from err
        print(json.dumps(summarize(manifest), indent=2))
    else:
        print(inspect(_folder(args)))


def _report(args: argparse.Namespace) -> None:
    from .report import report

    try:
        path = report(_folder(args), args.output)
    except (OSError, ValueError) as err:
        raise NishardError(f"no report of {args.shards}: {err}") from err
    print(path)


def _folder(args: argparse.Namespace):
    """The shard folder of ``args.shards``: a path, or a URL with its store's options."""
    from .archives.storage import storage_for

    options = {"endpoint_url": args.endpoint_url, "profile": args.profile}
    options = {k: v for k, v in options.items() if v}
    return storage_for(args.shards, options) if options else args.shards


def _learn(args: argparse.Namespace) -> None:
    from .learn.report import METHODS, learn_report

    options = {}
    if args.method == "canica":
        options = {"n_init": args.n_init, "threshold": _threshold(args.threshold)}
    elif args.alpha is not None:
        options = {"alpha": args.alpha}
    estimator = METHODS[args.method](
        n_components=args.n_components, key=args.key, split=args.split, mask=args.mask,
        memory=None if args.cache_dir is None else Path(args.cache_dir),
        memory_budget=args.memory_budget, n_jobs=args.jobs, random_state=args.seed,
        verbose=0 if args.quiet else 1, **options,
    ).fit(args.shards)  # fmt: skip
    # The report reads the fitted estimator: nothing is fitted twice.
    outcome = learn_report(estimator, args.output, truth=args.truth, plots=not args.no_plots)
    figures = outcome["results"]
    from .units import format_bytes

    print(
        f"{args.method}: {figures['n_components']} components of {figures['key']!r} from "
        f"{figures['samples']} samples ({format_bytes(figures['bytes_streamed'])} streamed) in "
        f"{figures['fit_time_s']:.1f} s, peak memory {format_bytes(figures['memory']['added'])} "
        "added to the process"
    )
    if figures["truth_match"]:
        print(f"ground truth: worst matched |correlation| {figures['truth_match']['worst']:.3f}")
    print(f"components {outcome['components']}")
    print(f"report     {outcome['report']}")


def _cache(args: argparse.Namespace) -> None:
    from .units import format_bytes
    from .workflow.cache import NodeCache

    folder = Path(args.cache)
    if folder.is_file():  # a spec: its execution.cache
        from .spec import load_spec

        pipeline = load_spec(folder)
        if pipeline.cache is None:
            raise SpecError(f"{folder} sets no execution.cache")
        folder = pipeline.cache
    if not folder.is_dir():
        raise NishardError(f"no node cache at {folder}")
    cache = NodeCache(folder)
    if args.action == "info":
        info = cache.info()
        print(f"{info.folder}: {info.entries} node outputs, {format_bytes(info.bytes)}")
    else:
        info = cache.clear()
        left = "" if not folder.exists() else " (the folder holds other files: kept)"
        print(f"removed {info.entries} node outputs, {format_bytes(info.bytes)}, "
              f"from {info.folder}{left}")  # fmt: skip


def _threshold(text: str) -> float | str | None:
    if text in ("auto", "none", "None"):
        return None if text.lower() == "none" else "auto"
    try:
        return float(text)
    except ValueError as err:
        raise SpecError(f"--threshold: auto, none or a number, got {text!r}") from err


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose refusal of a value names the closest choice."""

    def error(self, message: str):  # type: ignore[override]
        import re

        from .registry import did_you_mean

        refused = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if refused:
            choices = [c.strip().strip("'") for c in refused.group(2).split(",")]
            message += did_you_mean(refused.group(1), choices)
        super().error(message)


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from ._version import __version__
    from .records import SCHEMAS
    from .workflow.executors import EXECUTORS

    top = _Parser(
        prog="nishard",
        description=__doc__,
        epilog=f"exit status: 0 done; 1 an error (one line naming the file or record); 2 a "
        f"spec or option error; {QUARANTINED} records quarantined (build "
        "--fail-on-quarantine)",
    )
    top.add_argument("--version", action="version", version=f"nishard {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic fMRIPrep dataset with ground truth")
    p.add_argument("out", help="the folder to write the dataset to")
    p.add_argument(
        "--size",
        choices=["tiny", "demo", "large"],
        default="tiny",
        help="a preset of subjects, runs, grid and time points (default tiny)",
    )
    p.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")
    p.add_argument("--subjects", type=int, help="number of subjects (overrides the preset)")
    p.add_argument("--sessions", type=int, help="sessions per subject (0: no ses- level)")
    p.add_argument("--runs", type=int, help="runs per session")
    p.add_argument("--timepoints", type=int, help="time points per run (overrides the preset)")
    p.add_argument(
        "--layout",
        choices=["fmriprep", "hcp"],
        default="fmriprep",
        help="fMRIPrep derivatives or the HCP S1200 layout (default fmriprep)",
    )
    p.add_argument("--surfaces", action="store_true", help="also GIfTI and CIFTI files")
    p.set_defaults(func=_synth)

    p = sub.add_parser("build", help="run a pipeline spec (YAML) and write shards")
    p.add_argument("spec", nargs="?", help="the pipeline spec (with --shard-task: optional)")
    p.add_argument("--output", help="write here instead of the spec's output.path")
    p.add_argument(
        "--executor",
        choices=sorted(EXECUTORS),
        help="records on serial, local or pydra; or each shard group a task of its own on "
        "local processes (tasks) or as a SLURM array (slurm-array)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        help="workers of the local or pydra executor; tasks at once of tasks and "
        "slurm-array; with --shard-task, the task's record workers",
    )
    p.add_argument(
        "--shard-task",
        type=int,
        metavar="K",
        help="run shard task K of a build started with a tasks or slurm-array executor (a "
        "SLURM array element runs --shard-task $SLURM_ARRAY_TASK_ID); reads the saved "
        "record table and plan, never the dataset",
    )
    p.add_argument(
        "--worker",
        choices=["cf", "slurm", "debug"],
        help="Pydra's worker (implies --executor pydra); see the README on clusters",
    )
    p.add_argument("--memory-budget", help="memory budget per node, e.g. 4GiB (greedy fusion)")
    p.add_argument("--cache-dir", help="reuse node outputs stored here (content-addressed)")
    p.add_argument(
        "--restart",
        action="store_true",
        help="start over instead of resuming an interrupted build of the same spec",
    )
    p.add_argument(
        "--fail-on-quarantine",
        action="store_true",
        help=f"exit with status {QUARANTINED} when any record was quarantined (the shards "
        "and manifest are still written)",
    )
    p.set_defaults(func=_build)

    p = sub.add_parser(
        "merge",
        help="merge the partial manifests of a build's shard tasks into manifest.json",
        description="Merge the partial manifests of a build's shard tasks into "
        "manifest.json (what the slurm-array executor's merge job runs). Reads no sample. "
        "Fails, naming them, when some tasks have not finished.",
    )
    p.add_argument("out", help="the build's output folder")
    p.set_defaults(func=_merge)

    p = sub.add_parser("cache", help="size of a node cache, or clear it")
    p.add_argument("action", choices=["info", "clear"], help="report the size, or empty it")
    p.add_argument("cache", help="the cache folder (--cache-dir), or a spec naming one")
    p.set_defaults(func=_cache)

    defaults = "; ".join(
        f"{name}: {','.join(cls.default_stage)}"
        for name, cls in SCHEMAS.items()
        if isinstance(cls.default_stage, tuple)  # a regex's are its patterns' columns
    )
    p = sub.add_parser(
        "index",
        help="locate a dataset's records into a Parquet record table",
        description="Locate a dataset's records into a Parquet record table. Filters: "
        f"complete ({_COMPLETE}); the summary counts the records it drops by reason. When "
        "runs are found but every one is dropped, the table is still written and the "
        "command exits with status 2.",
    )
    p.add_argument("root", help="the dataset's root folder")
    p.add_argument(
        "--schema",
        choices=list(SCHEMAS),
        default="fmriprep",
        help="the layout to read (default fmriprep)",
    )
    p.add_argument(
        "--space", help="the space of the files to stage (fMRIPrep: e.g. MNI152NLin2009cAsym)"
    )
    p.add_argument("--res", help="the resolution entity of the files to stage (e.g. 2)")
    p.add_argument("--task", help="only runs of this task")
    p.add_argument(
        "--stage",
        help=f"comma-separated file kinds each record needs (default: the schema's: {defaults};"
        " regex: every --pattern column)",
    )
    p.add_argument("--participants", help="a participants table (default: the dataset's)")
    p.add_argument("--pattern", action="append", help="for --schema regex: COLUMN=REGEX")
    p.add_argument(
        "--metadata",
        metavar="FIELDS",
        help="for --schema bids: sidecar fields to add as columns, comma-separated "
        "(EchoTime,SliceTiming); an echo's EchoTime is always added",
    )
    p.add_argument(
        "--level",
        choices=["run", "session", "subject"],
        default="run",
        help="one record per run (default), session or subject",
    )
    p.add_argument(
        "-o",
        "--output",
        default="records.parquet",
        help="the record table to write (default records.parquet)",
    )
    p.set_defaults(func=_index)

    p = sub.add_parser("plan", help="print the plan a spec compiles to")
    p.add_argument("spec", help="the pipeline spec (YAML)")
    p.add_argument("--memory-budget", help="memory budget per node, e.g. 4GiB (greedy fusion)")
    p.add_argument("--draw", metavar="FILE", help="also draw the DAG to FILE (.png or .svg)")
    p.set_defaults(func=_plan)

    p = sub.add_parser("demo", help="synthetic dataset -> shards -> read back")
    p.add_argument("--out", default="nishard-demo", help="the demo's folder (default nishard-demo)")
    p.add_argument(
        "--size",
        choices=["tiny", "demo", "large"],
        default="demo",
        help="the synthetic dataset's preset (default demo)",
    )
    p.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes of the build (default 2)")
    p.set_defaults(func=_demo)

    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--endpoint-url", help="an s3:// folder's store, when not the one "
                       "AWS_ENDPOINT_URL names (e.g. http://host:8333)")  # fmt: skip
    store.add_argument("--profile", help="an s3:// folder's AWS profile (credentials)")

    p = sub.add_parser("verify", help="check shards' checksums and decode every sample",
                       parents=[store])  # fmt: skip
    p.add_argument("shards", help="the folder of shards and manifest.json, or its URL")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_verify)

    p = sub.add_parser("inspect", help="counts, keys, statistics and quarantine of shards",
                       parents=[store])  # fmt: skip
    p.add_argument("shards", help="the folder of shards and manifest.json, or its URL")
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(func=_inspect)

    p = sub.add_parser("report", help="the build report (HTML): QC, splits, quarantine, "
                       "shards, provenance", parents=[store])  # fmt: skip
    p.add_argument("shards", help="the folder of shards and manifest.json, or its URL")
    p.add_argument("-o", "--output", default="report.html",
                   help="the page to write (default report.html, here); every build also "
                   "writes it beside its manifest")  # fmt: skip
    p.set_defaults(func=_report)

    p = sub.add_parser("learn", help="resting-state networks from shards (CanICA, DictLearning)")
    p.add_argument("method", choices=["canica", "dictlearning"], help="the decomposition")
    p.add_argument("shards", nargs="+", help="shard folders (one mask for all)")
    p.add_argument("--key", default="bold", help="the product to learn from (default bold)")
    p.add_argument("--n-components", type=int, default=20, help="maps to learn (default 20)")
    p.add_argument("--memory-budget", help="memory the fit may add, e.g. 1GiB (default: no bound)")
    p.add_argument("--jobs", type=int, default=1, help="subjects reduced at once")
    p.add_argument("--split", help="only this split's samples")
    p.add_argument("--mask", help="the mask of the shards' voxels (default: from the manifest)")
    p.add_argument(
        "--cache-dir", help="keep subject reductions here for later fits (the memory= cache)"
    )
    p.add_argument("--truth", help="ground-truth maps (4D NIfTI) to match in the report")
    p.add_argument("--n-init", type=int, default=10, help="CanICA: FastICA starts")
    p.add_argument("--threshold", default="auto", help="CanICA: auto, none or a ratio")
    p.add_argument("--alpha", type=float, help="DictLearning: sparsity (default 10)")
    p.add_argument("--seed", type=int, default=0, help="the random seed (default 0)")
    p.add_argument("--no-plots", action="store_true", help="no PNGs (faster)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=_learn)
    for command in sub.choices.values():  # one --quiet for every command
        command.add_argument(
            "-q", "--quiet", action="store_true",
            help="no progress or summary lines on stderr (errors still)",
        )  # fmt: skip
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nishard`` command; returns the exit status."""
    args = parser().parse_args(argv)
    # The processes a build starts (shard tasks) inherit it.
    saved = os.environ.get("NISHARD_QUIET")
    if args.quiet:
        os.environ["NISHARD_QUIET"] = "1"
    try:
        return args.func(args) or 0
    except SpecError as err:
        print(f"nishard: error: {err}", file=sys.stderr)
        return 2
    except NishardError as err:
        print(f"nishard: error: {err}", file=sys.stderr)
        return 1
    finally:
        if saved is None:
            os.environ.pop("NISHARD_QUIET", None)
        else:
            os.environ["NISHARD_QUIET"] = saved


if __name__ == "__main__":
    sys.exit(main())
