"""Sources: where a dataset's files come from, made local before and after locating.

A source is a primitive with two steps around ``locate``: :meth:`prepare` turns the root
the user gave into a local folder to scan (nothing to do for local files; a download or a
clone for remote ones), and :meth:`fetch` makes the staged files of the records kept by the
filters present on disk (``datalad get`` of only those files, say). A file that cannot be
fetched drops its record with the reason; the others go on.

Sources: :class:`Local` (the default), :class:`Url` (HTTP(S) with a listing of the files,
mirrored into a cache with checksums), :class:`S3` (a bucket's listing, mirrored the same
way) and :class:`DataLad` (``datalad get`` of only the files needed).
"""

from ...registry import Registry
from .base import EAGER, Local, Source
from .datalad import DataLad
from .listing import ListedFile, format_listing, parse_listing, write_listing
from .s3 import S3
from .url import Url

#: Sources by the name a YAML spec gives them.
SOURCES: Registry = Registry("source", (Local, Url, DataLad, S3))

__all__ = [
    "EAGER",
    "S3",
    "SOURCES",
    "DataLad",
    "ListedFile",
    "Local",
    "Source",
    "Url",
    "format_listing",
    "parse_listing",
    "write_listing",
]  # fmt: skip
