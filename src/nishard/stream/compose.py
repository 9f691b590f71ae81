"""Streams as composable stages: ``ns.stream.open(path)`` and the chain that follows.

::

    stream = (ns.stream.open("shards", split="train")
              .keys("bold")
              .shuffle(seed=0, buffer=64)
              .shard()
              .batch(32, drop_last=True))
    loader = DataLoader(stream.torch(), batch_size=None, num_workers=4)

Each call returns a new, immutable :class:`Stream` with one more stage (see
:mod:`nishard.stream.stages`); nothing is read until a terminal (:meth:`~Stream.torch`,
:meth:`~Stream.jax`, :meth:`~Stream.arrays`, :meth:`~Stream.grain`,
:meth:`~Stream.map_dataset`) compiles the stages into a :class:`~nishard.stream.Plan`.
The stages are declarative: their order in the chain does not matter, and a stage given
twice keeps its last call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archives.storage import LocalStorage, Storage, storage_for
from ..units import parse_bytes
from .batch import Fields
from .catalog import Catalog, open_catalog, pick_format, read_folder, splits_of
from .classes import ClassLabel, Labels, class_labels, load_labels
from .normalize import load_normalizer
from .order import Order, Remainder
from .plan import Plan, check_threads
from .ranks import jax_ranks, torch_ranks
from .stages import (
    KINDS,
    Batch,
    Classes,
    Epoch,
    Keys,
    Normalize,
    Output,
    Shard,
    Shuffle,
    Stage,
)

if TYPE_CHECKING:
    from .arrays import ArrayStream
    from .jax_stream import JaxStream
    from .random_access import GrainSource, MapDataset
    from .torch_stream import TorchStream

#: ``open(path, split=EVERY_SPLIT)``: every split, in manifest order (``arrays`` only).
EVERY_SPLIT = "*"

Ranks = Callable[[], tuple[int, int]]


def open(  # ns.stream.open, as tarfile.open: the builtin is not used here
    path: str | Path,
    split: str | Sequence[str] | None = None,
    *,
    format: str | None = None,
    cache: str | Path | None = None,
    cache_limit: int | str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Stream:
    """A stream of a shard folder's split, to which stages are chained.

    Parameters
    ----------
    path : str or Path
        The shard folder or its ``manifest.json``; or its ``s3://`` or ``http(s)://``
        URL, whose shards are fetched whole, a few ahead of the reader, and checked
        against the manifest before they are read (:mod:`nishard.stream.mirror`).
    split : str or sequence of str, optional
        Default: ``train`` when the manifest has it, else its only split. ``"*"``
        (:data:`EVERY_SPLIT`) or several names: those splits one after the other, each in
        its own order (:meth:`Stream.arrays` only).
    format : str, optional
        Which shards to read when the folder has several formats. Default: the first
        format whose shards (or one archive family of them) hold every key read
        (:meth:`Stream.keys`), ``webdataset`` first, so products written to families
        of different formats are read by key alone. The iterating and random-access
        terminals read ``webdataset`` and ``tfrecord``; :meth:`Stream.arrays` reads
        every format.
    cache : str or Path, optional
        For a URL: a local folder to keep the fetched shards in, shared by the processes
        that read it, read again by later epochs. Default: none when one process reads
        the epoch (``num_workers=0``, ``.jax()``, ``.arrays()``, each DDP rank): the
        shards stream through a few reused buffers in memory and nothing is written;
        DataLoader workers (who each read every few batches of every shard) share
        ``$NISHARD_CACHE`` or ``~/.cache/nishard``, under ``shards/<hash of the URL>``.
    cache_limit : int or str, optional
        For a URL: keep the shards in a cache folder (``cache``, or the default one)
        holding at most these bytes (``"20GB"``); the least recently used shards go
        first. Default: no limit.
    storage_options : mapping, optional
        For an ``s3://`` URL: ``endpoint_url`` and ``profile`` of this folder's store,
        when it is not the one the environment names (two stores at once).

    Returns
    -------
    Stream
        No stage yet: every product, the split in manifest order, one sample at a time.
    """
    storage = storage_for(path, storage_options)  # an unknown URL is refused here
    remote = not isinstance(storage, LocalStorage)
    limit = parse_bytes(cache_limit) if isinstance(cache_limit, str) else cache_limit
    # Path() would mangle a URL's "//"; a folder with its own options travels as its storage.
    where = storage if storage_options else str(path) if remote else Path(path)
    return Stream(where, split, format, cache=cache, cache_limit=limit)


@dataclass(frozen=True)
class Stream:
    """A description of what to read from a shard folder and how; see :func:`open`.

    The chained methods each return a new stream; the terminals compile it. Whatever the
    order of the calls, the reading order is built one way (:class:`~nishard.stream.Order`):

    1. the split's shards, in manifest order or permuted by ``(seed, pass)``;
    2. their samples concatenated and cut into ``world_size`` equal, contiguous parts:
       this rank reads its own part (:meth:`shard`);
    3. within the part, a shuffle buffer mixes the samples (:meth:`shuffle`), seeded by
       ``(seed, pass, rank)``;
    4. epochs are passes, or stretches of ``length`` samples of the passes laid end to
       end (:meth:`epoch`);
    5. the sequence is cut into batches (:meth:`batch`), which DataLoader workers take
       in turn: the batches come in the same order whatever the number of workers.

    So ``.shard().shuffle()`` and ``.shuffle().shard()`` are the same stream: the split
    is divided between ranks first and shuffled within each rank's part, and
    ``.batch().shuffle()`` shuffles samples, not batches.

    Attributes
    ----------
    path : Path or str
        A local folder, or a URL.
    split : str, tuple of str or None
    format : str or None
    stages : tuple
        At most one stage of each kind (:mod:`nishard.stream.stages`).
    """

    path: Path | str | Storage
    split: str | tuple[str, ...] | None = None
    format: str | None = None
    stages: tuple[Stage, ...] = ()
    cache: str | Path | None = None
    cache_limit: int | None = None

    def __post_init__(self) -> None:
        split = self.split
        if split is not None and not isinstance(split, str):
            split = tuple(split)
            if not split or not all(isinstance(s, str) for s in split):
                raise ValueError(f"split is a name or a non-empty list of names, got {split!r}")
            object.__setattr__(self, "split", split[0] if len(split) == 1 else split)

    # -- stages -------------------------------------------------------------------------------

    def keys(self, *names: str) -> Stream:
        """Read these products only (default: every product; none given: only each
        sample's key and metadata). A name the shards lack raises ``KeyError`` at the
        terminal, naming those they have."""
        return self._with(Keys(names))

    def shuffle(self, seed: int = 0, buffer: int = 1000, shards: bool = True) -> Stream:
        """Shuffle each pass: the shards permuted by ``(seed, pass)`` (unless ``shards``
        is False), the samples of this rank's part mixed through a buffer of ``buffer``
        sample numbers. The buffer holds numbers, not data: it costs no memory; reads
        jump within a window of about ``buffer`` samples. The same seed, epoch, rank and
        world size give the same order, whatever the DataLoader's workers."""
        return self._with(Shuffle(seed, buffer, shards))

    def shard(
        self, rank: int | None = None, world_size: int | None = None, remainder: Remainder = "wrap"
    ) -> Stream:
        """Read this process's part of the split: rank ``rank`` of ``world_size``.

        Without this stage every process reads the whole split. A rank or world size
        left None is found by the terminal: ``torch.distributed``'s when it is
        initialised, else the ``RANK`` and ``WORLD_SIZE`` that ``torchrun`` sets, else 0
        and 1 (:meth:`torch`, :meth:`arrays`, :meth:`map_dataset`); JAX's process index
        and count (:meth:`jax`, :meth:`grain`).

        When ``world_size`` does not divide the split, ``remainder="wrap"`` gives the
        last ranks samples from the start of the pass (a few samples twice per epoch, as
        ``DistributedSampler``) and ``"drop"`` leaves the pass's last samples out; either
        way every rank gets as many samples, hence as many batches.
        """
        return self._with(Shard(rank, world_size, remainder))

    def batch(self, size: int | None, drop_last: bool = False) -> Stream:
        """Batches of ``size`` samples, each key stacked into one array (a key whose
        shape varies between samples gives a list); ``drop_last`` drops each epoch's last,
        partial batch. ``size=None``: one sample at a time, without a batch axis."""
        return self._with(Batch(size, drop_last))

    def epoch(self, index: int = 0, length: int | None = None) -> Stream:
        """Start at epoch ``index`` (the terminals' ``set_epoch`` moves on); ``length``:
        samples per rank per epoch (default: one pass over the split), taken from the
        rank's passes laid end to end, so short epochs walk through the data and long
        ones repeat it, reshuffled each pass."""
        return self._with(Epoch(index, length))

    def normalize(self, *keys: str, stats_split: str | None = None) -> Stream:
        """``(x - mean) / std`` per feature (last axis) with the statistics the build
        stored, as float32: of these keys (none given: every floating key read that has
        statistics), from split ``stats_split`` (default ``train`` when it has them, else
        the split read: a model is normalised with its training statistics)."""
        return self._with(Normalize(keys, stats_split))

    def fields(self, float32: bool = True, meta: bool | Sequence[str] | None = None) -> Stream:
        """How values come back. ``float32``: float16 and bfloat16 arrays as float32.
        ``meta``: True, each sample's JSON metadata under ``__meta__`` (a list per batch);
        names, those fields each under its own name (an array when all are numbers, else a
        list; a missing field is None); False, none (the JSON is not read). Default: True
        for :meth:`torch`, :meth:`jax` and :meth:`arrays`, False for :meth:`grain` and
        :meth:`map_dataset` (their loaders stack every value, and JSON does not stack)."""
        return self._with(Output(float32, meta))  # type: ignore[arg-type]

    def classes(self, *names: str, missing: int | str = -1) -> Stream:
        """Text variables as class indices, for a loss function: each of ``names`` (none
        given: every variable the manifest lists classes for) comes back under its own
        name as int64 (an array per batch, a 0-d array per sample; tensors from
        :meth:`torch` and :meth:`map_dataset`; NumPy on the host from :meth:`jax`, as the
        metadata), in place of its text.

        A label's index is its place in the manifest's ``classes`` list of the variable
        (sorted values over the whole record table: the same in every split, see
        :meth:`class_labels`). ``missing``: the index of a missing value (default -1, as
        Hugging Face ``datasets``; ``CrossEntropyLoss(ignore_index=-1)`` leaves those
        samples out of the loss), or ``"error"`` to raise
        :class:`~nishard.stream.classes.LabelError` naming the sample. A variable
        without classes (a number) raises ``KeyError`` at the terminal."""
        return self._with(Classes(names, missing))

    def class_labels(self) -> dict[str, ClassLabel]:
        """Each text variable's :class:`~nishard.stream.ClassLabel` (``names``,
        ``num_classes``, ``str2int``, ``int2str``, ``class_to_idx``), from the manifest:
        what :meth:`classes` maps labels with. Reads the manifest; opens no shard."""
        return class_labels(read_folder(self.path)[1])

    def stage(self, kind: type) -> Stage | None:
        """This stream's stage of ``kind`` (e.g. :class:`~nishard.stream.stages.Shuffle`),
        or None."""
        return next((s for s in self.stages if isinstance(s, kind)), None)

    def _with(self, stage: Stage) -> Stream:
        kept = [s for s in self.stages if not isinstance(s, type(stage))]
        ordered = sorted([*kept, stage], key=lambda s: KINDS.index(type(s)))
        return dataclasses.replace(self, stages=tuple(ordered))

    # -- compiling ----------------------------------------------------------------------------

    @property
    def first_epoch(self) -> int:
        """The epoch the terminals read first (:meth:`epoch`)."""
        epoch = self.stage(Epoch)
        return epoch.index if epoch is not None else 0

    def order(self, ranks: Ranks = torch_ranks) -> Order:
        """The :class:`~nishard.stream.Order` of the shuffle, shard and epoch stages;
        ``ranks`` finds a rank or world size the :meth:`shard` stage left None."""
        shuffle, shard, epoch = self.stage(Shuffle), self.stage(Shard), self.stage(Epoch)
        rank, world = 0, 1
        if shard is not None:
            rank, world = shard.rank, shard.world_size
            if rank is None or world is None:
                found_rank, found_world = ranks()
                rank = found_rank if rank is None else rank
                world = found_world if world is None else world
        return Order(
            shuffle=shuffle is not None,
            seed=shuffle.seed if shuffle is not None else 0,
            buffer=shuffle.buffer if shuffle is not None else Shuffle.buffer,
            rank=rank,
            world=world,
            remainder=shard.remainder if shard is not None else "wrap",
            length=epoch.length if epoch is not None else None,
            shards=shuffle.shards if shuffle is not None else True,
        )

    def plan(
        self, split: str | None = None, *, meta: bool = True, ranks: Ranks = torch_ranks
    ) -> Plan:
        """Compile the stages for one split into a :class:`~nishard.stream.Plan`.

        Reads the manifest (and the statistics for :meth:`normalize`); opens no shard.

        Parameters
        ----------
        split : str, optional
            Default: the stream's split (which must then be one).
        meta : bool
            The metadata when no :meth:`fields` stage says (the terminal's default).
        ranks : callable
            Finds a rank or world size the :meth:`shard` stage left None.
        """
        return self.compile(self.catalog(split), meta=meta, ranks=ranks)

    def catalog(self, split: str | None = None, *, streamable: bool = True) -> Catalog:
        """The :class:`~nishard.stream.Catalog` of one split (default: the stream's,
        which must then be one) and the :meth:`keys` read; ``streamable=False`` accepts
        HDF5 and Zarr shards too."""
        if split is None:
            if isinstance(self.split, tuple) or self.split == EVERY_SPLIT:
                raise ValueError(
                    f"split {self.split!r}: this reader reads one split; arrays() reads several"
                )
            split = self.split
        keys = self.stage(Keys)
        return open_catalog(self.path, None if keys is None else list(keys.names), split,
                            self.format, streamable=streamable, cache=self.cache,
                            cache_limit=self.cache_limit)  # fmt: skip

    def compile(self, catalog: Catalog, *, meta: bool = True, ranks: Ranks = torch_ranks) -> Plan:
        """The :class:`~nishard.stream.Plan` of the stages over ``catalog`` (see
        :meth:`plan`)."""
        batch, normalize, output = self.stage(Batch), self.stage(Normalize), self.stage(Output)
        output = output or Output()
        normalizer = None
        if normalize is not None:
            normalizer = load_normalizer(catalog, list(normalize.keys) or True,
                                         normalize.stats_split)  # fmt: skip
        fields = Fields(output.float32, meta if output.meta is None else output.meta,
                        self.labels(catalog))  # fmt: skip
        return Plan(
            catalog,
            self.order(ranks),
            fields,
            normalizer,
            batch.size if batch is not None else None,
            batch.drop_last if batch is not None else False,
        )

    def labels(self, catalog: Catalog) -> Labels | None:
        """What the :meth:`classes` stage compiles into over ``catalog`` (None without
        one)."""
        classes = self.stage(Classes)
        if classes is None:
            return None
        return load_labels(catalog.folder, catalog.manifest, classes.names, classes.missing)

    def split_names(self) -> list[str | None]:
        """The splits to read, in order (None: the catalog's default split)."""
        if isinstance(self.split, tuple):
            return list(self.split)
        if self.split != EVERY_SPLIT:
            return [self.split]
        folder, manifest = read_folder(self.path)
        keys = self.stage(Keys)
        names = None if keys is None else list(keys.names)
        return list(splits_of(manifest, pick_format(folder, manifest, self.format, names)))

    # -- terminals ----------------------------------------------------------------------------

    def torch(self, *, threads: int | None = None) -> TorchStream:
        """A PyTorch ``IterableDataset`` (imports torch): give the DataLoader
        ``batch_size=None`` (the stream batches), any ``num_workers``.

        Parameters
        ----------
        threads : int, optional
            Reader threads, reading batches ahead of the training loop. Default: none
            inside DataLoader workers; in the main process two for samples of 256 KiB or
            more (their reads run without the GIL), else one.

        Returns
        -------
        TorchStream
            Its ``len()`` is the number of batches (or samples) per epoch on this rank;
            ``set_epoch`` before each epoch.
        """
        from .torch_stream import TorchStream

        check_threads(threads)
        return TorchStream(self.plan(ranks=torch_ranks), self.first_epoch, threads)

    def jax(
        self, *, threads: int | None = None, prefetch: int = 2, devices: Sequence | None = None,
        sharding=None,
    ) -> JaxStream:  # fmt: skip
        """Batches as JAX arrays, put on the device by a background thread ahead of use
        (the host batches are those of :meth:`torch`: same plan, same reader).

        Parameters
        ----------
        threads : int, optional
            Reader threads of the background thread (as :meth:`torch`).
        prefetch : int
            Batches put on the device ahead of the one in use.
        devices : sequence of jax devices, optional
            Shard each batch's first axis over these devices (a 1-D mesh named
            ``batch``); the batch size must be a multiple of their number and
            ``drop_last`` true unless the epoch divides into whole batches.
        sharding : jax.sharding.Sharding, optional
            Put every key's batch with this sharding instead. With several processes each
            process's batch is its part of a global array
            (``jax.make_array_from_process_local_data``).

        Returns
        -------
        JaxStream
            Iterate it once per epoch; ``len()`` is the number of batches per epoch.
        """
        from .jax_stream import make_jax_stream

        check_threads(threads)
        plan = self.plan(ranks=jax_ranks)
        return make_jax_stream(plan, self.first_epoch, threads, prefetch, devices, sharding)

    def arrays(self, direct: bool = False) -> ArrayStream:
        """Samples (or batches) as dicts of NumPy arrays, each array the caller's own
        (writable, shared with nothing), for out-of-core learners.

        Tar and TFRecord shards are read by nishard's own readers; HDF5 and Zarr shards
        (no stage but :meth:`keys`, :meth:`fields` and :meth:`epoch`'s index) through
        their verifying decoders. With several splits (``open(path, "*")``) each is read
        in turn, in its own order.

        Parameters
        ----------
        direct : bool
            Read each array of 16 MiB or more of a local folder past the page cache
            (``O_DIRECT``, where the file system allows it; see :mod:`.direct`): for a
            pass over more data than memory holds, which the cache could not keep for a
            second pass, it saves the kernel's copy and the cache's reclaim. Data that
            fit in memory read faster a second time without it.

        Returns
        -------
        ArrayStream
            Iterate it once per epoch; ``len()`` is the number of items per epoch.
        """
        from .arrays import ArrayStream

        return ArrayStream(self, direct)

    def grain(self) -> GrainSource:
        """A grain ``RandomAccessDataSource``: ``source[i]`` is item ``i`` of this rank's
        epoch (sample ``i`` of the split in manifest order without order stages), as
        NumPy arrays. Give grain's sampler ``shuffle=False`` and ``NoSharding()`` to keep
        the stream's order, or let it shuffle a stream without order stages."""
        from .random_access import GrainSource

        return GrainSource.from_plan(self.plan(meta=False, ranks=jax_ranks), self.first_epoch)

    def map_dataset(self) -> MapDataset:
        """A map-style PyTorch dataset: ``ds[i]`` is item ``i`` of this rank's epoch
        (sample ``i`` of the split in manifest order without order stages), as tensors;
        for PyTorch's samplers."""
        from .random_access import MapDataset

        return MapDataset.from_plan(self.plan(meta=False, ranks=torch_ranks), self.first_epoch)

    def __repr__(self) -> str:
        split = "" if self.split is None else f", split={self.split!r}"
        fmt = "" if self.format is None else f", format={self.format!r}"
        chain = "".join(f".{_method(s)}" for s in self.stages)
        path = getattr(self.path, "url", self.path)
        return f"ns.stream.open({str(path)!r}{split}{fmt}){chain}"


def _method(stage: Stage) -> str:
    """The call that makes ``stage``, for the stream's repr."""
    fields = dataclasses.asdict(stage)
    if isinstance(stage, Keys):
        return f"keys({', '.join(map(repr, stage.names))})"
    if isinstance(stage, Classes):
        return f"classes({', '.join([*map(repr, stage.names), f'missing={stage.missing!r}'])})"
    if isinstance(stage, Normalize):
        args = [*map(repr, stage.keys)]
        if stage.stats_split is not None:
            args.append(f"stats_split={stage.stats_split!r}")
        return f"normalize({', '.join(args)})"
    name = {Shuffle: "shuffle", Shard: "shard", Batch: "batch", Epoch: "epoch",
            Output: "fields"}[type(stage)]  # fmt: skip
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"
