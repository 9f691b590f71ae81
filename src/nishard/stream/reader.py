"""Read one sample of a tar or TFRecord shard by its byte offset, arrays into given memory.

:meth:`ShardReader.locate` finds a sample's fields (the manifest gives its byte offset);
:meth:`ShardReader.fill` puts a field's values in an array the caller owns. A large array
is read from the file straight into that array with one ``preadv``: the one copy is the
kernel's, from the page cache, and it runs without the GIL, so reader threads overlap.
With ``direct``, the block-aligned middle of an array of 16 MiB or more is read past the
page cache instead (:mod:`.direct`): no copy at all.
A small sample (under :data:`SMALL` bytes) is read whole in one system call and its
arrays copied from that buffer, which costs less than a call per member; a run of
consecutive small samples (a batch read in order) is read in one call
(:meth:`ShardReader.read_ahead`).

The readers trust the manifest's sha256 for the bytes and check what they parse (tar
headers, ``.npy`` headers, TFRecord lengths with their CRC and the Example's framing, see
:mod:`.tfrecord`); ``nishard verify`` checks everything. They assume a little-endian
machine for bfloat16, as the writer does.

A reader of a remote folder streamed through memory (``memory=True``: see
:mod:`.mirror`) reads each shard from the buffer it was received into, by the same
offsets, copies in place of system calls; it holds at most :data:`HELD_SHARDS` of them.

A reader keeps a few files open and is not thread-safe: give each thread its own.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tarfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..archives.decoders import DecodeError, example_sample, unsafe_member
from ..archives.storage import LocalStorage, Storage
from ..errors import StorageError
from . import direct as direct_io
from .catalog import Catalog, Shard
from .mirror import Held, ShardMirror
from .npy import PREFIX, header_at, header_length, parse_header
from .tfrecord import HEADER, Span, example_at, record_length

#: A sample spanning at most this many bytes is read whole in one system call.
SMALL = 256 * 1024

#: At most this many bytes of consecutive samples are read in one call.
RUN = 4 * 1024 * 1024

#: Bytes read at once while walking the member headers of a large sample.
WINDOW = 64 * 1024

#: Open files kept per reader.
OPEN_FILES = 16

#: Shards in memory a reader holds: the one it reads. The one it read last stays in the
#: mirror a while (a shuffle buffer's window spans neighbours: going back costs nothing).
HELD_SHARDS = 1

#: Where a shard's bytes are read from: a file descriptor, or a shard held in memory.
Source = int | Held

_BLOCK = tarfile.BLOCKSIZE


@dataclass
class Field:
    """One array of a located sample: in memory already (``array``), or at ``offset`` in
    the file (``nbytes`` long), to be read by :meth:`ShardReader.fill`."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool = False
    offset: int = -1
    array: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@dataclass
class Located:
    """A sample found in its shard: key, metadata (parsed when asked) and fields."""

    key: str
    fd: Source
    meta: object = None
    fields: dict[str, Field] = field(default_factory=dict)
    shard: str = ""  # the shard's file name, for errors


class ShardReader:
    """Locates and reads the samples of a catalog's shards; one per thread.

    Parameters
    ----------
    catalog : Catalog
    small : int, optional
        Samples up to this many bytes are read whole in one call (default :data:`SMALL`).
    memory : bool
        Read a mirrored remote folder's shards from memory (:meth:`.ShardMirror.hold`),
        not from its cache folder.
    direct : bool
        Read arrays of at least :data:`.direct.MIN_BYTES` of a local folder past the page
        cache (see :mod:`.direct`), where the platform and file system allow it.
    """

    def __init__(
        self, catalog: Catalog, small: int | None = None, memory: bool = False,
        direct: bool = False,
    ):  # fmt: skip
        self.catalog, self.small = catalog, SMALL if small is None else small
        self.memory = memory and isinstance(catalog.storage, ShardMirror)
        self.direct = direct and direct_io.available() and isinstance(catalog.storage, LocalStorage)
        # Per open descriptor: its path, and its direct twin (None: refused there).
        self._paths: dict[int, str] = {}
        self._direct: dict[int, int | None] = {}
        self._files: OrderedDict[int, Source] = OrderedDict()
        self._scratch = np.empty(0, np.uint8)
        tar = catalog.format == "webdataset"
        self._locate = _locate_tar if tar else _locate_tfrecord
        self._in_memory = _tar_in_memory if tar else _tfrecord_in_memory
        # Bytes of consecutive samples read by read_ahead: (shard, file offset, bytes).
        self.held: tuple[int, int, bytes] = (-1, 0, b"")

    def read_ahead(self, shard: int, first: int, last: int) -> None:
        """Read samples ``first`` to ``last`` (inclusive) of a shard in one call, when
        they are small; :meth:`locate` then finds them in memory."""
        info = self.catalog.shards[shard]
        if info.offsets is None or last <= first:
            return
        start, end = info.offsets[first], _span(info, last)[1]
        if end - start > RUN or (end - start) > self.small * (last - first + 1):
            return
        fd = self._fd(shard)
        try:
            self.held = (shard, start, _pread(fd, end - start, start))
        except OSError as err:
            expected = f"{info.name}: {end - start} bytes at offset {start}"
            raise DecodeError(None, expected, _io_failure(err)) from err

    def locate(self, shard: int, position: int, want: frozenset[str] | None, meta: bool) -> Located:
        """Find sample ``position`` of shard number ``shard``.

        Parameters
        ----------
        want : frozenset of str, or None
            The fields to locate (None: all).
        meta : bool
            Parse the sample's JSON metadata.
        """
        info = self.catalog.shards[shard]
        start, end = _span(info, position)
        fd = self._fd(shard)
        try:
            held_shard, base, data = self.held
            if held_shard == shard and base <= start and end <= base + len(data):
                located = self._in_memory(data, base, start, end, want, meta, fd)
            else:
                located = self._locate(self, fd, start, end, want, meta)
        except (ValueError, OSError) as err:
            expected = f"{info.name}: a sample at offset {start}"
            if isinstance(err, OSError):
                raise DecodeError(None, expected, _io_failure(err)) from err
            raise DecodeError(None, expected, str(err)) from None
        if info.keys and located.key != info.keys[position]:
            raise DecodeError(
                located.key,
                f"{info.name}: sample {info.keys[position]!r} at offset {start}",
                f"{located.key!r}: the shard is not the one the manifest describes",
            )
        located.shard = info.name
        return located

    def fill(self, located: Located, name: str, out: np.ndarray) -> None:
        """Write field ``name``'s values into ``out`` (its shape; any dtype numpy casts to).

        Raises
        ------
        DecodeError
            When the sample lacks the field or its shape is not ``out``'s.
        """
        found = located.fields.get(name)
        if found is None:
            have = sorted(located.fields)
            raise DecodeError(located.key, f"a field {name!r}", f"the fields {have}")
        if found.shape != out.shape:
            expected = f"{name} of shape {out.shape} (as the manifest lists it)"
            raise DecodeError(located.key, expected, f"shape {found.shape}")
        if found.array is not None:
            np.copyto(out, found.array, casting="unsafe")
            return
        try:
            self._read(located.fd, found, out)
        except (OSError, DecodeError) as err:
            expected = f"{located.shard}: {name}'s {found.nbytes} bytes at offset {found.offset}"
            if isinstance(err, DecodeError):  # the file ends short of them
                raise DecodeError(located.key, expected, err.found) from None
            raise DecodeError(located.key, expected, _io_failure(err)) from err

    def _read(self, fd: Source, found: Field, out: np.ndarray) -> None:
        """Read a field's stored bytes into ``out``: straight in when its dtype and
        order are the stored ones, else through scratch bytes and a cast."""
        if found.dtype == out.dtype and not found.fortran and out.flags.c_contiguous:
            target = _bytes_of(out)
            span = self._fill_direct(fd, target, found.offset)
            if span is None:
                _pread_into(fd, target, found.offset)
            else:  # the bytes before the first block boundary, and from the last one on
                _pread_into(fd, target[: span[0]], found.offset)
                _pread_into(fd, target[span[1] :], found.offset + span[1])
            return
        raw = self._scratch_bytes(found.nbytes)
        _pread_into(fd, raw, found.offset)
        values = raw.view(found.dtype)
        shape = found.shape
        values = values.reshape(shape[::-1]).T if found.fortran else values.reshape(shape)
        np.copyto(out, values, casting="unsafe")

    def reads_directly(self, found: Field, dtype: np.dtype) -> bool:
        """Whether :meth:`fill` would read ``found`` into a fresh array of ``dtype`` past
        the page cache: the caller then places it with :func:`.direct.at_phase` at the
        field's offset."""
        return (
            self.direct
            and found.array is None
            and found.nbytes >= direct_io.MIN_BYTES
            and found.dtype == dtype
            and not found.fortran
        )

    def _fill_direct(self, fd: Source, out: np.ndarray, offset: int) -> tuple[int, int] | None:
        """Read the aligned middle of ``out`` past the page cache, where asked and able;
        the span read, or None (the caller reads it all)."""
        if not self.direct or out.size < direct_io.MIN_BYTES or type(fd) is not int:
            return None
        if fd not in self._direct:
            self._direct[fd] = direct_io.open_file(self._paths[fd])
        twin = self._direct[fd]
        if twin is None:
            return None
        try:
            return direct_io.read_middle(twin, out, offset)
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise
            os.close(twin)  # opened, but the file system refuses direct reads
            self._direct[fd] = None
            return None

    def _close(self, source: Source) -> None:
        if type(source) is int:
            twin = self._direct.pop(source, None)
            if twin is not None:
                os.close(twin)
            self._paths.pop(source, None)
        _close(source)

    def close(self) -> None:
        """Close the open files, let go of the shards held in memory."""
        for source in self._files.values():
            self._close(source)
        self._files.clear()
        self.held = (-1, 0, b"")

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _fd(self, shard: int) -> Source:
        # Reads are positional (pread): a descriptor inherited by a forked worker is safe.
        source = self._files.get(shard)
        if source is not None:
            self._files.move_to_end(shard)
            return source
        name = self.catalog.shards[shard].name
        if self.memory:
            source = self.catalog.storage.hold(name)
        else:
            source = _descriptor(self.catalog.storage, name)
            if self.direct:
                self._paths[source] = self.catalog.storage.path(name)
        self._files[shard] = source
        if len(self._files) > (HELD_SHARDS if self.memory else OPEN_FILES):
            self._close(self._files.popitem(last=False)[1])
        return source

    def _scratch_bytes(self, n: int) -> np.ndarray:
        if self._scratch.size < n:
            self._scratch = np.empty(n, np.uint8)
        return self._scratch[:n]


def _descriptor(storage: Storage, name: str) -> int:
    """A file descriptor of a shard of a local folder: the readers' fast path is
    ``pread``/``preadv`` on it (one system call per sample, arrays read straight into
    their rows), which a storage's ``read_range`` would cost a copy and a call more."""
    if not isinstance(storage, LocalStorage | ShardMirror):
        raise StorageError(f"{storage.join(name)}: the stream reads local or mirrored shards")
    if isinstance(storage, ShardMirror):
        return storage.open_fd(name)
    return os.open(storage.path(name), os.O_RDONLY | getattr(os, "O_BINARY", 0))


def _span(info: Shard, position: int) -> tuple[int, int]:
    """Byte range of a sample: its offset to the next one's (the file's end for the last)."""
    offsets = info.offsets
    if offsets is None:
        raise DecodeError(
            None, f"{info.name}: sample offsets in the manifest", "none (rebuild the shards)"
        )
    end = offsets[position + 1] if position + 1 < len(offsets) else info.bytes
    return offsets[position], end


def _bytes_of(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1).view(np.uint8)


def _pread(source: Source, n: int, offset: int) -> bytes:
    """Up to ``n`` bytes at ``offset`` of a file or a shard held in memory."""
    if type(source) is int:
        return os.pread(source, n, offset)
    return source.pread(n, offset)


def _close(source: Source) -> None:
    if type(source) is int:
        os.close(source)
    else:
        source.release()


def _io_failure(err: OSError) -> str:
    """What a read found that the disk or the system failed (``EIO``...): the caller's
    DecodeError names the shard and the bytes asked for, with the OSError as its cause."""
    return f"an I/O error ({err.strerror or err})"


def _pread_into(source: Source, out: np.ndarray, offset: int) -> None:
    """Fill ``out`` (uint8) from ``offset``; ``preadv`` releases the GIL while it copies."""
    n = out.size
    if type(source) is not int:
        done = source.readinto(out, offset)
    else:
        done = 0
        while done < n and (got := os.preadv(source, [out[done:]], offset + done)) > 0:
            done += got
    if done < n:
        raise DecodeError(None, f"{n} bytes at offset {offset}", f"{done}: the file ends")


class _Window:
    """Bytes of a file read ahead in chunks: one read for the headers of many members."""

    def __init__(self, fd: Source, start: int, end: int, chunk: int):
        self.fd, self.end, self.chunk = fd, end, chunk
        self.base, self.data = start, b""

    def get(self, pos: int, n: int) -> memoryview:
        if not (self.base <= pos and pos + n <= self.base + len(self.data)):
            size = min(max(n, self.chunk), max(self.end - pos, n))
            self.base, self.data = pos, _pread(self.fd, size, pos)
        view = memoryview(self.data)[pos - self.base : pos - self.base + n]
        if len(view) < n:
            raise ValueError(f"{n} bytes at offset {pos}; the file ends")
        return view

    def holds(self, pos: int, n: int) -> bool:
        return self.base <= pos and pos + n <= self.base + len(self.data)


# -- tar ----------------------------------------------------------------------------------


def _locate_tar(
    reader: ShardReader, fd: Source, start: int, end: int, want: frozenset | None, meta: bool
) -> Located:
    if end - start <= reader.small:
        return _tar_in_memory(_pread(fd, end - start, start), start, start, end, want, meta, fd)
    window = _Window(fd, start, end, WINDOW)
    located: Located | None = None
    for name, data, size in _members(window.get, start, end):
        _check_member(name)
        key, _, field_name = name.partition(".")
        if located is None:
            located = Located(key, fd)
        elif key != located.key:
            break  # the next sample (a shard without the end offset of its last sample)
        if field_name == "json":
            if meta:
                located.meta = json.loads(bytes(window.get(data, size)))
        elif field_name.endswith(".npy"):
            product = field_name[:-4]
            if want is None or product in want:
                located.fields[product] = _npy_field(window, data, size)
        else:
            raise ValueError(f"members <key>.<product>.npy and <key>.json, found {name!r}")
    if located is None:
        raise ValueError("a tar member header; found the end of the archive")
    return located


def _check_member(name: str) -> None:
    """Refuse a member whose name would leave a folder (nishard writes none)."""
    if unsafe_member(name):
        raise ValueError(f"member names inside the archive (without '..', relative): {name!r}")


_ZEROS = bytes(_BLOCK)
_EXTENDED = (ord("x"), ord("g"), ord("L"))


def _tar_in_memory(
    data: bytes, base: int, start: int, end: int, want: frozenset | None, meta: bool, fd: Source
) -> Located:
    """:func:`_locate_tar` on bytes already read (``data`` begins at file offset ``base``):
    the same checks as :func:`_members`, on ``bytes`` for speed (small samples are mostly
    this parsing)."""
    pos, stop = start - base, end - base
    located: Located | None = None
    path: bytes | None = None
    while pos + _BLOCK <= stop:
        kind = data[pos + 156]
        size_field = data[pos + 124 : pos + 136]
        if size_field[0] & 0x80:
            size = int.from_bytes(size_field[1:], "big")
        else:
            digits = size_field.strip(b" \0")
            if not digits:
                if data[pos : pos + _BLOCK] == _ZEROS:
                    break  # the end of the archive
                size = 0
            else:
                size = int(digits, 8)
        member = pos + _BLOCK
        pos = member + ((size + _BLOCK - 1) & -_BLOCK)
        if kind in _EXTENDED:
            if kind == ord("x"):
                records = _pax(data[member : member + size])
                path = records["path"].encode() if "path" in records else None
                if "size" in records:
                    raise ValueError("PAX size records (members over 8 GiB) on the fast path")
            elif kind == ord("L"):
                path = data[member : member + size].rstrip(b"\0")
            continue
        if kind not in (0x30, 0):
            raise ValueError(f"regular file members, found type {chr(kind)!r}")
        name = path if path is not None else _name(memoryview(data)[member - _BLOCK :])
        path = None
        if name[:1] == b"/" or b".." in name:  # the cheap test first: this loop is hot
            _check_member(name.decode(errors="replace"))
        key, _, field_name = name.partition(b".")
        if located is None:
            located = Located(key.decode(), fd)
        elif key.decode() != located.key:
            break
        if field_name == b"json":
            if meta:
                located.meta = json.loads(data[member : member + size])
        elif field_name.endswith(b".npy"):
            product = field_name[:-4].decode()
            if want is None or product in want:
                header = header_at(data, member)
                if header.length + header.nbytes != size:
                    raise ValueError(
                        f"a .npy member of {header.length + header.nbytes} bytes, found {size}"
                    )
                values = np.frombuffer(
                    data, header.dtype, math.prod(header.shape), member + header.length
                )
                shape = header.shape
                array = values.reshape(shape[::-1]).T if header.fortran else values.reshape(shape)
                located.fields[product] = Field(
                    header.dtype, shape, header.fortran, base + member + header.length, array
                )
        else:
            raise ValueError(f"members <key>.<product>.npy and <key>.json, found {name.decode()!r}")
    if located is None:
        raise ValueError("a tar member header; found the end of the archive")
    return located


def _npy_field(window: _Window, data: int, size: int) -> Field:
    prefix = window.get(data, min(size, PREFIX))
    length = header_length(prefix)
    if length > len(prefix):
        prefix = window.get(data, length)
    header = parse_header(prefix[:length])
    if header.length + header.nbytes != size:
        raise ValueError(f"a .npy member of {header.length + header.nbytes} bytes, found {size}")
    located = Field(header.dtype, header.shape, header.fortran, data + header.length)
    if window.holds(located.offset, header.nbytes):
        raw = window.get(located.offset, header.nbytes)
        values = np.frombuffer(raw, header.dtype)
        shape = header.shape
        located.array = values.reshape(shape[::-1]).T if header.fortran else values.reshape(shape)
    return located


def _members(
    read: Callable[[int, int], memoryview], start: int, end: int
) -> Iterator[tuple[str, int, int]]:
    """``(name, data offset, size)`` of the file members between two offsets.

    ustar headers, with PAX extended headers (long names, large sizes) and GNU long names
    applied to the member they precede; the end-of-archive zero block stops it.
    """
    pos, extended = start, {}
    while pos + _BLOCK <= end:
        header = read(pos, _BLOCK)
        if not any(header):
            return
        kind = header[156]
        size = _number(header[124:136])
        if "size" in extended:
            size = int(extended["size"])
        data = pos + _BLOCK
        pos = data + -(-size // _BLOCK) * _BLOCK
        if kind in (ord("x"), ord("g"), ord("L")):
            content = bytes(read(data, size))
            if kind == ord("x"):
                extended = _pax(content)
            elif kind == ord("L"):
                extended = {"path": content.rstrip(b"\0").decode()}
            continue
        if kind not in (ord("0"), 0):
            raise ValueError(f"regular file members, found type {chr(kind)!r}")
        name = extended.get("path") or _name(header).decode()
        extended = {}
        yield name, data, size


def _name(header: memoryview) -> bytes:
    name = bytes(header[:100]).split(b"\0", 1)[0]
    if bytes(header[257:262]) == b"ustar" and header[345]:
        name = bytes(header[345:500]).split(b"\0", 1)[0] + b"/" + name
    return name


def _number(field: memoryview) -> int:
    """A tar numeric field: octal digits, or base-256 when the first bit is set."""
    if field[0] & 0x80:
        return int.from_bytes(bytes(field[1:]), "big")
    digits = bytes(field).strip(b" \0")
    return int(digits, 8) if digits else 0


def _pax(content: bytes) -> dict[str, str]:
    """Records ``"<length> <key>=<value>\\n"`` of a PAX extended header."""
    records, pos = {}, 0
    while pos < len(content):
        space = content.index(b" ", pos)
        length = int(content[pos:space])
        key, _, value = content[space + 1 : pos + length - 1].partition(b"=")
        records[key.decode()] = value.decode()
        pos += length
    return records


# -- TFRecord -----------------------------------------------------------------------------


def _locate_tfrecord(
    reader: ShardReader, fd: Source, start: int, end: int, want: frozenset | None, meta: bool
) -> Located:
    if end - start <= reader.small:
        data = _pread(fd, end - start, start)
        return _tfrecord_in_memory(data, start, start, end, want, meta, fd)
    # The Example's framing is walked through a window of the file and each large array
    # is left there, to be read by fill() straight into its row: one copy, as for tar.
    window = _Window(fd, start, end, WINDOW)
    length = record_length(window.get(start, HEADER), start, end)
    first = start + HEADER
    example = example_at(window.get, window.holds, first, first + length, want)
    parsed = json.loads(example.json) if meta and example.json is not None else None
    located = Located(example.key, fd, parsed)
    for name, (dtype, shape, value) in example.arrays.items():
        if isinstance(value, Span):
            located.fields[name] = Field(dtype, shape, offset=value.offset)
        else:
            array = np.frombuffer(value, dtype).reshape(shape)
            located.fields[name] = Field(dtype, shape, array=array)
    return located


def _tfrecord_in_memory(
    data: bytes, base: int, start: int, end: int, want: frozenset | None, meta: bool, fd: Source
) -> Located:
    """:func:`_locate_tfrecord` on bytes already read (``data`` begins at ``base``)."""
    at = start - base
    length = record_length(data[at : at + HEADER], start, end)
    return _example(memoryview(data)[at + HEADER : at + HEADER + length], want, meta, fd)


def _example(data: bytes | memoryview, want: frozenset | None, meta: bool, fd: Source) -> Located:
    sample = example_sample(data)
    located = Located(sample.key, fd, sample.meta if meta else None)
    for name, array in sample.arrays.items():
        if want is None or name in want:
            located.fields[name] = Field(array.dtype, array.shape, array=array)
    return located
