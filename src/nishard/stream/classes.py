"""Text variables as class indices, for a loss function: ``.classes("diagnosis")``.

A build lists in its manifest, under ``classes``, the values of each variable whose
values are all text (missing ones aside), sorted, over the whole record table (every
split, quarantined records included): ``{"diagnosis": ["control", "patient"]}``. A label's
class index is its place in that list, so it is the same in every split, in every shard
task and for every executor, and a class that one split lacks keeps its index there.

:class:`ClassLabel` is one variable's list, with the names of Hugging Face ``datasets``'
``ClassLabel`` (``names``, ``num_classes``, ``str2int``, ``int2str``) and torchvision's
``class_to_idx``. :class:`Labels` is what a stream's :meth:`~nishard.stream.Stream.classes`
stage compiles into: the variables to encode and what a missing value becomes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import NishardError

#: A missing label's index by default: Hugging Face ``datasets``' convention (give
#: ``torch.nn.CrossEntropyLoss(ignore_index=-1)`` to leave such samples out of the loss).
MISSING = -1


class LabelError(NishardError, ValueError):
    """A sample's label that cannot be a class index: missing where ``missing="error"``,
    or a value the manifest's classes do not list (shards and manifest disagree)."""


@dataclass(frozen=True)
class ClassLabel:
    """One text variable's classes: index ``i`` is ``names[i]``.

    Attributes
    ----------
    name : str
        The variable.
    names : tuple of str
        Its values, sorted, as the manifest lists them.
    """

    name: str
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        names = tuple(self.names)
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise ValueError(f"classes of {self.name!r} are distinct strings, got {list(names)}")
        object.__setattr__(self, "names", names)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """``{name: index}``, as torchvision's datasets give it."""
        return {name: i for i, name in enumerate(self.names)}

    def str2int(self, value: str) -> int:
        """The index of class ``value``.

        Raises
        ------
        KeyError
            When ``value`` is not one of :attr:`names` (the message lists them).
        """
        try:
            return self._index[value]
        except (KeyError, TypeError):
            names = list(self.names)
            raise KeyError(f"{value!r} is not a class of {self.name!r}: {names}") from None

    def int2str(self, index: int) -> str:
        """The name of class ``index``.

        Raises
        ------
        IndexError
            When ``index`` is not in ``[0, num_classes)`` (e.g. the missing label).
        """
        if isinstance(index, bool) or not 0 <= int(index) < len(self.names):
            raise IndexError(f"class {index!r} of {self.name!r}: it has {len(self.names)}")
        return self.names[int(index)]

    @cached_property
    def _index(self) -> dict[str, int]:
        return self.class_to_idx


@dataclass(frozen=True)
class Labels:
    """Variables to return as int64 class indices, each under its own name.

    Attributes
    ----------
    classes : tuple of ClassLabel
    missing : int or None
        The index of a missing value (null or absent); None: a missing value is a
        :class:`LabelError`.
    """

    classes: tuple[ClassLabel, ...]
    missing: int | None = MISSING

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    def encode(
        self, label: ClassLabel, values: Sequence, where: Callable[[], Sequence[str]]
    ) -> np.ndarray:
        """The int64 indices of ``values``, one per sample; ``where()`` names each sample
        (its shard and key), called only for an error message.

        Raises
        ------
        LabelError
            A missing value where ``missing`` is None, or a value not among the classes.
        """
        out = np.empty(len(values), dtype=np.int64)
        for i, value in enumerate(values):
            if value is None:
                if self.missing is None:
                    raise LabelError(
                        f"{where()[i]}: {label.name!r} is missing, and the stream was asked for "
                        "classes(missing='error'); give missing=-1 (or another index) to keep it"
                    )
                out[i] = self.missing
                continue
            index = label._index.get(value) if isinstance(value, str) else None
            if index is None:
                raise LabelError(
                    f"{where()[i]}: {label.name!r} is {value!r}, not one of the manifest's "
                    f"classes {list(label.names)}: the shards and their manifest disagree"
                )
            out[i] = index
        return out


def class_labels(manifest: Mapping) -> dict[str, ClassLabel]:
    """Every text variable's :class:`ClassLabel`, from a manifest's ``classes``."""
    listed = manifest.get("classes") or {}
    return {name: ClassLabel(name, tuple(names)) for name, names in listed.items()}


def load_labels(
    folder: Path | str, manifest: Mapping, names: Sequence[str], missing: int | str
) -> Labels:
    """The :class:`Labels` of a :meth:`~nishard.stream.Stream.classes` stage.

    Parameters
    ----------
    folder : Path or str
        For error messages.
    manifest : mapping
    names : sequence of str
        The variables (empty: every one the manifest has classes for).
    missing : int or ``"error"``

    Raises
    ------
    KeyError
        A variable the manifest has no classes for (a number, or a manifest of version 1,
        which lists none); the message lists those it has.
    """
    every = class_labels(manifest)
    if not names and not every:
        raise KeyError(f"{folder}: the manifest lists no classes (no variable is text)")
    unknown = [n for n in names if n not in every]
    if unknown:
        version = manifest.get("upgraded_from") or manifest.get("format_version")
        why = " (a version 1 manifest lists none: rebuild)" if version == 1 else ""
        raise KeyError(
            f"{folder}: no classes for {unknown}{why}; the manifest lists classes for "
            f"{sorted(every)} (variables whose values are all text)"
        )
    chosen = tuple(every[n] for n in (names or sorted(every)))
    if missing == "error":
        return Labels(chosen, None)
    clash = [c.name for c in chosen if 0 <= int(missing) < c.num_classes]
    if clash:
        raise ValueError(
            f"missing={missing} is the index of a class of {clash}: a missing label would "
            "read as that class; give a negative index (default -1) or 'error'"
        )
    return Labels(chosen, int(missing))
