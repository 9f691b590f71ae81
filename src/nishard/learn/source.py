"""What the learners read: one key of one or several shard folders, sample by sample.

:class:`Shards` reads the manifests once, checks the request against them before any
shard is opened (the key exists, it holds ``(time, features)`` arrays, the folders agree
on the feature count, the split exists), names every sample by the sha256 of its shard
and its key (a content identity that survives copying the folder, used as the cache key
of its subject reduction) and streams the arrays with ``nishard.stream.open(...).arrays()``.
:class:`ArraySource` gives the same interface to any iterable of arrays (or of the dicts
that ``arrays`` yields), for data that is not in shards.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..archives.inspect import summarize
from ..archives.manifest import MANIFEST, read_manifest
from ..finite import all_finite
from ..stream import EVERY_SPLIT
from ..stream import direct as direct_io
from ..stream import open as open_stream
from .errors import LearnError

#: Bytes per value of the arrays the stream yields, by the dtype the manifest lists
#: (float16 and bfloat16 come back as float32).
_WIDENED = {"float16": 4, "bfloat16": 4}


def check_values(data: np.ndarray, where: str, finite: bool = True) -> None:
    """Refuse a sample without time points or (``finite``) with NaN or infinite values,
    naming it.

    A check at memory speed finds them before the SVD would fail on them with a message
    that names no sample.
    """
    if data.shape[0] == 0:
        raise LearnError(f"{where}: no time points (shape {data.shape})")
    if finite and not all_finite(data):
        raise LearnError(
            f"{where}: NaN or infinite values; learning needs finite data (were the "
            "shards built from broken runs? nishard verify SHARDS checks them)"
        )


@dataclass(frozen=True)
class SampleRef:
    """One sample of a shard folder."""

    folder: Path
    shard: str
    shard_sha256: str
    key: str
    split: str

    @property
    def identity(self) -> str:
        """``<shard sha256>/<sample key>``: what the sample holds, wherever it lies."""
        return f"{self.shard_sha256}/{self.key}"


@dataclass(frozen=True)
class Shards:
    """A key of one or several shard folders, read as one dataset.

    Parameters
    ----------
    folders : path or sequence of paths
        Shard folders (or their ``manifest.json``).
    key : str
        The product to learn from: ``(time, features)`` arrays, e.g. masked voxels.
    split : str, optional
        Only this split's shards (default: every split).
    format : str, optional
        Which format's shards to read where a folder has several (default: each
        folder's first).
    direct : bool, optional
        Read the arrays past the page cache (``O_DIRECT``, see
        :mod:`nishard.stream.direct`). Default: when a pass streams more bytes than the
        memory now available, which the cache could not keep for the next pass anyway;
        it then spares the CPU the cache's copy and reclaim, time the reductions use.
    """

    folders: tuple[Path, ...]
    key: str = "bold"
    split: str | None = None
    format: str | None = None
    direct: bool | None = None

    def __post_init__(self) -> None:
        given = [self.folders] if isinstance(self.folders, (str, os.PathLike)) else self.folders
        folders = []
        for item in given:
            path = Path(item)
            folders.append(path.parent if path.name == MANIFEST else path)
        if not folders:
            raise LearnError("no shard folder given")
        object.__setattr__(self, "folders", tuple(folders))

    @cached_property
    def manifests(self) -> tuple[dict, ...]:
        """Each folder's manifest, checked against the key and split asked for."""
        manifests = []
        for folder in self.folders:
            try:
                manifest = read_manifest(folder)
            except (OSError, ValueError) as err:
                raise LearnError(f"{folder}: no readable {MANIFEST} ({err})") from err
            keys = manifest.get("keys") or {}
            if self.key not in keys:
                raise LearnError(
                    f"{folder}: no key {self.key!r} in the shards; they hold {sorted(keys)}"
                )
            shape = keys[self.key].get("shape")
            if not isinstance(shape, list) or len(shape) != 2:
                raise LearnError(
                    f"{folder}: key {self.key!r} holds arrays of shape {shape}; learning "
                    "needs (time, features) arrays, e.g. masked voxels"
                )
            if shape[1] is None:
                raise LearnError(
                    f"{folder}: the samples of key {self.key!r} have different feature "
                    "counts (last axis): they were built with different masks, and group "
                    "learning needs one; rebuild the shards with a common mask "
                    "(transforms: - mask: {source: MASK.nii.gz})"
                )
            manifests.append(manifest)
        counts = {
            str(f): m["keys"][self.key]["shape"][1]
            for f, m in zip(self.folders, manifests, strict=True)
        }
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{f}: {n}" for f, n in counts.items())
            raise LearnError(
                f"the shard folders hold different feature counts for {self.key!r} ({listed}): "
                "they were built with different masks; learn from folders of one mask"
            )
        return tuple(manifests)

    def format_of(self, manifest: dict) -> str:
        """The format read from a folder: the one asked for, else WebDataset when the
        folder has it, else its first (the stream's own default, passed to it explicitly)."""
        formats = list(dict.fromkeys(s["format"] for s in manifest.get("shards") or []))
        if self.format is not None:
            return self.format
        return "webdataset" if "webdataset" in formats or not formats else formats[0]

    @cached_property
    def samples(self) -> tuple[SampleRef, ...]:
        """Every sample that will be streamed, in streaming order (split by split, in
        manifest order, then shard by shard)."""
        refs, seen = [], {}
        splits: set[str] = set()
        for folder, manifest in zip(self.folders, self.manifests, strict=True):
            fmt = self.format_of(manifest)
            shards = [s for s in manifest.get("shards") or [] if s["format"] == fmt]
            splits.update(str(s["split"]) for s in shards)
            order = list(dict.fromkeys(s["split"] for s in shards))
            for shard in sorted(shards, key=lambda s: order.index(s["split"])):
                if self.split is not None and shard["split"] != self.split:
                    continue
                if not shard.get("sha256"):  # the identity of its samples, in the cache
                    raise LearnError(
                        f"{folder}: the manifest gives no sha256 for shard {shard['name']}"
                    )
                for key in shard.get("keys") or []:
                    ref = SampleRef(
                        folder, shard["name"], shard["sha256"], key, str(shard["split"])
                    )
                    if ref.identity in seen:
                        raise LearnError(
                            f"sample {key} is given twice: in {seen[ref.identity]} and "
                            f"{folder} (the same shards listed twice?)"
                        )
                    seen[ref.identity] = folder
                    refs.append(ref)
        if not refs:
            which = f"split {self.split!r}" if self.split else "any split"
            raise LearnError(
                f"no sample of {which} in {', '.join(map(str, self.folders))}; the splits "
                f"there: {sorted(splits)}"
            )
        return tuple(refs)

    @property
    def n_features(self) -> int:
        return int(self.manifests[0]["keys"][self.key]["shape"][1])

    @property
    def n_timepoints(self) -> int | None:
        """Time points per sample, or None when they vary."""
        lengths = {m["keys"][self.key]["shape"][0] for m in self.manifests}
        return lengths.pop() if len(lengths) == 1 and None not in lengths else None

    @property
    def itemsize(self) -> int:
        """Bytes per value of the arrays the stream yields."""
        return _WIDENED.get(self._stored_dtype, np.dtype(self._stored_dtype).itemsize)

    @property
    def _stored_dtype(self) -> str:
        dtype = str(self.manifests[0]["keys"][self.key].get("dtype", "float32"))
        return "float64" if dtype == "mixed" else dtype

    @property
    def sample_bytes(self) -> int:
        """An upper bound of the memory of one sample's array as the stream yields it."""
        if self.n_timepoints is not None:
            return self.n_timepoints * self.n_features * self.itemsize
        # Lengths vary: the largest stored sample (of those streamed) bounds the array,
        # sample by sample, not shard by shard: one long run among short ones in a shard
        # would hide in the shard's average and take a fit past its budget.
        stored = np.dtype(self._stored_dtype).itemsize if self._stored_dtype != "bfloat16" else 2
        return int(max(self.stored_sizes.values()) * self.itemsize / stored)

    @cached_property
    def stored_sizes(self) -> dict[str, float]:
        """Stored bytes of each sample streamed, by identity: the manifest's per-sample
        ``sizes`` (manifest v2, every format: the array's bytes plus its framing), or its
        shard's bytes per sample where a manifest (v1) has none."""
        streamed = {ref.identity for ref in self.samples}
        sizes: dict[str, float] = {}
        for folder, manifest in zip(self.folders, self.manifests, strict=True):
            fmt = self.format_of(manifest)
            for shard in manifest.get("shards") or []:
                if shard["format"] != fmt:
                    continue
                keys = shard.get("keys") or []
                average = shard["bytes"] / max(1, shard["samples"])
                each = shard.get("sizes") or [average] * len(keys)
                for key, size in zip(keys, each, strict=True):
                    ref = SampleRef(folder, shard["name"], shard["sha256"], key, shard["split"])
                    if ref.identity in streamed:
                        sizes[ref.identity] = float(size)
        return sizes

    @property
    def total_bytes(self) -> int:
        """Bytes of the arrays streamed in one pass (as the stream yields them)."""
        if self.n_timepoints is not None:
            return self.sample_bytes * len(self.samples)
        return int(
            sum(
                shard["bytes"]
                for manifest in self.manifests
                for shard in manifest.get("shards") or []
                if shard["name"] in {r.shard for r in self.samples}
            )
        )

    def total_rows(self, n_rows: int) -> int | None:
        """Rows the subject reductions give in all (each keeps at most its time points),
        or None when the lengths vary."""
        if self.n_timepoints is None:
            return None
        return len(self.samples) * min(n_rows, self.n_timepoints)

    @property
    def total_timepoints(self) -> int | None:
        return None if self.n_timepoints is None else self.n_timepoints * len(self.samples)

    @property
    def reads_direct(self) -> bool:
        """Whether :meth:`arrays` reads past the page cache (see ``direct``)."""
        if self.direct is not None:
            return bool(self.direct)
        return direct_io.beyond_memory(self.total_bytes)

    def arrays(self, check: bool = True) -> Iterator[tuple[str, np.ndarray, str]]:
        """``(identity, array, where)`` of every sample, streamed shard by shard.

        ``where`` names the sample in errors (folder, key and shard). With ``check``
        (the default) an array with NaN or infinite values is refused here; a caller
        that finds them on its way (the Gram route's diagonal) passes False and calls
        :func:`check_values` itself when it does.
        """
        direct = self.reads_direct
        for folder, manifest in zip(self.folders, self.manifests, strict=True):
            refs = {r.key: r for r in self.samples if r.folder == folder}
            if not refs:
                continue
            fmt = self.format_of(manifest)
            split = EVERY_SPLIT if self.split is None else self.split
            for item in open_stream(folder, split, format=fmt).keys(self.key).arrays(direct):
                ref = refs.get(item["__key__"])
                if ref is None:  # a sample the manifest does not list: refuse to guess
                    raise LearnError(f"{folder}: sample {item['__key__']} is not in the manifest")
                # Popped, not read: the stream's generator keeps the dict it yielded until
                # it reads the next sample; without the array in it, a sample is freed as
                # soon as its reduction lets go, before the next one is read.
                data = item.pop(self.key)
                del item
                where = f"{folder}: sample {ref.key} of {ref.shard}"
                if data.ndim != 2 or data.shape[1] != self.n_features:
                    raise LearnError(
                        f"{where}: expected (time, {self.n_features}), found shape {data.shape}"
                    )
                check_values(data, where, finite=check)
                yield ref.identity, data, where
                del data

    def summary(self) -> dict:
        """Per folder: the manifest's facts (splits, counts, quarantine) for the report."""
        return {str(f): summarize(m) for f, m in zip(self.folders, self.manifests, strict=True)}


@dataclass
class ArraySource:
    """Any iterable of ``(time, features)`` arrays, or of the dicts ``arrays`` yields.

    Parameters
    ----------
    items : iterable
        Arrays, or dicts holding ``key`` (and ``__key__``).
    key : str
        The array to take from dict items.

    Notes
    -------
    A list can be read several times (for the explained variance, which needs a second
    pass); a generator once only.
    """

    items: Iterable
    key: str = "bold"
    _count: int = field(default=0, init=False)

    @property
    def reusable(self) -> bool:
        return isinstance(self.items, Sequence)

    @property
    def n_features(self) -> int | None:
        if self.reusable and len(self.items):
            return int(self._array(self.items[0]).shape[1])
        return None

    def _array(self, item: object) -> np.ndarray:
        if isinstance(item, dict):
            if self.key not in item:
                arrays = [k for k in item if not str(k).startswith("__")]
                raise LearnError(f"no key {self.key!r} in the samples; they hold {arrays}")
            return np.asarray(item[self.key])
        return np.asarray(item)

    def arrays(self, check: bool = True) -> Iterator[tuple[None, np.ndarray, str]]:
        """``(None, array, where)``: no content identity (the cache hashes the array
        instead); ``check`` as for :meth:`Shards.arrays`."""
        features = None
        for index, item in enumerate(self.items):
            data = self._array(item)
            where = f"sample {index}"
            if data.ndim != 2:
                raise LearnError(f"{where}: expected (time, features), found {data.shape}")
            if features is not None and data.shape[1] != features:
                raise LearnError(
                    f"{where}: {data.shape[1]} features where the first had {features}; "
                    "group learning needs one mask"
                )
            features = data.shape[1]
            check_values(data, where, finite=check)
            yield None, data, where
