"""Registries: the primitives a spec names, found by name and built from their dicts.

Every kind of primitive a YAML spec names (schemas, tables, filters, sources, transforms,
formats, split strategies, executors, fusion heuristics) is a :class:`Registry` of
classes by name, with the same two verbs: :meth:`Registry.register` makes a class known
(as a decorator or a call) and :meth:`Registry.from_dict` builds an instance from the
dict its ``to_dict()`` gives, so that ``registry.from_dict(x.to_dict()) == x``::

    from dataclasses import dataclass
    from typing import ClassVar

    from nishard.records import FILTERS

    @FILTERS.register
    @dataclass(frozen=True)
    class Adults:
        name: ClassVar[str] = "adults"
        age: float = 18.0

        def to_dict(self): return {"name": self.name, "age": self.age}

    FILTERS.from_dict({"name": "adults", "age": 21})  # Adults(age=21)

A registry is read like the dict it replaces (``FILTERS["where"]``, ``"where" in
FILTERS``, iteration in registration order). The dict shapes are those the spec has
always had: ``{name: NAME, option: value}`` for most kinds (``{table: NAME, ...}`` for
tables, ``{executor: NAME, ...}`` for executors), ``{NAME: {option: value}}`` for
transforms.

The helpers below (:func:`as_mapping`, :func:`as_list`, :func:`required`,
:func:`known_keys`, :func:`not_one_of`) are the checks every reader of a spec section
shares, so that a slip is reported the same way wherever it stands: the key or value, its
place, and a close match (:func:`did_you_mean`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .errors import SpecError

_MISSING = object()


class Registry(Mapping[str, type]):
    """Classes of one kind by the name a spec gives them.

    Parameters
    ----------
    kind : str
        What the classes are, for error messages: ``"schema"``, ``"format"``...
    classes : iterable of type
        Classes to register now, each under its ``name`` attribute.
    key : str or None
        The key of the dict shape that holds the name (``"name"``, ``"table"``,
        ``"executor"``); None for the one-key shape ``{NAME: {option: value}}``.
    default : str, optional
        The name taken when the dict has no ``key`` (tables: ``participants``).
    check : callable, optional
        Called with each class before it is registered; raises when the class is not
        one of this kind (formats check their methods and extension).
    """

    def __init__(
        self,
        kind: str,
        classes: Iterable[type] = (),
        *,
        key: str | None = "name",
        default: str | None = None,
        check: Callable[[type], None] | None = None,
    ) -> None:
        self.kind, self.key, self.default, self.check = kind, key, default, check
        self._classes: dict[str, type] = {}
        for cls in classes:
            self.register(cls)

    # The Mapping protocol: a registry reads as the dict of classes it replaces.
    def __getitem__(self, name: str) -> type:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._classes)})"

    def register(
        self, cls: type | None = None, *, name: str | None = None, replace: bool = False
    ) -> Any:
        """Make ``cls`` known by ``name`` (default: its ``name`` class attribute).

        Usable as ``@registry.register``, ``@registry.register(replace=True)`` or a call,
        ``registry.register(cls)``. Registering the same class under the same name again
        changes nothing.

        Parameters
        ----------
        cls : type, optional
            The class; omitted, a decorator is returned.
        name : str, optional
            The name a spec gives it; by default ``cls.name``. A spec written back uses the
            class's own ``to_dict()``, so another name reads but does not round-trip.
        replace : bool
            Allow replacing another class registered under the same name.

        Returns
        -------
        type
            ``cls`` itself (or, without ``cls``, a decorator that returns it).

        Raises
        ------
        ValueError
            When the name is taken by another class (and ``replace`` is false), or is not
            a non-empty string.
        TypeError
            When ``check`` refuses the class.
        """
        if cls is None:
            return lambda cls: self.register(cls, name=name, replace=replace)
        if self.check is not None:
            self.check(cls)
        name = getattr(cls, "name", None) if name is None else name
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"{cls.__name__}: a {self.kind} is registered by a name (a non-empty string "
                f"given as name= or as the class attribute name), got {name!r}"
            )
        known = self._classes.get(name)
        if known is not None and known is not cls and not replace:
            raise ValueError(
                f"a {self.kind} named {name!r} is registered already ({known}); "
                "pass replace=True to replace it"
            )
        self._classes[name] = cls
        return cls

    def pop(self, name: str, default: Any = _MISSING) -> Any:
        """Forget a registration (a test's or a plugin's); ``default`` when there is none."""
        if default is _MISSING:
            return self._classes.pop(name)
        return self._classes.pop(name, default)

    def from_dict(self, spec: Mapping | str, *, where: str | None = None) -> Any:
        """An instance from its dict (what its ``to_dict()`` gives), every key checked.

        Parameters
        ----------
        spec : mapping or str
            ``{key: NAME, option: value}`` (``{NAME: {option: value}}`` for a registry
            whose ``key`` is None), or just ``NAME`` for the defaults. Lists become tuples,
            as frozen dataclasses hold them.
        where : str, optional
            Where the dict stands in a spec (``"input.schema"``, ``"transforms[2]"``),
            to start the errors with; by default the registry's kind.

        Returns
        -------
        object
            The registered class built with the options.

        Raises
        ------
        SpecError
            When the name is unknown (naming a close match and the known names), an option
            is not a parameter of the class (naming a close match and the parameters), or
            the class refuses a value (its message, after ``where``).
        """
        place = where or self.kind
        if self.key is None:  # {NAME: {option: value}}
            spec = {spec: {}} if isinstance(spec, str) else as_mapping(spec, place)
            if len(spec) != 1:
                raise SpecError(f"{place} must name one {self.kind}, got {list(spec)}")
            [(name, options)] = spec.items()
            self._known(name, f"{self.kind} at {where}" if where else self.kind)
            at = f"{where}.{name}" if where else f"{self.kind} {name}"
            return build(self._classes[name], dict(as_mapping(options or {}, at)), at)
        spec = {self.key: spec} if isinstance(spec, str) else dict(as_mapping(spec, place))
        name = spec.pop(self.key, self.default)
        # The name key is the entry itself when written as a plain string (``schema: bids``),
        # so an unknown name stands where the entry does; any other key stands under it.
        self._known(name, (where if self.key == "name" else f"{where}.{self.key}") if where
                    else self.kind)  # fmt: skip
        return build(self._classes[name], spec, where or f"{self.kind} {name}")

    def _known(self, name: Any, where: str) -> None:
        if not isinstance(name, str) or name not in self._classes:
            raise SpecError(unknown_name(name, self, where))


def parameters(cls: type) -> tuple[str, ...]:
    """The options a class takes from a spec: a dataclass's fields, or the keyword
    parameters of its constructor."""
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    signature = inspect.signature(cls)
    return tuple(p.name for p in signature.parameters.values() if p.kind in kinds)


def build(cls: type, options: Mapping, where: str) -> Any:
    """``cls(**options)`` with every key and every scalar option's type checked.

    Raises
    ------
    SpecError
        An unknown key (with a close match), a value of the wrong scalar type, or the
        class's own ``TypeError``/``ValueError``, each after ``where``.
    """
    known_keys(options, parameters(cls), where)
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    try:
        instance = cls(**options)
    except (TypeError, ValueError, AttributeError) as err:
        raise SpecError(f"{where}: {err}") from err
    if dataclasses.is_dataclass(cls):
        for option in dataclasses.fields(cls):
            _check_type(getattr(instance, option.name), option.type, f"{where}.{option.name}")
    return instance


def did_you_mean(given: Any, choices: Iterable[Any]) -> str:
    """`` (did you mean 'simple'?)`` with the choice closest to what was given, or ``""``
    when none is close: the one suggestion of every name, key and enumerated value."""
    hint = difflib.get_close_matches(str(given), [str(choice) for choice in choices], n=1)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def unknown_name(name: Any, names: Iterable[str], where: str) -> str:
    """The message for a name that is not registered: a close match, then the known ones."""
    names = list(names)
    return f"unknown {where} '{name}'{did_you_mean(name, names)}; known: {', '.join(sorted(names))}"


def not_one_of(what: str, value: Any, choices: Iterable[Any], also: str = "") -> str:
    """The message for an enumerated option whose value is none of ``choices``:
    ``filter one of butterworth, fft, cosine or None; got 'fft2' (did you mean 'fft'?)``.

    ``also`` is said after the choices (``" or None"``) and never suggested.
    """
    choices = list(choices)
    listed = ", ".join(map(str, choices))
    return f"{what} one of {listed}{also}; got {value!r}{did_you_mean(value, choices)}"


def known_keys(section: Mapping, allowed: tuple[str, ...], where: str) -> None:
    """Refuse a key of ``section`` that is not ``allowed``, naming it and a close match."""
    for key in section:
        if key not in allowed:
            maybe = did_you_mean(key, allowed)
            expected = f"expected one of {', '.join(allowed)}" if allowed else "it takes none"
            raise SpecError(f"unknown key '{key}' in {where}{maybe}; {expected}")


def as_mapping(value: Any, where: str) -> dict:
    """``value`` if it is a mapping (a YAML section), else a SpecError saying what it is."""
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a mapping, got {type(value).__name__}: {value!r}")
    return value


def as_list(value: Any, where: str) -> list:
    """``value`` if it is a list, else a SpecError saying what it is."""
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list, got {type(value).__name__}: {value!r}")
    return value


def required(section: Mapping, key: str, where: str) -> Any:
    """``section[key]``, which must be there and not empty."""
    if section.get(key) in (None, ""):
        raise SpecError(f"missing key '{key}' in {where}")
    return section[key]


_SCALARS = {"int": int, "float": float, "bool": bool, "str": str, "None": type(None)}


def _check_type(value: Any, annotation: Any, where: str) -> None:
    """Catch the YAML slips that dataclasses let through: a string where a number goes.

    Annotations of scalar unions (``float | None``, ``bool | int``) are checked; any other
    annotation is left to the class's own validation.
    """
    if not isinstance(annotation, str):
        return
    parts = [part.strip() for part in annotation.split("|")]
    if not all(part in _SCALARS for part in parts):
        return
    # YAML has no int/float distinction a user can be expected to mind: 1 is a valid float.
    allowed = tuple(_SCALARS[p] for p in parts) + ((int,) if "float" in parts else ())
    bool_ok = "bool" in parts
    if (isinstance(value, bool) and not bool_ok) or not isinstance(value, allowed):
        kinds = " or ".join("null" if p == "None" else "true/false" if p == "bool" else
                            {"int": "an integer", "float": "a number", "str": "a string"}[p]
                            for p in parts)  # fmt: skip
        raise SpecError(f"{where} must be {kinds}, got {value!r}")
