"""Pipeline specs: the YAML file that says input, transforms, output and execution.

A spec is parsed into the same primitives the Python API takes, so ``nishard build
spec.yaml`` and ``locate(...); assemble(...); write(...)`` are the same run. Every key is
checked: an unknown one stops the run with an error that names it and where it stands.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .archives import FORMATS, Family, Format, ShardSpec, parse_bytes
from .builder import output_spec
from .builder.splits import Split, check_split_name
from .builder.splits import from_dict as split_from_dict
from .errors import SpecError
from .records import FILTERS, LEVELS, SCHEMAS, SOURCES, TABLES, Complete, Source, input_spec
from .transforms import TRANSFORMS, Transform
from .workflow import EXECUTORS, Executor
from .workflow.fusion import ByBackend, Fusion, Greedy

_SECTIONS = {
    "input": ("path", "schema", "stage", "variables", "filters", "level", "source"),
    "output": ("path", "formats", "shards", "split", "shuffle", "products"),
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
    formats: tuple[Format | Family, ...]
    shards: ShardSpec
    split: str | Split
    executor: Executor
    spec: dict
    products: tuple[str, ...] | None = None
    shuffle: int | None = 0
    fusion: Fusion = dataclasses.field(default_factory=ByBackend)
    cache: Path | None = None

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
        if output is not None:
            changes["output"] = Path(output).absolute()
            relative = os.path.relpath(changes["output"], self.base.absolute())
            spec["output"] = {**spec["output"], "path": relative}
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
    schema = _primitive(inp.get("schema", "fmriprep"), SCHEMAS, "input.schema")
    stage = tuple(_list(inp.get("stage", list(schema.default_stage)), "input.stage"))
    variables = _variables(inp.get("variables"))
    level = str(inp.get("level", "run"))
    if level not in LEVELS:
        raise SpecError(f"input.level {level!r}: one of {', '.join(LEVELS)}")
    filters = tuple(
        _primitive(item, FILTERS, f"input.filters[{i}]")
        for i, item in enumerate(_list(inp.get("filters", ["complete"]), "input.filters"))
    )
    source = _primitive(inp.get("source", "local"), SOURCES, "input.source")
    transforms = tuple(
        _transform(item, f"transforms[{i}]", base)
        for i, item in enumerate(_list(raw["transforms"], "transforms"))
    )

    out = _mapping(raw["output"], "output")
    _known(out, _SECTIONS["output"], "output")
    out_text = _required(out, "path", "output")
    formats = tuple(
        _format(item, f"output.formats[{i}]")
        for i, item in enumerate(_list(out.get("formats", ["webdataset"]), "output.formats"))
    )
    shards = _shards(out.get("shards", {}))
    split = _split(out.get("split", "all"))
    shuffle = out.get("shuffle", 0)
    if shuffle is not None and (not isinstance(shuffle, int) or isinstance(shuffle, bool)):
        raise SpecError(f"output.shuffle must be an integer seed or null, got {shuffle!r}")

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
    products = out.get("products")
    if products is not None:
        products = tuple(str(p) for p in _list(products, "output.products"))

    spec = {
        "input": input_spec(root_text, schema, stage, variables, filters, source, level),
        "transforms": [t.to_dict() for t in transforms],
        "output": output_spec(out_text, formats, shards, split, shuffle),
        "execution": executor.to_dict(),
    }
    if products is not None:
        spec["output"]["products"] = list(products)
    if memory_budget is not None:
        spec["execution"]["memory_budget"] = memory_budget
    if cache is not None:
        spec["execution"]["cache"] = str(cache)
    return Pipeline(
        base=base, root=_local_or_url(base, str(root_text)), schema=schema, stage=stage,
        variables=variables, level=level, filters=filters, source=source,
        transforms=transforms,
        output=base / str(out_text), formats=formats, shards=shards, split=split,
        shuffle=shuffle,
        executor=executor, spec=spec, products=products, fusion=fusion,
        cache=None if cache is None else base / str(cache),
    )  # fmt: skip


def _split(entry: Any) -> str | Split:
    """``train`` (one named split) or ``{name: stratified, by: diagnosis, ...}``."""
    if isinstance(entry, str):
        try:
            return check_split_name(entry)
        except ValueError as err:
            raise SpecError(f"output.split: {err}") from err
    try:
        return split_from_dict(_mapping(entry, "output.split"))
    except (TypeError, ValueError) as err:
        raise SpecError(f"output.split: {err}") from err


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
    if name not in EXECUTORS:
        raise SpecError(_unknown_name(name, EXECUTORS, "execution.executor"))
    if jobs is not None:
        options["jobs"] = jobs
    return _build(EXECUTORS[name], options, "execution")


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a mapping, got {type(value).__name__}: {value!r}")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list, got {type(value).__name__}: {value!r}")
    return value


def _required(section: dict, key: str, where: str) -> Any:
    if section.get(key) in (None, ""):
        raise SpecError(f"missing key '{key}' in {where}")
    return section[key]


def _known(section: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in section:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            maybe = f" (did you mean '{hint[0]}'?)" if hint else ""
            expected = f"expected one of {', '.join(allowed)}" if allowed else "it takes none"
            raise SpecError(f"unknown key '{key}' in {where}{maybe}; {expected}")


def _unknown_name(name: str, registry: dict, where: str) -> str:
    hint = difflib.get_close_matches(str(name), list(registry), n=1)
    maybe = f" (did you mean '{hint[0]}'?)" if hint else ""
    return f"unknown {where} '{name}'{maybe}; known: {', '.join(sorted(registry))}"


def _build(cls: type, options: dict, where: str):
    allowed = tuple(f.name for f in dataclasses.fields(cls))
    _known(options, allowed, where)
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    try:
        instance = cls(**options)
    except (TypeError, ValueError, AttributeError) as err:
        raise SpecError(f"{where}: {err}") from err
    for option in dataclasses.fields(cls):
        _check_type(getattr(instance, option.name), option.type, f"{where}.{option.name}")
    return instance


_SCALARS = {"int": int, "float": float, "bool": bool, "str": str, "None": type(None)}


def _check_type(value: Any, annotation: str, where: str) -> None:
    """Catch the YAML slips that dataclasses let through: a string where a number goes.

    Annotations of scalar unions (``float | None``, ``bool | int``) are checked; any other
    annotation is left to the transform's own validation.
    """
    if not isinstance(annotation, str):
        return
    parts = [part.strip() for part in annotation.split("|")]
    if not all(part in _SCALARS for part in parts):
        return
    # YAML has no int/float distinction a user can be expected to mind: 1 is a valid float.
    allowed = tuple(_SCALARS[p] for p in parts) + ((int,) if "float" in parts else ())
    bool_ok = "bool" in parts
    if (isinstance(value, bool) and not bool_ok) or not isinstance(value, allowed):
        kinds = " or ".join("null" if p == "None" else "true/false" if p == "bool" else
                            {"int": "an integer", "float": "a number", "str": "a string"}[p]
                            for p in parts)  # fmt: skip
        raise SpecError(f"{where} must be {kinds}, got {value!r}")


def _primitive(entry: Any, registry: dict, where: str):
    """``name`` or ``{name: NAME, option: value}`` -> the registered primitive."""
    if isinstance(entry, str):
        entry = {"name": entry}
    entry = dict(_mapping(entry, where))
    name = entry.pop("name", None)
    if name not in registry:
        raise SpecError(_unknown_name(name, registry, where))
    return _build(registry[name], entry, where)


def _format(entry: Any, where: str) -> Format | Family:
    """A format entry: ``webdataset``, ``{name: hdf5, compression: gzip}``, or a family of
    some products ``{name: tfrecord, products: [connectivity], family: conn}``."""
    if not isinstance(entry, dict) or ("products" not in entry and "family" not in entry):
        return _primitive(entry, FORMATS, where)
    entry = dict(entry)
    products, family = entry.pop("products", None), entry.pop("family", None)
    fmt = _primitive(entry, FORMATS, where)
    if products is None:
        raise SpecError(f"{where}: a family names its products (a list, or 'each')")
    if not isinstance(products, str):
        products = tuple(str(p) for p in _list(products, f"{where}.products"))
    try:
        return Family(fmt, products, None if family is None else str(family))
    except ValueError as err:
        raise SpecError(f"{where}: {err}") from err


#: Transform options that name files: relative ones are relative to the spec's folder.
_FILE_OPTIONS = ("atlas", "path", "source")
_KEYWORDS = ("record", "intersection")


def _transform(entry: Any, where: str, base: Path = Path(".")) -> Transform:
    """``name`` or ``{name: {option: value}}`` -> a transform."""
    if isinstance(entry, str):
        entry = {entry: {}}
    entry = _mapping(entry, where)
    if len(entry) != 1:
        raise SpecError(f"{where} must name one transform, got {list(entry)}")
    [(name, options)] = entry.items()
    if name not in TRANSFORMS:
        raise SpecError(_unknown_name(name, TRANSFORMS, f"transform at {where}"))
    options = dict(_mapping(options or {}, f"{where}.{name}"))
    for key in _FILE_OPTIONS:
        value = options.get(key)
        if isinstance(value, str) and value not in _KEYWORDS and "://" not in value:
            options[key] = str(base / value) if not Path(value).is_absolute() else value
    return _build(TRANSFORMS[name], options, f"{where}.{name}")


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
        item = dict(_mapping(item, f"input.variables[{i}]"))
        name = item.pop("table", "participants")
        if name not in TABLES:
            raise SpecError(_unknown_name(name, TABLES, f"input.variables[{i}].table"))
        tables.append(_build(TABLES[name], item, f"input.variables[{i}]"))
    return tuple(tables)


def _shards(entry: Any) -> ShardSpec:
    entry = _mapping(entry, "output.shards")
    _known(entry, ("max_samples", "max_bytes"), "output.shards")
    try:
        max_bytes = entry.get("max_bytes", ShardSpec.max_bytes)
        return ShardSpec(
            max_samples=entry.get("max_samples"),
            max_bytes=None if max_bytes is None else parse_bytes(max_bytes),
        )
    except (TypeError, ValueError) as err:
        raise SpecError(f"output.shards: {err}") from err
