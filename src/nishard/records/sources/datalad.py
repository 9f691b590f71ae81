"""A DataLad dataset: clone if needed, then ``datalad get`` of only the files needed."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...errors import SpecError
from .base import EAGER, _cache_folder, _matches, _walk_files
from .options import _check_folder, _check_jobs, _patterns, _to_dict


@dataclass(frozen=True)
class DataLad:
    """A DataLad dataset: annexed content is got only for the staged files of kept records.

    In a DataLad dataset whose content is not present, every file is still in the tree, as
    a symbolic link into the annex that dangles until ``datalad get``: the scan finds them
    all by name. ``prepare`` gets the small files the scan reads (``eager``); ``fetch``
    gets exactly the staged files of the records the filters kept.

    Parameters
    ----------
    clone_to : str or None
        Clone the root (a URL or path that ``datalad clone`` takes) into this folder
        (``~`` expanded), or reuse the dataset installed there. None uses the root in
        place when it is a local folder, and otherwise clones it into
        ``$NISHARD_CACHE/datalad/<host>/<path>`` (``NISHARD_CACHE`` defaults to
        ``~/.cache/nishard``).
    eager : tuple of str
        The files ``prepare`` gets, as ``fnmatch`` patterns on their path relative to the
        root (``*`` also crosses ``/``); default :data:`EAGER`, as for :class:`Url`.
    jobs : int or None
        Parallel transfers, passed to ``datalad get``; None is its default.

    Notes
    -----
    Needs the ``datalad`` Python package and the ``git-annex`` program, imported and looked
    for only when the source is used. The root may be a folder inside a dataset (its
    ``derivatives/fmriprep``, say) and files may lie in installed subdatasets.
    """

    clone_to: str | None = None
    eager: tuple[str, ...] = EAGER
    jobs: int | None = None

    name: ClassVar[str] = "datalad"

    def __post_init__(self) -> None:
        object.__setattr__(self, "eager", _patterns(self.eager))
        _check_folder("clone_to", self.clone_to)
        _check_jobs(self.jobs)

    def to_dict(self) -> dict:
        return _to_dict(self)

    def prepare(self, root: str | Path) -> Path:
        """The dataset's folder (cloned first if need be), with the ``eager`` files got.

        Raises
        ------
        SpecError
            When datalad or git-annex is missing, the clone fails, or the folder is in no
            DataLad dataset.
        """
        api = _datalad_api()
        from datalad.utils import get_dataset_root

        text = str(root)
        local = Path(text).expanduser()
        if self.clone_to is None and local.is_dir():
            folder = local
        else:
            folder = (
                Path(self.clone_to).expanduser()
                if self.clone_to
                else _cache_folder("datalad", text)
            )
            if not api.Dataset(str(folder)).is_installed():
                self._clone(api, text, folder)
            else:
                _check_origin(api.Dataset(str(folder)), text)
        if not folder.is_dir() or get_dataset_root(str(folder.absolute())) is None:
            raise SpecError(f"datalad source: {folder} is not in a DataLad (git) dataset")
        wanted = [
            str(path)
            for path in _walk_files(folder)
            if _matches(path.relative_to(folder).as_posix(), self.eager)
        ]
        failures = self.fetch(wanted)
        if failures:
            shown = "; ".join(f"{path}: {why}" for path, why in list(failures.items())[:5])
            warnings.warn(
                f"datalad source: could not get {len(failures)} of the {len(wanted)} files "
                f"the scan reads, and runs that need them may be dropped: {shown}",
                stacklevel=2,
            )
        return folder

    def fetch(self, paths: Sequence[str]) -> dict[str, str]:
        """``datalad get`` the ``paths`` whose content is not present.

        One ``get`` a dataset for all its paths; never raises for a file that fails.

        Returns
        -------
        dict
            Path to the reason (DataLad's message) it could not be got.
        """
        # A dangling symlink is absent content; os.path.exists follows the link.
        missing = [path for path in paths if not os.path.exists(path)]
        if not missing:
            return {}
        api = _datalad_api()
        from datalad.utils import get_dataset_root

        reasons: dict[str, str] = {}
        by_dataset: dict[str, list[str]] = {}
        for path in missing:
            top = get_dataset_root(os.path.dirname(os.path.abspath(path)))
            if top is None:
                reasons[path] = "not in a DataLad dataset"
            else:
                by_dataset.setdefault(top, []).append(path)
        for top, group in by_dataset.items():
            messages: dict[str, str] = {}
            try:
                results = api.get(
                    path=group,
                    dataset=top,
                    jobs=self.jobs,
                    on_failure="ignore",
                    result_renderer="disabled",
                    result_xfm=None,
                    return_type="list",
                )
            except Exception as err:  # the whole call failed: every path gets why
                results = []
                messages = dict.fromkeys(map(os.path.abspath, group), str(err))
            for result in results:
                if result.get("status") in ("impossible", "error") and result.get("path"):
                    messages[os.path.abspath(result["path"])] = _datalad_message(result)
            for path in group:
                if not os.path.exists(path):
                    why = messages.get(os.path.abspath(path), "content not present after get")
                    reasons[path] = f"datalad get: {why}"
        return reasons

    def _clone(self, api, source: str, folder: Path) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        results = api.clone(
            source=source,
            path=str(folder),
            on_failure="ignore",
            result_renderer="disabled",
            result_xfm=None,  # the result records, not clone's default of the Dataset
            return_type="list",
        )
        failed = [r for r in results if r.get("status") in ("impossible", "error")]
        if failed or not api.Dataset(str(folder)).is_installed():
            why = "; ".join(_datalad_message(r) for r in failed) or "no dataset installed"
            raise SpecError(f"datalad source: could not clone {source} into {folder}: {why}")


def _datalad_api():
    """``datalad.api``, or a SpecError that says what to install."""
    import importlib.util

    if importlib.util.find_spec("datalad") is None:
        raise SpecError(
            "the datalad source needs the 'datalad' Python package: pip install datalad"
        )
    # Looked for before the import: importing datalad runs git, and fails obscurely without.
    for program in ("git", "git-annex"):
        if shutil.which(program) is None:
            raise SpecError(
                f"the datalad source needs the '{program}' program on PATH: install it with "
                f"your system's packages (apt-get install {program}) or conda (conda-forge)"
            )
    import datalad.api as api

    return api


def _check_origin(dataset, source: str) -> None:
    """Warn when a dataset reused from ``clone_to`` was cloned from somewhere else."""
    origin = dataset.config.get("remote.origin.url")
    if not origin:
        return
    local = "://" not in source and os.path.exists(source)
    same = (
        os.path.realpath(origin) == os.path.realpath(source)
        if local
        else origin.rstrip("/").removesuffix(".git") == source.rstrip("/").removesuffix(".git")
    )
    if not same:
        # A warning, not an error: one dataset has many spellings (a mirror, ssh or https).
        warnings.warn(
            f"datalad source: reusing {dataset.path}, cloned from {origin}, for {source}",
            stacklevel=3,
        )


def _datalad_message(result: dict) -> str:
    """A DataLad result's message: a string, or a (format, *args) tuple."""
    message = result.get("message") or result.get("status", "failed")
    if isinstance(message, (tuple, list)) and message:
        try:
            return str(message[0]) % tuple(message[1:])
        except (TypeError, ValueError):
            return " ".join(map(str, message))
    return str(message)
