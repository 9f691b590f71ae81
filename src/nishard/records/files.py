"""Listing a dataset's files fast: one ``os.scandir`` pass, no stat of regular files."""

from __future__ import annotations

import os
from collections.abc import Iterator


def walk(root: str, prefix: str = "", named_folders: bool = False) -> Iterator[str]:
    """Relative paths (``/``-separated) of every file and symlink under ``root``.

    Parameters
    ----------
    root : str
        Folder to list.
    prefix : str
        Only descend into top-level folders whose name starts with it (``"sub-"``), so
        that derivatives, code and source folders beside the subjects are skipped; files
        at the top level (dataset-level sidecars, participants.tsv) are always listed.
    named_folders : bool
        Below the top level, list a folder named like a file (a dot in its name, as in
        ``x_bold.nii.gz``) with a trailing ``/`` instead of descending into it: in a
        BIDS tree it stands where a file should be, and the schema says so.

    Raises
    ------
    ValueError
        When a folder cannot be listed (permissions, I/O error), naming it.

    Notes
    -----
    Symlinks are listed whether or not they resolve: in a DataLad dataset, files whose
    content is not fetched yet are broken symlinks, and they are still records.

    The order is the names' own (each folder's entries sorted), not the order the file
    system lists them in, which differs between file systems and copies of one dataset:
    what is made of the list does not depend on where the dataset lies.
    """
    for relative, names in walk_folders(root, prefix, named_folders):
        for name in names:
            yield relative + name


def walk_folders(
    root: str, prefix: str = "", named_folders: bool = False
) -> Iterator[tuple[str, list[str]]]:
    """What :func:`walk` lists, a folder at a time: its path and its entries' names.

    Each item is ``(relative, names)``: the folder relative to ``root`` (``""`` for the
    root itself, else ending in ``/``) and, sorted, the names of its files and symlinks,
    and of its folders named like files (with a trailing ``/``, when ``named_folders``);
    folders come in the order of their paths' parts. ``relative + name`` is what
    :func:`walk` yields, in the same order; a caller that handles most names by their
    folder and name alone builds no path for them. Parameters and errors as :func:`walk`.
    """
    stack = [("", root)]
    while stack:
        relative, folder = stack.pop()
        names: list[str] = []
        below: list[tuple[str, str]] = []  # subfolders, pushed once sorted
        try:
            # One pass, each entry asked once whether it is a folder (from the listing's
            # own d_type: no stat), as the plainest walk does; most folders of a dataset
            # hold files only, so the folder branch is the rare one.
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        names.append(entry.name)
                        continue
                    name = entry.name
                    if name.startswith("."):
                        continue  # .git, .datalad: tools' own folders, never data
                    if named_folders and relative and "." in name:
                        names.append(name + "/")
                    elif relative or name.startswith(prefix):
                        below.append((f"{relative}{name}/", entry.path))
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone since it was listed
        except OSError as err:
            # Its runs cannot be known, so they cannot be counted as dropped: stop rather
            # than index the dataset without them.
            raise ValueError(
                f"cannot list {folder} ({type(err).__name__}: {err.strerror}): the runs in "
                "it would be missed; make it readable (or move it out of the dataset)"
            ) from err
        # Sorted: the file system's own order differs between file systems and copies,
        # and a folder's few dozen names cost far less to sort than to list.
        names.sort()
        if below:  # most folders hold files only
            below.sort(reverse=True)  # popped, so the first in order is listed first
            stack += below
        yield relative, names
