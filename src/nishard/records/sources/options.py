"""The options the remote sources share: their checks, and a source as a spec gives it."""

from __future__ import annotations

from dataclasses import asdict


def _to_dict(source) -> dict:
    """A source as a spec gives it: its name, then its options as plain YAML values (lists,
    not tuples), leaving out Nones."""
    options = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in asdict(source).items()
        if value is not None
    }
    return {"name": source.name, **options}


def _patterns(eager: object) -> tuple[str, ...]:
    """The ``eager`` option as a tuple of patterns: a list as a tuple, a str as one pattern.

    Parameters
    ----------
    eager : object
        The value given.

    Returns
    -------
    tuple of str

    Raises
    ------
    ValueError
        When it is no list, tuple or str of patterns.
    """
    if isinstance(eager, list):
        eager = tuple(eager)
    if isinstance(eager, str):
        eager = (eager,)
    if not isinstance(eager, tuple) or not all(isinstance(p, str) for p in eager):
        raise ValueError(f"eager must be a list of patterns, got {eager!r}")
    return eager


def _check_folder(option: str, value: object) -> None:
    """Refuse a folder option that is neither None nor a str (a path)."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{option} must be a folder, got {value!r}")


def _check_jobs(jobs: object) -> None:
    """Refuse a number of parallel transfers below 1 (None and the default pass)."""
    if isinstance(jobs, int) and jobs < 1:
        raise ValueError(f"jobs must be 1 or more, got {jobs}")
