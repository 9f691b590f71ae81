"""The dataset card: a ``README.md`` in the shard folder, in Hugging Face's form.

A YAML header (``pretty_name``, ``license``, ``tags``, ``size_categories``, ``configs``
with the ``data_files`` of each split, ``dataset_info`` with the features, splits and
sizes) and a body a person reads: what a sample holds, the splits, how to load them, what
Hugging Face ``datasets`` cannot read, and the source's license and citation (from the
input dataset's ``dataset_description.json``, when it has one).

``datasets.load_dataset("<folder>")`` reads the card: each configuration is one set of
WebDataset (tar) shards, all products or one archive family (``<split>-<family>-*.tar``),
its ``data_files`` globs matching those shards and no other, its features declared so
that ``datasets`` does not guess them from the first samples (a variable missing in the
first samples and text later would otherwise stop the load). What ``datasets`` cannot
read is left out of the configurations and said in the body:

- bfloat16 (and other ``ml_dtypes``) products, stored as a structured ``.npy``
  (:mod:`nishard.archives.encode`) that Arrow refuses ("NumPy type not implemented:
  void"), and products whose dtype varies between samples;
- TFRecord, HDF5 and Zarr shards: the card describes the tar shards only (``datasets``
  has no TFRecord or Zarr builder; its HDF5 builder was not tried on nishard's layout);
- empty splits; and the split name ``all``, which ``datasets`` reserves: it is ``train``
  in the card.

The card holds no date, host or absolute path: the same build gives the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .._version import __version__
from ..archives.shards import ShardInfo
from ..archives.storage import LocalStorage, publishing
from ..checksums import sha256_file
from ..records.table import RecordTable

#: The card's file name: where the Hugging Face Hub and ``datasets`` look for it.
CARD = "README.md"

#: The format whose shards ``datasets`` loads (its ``webdataset`` builder).
_TAR_FORMAT = "webdataset"

#: NumPy dtypes that ``datasets`` features hold (``Value`` and ``ArrayND`` dtypes).
_READABLE = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
}  # fmt: skip

#: ``datasets`` reserves ``all`` for the union of the splits.
_RESERVED = {"all": "train"}

#: ``size_categories`` of the Hub, by upper bound of the samples written.
_SIZES = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"),
]  # fmt: skip

#: BIDS ``License`` texts to the Hub's license ids (spaces, dashes and case ignored).
_LICENSES = {
    "cc0": "cc0-1.0", "cc010": "cc0-1.0", "pddl": "pddl", "odbl": "odbl", "odcby": "odc-by",
    "ccby40": "cc-by-4.0", "ccbysa40": "cc-by-sa-4.0", "ccbync40": "cc-by-nc-4.0",
    "ccbyncsa40": "cc-by-nc-sa-4.0", "ccbynd40": "cc-by-nd-4.0", "ccby30": "cc-by-3.0",
    "publicdomain": "cc0-1.0", "mit": "mit", "apache20": "apache-2.0",
}  # fmt: skip

_GLOB_NUMBER = "[0-9]" * 6


@dataclass(frozen=True)
class Config:
    """One set of tar shards that ``datasets`` loads as a configuration.

    Attributes
    ----------
    name : str
        ``default`` for the shards of every product, else the family's name.
    family : str or None
    products : tuple of str
    splits : tuple of (str, str, int, int)
        ``(nishard split, Hugging Face split, samples, bytes)`` of each split with samples.
    unreadable : str or None
        Why ``datasets`` cannot load these shards; None when it can.
    """

    name: str
    family: str | None
    products: tuple[str, ...]
    splits: tuple[tuple[str, str, int, int], ...]
    unreadable: str | None = None


def write_card(
    folder: Path,
    *,
    shards: Sequence[ShardInfo],
    keys: Mapping[str, dict],
    names: Sequence[str],
    records: RecordTable,
    classes: Mapping[str, list[str]],
    spec: Mapping,
) -> dict:
    """Write ``README.md`` in ``folder``; return the manifest's entry for it.

    Parameters
    ----------
    folder : Path
        The shard folder.
    shards : sequence of ShardInfo
        Every shard of the build, as the manifest lists them.
    keys : mapping
        dtype and shape of each product (the manifest's ``keys``).
    names : sequence of str
        The build's split names, in order.
    records : RecordTable
        The build's records: their metadata types, and the source's
        ``dataset_description.json`` under ``records.root``.
    classes : mapping
        The values of each text variable (the manifest's ``classes``).
    spec : mapping
        The pipeline spec (its transforms are named in the card).

    Returns
    -------
    dict
        ``{"file": "README.md", "sha256": ...}``.
    """
    text = card_text(
        shards=shards, keys=keys, names=names, metadata=_written_metadata(records, shards),
        description=read_description(Path(records.root)), classes=classes, spec=spec,
        source=Path(records.root).name,
    )  # fmt: skip
    with publishing(LocalStorage(folder), CARD) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return {"file": CARD, "sha256": sha256_file(folder / CARD)}


def card_text(
    *,
    shards: Sequence[ShardInfo],
    keys: Mapping[str, dict],
    names: Sequence[str],
    metadata: Mapping[str, set[str]],
    description: dict,
    classes: Mapping[str, list[str]] | None = None,
    spec: Mapping | None = None,
    source: str = "",
) -> str:
    """The card's text: YAML header, then the body (pure: the same inputs, the same text).

    Parameters
    ----------
    shards, keys, names
        As :func:`write_card` takes them.
    metadata : mapping
        The Python type names (``str``, ``int``, ``float``, ``bool``) of each metadata
        field's values over the samples written, missing values aside (an empty set: never
        a value).
    description : dict
        The source's ``dataset_description.json`` (:func:`read_description`).
    classes, spec
        As :func:`write_card` takes them.
    source : str
        The input folder's name, the title when the description has no ``Name``.
    """
    json_feature, json_problem = _json_feature(metadata)
    configs = _configs(shards, keys, names, json_problem)
    readable = [c for c in configs if c.unreadable is None]
    written = max((sum(s[2] for s in c.splits) for c in configs), default=0)
    title = _text(description.get("Name")) or source or "nishard shards"
    header: dict = {"pretty_name": title}
    header |= _license(description)
    header["tags"] = ["nishard", "neuroimaging", "webdataset"]
    header["size_categories"] = [_size_category(written)]
    if readable:
        header["configs"] = [_config_entry(c, i == 0) for i, c in enumerate(readable)]
        header["dataset_info"] = [_info_entry(c, keys, json_feature) for c in readable]
    body = _body(title, configs, keys, names, metadata, description, classes or {}, spec or {})
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n{body}"


def read_description(root: Path) -> dict:
    """The dataset's ``dataset_description.json`` as a dict: empty when it has none; a
    ``_problem`` entry (shown in the card) when it is not a JSON object. The card is
    documentation: a broken description does not fail the build, it is said there."""
    path = root / "dataset_description.json"
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return {"_problem": f"dataset_description.json: expected JSON, got {err}"}
    if not isinstance(content, dict):
        return {"_problem": "dataset_description.json: expected a JSON object"}
    return content


def hf_split(name: str, names: Sequence[str]) -> str:
    """The Hugging Face name of a split: its own, but ``all`` (reserved by ``datasets``)
    is ``train``, or ``all_records`` when the build has a ``train`` split too."""
    renamed = _RESERVED.get(name)
    if renamed is None:
        return name
    return renamed if renamed not in names else f"{name}_records"


def data_files_glob(split: str, family: str | None) -> str:
    """The glob of a split's tar shards of one family: the six-digit number spelled out,
    so that ``train-*.tar`` does not also take ``train-<family>-*.tar``."""
    middle = "" if family is None else f"-{family}"
    return f"{split}{middle}-{_GLOB_NUMBER}.tar"


def _written_metadata(records: RecordTable, shards: Sequence[ShardInfo]) -> dict[str, set[str]]:
    """The type names of each metadata field over the samples written (the keys of the
    shards), as the ``.json`` of each sample holds them (:class:`~.table.Record`)."""
    written = {key for shard in shards for key in shard.keys}
    types: dict[str, set[str]] = {}
    for record in records:
        if record.id not in written:
            continue
        for name, value in record.metadata.items():
            found = types.setdefault(name, set())
            if value is not None:
                found.add(type(value).__name__)
    return types


def _json_feature(metadata: Mapping[str, set[str]]) -> tuple[list[dict], str | None]:
    """The ``json`` field's struct (sorted, as the samples' JSON is), or why it has none."""
    fields, bad = [], []
    for name in sorted(metadata):
        found = metadata[name]
        if not found:
            dtype = "null"
        elif found == {"bool"}:
            dtype = "bool"
        elif found == {"int"}:
            dtype = "int64"
        elif found <= {"int", "float"}:
            dtype = "float64"
        elif found == {"str"}:
            dtype = "string"
        else:
            bad.append(f"{name} ({' and '.join(sorted(found))})")
            continue
        fields.append({"name": name, "dtype": dtype})
    problem = f"metadata of mixed types: {', '.join(bad)}" if bad else None
    return fields, problem


def _configs(shards, keys, names, json_problem) -> list[Config]:
    """One configuration per set of tar shards (all products, or a family)."""
    families: dict[str | None, tuple[str, ...]] = {}
    for shard in shards:
        if shard.format == _TAR_FORMAT and shard.family not in families:
            families[shard.family] = tuple(shard.products or sorted(keys))
    configs = []
    for family in sorted(families, key=lambda f: (f is not None, f or "")):
        products = families[family]
        splits = []
        for name in names:
            mine = [s for s in shards
                    if (s.format, s.family, s.split) == (_TAR_FORMAT, family, name)]  # fmt: skip
            samples = sum(s.samples for s in mine)
            if samples:
                splits.append((name, hf_split(name, names), samples, sum(s.bytes for s in mine)))
        bad = [f"{p} ({keys[p]['dtype']})" for p in products
               if keys.get(p, {}).get("dtype") not in _READABLE]  # fmt: skip
        why = f"dtypes that datasets cannot read: {', '.join(bad)}" if bad else json_problem
        if not splits:
            why = why or "no samples"
        name = "default" if family is None else family
        configs.append(Config(name, family, products, tuple(splits), why))
    return configs


def _config_entry(config: Config, first: bool) -> dict:
    entry: dict = {"config_name": config.name}
    if first and config.name != "default":
        entry["default"] = True  # the shards of every product are not readable
    entry["data_files"] = [
        {"split": hf, "path": data_files_glob(name, config.family)}
        for name, hf, _, _ in config.splits
    ]
    return entry


def _info_entry(config: Config, keys: Mapping[str, dict], json_feature: list[dict]) -> dict:
    """``dataset_info`` of a configuration, as ``datasets.DatasetInfo`` writes it."""
    features = [_product_feature(p, keys[p]) for p in sorted(config.products)]
    features.append({"name": "json", "struct": json_feature})
    features += [{"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"}]
    total = sum(s[3] for s in config.splits)
    return {
        "config_name": config.name,
        "features": features,
        "splits": [
            {"name": hf, "num_bytes": size, "num_examples": n} for _, hf, n, size in config.splits
        ],
        "download_size": total,
        "dataset_size": total,
    }


def _product_feature(product: str, key: dict) -> dict:
    """A product's feature: a value, a list (1-D), an ``ArrayND`` (2 to 5 axes, only the
    first of varying length), or nested lists; the field is ``<product>.npy``."""
    dtype, shape = key["dtype"], list(key["shape"])
    entry: dict = {"name": f"{product}.npy"}
    if not shape:
        return entry | {"dtype": dtype}
    if 2 <= len(shape) <= 5 and None not in shape[1:]:
        return entry | {"dtype": {f"array{len(shape)}_d": {"shape": shape, "dtype": dtype}}}
    inner: str | dict = dtype
    for length in reversed(shape[1:]):
        inner = {"list": inner} | ({} if length is None else {"length": length})
    return entry | {"list": inner} | ({} if shape[0] is None else {"length": shape[0]})


def _license(description: dict) -> dict:
    """``license`` (a Hub id), or ``other`` with ``license_name``; nothing when unknown."""
    text = _text(description.get("License"))
    if not text:
        return {}
    known = _LICENSES.get(re.sub(r"[\s\-_.]", "", text.lower()))
    if known:
        return {"license": known}
    slug = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:64] or "custom"
    return {"license": "other", "license_name": slug}


def _size_category(n: int) -> str:
    return next((label for bound, label in _SIZES if n < bound), "n>100M")


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _texts(value: object) -> list[str]:
    """A description field that BIDS makes a list of strings (or objects, shown as JSON)."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if not isinstance(value, list):
        return []
    return [v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in value if v]


def _body(title, configs, keys, names, metadata, description, classes, spec) -> str:
    lines = [f"# {title}", ""]
    written = max((sum(s[2] for s in c.splits) for c in configs), default=0)
    lines += [
        f"Sharded by nishard {__version__}: {written} samples "
        "in WebDataset tar shards (and the other formats of the build), described in full "
        "by `manifest.json` beside this card.",
        "",
    ]
    transforms = [next(iter(t)) for t in spec.get("transforms", []) if isinstance(t, dict) and t]
    if transforms:
        lines += [f"Transforms: {' → '.join(transforms)}.", ""]
    lines += ["## A sample", "", "| field | dtype | shape |", "| --- | --- | --- |"]
    for product in sorted(keys):
        shape = ", ".join("n" if d is None else str(d) for d in keys[product]["shape"])
        lines.append(f"| `{product}.npy` | {keys[product]['dtype']} | ({shape}) |")
    fields = ", ".join(f"`{k}`" for k in sorted(metadata))
    lines += [f"| `json` | the record's metadata: {fields} | |", ""]
    if classes:
        lines += ["Text variables and their classes (a label's index is its place):", ""]
        lines += [f"- `{name}`: {', '.join(values)}" for name, values in sorted(classes.items())]
        lines.append("")
    lines += _splits_section(configs, names)
    lines += _loading_section(configs)
    lines += _source_section(description)
    return "\n".join(lines).rstrip("\n") + "\n"


def _splits_section(configs: Sequence[Config], names: Sequence[str]) -> list[str]:
    lines = ["## Splits", "", "| split | Hugging Face split | samples |", "| --- | --- | --- |"]
    counts = {name: (hf, n) for c in configs for name, hf, n, _ in c.splits}
    for name in names:
        hf, n = counts.get(name, (hf_split(name, names), 0))
        lines.append(f"| `{name}` | `{hf}` | {n} |")
    lines.append("")
    if any(hf_split(n, names) != n for n in names):
        lines += ["`datasets` reserves the split name `all`: it is `train` here.", ""]
    if any(not any(s[0] == name for c in configs for s in c.splits) for name in names):
        lines += ["Splits without samples have no data files in the card.", ""]
    lines += [
        "Sizes in `dataset_info` (`num_bytes`, `download_size`, `dataset_size`) are the "
        "bytes of the tar shards, not of the Arrow files `datasets` makes of them.",
        "",
    ]
    return lines


def _loading_section(configs: Sequence[Config]) -> list[str]:
    readable = [c for c in configs if c.unreadable is None]
    lines = ["## Loading with Hugging Face datasets", ""]
    if readable:
        first = readable[0].name
        lines += [
            "```python",
            "from datasets import load_dataset",
            "",
            f'ds = load_dataset("path/to/this/folder")  # configuration {first!r}',
            'ds = ds.with_format("numpy")  # arrays as NumPy arrays',
            "```",
            "",
            "Configurations (`load_dataset(folder, name)`), each a set of tar shards:",
            "",
        ]
        for c in readable:
            which = "every product" if c.family is None else f"the family `{c.family}`"
            lines.append(f"- `{c.name}`: {which} ({', '.join(c.products)}), "
                         f"`{data_files_glob('<split>', c.family)}`")  # fmt: skip
        lines += [
            "",
            "Load through this card (or pass its `features`): the features it declares keep "
            "`datasets` from guessing them from the first samples, where a variable missing "
            "there and text later would stop the load.",
            "",
        ]
    else:
        lines += ["`datasets` can load none of these shards (see below).", ""]
    left = [c for c in configs if c.unreadable is not None]
    lines += ["Not loadable with `datasets`, so not in the card's configurations:", ""]
    for c in left:
        which = "the shards of every product" if c.family is None else f"family `{c.family}`"
        lines.append(f"- {which}: {c.unreadable}")
    if any("bfloat16" in (c.unreadable or "") for c in left):
        lines.append(
            "- bfloat16 arrays are stored as a structured `.npy` "
            "(`[('bfloat16', '<u2')]`) that Arrow refuses; `nishard.stream` and the "
            "`webdataset` library with `ml_dtypes` read them"
        )
    lines += [
        "- TFRecord, HDF5 and Zarr shards: the card describes the tar shards only; read the "
        "others with `nishard.stream` or their own libraries",
        "",
    ]
    return lines


def _source_section(description: dict) -> list[str]:
    lines = ["## Source", ""]
    if not description:
        missing = "The input dataset has no `dataset_description.json`"
        return [*lines, f"{missing}: no license or citation is known.", ""]
    if "_problem" in description:
        return [*lines, description["_problem"] + "; no license or citation is known.", ""]
    name = _text(description.get("Name"))
    if name:
        lines.append(f"- Name: {name}")
    license_text = _text(description.get("License"))
    lines.append(f"- License: {license_text or 'not stated in dataset_description.json'}")
    for field, label in (("Authors", "Authors"), ("Funding", "Funding"),
                         ("ReferencesAndLinks", "References")):  # fmt: skip
        values = _texts(description.get(field))
        if values:
            lines.append(f"- {label}: {'; '.join(values)}")
    doi = _text(description.get("DatasetDOI"))
    if doi:
        lines.append(f"- DOI: {doi}")
    generated = [g for g in description.get("GeneratedBy", []) if isinstance(g, dict)]
    for tool in generated:
        what = " ".join(_text(tool.get(k)) for k in ("Name", "Version") if _text(tool.get(k)))
        if what:
            lines.append(f"- Generated by: {what}")
    sources = _texts(description.get("SourceDatasets"))
    if sources:
        lines.append(f"- Source datasets: {'; '.join(sources)}")
    lines.append("")
    lines += _citation(description, name, doi)
    return lines


def _citation(description: dict, name: str, doi: str) -> list[str]:
    """How to acknowledge the source, and a BibTeX entry when it has authors or a DOI."""
    lines = []
    how = _text(description.get("HowToAcknowledge"))
    authors = [a for a in _texts(description.get("Authors"))]
    if not (how or authors or doi):
        return lines
    lines += ["## Citation", ""]
    if how:
        lines += [how, ""]
    if authors or doi:
        key = re.sub(r"[^a-z0-9]+", "_", (name or "dataset").lower()).strip("_") or "dataset"
        entry = [f"@misc{{{key},"]
        if name:
            entry.append(f"  title = {{{name}}},")
        if authors:
            entry.append(f"  author = {{{' and '.join(authors)}}},")
        if doi:
            entry.append(f"  doi = {{{doi.removeprefix('doi:')}}},")
        entry.append("}")
        lines += ["```bibtex", *entry, "```", ""]
    return lines
