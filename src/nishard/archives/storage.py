"""Where shards live: one interface for reading, listing and publishing the files of a
shard folder, whatever holds them.

The writer, the stream, ``verify``, ``inspect`` and resume reach a shard folder through a
:class:`Storage` only: sequential reads (:meth:`~Storage.open`), range reads
(:meth:`~Storage.read_range`), whole small files (:meth:`~Storage.read_bytes`),
:meth:`~Storage.stat`, :meth:`~Storage.list`, :meth:`~Storage.remove` and an atomic
:meth:`~Storage.publish` of a finished file. :class:`LocalStorage` is a folder on a file
system; object stores (S3) and HTTP mirrors come later behind the same methods, which is
why names are relative, ``/``-separated strings and not paths.

Atomicity is what makes a half-written build safe to read: a file appears under its final
name complete or not at all. Locally that is a synced file renamed over its name; on an
object store, where an upload is already atomic, it is the order of publication: shards
first, ``manifest.json`` last, so a reader that finds the manifest finds every shard it
lists.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import stat as stat_module
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from ..errors import MissingFileError, StorageError, StorageUnavailableError

__all__ = [
    "HttpStorage",
    "LocalStorage",
    "MissingFileError",
    "S3Storage",
    "Stat",
    "Storage",
    "StorageError",
    "StorageUnavailableError",
    "check_name",
    "publishing",
    "sha256_of",
    "storage_for",
]

#: :data:`nishard.archives.manifest.MANIFEST`, named here because the manifest module
#: reads through this one (a test keeps the two equal).
_MANIFEST = "manifest.json"

#: URL schemes of the remote stores that object storage support will add.
REMOTE_SCHEMES = ("s3", "http", "https", "gs", "gcs", "az", "abfs")

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Stat:
    """What a storage knows of one file without reading it."""

    size: int


@runtime_checkable
class Storage(Protocol):
    """A shard folder: files by relative name, read whole, by range or sequentially.

    Names are relative and ``/``-separated (``train-000000.tar``,
    ``.nishard-resume/journal.jsonl``). Every method that needs a file raises
    :class:`~nishard.errors.MissingFileError` (a ``FileNotFoundError``) naming the file
    and the storage when it is not there.
    """

    @property
    def url(self) -> str:
        """Where the storage is, for messages: a folder's path, later an ``s3://`` URL."""
        ...

    def join(self, name: str) -> str:
        """Where the file ``name`` is, for messages (a path, later a URL)."""
        ...

    def open(self, name: str, start: int = 0) -> BinaryIO:
        """The file ``name`` from byte ``start``, open for sequential reading (a context
        manager).

        Locally a plain buffered file; remotely one request (a ``Range`` from ``start``:
        a fetch cut short goes on from where it stopped).
        """
        ...

    def read_range(self, name: str, start: int, length: int) -> bytes:
        """``length`` bytes of ``name`` from byte ``start``; fewer only where the file
        ends first (as ``pread``)."""
        ...

    def read_bytes(self, name: str) -> bytes:
        """The whole file ``name`` (manifests, statistics, indexes: small files)."""
        ...

    def stat(self, name: str) -> Stat | None:
        """The file's size, or None when there is no such file.

        Raises
        ------
        StorageError
            Where ``name`` is a folder: a file was expected.
        """
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Sorted names of the files whose name starts with ``prefix`` (folders are not
        files; an object store has none)."""
        ...

    def staging(self, name: str) -> Path:
        """The local path to write the file ``name`` at before :meth:`publish` makes it
        ``name``: beside it in a folder (the same file system, so publishing is a
        rename); a local scratch file for a remote store (publishing uploads it)."""
        ...

    def publish(self, temporary: Path, name: str) -> None:
        """Make the finished local file ``temporary`` the file ``name``, atomically: a
        reader sees the whole file under ``name`` or none; ``temporary`` is gone after."""
        ...

    def remove(self, name: str) -> None:
        """Remove the file ``name``; nothing when it is not there."""
        ...


@dataclass(frozen=True)
class LocalStorage:
    """A folder on a local (or mounted) file system.

    Parameters
    ----------
    folder : Path
        The shard folder; it need not exist yet to be named (a build makes it).

    Examples
    --------
    >>> import tempfile
    >>> storage = LocalStorage(Path(tempfile.mkdtemp()))
    >>> _ = storage.path("a.bin").write_bytes(b"0123456789")
    >>> storage.read_range("a.bin", 2, 3), storage.stat("a.bin"), storage.list()
    (b'234', Stat(size=10), ['a.bin'])
    """

    folder: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))

    @property
    def url(self) -> str:
        """The folder's path."""
        return str(self.folder)

    def path(self, name: str) -> Path:
        """The file's real path, for code that needs one (memory maps, ``os.open``,
        libraries that open files themselves); local storage only. A name that would
        leave the folder is a :class:`~nishard.errors.StorageError` (:func:`check_name`)."""
        return self.folder / check_name(name, self.url)

    def join(self, name: str) -> str:
        """The file's path as a string, for messages."""
        return str(self.path(name))

    def open(self, name: str, start: int = 0) -> BinaryIO:
        """The file, open for reading from ``start`` (buffered; the caller closes it)."""
        try:
            handle = open(self.path(name), "rb")  # the caller closes it
        except FileNotFoundError as error:
            raise self._missing(name) from error
        handle.seek(start)
        return handle

    def read_range(self, name: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` by ``os.pread`` (no seek: safe from threads);
        fewer only where the file ends first."""
        if start < 0 or length < 0:
            raise ValueError(f"a range starts and lasts at least 0 bytes, got {start}, {length}")
        try:
            descriptor = os.open(self.path(name), os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError as error:
            raise self._missing(name) from error
        try:
            data = os.pread(descriptor, length, start)
            if len(data) == length or not data:
                return data
            # A short read that is not the end of the file (a signal, a network mount):
            # go on until the range is whole or the file ends.
            parts = [data]
            done = len(data)
            while done < length:
                more = os.pread(descriptor, length - done, start + done)
                if not more:
                    break
                parts.append(more)
                done += len(more)
            return b"".join(parts)
        finally:
            os.close(descriptor)

    def read_bytes(self, name: str) -> bytes:
        """The whole file."""
        try:
            return (self.path(name)).read_bytes()
        except FileNotFoundError as error:
            raise self._missing(name) from error
        except IsADirectoryError as error:
            raise self._folder(name) from error

    def stat(self, name: str) -> Stat | None:
        """The file's size; None when it is not there (nor is its folder)."""
        try:
            found = os.stat(self.path(name))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat_module.S_ISDIR(found.st_mode):
            raise self._folder(name)
        return Stat(size=found.st_size)

    def list(self, prefix: str = "") -> list[str]:
        """Sorted names of the folder's files that start with ``prefix``; a prefix with a
        ``/`` lists that sub-folder's files (names relative to this folder). Sub-folders
        themselves are not listed, nor their files otherwise; an absent folder lists
        nothing."""
        head, _, start = prefix.rpartition("/")
        where = self.path(head) if head else self.folder
        try:
            entries = list(os.scandir(where))
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = []
        for entry in entries:
            if entry.name.startswith(start) and entry.is_file():
                names.append(f"{head}/{entry.name}" if head else entry.name)
        return sorted(names)

    def staging(self, name: str) -> Path:
        """``<name>.tmp`` beside the file: the same file system, so publishing renames."""
        return self.folder / (name + ".tmp")

    def publish(self, temporary: Path, name: str) -> None:
        """Sync ``temporary`` to disk, rename it to ``name`` and sync the folder.

        The first sync is what makes the rename safe: after a power cut a renamed file
        must not name data that never reached the disk. The folder's sync makes the
        rename itself durable. ``temporary`` must be on the folder's file system
        (:meth:`staging` gives such a path).
        """
        final = self.path(name)
        sync(Path(temporary))
        os.replace(temporary, final)
        sync(final.parent)

    def remove(self, name: str) -> None:
        """Remove the file; nothing when it is not there."""
        (self.path(name)).unlink(missing_ok=True)

    def _missing(self, name: str) -> MissingFileError:
        return MissingFileError(f"no file {name!r} in {self.url}")

    def _folder(self, name: str) -> StorageError:
        return StorageError(f"{self.join(name)} is a folder; a file was expected")


@dataclass(frozen=True)
class HttpStorage:
    """A shard folder served over HTTP(S) (any static file server, a bucket's web
    endpoint): read-only, files by URL under ``base``.

    Whole files are plain ``GET`` requests; :meth:`read_range` sends a ``Range`` header
    (and slices the body of a server that ignores it). A server cannot be listed, and
    nothing can be written to it.

    Parameters
    ----------
    base : str
        The folder's URL, ``https://host/path/to/shards``.
    timeout : float
        Seconds to wait for a server's answer.
    """

    base: str
    timeout: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", self.base.rstrip("/"))

    @property
    def url(self) -> str:
        return self.base

    def join(self, name: str) -> str:
        from urllib.parse import quote

        return f"{self.base}/{quote(check_name(name, self.base))}"

    def _request(self, name: str, method: str = "GET", headers: dict | None = None):
        import urllib.error
        import urllib.request

        url = self.join(name)
        request = urllib.request.Request(url, method=method, headers=headers or {})
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise MissingFileError(f"{url}: no such file (HTTP 404)") from err
            if err.code >= 500 or err.code == 429:  # may answer when tried again
                raise StorageUnavailableError(f"{url}: HTTP {err.code} {err.reason}") from err
            if err.code in (401, 403):
                raise StorageError(f"{url}: access denied (HTTP {err.code} {err.reason})") from err
            raise StorageError(f"{url}: HTTP {err.code} {err.reason}") from err
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            why = getattr(err, "reason", err)
            raise StorageUnavailableError(f"{url}: cannot reach the server ({why})") from err

    def _body(self, name: str, headers: dict | None = None) -> tuple[Body, int]:
        response = self._request(name, headers=headers)
        announced = response.headers.get("Content-Length")
        length = int(announced) if announced and announced.isdigit() else None
        return Body(response, self.join(name), _NETWORK, length), response.status

    def open(self, name: str, start: int = 0) -> BinaryIO:
        if not start:
            return self._body(name)[0]  # type: ignore[return-value]
        body, status = self._body(name, {"Range": f"bytes={start}-"})
        if status == 200:  # a server without ranges sent the whole file: skip to start
            skipped = 0
            while skipped < start and (chunk := body.read(min(1 << 20, start - skipped))):
                skipped += len(chunk)
        return body  # type: ignore[return-value]

    def read_range(self, name: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        body, status = self._body(name, {"Range": f"bytes={start}-{start + length - 1}"})
        with body:
            data = body.read()
        if status == 200:  # the server sent the whole file
            return data[start : start + length]
        return data

    def read_bytes(self, name: str) -> bytes:
        with self._body(name)[0] as body:
            return body.read()

    def stat(self, name: str) -> Stat | None:
        try:
            with self._request(name, method="HEAD") as response:
                size = response.headers.get("Content-Length")
        except MissingFileError:
            return None
        if size is None:
            raise StorageError(f"{self.join(name)}: the server gives no Content-Length")
        return Stat(int(size))

    def list(self, prefix: str = "") -> list[str]:
        raise StorageError(f"{self.base}: an HTTP server does not list its files")

    def staging(self, name: str) -> Path:
        raise StorageError(f"{self.base}: an HTTP shard folder is read-only")

    def publish(self, temporary: Path, name: str) -> None:
        raise StorageError(f"{self.base}: an HTTP shard folder is read-only")

    def remove(self, name: str) -> None:
        raise StorageError(f"{self.base}: an HTTP shard folder is read-only")


@dataclass(frozen=True)
class S3Storage:
    """A shard folder in an S3 bucket (AWS or any S3-compatible store: SeaweedFS, MinIO,
    Ceph), through boto3.

    Endpoint and credentials come the standard AWS way: ``AWS_ENDPOINT_URL`` (or
    ``AWS_ENDPOINT_URL_S3``), ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, config
    files, profiles (``AWS_PROFILE``). Where none gives credentials, requests go unsigned
    (public buckets, such as OpenNeuro's). ``endpoint_url`` and ``profile`` set them for
    this folder alone, for two stores used at once (the ``storage_options`` of a spec's
    output, of :func:`nishard.stream.open` and of ``write``).

    Parameters
    ----------
    bucket : str
    prefix : str
        The folder's key prefix, without a trailing ``/`` (``""``: the bucket's root).
    endpoint_url : str, optional
        The store's endpoint (``http://host:8333``); default: the environment's, else AWS.
    profile : str, optional
        A profile of the AWS config files, for this folder's credentials and endpoint.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    profile: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", self.prefix.strip("/"))
        try:  # here, not at the first request: each method imports botocore's errors
            import boto3  # noqa: F401
            import botocore  # noqa: F401
        except ImportError as err:
            raise StorageError(
                f"{self.url}: s3:// folders need boto3: pip install 'nishard[s3]'"
            ) from err

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def join(self, name: str) -> str:
        return f"{self.url}/{check_name(name, self.url)}"

    def _key(self, name: str) -> str:
        check_name(name, self.url)
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def endpoint(self) -> str:
        """The endpoint the requests go to, for messages."""
        return str(_s3_client(self.endpoint_url, self.profile).meta.endpoint_url)

    def _call(self, name: str, method: str, **options):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(_s3_client(self.endpoint_url, self.profile), method)(
                Bucket=self.bucket, Key=self._key(name), **options
            )
        except ClientError as err:
            # A HEAD answers 404 without a body for a missing bucket as for a missing
            # key: the bucket asked, so that a missing one is said.
            if _code(err) in _MISSING and method == "head_object" and not self._has_bucket():
                raise self._no_bucket() from err
            raise self.failure(err, name) from err
        except BotoCoreError as err:
            raise self.failure(err, name) from err

    def _has_bucket(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            _s3_client(self.endpoint_url, self.profile).head_bucket(Bucket=self.bucket)
        except ClientError as err:
            if _code(err) in _MISSING | {"NoSuchBucket"}:
                return False
            raise self.failure(err, None) from err
        except BotoCoreError as err:
            raise self.failure(err, None) from err
        return True

    def _no_bucket(self) -> StorageError:
        return StorageError(f"{self.url}: no bucket {self.bucket!r} at {self.endpoint}")

    def failure(self, err: Exception, name: str | None) -> StorageError:
        """The nishard error of a failed request about the file ``name`` (None: the
        folder), naming what failed: the object, the bucket, or the endpoint that refused
        the credentials (never the credentials themselves). A connection error or an
        answer that the store is unavailable is a
        :class:`~nishard.errors.StorageUnavailableError`: worth another try."""
        from botocore.exceptions import ClientError

        where = self.url if name is None else self.join(name)
        if isinstance(err, ClientError):
            code = _code(err)
            status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code == "NoSuchBucket":
                return self._no_bucket()
            if code in _MISSING and name is not None:
                return MissingFileError(f"{where}: no such object (key {self._key(name)!r} in "
                                        f"bucket {self.bucket!r} at {self.endpoint})")  # fmt: skip
            if code in _REFUSED or status in (401, 403):
                why = _REFUSED.get(code, "access denied")
                hint = _credentials_hint(self.endpoint_url, self.profile)
                return StorageError(
                    f"{where}: {self.endpoint} refused the request ({code}: {why}); {hint}"
                )
            if code in _UNAVAILABLE or status >= 500:
                return StorageUnavailableError(f"{where}: {self.endpoint} answered {code} "
                                               f"(HTTP {status}): unavailable for now")  # fmt: skip
            message = err.response.get("Error", {}).get("Message") or str(err)
            return StorageError(f"{where}: {code or 'S3 error'} from {self.endpoint}: {message}")
        if isinstance(err, _transient()):
            return StorageUnavailableError(f"{where}: cannot reach {self.endpoint} ({err})")
        return StorageError(f"{where}: {type(err).__name__}: {err}")

    def open(self, name: str, start: int = 0) -> BinaryIO:
        ranged = {"Range": f"bytes={start}-"} if start else {}
        body = self._call(name, "get_object", **ranged)["Body"]
        return Body(body, self.join(name), _network())  # type: ignore[return-value]

    def read_range(self, name: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        body = self._call(name, "get_object", Range=f"bytes={start}-{start + length - 1}")["Body"]
        with Body(body, self.join(name), _network()) as whole:
            return whole.read()

    def read_bytes(self, name: str) -> bytes:
        with Body(self._call(name, "get_object")["Body"], self.join(name), _network()) as body:
            return body.read()

    def stat(self, name: str) -> Stat | None:
        try:
            return Stat(int(self._call(name, "head_object")["ContentLength"]))
        except MissingFileError:
            return None

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        base = f"{self.prefix}/" if self.prefix else ""
        pages = _s3_client(self.endpoint_url, self.profile).get_paginator("list_objects_v2")
        try:
            keys = [item["Key"] for page in pages.paginate(Bucket=self.bucket, Prefix=base + prefix)
                    for item in page.get("Contents", ())]  # fmt: skip
        except (ClientError, BotoCoreError) as err:
            raise self.failure(err, None) from err
        return sorted(key[len(base) :] for key in keys)

    def staging(self, name: str) -> Path:
        import tempfile

        scratch = Path(tempfile.gettempdir()) / "nishard-s3-staging"
        scratch.mkdir(exist_ok=True)
        return scratch / f"{os.getpid()}-{check_name(name, self.url).replace('/', '_')}"

    def publish(self, temporary: Path, name: str) -> None:
        """Upload (multipart for large files, which S3 makes visible only when complete)
        and remove the local file. An upload stopped by a crash leaves its parts on the
        store, invisible, until :meth:`abort_uploads`."""
        self._upload(temporary, name, None)
        temporary.unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        self._call(name, "delete_object")

    def put_file(self, path: Path, name: str, sha256: str) -> None:
        """Upload a local file as ``name``, its sha256 (hex) stored as object metadata
        (what :meth:`checksum` reads back); the local file stays."""
        self._upload(path, name, {"Metadata": {"sha256": sha256}})

    def _upload(self, path: Path, name: str, extra: dict | None) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            _s3_client(self.endpoint_url, self.profile).upload_file(
                str(path), self.bucket, self._key(name), ExtraArgs=extra
            )
        except S3UploadFailedError as err:
            # boto3 raises it while handling the request's ClientError: that says why.
            cause = err.__context__
            if isinstance(cause, ClientError):
                raise self.failure(cause, name) from err
            raise StorageError(f"{self.join(name)}: upload failed ({err})") from err
        except (ClientError, BotoCoreError) as err:
            raise self.failure(err, name) from err

    def checksum(self, name: str) -> tuple[int, str | None] | None:
        """Size and the sha256 metadata of the object ``name`` (one HEAD request), or
        None when there is none."""
        try:
            head = self._call(name, "head_object")
        except MissingFileError:
            return None
        return int(head["ContentLength"]), head.get("Metadata", {}).get("sha256")

    def abort_uploads(self) -> int:
        """Abort the multipart uploads left incomplete under the folder's prefix (by a
        crash, a killed process or a lost connection: the store keeps their parts, unseen
        and billed, until they are aborted); their number.

        Every upload under the prefix is aborted: call it before publishing a folder, not
        while another process publishes to it.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        client = _s3_client(self.endpoint_url, self.profile)
        prefix = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            uploads = [(u["Key"], u["UploadId"]) for page in pages for u in page.get("Uploads", ())]
        except (ClientError, BotoCoreError) as err:
            raise self.failure(err, None) from err
        for key, upload in uploads:
            try:
                client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            except ClientError as err:
                if _code(err) != "NoSuchUpload":  # aborted or completed meanwhile
                    raise self.failure(err, key[len(prefix) :]) from err
            except BotoCoreError as err:
                raise self.failure(err, key[len(prefix) :]) from err
        return len(uploads)


#: S3 error codes of a missing object (a HEAD's 404 has no body, hence no name).
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})

#: S3 error codes of refused credentials or permissions, and what each means.
_REFUSED = {
    "InvalidAccessKeyId": "the access key is not known there",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is not valid",
    "TokenRefreshRequired": "the session token must be refreshed",
    "AccessDenied": "access denied",
    "AllAccessDisabled": "access to the bucket is disabled",
    "403": "access denied",
    "401": "unauthorized",
}

#: S3 error codes of a store that may answer when asked again.
_UNAVAILABLE = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling",
    "ThrottlingException", "500", "502", "503", "504",
})  # fmt: skip


def _code(err) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _credentials_hint(endpoint_url: str | None, profile: str | None = None) -> str:
    """What to check when a store refuses a request: where credentials come from, and
    whether any were found (without them, requests go unsigned)."""
    from botocore import UNSIGNED

    signed = _s3_client(endpoint_url, profile).meta.config.signature_version is not UNSIGNED
    found = "" if signed else "no AWS credentials were found, so the request was unsigned; "
    return (f"{found}credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or the AWS config files")  # fmt: skip


def _transient() -> tuple[type[Exception], ...]:
    """botocore's errors of a request that did not get an answer (refused, dropped or timed
    out connections, a body cut short): another try may succeed."""
    from botocore.exceptions import ConnectionError, HTTPClientError, IncompleteReadError

    return ConnectionError, HTTPClientError, IncompleteReadError


def _network() -> tuple[type[Exception], ...]:
    """The errors of reading an S3 response's body that a lost connection raises."""
    return (*_transient(), *_NETWORK)


#: The errors of reading an HTTP response's body that a lost connection raises.
_NETWORK = (OSError, http.client.HTTPException)


class Body:
    """A response body, read as a file, whose connection errors are
    :class:`~nishard.errors.StorageUnavailableError` naming the file and how far the read
    had come (a connection dropped mid-transfer is worth another try; a reader must not
    see a half-read file as whole).

    Parameters
    ----------
    body
        The response: ``read(n)`` and ``close()``.
    where : str
        The file's URL, for messages.
    errors : tuple of exception types
        What a lost connection raises while reading.
    length : int, optional
        The bytes the response announced: a body that ends before is a dropped
        connection too (a plain HTTP response may end short without an error).
    """

    def __init__(self, body, where: str, errors: tuple[type[Exception], ...],
                 length: int | None = None):  # fmt: skip
        self.body, self.where, self.errors, self.length, self.done = body, where, errors, length, 0

    def readinto(self, view: memoryview) -> int:
        """Read up to ``len(view)`` bytes into ``view``; 0 at the end.

        Straight from the connection into ``view`` where the response is a plain
        ``http.client`` one underneath (urllib's; botocore's urllib3 response when the
        body is not content-encoded), which saves the copy through a new ``bytes``
        that :meth:`read` costs (about 0.07 of the 0.25 CPU seconds a GB of receiving a
        shard, measured once here on ``benchmarks/remote.py``'s server and data). What
        urllib3 or botocore would check on the way (the length) the caller checks, and
        the manifest's checksums after.
        """
        direct = _plain_response(self.body)
        if direct is None:
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        try:
            got = direct.readinto(view)
        except self.errors as err:
            raise self._dropped(err) from err
        self.done += got
        # http.client ends a response cut short quietly (0 bytes), its announced length
        # not reached: a dropped connection all the same.
        if not got and len(view) and direct.length:
            raise StorageUnavailableError(
                f"{self.where}: the connection dropped after {self.done} bytes "
                f"({direct.length} more were announced)"
            )
        return got

    def read(self, size: int = -1) -> bytes:
        whole = size is None or size < 0
        try:
            data = self.body.read() if whole else self.body.read(size)
        except self.errors as err:
            raise self._dropped(err) from err
        self.done += len(data)
        ended = whole or (size > 0 and not data)
        if ended and self.length is not None and self.done < self.length:
            raise StorageUnavailableError(
                f"{self.where}: the connection closed after {self.done} of {self.length} bytes"
            )
        return data

    def _dropped(self, err: Exception) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"{self.where}: the connection dropped after {self.done} bytes "
            f"({type(err).__name__}: {err})"
        )

    def close(self) -> None:
        try:
            self.body.close()
        except self.errors:  # the connection is gone already
            pass

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _plain_response(body) -> http.client.HTTPResponse | None:
    """The ``http.client`` response under a body, when reading it directly is safe: the
    body itself (urllib), or the one under botocore's urllib3 response when the object
    is not content-encoded (urllib3 would decode it). None otherwise."""
    if isinstance(body, http.client.HTTPResponse):
        return body
    raw = getattr(body, "_raw_stream", None)  # botocore's StreamingBody
    plain = getattr(raw, "_fp", None)
    headers = getattr(raw, "headers", None)
    if not isinstance(plain, http.client.HTTPResponse) or headers is None:
        return None
    if headers.get("content-encoding", "identity").lower() != "identity":
        return None
    return plain


_S3_CLIENTS: dict = {}

#: Where boto3 finds credentials in the environment: a client made before one of them
#: changed must not be reused (its credentials were resolved when it was made).
_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                         "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
                         "AWS_CONFIG_FILE")  # fmt: skip


def _s3_client(endpoint_url: str | None, profile: str | None = None):
    """One boto3 client per endpoint, credentials and process (clients are thread-safe;
    a forked DataLoader worker makes its own). The endpoint boto3 would take from the
    environment, and the credential variables, are part of the key: a client made before
    they changed must not be reused. The credentials enter the key only as a hash, kept
    in memory.

    Requests that get no answer, or a 5xx, are retried by botocore (3 tries, ``standard``
    mode); the shard cache retries a whole fetch on top (:mod:`nishard.stream.mirror`).
    """
    environment = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    credentials = hashlib.sha256(
        "\0".join(os.environ.get(k, "") for k in _CREDENTIAL_VARIABLES).encode()
    ).hexdigest()
    key = (os.getpid(), endpoint_url, profile, environment, credentials)
    if key not in _S3_CLIENTS:
        try:
            import boto3
        except ImportError as err:
            raise StorageError("s3:// folders need boto3: pip install 'nishard[s3]'") from err
        from botocore import UNSIGNED
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound

        try:
            session = boto3.session.Session(profile_name=profile)
        except ProfileNotFound as err:
            raise StorageError(f"no AWS profile {profile!r} in the AWS config files") from err
        # A connection is made within seconds or not at all (refused, host down): a
        # shorter wait than botocore's 60 s keeps a retried fetch's total bounded.
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                        read_timeout=60)  # fmt: skip
        if session.get_credentials() is None:  # a public bucket: unsigned requests
            config = config.merge(Config(signature_version=UNSIGNED))
        _S3_CLIENTS[key] = session.client("s3", endpoint_url=endpoint_url, config=config)
    return _S3_CLIENTS[key]


def check_name(name: str, where: str = "the shard folder") -> str:
    """``name`` if it names a file inside a storage: relative, ``/``-separated, without
    ``.`` or ``..`` parts. A manifest is data a reader did not write: a shard named
    ``/etc/passwd`` or ``../other/x.tar`` must not be read.

    Raises
    ------
    StorageError
        Naming the name and the storage.
    """
    parts = name.split("/") if isinstance(name, str) else [""]
    if not name or "\\" in name or _DRIVE.match(name) or any(p in ("", ".", "..") for p in parts):
        raise StorageError(
            f"{name!r} in {where}: expected a file name inside it (relative, "
            "'/'-separated, without '.' or '..')"
        )
    return name


#: The options an ``s3://`` folder takes (:class:`S3Storage`).
S3_OPTIONS = ("endpoint_url", "profile")


def storage_for(
    location: str | os.PathLike | Storage, options: Mapping[str, Any] | None = None
) -> Storage:
    """The storage of a shard folder.

    Parameters
    ----------
    location : str, path-like or Storage
        A local folder, or the path to the ``manifest.json`` in one (its folder is the
        storage); a storage is returned as it is.
    options : mapping, optional
        Storage options of an ``s3://`` folder: ``endpoint_url``, ``profile``.

    Returns
    -------
    Storage

    Raises
    ------
    StorageError
        For the object stores not supported yet (``gs://``, ``az://``...).
        ``http://`` and ``https://`` give an :class:`HttpStorage`, ``s3://bucket/prefix``
        an :class:`S3Storage`.
    """
    if isinstance(location, Storage) and not isinstance(location, (str, os.PathLike)):
        return location
    text = os.fspath(location)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    scheme = _URL.match(text)
    if options and (scheme is None or scheme.group(1).lower() != "s3"):
        raise StorageError(f"{text}: storage options are for s3:// folders, got {dict(options)}")
    if scheme is not None and scheme.group(1).lower() in ("http", "https"):
        base = text.removesuffix("/" + _MANIFEST) if text.endswith("/" + _MANIFEST) else text
        return HttpStorage(base)
    if scheme is not None and scheme.group(1).lower() == "s3":
        bucket, _, prefix = text[len("s3://") :].partition("/")
        prefix = prefix.removesuffix(_MANIFEST) if prefix.endswith(_MANIFEST) else prefix
        unknown = sorted(set(options or {}) - set(S3_OPTIONS))
        if unknown:
            raise StorageError(
                f"{text}: storage options {unknown} unknown; an s3:// folder takes "
                f"{', '.join(S3_OPTIONS)}"
            )
        return S3Storage(bucket, prefix, **dict(options or {}))
    if scheme is not None and scheme.group(1).lower() in REMOTE_SCHEMES:
        raise StorageError(
            f"{text}: remote stores ({scheme.group(1).lower()}://) come with object storage "
            "support; for now a shard folder is a local (or mounted) folder"
        )
    path = Path(text)
    if path.name == _MANIFEST and not path.is_dir():
        path = path.parent
    return LocalStorage(path)


@contextmanager
def publishing(storage: Storage, name: str) -> Iterator[Path]:
    """The path to write the file ``name`` at (:meth:`Storage.staging`); published under
    its name when the block ends, removed when the block raises (a full disk leaves no
    temporary file behind)."""
    temporary = storage.staging(name)
    try:
        yield temporary
        storage.publish(temporary, name)
    finally:
        temporary.unlink(missing_ok=True)  # gone already once published


def sha256_of(storage: Storage, name: str, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a storage's file, read sequentially in 4 MiB chunks (as
    :func:`nishard.checksums.sha256_file` reads a path)."""
    digest = hashlib.sha256()
    with storage.open(name) as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk: a rename must not outlive the data
    it names after a power cut. Folders cannot be opened on Windows; skipped there."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
