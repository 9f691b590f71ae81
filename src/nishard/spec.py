"""Pipeline specs: the YAML file that says input, transforms, output and execution.

A spec is parsed into the same primitives the Python API takes, so ``nishard build
spec.yaml`` and ``locate(...); assemble(...); write(...)`` are the same run. Every key is
checked: an unknown one stops the run with an error that names it and where it stands.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .archives import Family, Format, ShardSpec
from .builder.output import Output
from .builder.splits import Split
from .errors import SpecError
from .records import FILTERS, LEVELS, SCHEMAS, SOURCES, TABLES, Complete, Source, input_spec
from .registry import as_list as _list
from .registry import as_mapping as _mapping
from .registry import build as _build  # noqa: F401  (tests build primitives as specs do)
from .registry import known_keys as _known
from .registry import not_one_of
from .registry import required as _required
from .transforms import TRANSFORMS, Transform
from .workflow import EXECUTORS, Executor
from .workflow.fusion import ByBackend, Fusion, Greedy

_SECTIONS = {
    "input": ("path", "schema", "stage", "variables", "filters", "level", "source"),
    # The rest of an executor's options (Pydra's worker, batch, cache_dir...) are checked by
    # the executor itself.
    "execution": ("executor", "jobs", "memory_budget", "cache"),
}


@dataclass(frozen=True)
class Pipeline:
    """A parsed spec: the primitives of one build, and the spec as written.

    Attributes
    ----------
    base : Path
        The spec file's folder: relative paths in the spec are relative to it.
    root, output : Path
        The input and output folders, resolved against ``base``.
    target : Output
        The output section: formats, shard limits, split, shuffle seed and products
        (also read as ``formats``, ``shards``, ``split``, ``shuffle``, ``products``), with
        the output path as the spec writes it.
    spec : dict
        The normalized spec with paths as written; it is what the manifest records and
        what :meth:`to_yaml` writes back.
    """

    base: Path
    root: Path | str
    schema: Any
    stage: tuple[str, ...]
    variables: tuple
    level: str
    filters: tuple[Complete, ...]
    source: Source
    transforms: tuple[Transform, ...]
    output: Path
    target: Output
    executor: Executor
    spec: dict
    fusion: Fusion = dataclasses.field(default_factory=ByBackend)
    cache: Path | None = None

    @property
    def formats(self) -> tuple[Format | Family, ...]:
        return self.target.formats

    @property
    def shards(self) -> ShardSpec:
        return self.target.shards

    @property
    def split(self) -> str | Split:
        return self.target.split

    @property
    def shuffle(self) -> int | None:
        return self.target.shuffle

    @property
    def products(self) -> tuple[str, ...] | None:
        return self.target.products

    @property
    def storage_options(self) -> dict | None:
        return self.target.storage_options

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.spec, sort_keys=False)

    def with_overrides(
        self,
        output: str | Path | None = None,
        executor: Executor | None = None,
        memory_budget: str | None = None,
        cache: str | Path | None = None,
    ) -> Pipeline:
        """The same pipeline writing elsewhere, run by another executor, under another memory
        budget or with a node cache.

        ``output`` and ``cache`` are taken as the user typed them, relative to the current
        folder; the spec records them relative to the spec file, as its other paths are.
        """
        spec = {**self.spec, "execution": {**self.spec["execution"]}}
        changes: dict[str, Any] = {}
        if output is not None and "://" in str(output):  # a bucket: kept as written
            changes["output"] = str(output)
            changes["target"] = dataclasses.replace(self.target, path=str(output))
            spec["output"] = changes["target"].to_dict()
        elif output is not None:
            changes["output"] = Path(output).absolute()
            relative = os.path.relpath(changes["output"], self.base.absolute())
            changes["target"] = dataclasses.replace(self.target, path=relative)
            spec["output"] = changes["target"].to_dict()
        if executor is not None:
            changes["executor"] = executor
            extra = {k: v for k, v in spec["execution"].items() if k in ("memory_budget", "cache")}
            spec["execution"] = {**executor.to_dict(), **extra}
        if memory_budget is not None:
            changes["fusion"] = _fusion(memory_budget)
            spec["execution"]["memory_budget"] = memory_budget
        if cache is not None:
            changes["cache"] = Path(cache).absolute()
            spec["execution"]["cache"] = os.path.relpath(changes["cache"], self.base.absolute())
        return dataclasses.replace(self, spec=spec, **changes)


def load_spec(path: str | Path) -> Pipeline:
    """Read and check a YAML pipeline spec; relative paths are relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from err
    try:
        return parse_spec(raw, base=path.parent)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from err


def parse_spec(raw: Any, base: str | Path = ".") -> Pipeline:
    """Check a spec given as a dict (the YAML's content) and build its primitives."""
    base = Path(base)
    _mapping(raw, "the spec")
    _known(raw, ("input", "transforms", "output", "execution"), "the spec")
    for section in ("input", "transforms", "output"):
        if section not in raw:
            raise SpecError(f"missing section '{section}'")

    inp = _mapping(raw["input"], "input")
    _known(inp, _SECTIONS["input"], "input")
    root_text = _required(inp, "path", "input")
    schema = SCHEMAS.from_dict(inp.get("schema", "fmriprep"), where="input.schema")
    stage = tuple(_list(inp.get("stage", list(schema.default_stage)), "input.stage"))
    variables = _variables(inp.get("variables"))
    level = str(inp.get("level", "run"))
    if level not in LEVELS:
        raise SpecError(not_one_of("input.level", level, LEVELS))
    filters = tuple(
        FILTERS.from_dict(item, where=f"input.filters[{i}]")
        for i, item in enumerate(_list(inp.get("filters", ["complete"]), "input.filters"))
    )
    source = SOURCES.from_dict(inp.get("source", "local"), where="input.source")
    entries = list(enumerate(_list(raw["transforms"], "transforms")))
    # A step's files (an atlas) absolute: Pydra runs each task in a folder of its own.
    # The spec records them joined to the spec's folder as it was given, as it always has.
    transforms = tuple(_transform(item, f"transforms[{i}]", base.absolute()) for i, item in entries)
    recorded = [_transform(item, f"transforms[{i}]", base).to_dict() for i, item in entries]

    target = Output.from_dict(raw["output"])

    execution = _mapping(raw.get("execution", {}), "execution")
    if "memory" in execution:
        # Renamed: ``memory`` is a joblib cache in scikit-learn and nilearn.
        raise SpecError("execution.memory is now execution.memory_budget (a size such as 4GiB)")
    name = execution.get("executor", "serial")
    if name in EXECUTORS:
        fields = [f.name for f in dataclasses.fields(EXECUTORS[name])]
        known = _SECTIONS["execution"] + tuple(f for f in fields if f != "jobs")
        _known(execution, known, "execution")
    options = {k: v for k, v in execution.items() if k not in _SECTIONS["execution"]}
    executor = executor_from(name, execution.get("jobs"), **options)
    memory_budget = execution.get("memory_budget")
    fusion = ByBackend() if memory_budget is None else _fusion(memory_budget)
    cache = execution.get("cache")

    spec = {
        "input": input_spec(root_text, schema, stage, variables, filters, source, level),
        "transforms": recorded,
        "output": target.to_dict(),
        "execution": executor.to_dict(),
    }
    if memory_budget is not None:
        spec["execution"]["memory_budget"] = memory_budget
    if cache is not None:
        spec["execution"]["cache"] = str(cache)
    return Pipeline(
        base=base, root=_local_or_url(base, str(root_text)), schema=schema, stage=stage,
        variables=variables, level=level, filters=filters, source=source,
        transforms=transforms, output=_local_or_url(base, str(target.path)), target=target,
        executor=executor, spec=spec, fusion=fusion,
        cache=None if cache is None else base / str(cache),
    )  # fmt: skip


def _fusion(memory_budget: Any) -> Fusion:
    """Greedy fusion under a memory budget such as ``4GiB`` (checked here)."""
    try:
        return Greedy(memory_budget=memory_budget)
    except ValueError as err:
        raise SpecError(f"execution.memory_budget: {err}") from err


def _local_or_url(base: Path, root: str) -> Path | str:
    """A local root resolved against the spec's folder; a URL (``https://``) kept as written."""
    return root if "://" in root else base / root


def executor_from(name: str, jobs: int | None = None, **options: Any) -> Executor:
    """An executor primitive from its name, ``jobs`` and its other options.

    An option the executor does not take (``worker`` for ``local``) is named in the error.
    """
    if jobs is not None:
        options["jobs"] = jobs
    return EXECUTORS.from_dict({"executor": name, **options}, where="execution")


#: Transform options that name files: relative ones are relative to the spec's folder.
_FILE_OPTIONS = ("atlas", "path", "source")
_KEYWORDS = ("record", "intersection")


def _transform(entry: Any, where: str, base: Path = Path(".")) -> Transform:
    """``name`` or ``{name: {option: value}}`` -> a transform; relative file options are
    taken relative to ``base`` (the spec's folder)."""
    if isinstance(entry, dict) and len(entry) == 1:
        [(name, options)] = entry.items()
        if isinstance(options, dict):
            options = dict(options)
            for key in _FILE_OPTIONS:
                value = options.get(key)
                if isinstance(value, str) and value not in _KEYWORDS and "://" not in value:
                    options[key] = str(base / value) if not Path(value).is_absolute() else value
            entry = {name: options}
    return TRANSFORMS.from_dict(entry, where=where)


def _variables(entry: Any) -> tuple:
    """``[age, sex]`` (columns of participants.tsv), or tables: ``{table: NAME, option: value}``
    or a list of them."""
    if entry is None:
        return ()
    if isinstance(entry, list) and all(isinstance(item, str) for item in entry):
        return (TABLES["participants"](columns=tuple(entry)),)
    items = entry if isinstance(entry, list) else [entry]
    tables = []
    for i, item in enumerate(items):
        item = _mapping(item, f"input.variables[{i}]")
        tables.append(TABLES.from_dict(item, where=f"input.variables[{i}]"))
    return tuple(tables)
