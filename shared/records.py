"""Frozen records for the values the package builds itself (settings, outcomes, events, field
problems): stdlib dataclasses with the few pydantic-style methods the code calls on them.

Why not pydantic models: importing pydantic and building its models cost a cold instance about
60 ms, nearly all of our cold-start overhead (``bench/cold_start.py``). Values we construct
need no validation; what comes from outside is validated where it enters (``shared.validation``
for requests, ``shared.config`` for settings). pydantic still reads these dataclasses when it is
loaded anyway: for the JSON Schemas (``shared.schema_export``), where ``field(metadata=...)``
carries each field's description, and on the paths that validate with it.

The methods mirror pydantic's semantics where the code or its callers rely on them:
``model_dump`` (python or json mode; ``exclude_none`` applies to record fields, not to the
contents of free-form dicts), ``model_dump_json`` (compact, UTF-8, UTC as ``Z``),
``model_copy(update=...)`` (no re-validation) and ``model_validate`` for records we wrote
ourselves (a ledger entry), each class naming how its non-JSON fields are read back.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_: Any) -> Any:
        return lambda decorated: decorated

R = TypeVar("R", bound="Record")
T = TypeVar("T")
Mode = Literal["python", "json"]
Readers = Mapping[str, Callable[[Any], Any]]

MASK = "**********"


class SecretValue(Protocol):
    """What reads a secret needs: ours (``Secret``) or pydantic's ``SecretStr``."""

    def get_secret_value(self) -> str: ...


class Secret:
    """A secret string that prints masked, like pydantic's ``SecretStr`` (which is accepted
    wherever a secret is read: both have ``get_secret_value``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return MASK if self._value else ""

    def __eq__(self, other: object) -> bool:
        getter = getattr(other, "get_secret_value", None)
        return callable(getter) and getter() == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)


def described(description: str, default: Any = None) -> Any:
    """A field with a default and the description pydantic puts in the JSON Schema."""
    return dataclasses.field(default=default, metadata={"description": description})


def iso(value: datetime) -> str:
    """A datetime as pydantic writes it in JSON: ISO 8601, UTC as ``Z``."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _jsonable(value: Any, mode: Mode, exclude_none: bool) -> Any:
    if isinstance(value, Record):
        return value._dump(mode, exclude_none, ())
    if mode == "python":
        if isinstance(value, list):
            return [_jsonable(item, mode, exclude_none) for item in value]
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Secret) or type(value).__name__ == "SecretStr":
        return str(value)
    if isinstance(value, dict):
        return {key: _jsonable(item, mode, exclude_none) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, mode, exclude_none) for item in value]
    return value


_VALUE_METHODS = ("__init__", "__setattr__", "__delattr__", "_values", "__eq__", "__hash__",
                  "__repr__")
_MISSING = dataclasses.MISSING
# Per class: the positional fields' names, then (name, default, default_factory) of every field.
_InitPlan = tuple[tuple[str, ...], tuple[tuple[str, Any, Any], ...]]


def _value_class(cls: type[T], *, kw_only: bool) -> type[T]:
    for name in _VALUE_METHODS:
        if name not in cls.__dict__:
            setattr(cls, name, Record.__dict__[name])
    return dataclasses.dataclass(init=False, kw_only=kw_only, repr=False, eq=False)(cls)


def _init_plan(cls: type) -> _InitPlan:
    plan: _InitPlan | None = cls.__dict__.get("_record_init_plan")
    if plan is None:
        items = [item for item in dataclasses.fields(cls) if item.init]
        plan = (tuple(item.name for item in items if not item.kw_only),
                tuple((item.name, item.default, item.default_factory) for item in items))
        type.__setattr__(cls, "_record_init_plan", plan)
    return plan


@dataclass_transform(kw_only_default=True, frozen_default=True,
                     field_specifiers=(dataclasses.field,))
def record(cls: type[R]) -> type[R]:
    """``@record``: a keyword-only dataclass whose instances cannot be changed once built.

    ``dataclasses.dataclass(frozen=True)`` compiles five methods per class (``__init__``,
    ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``...), about 0.5 ms a class and a
    third of our import time on a cold start; here none is compiled: all are ``Record``'s,
    shared by every class, with the same semantics (keyword arguments, defaults and factories,
    ``__post_init__``, value equality and hash, the dataclass repr, no assignment after
    ``__init__``).
    """
    return _value_class(cls, kw_only=True)


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(cls: type[T]) -> type[T]:
    """``@frozen``: ``@dataclass(frozen=True)`` built the cheap way of ``record`` (positional
    arguments allowed; no ``Record`` base needed)."""
    return _value_class(cls, kw_only=False)


class Record:
    """Base of ``@record`` classes (see the module docstring): value equality, a repr, a hash,
    no assignment after ``__init__`` (``@frozen`` classes borrow these methods)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The dataclass ``__init__``, written once for every class rather than compiled per
        class: arguments by field (positional ones for ``@frozen``), defaults and default
        factories, then ``__post_init__``."""
        positional, plan = _init_plan(type(self))
        if len(args) > len(positional):
            raise TypeError(f"{type(self).__qualname__}() takes {len(positional)} positional "
                            f"arguments but {len(args)} were given")
        given = dict(zip(positional, args, strict=False))
        for name, default, factory in plan:
            if name in given:
                if name in kwargs:
                    raise TypeError(f"{type(self).__qualname__}() got multiple values for "
                                    f"argument {name!r}")
                value = given[name]
            elif name in kwargs:
                value = kwargs.pop(name)
            elif default is not _MISSING:
                value = default
            elif factory is not _MISSING:
                value = factory()
            else:
                raise TypeError(f"{type(self).__qualname__}() missing required argument: "
                                f"{name!r}")
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__qualname__}() got an unexpected keyword argument "
                            f"{next(iter(kwargs))!r}")
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, item.name) for item in dataclasses.fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{item.name}={getattr(self, item.name)!r}"
                          for item in dataclasses.fields(self) if item.repr)  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({shown})"

    # How model_validate reads a field back from JSON: name -> converter (enum, datetime...).
    _readers: ClassVar[Readers] = {}

    def _dump(self, mode: Mode, exclude_none: bool, exclude: Iterable[str],
              include: Iterable[str] | None = None) -> dict[str, Any]:
        skip = set(exclude)
        only = None if include is None else set(include)
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            if item.name in skip or (only is not None and item.name not in only):
                continue
            value = getattr(self, item.name)
            if value is None and exclude_none:
                continue
            out[item.name] = _jsonable(value, mode, exclude_none)
        return out

    def model_dump(
        self, *, mode: Mode = "python", include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None, exclude_none: bool = False,
    ) -> dict[str, Any]:
        return self._dump(mode, exclude_none, exclude or (), include)

    def model_dump_json(self, *, exclude_none: bool = False) -> str:
        return json.dumps(self._dump("json", exclude_none, ()), ensure_ascii=False,
                          separators=(",", ":"))

    def model_copy(self: R, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> R:
        """A copy with ``update`` applied (``deep`` is accepted for pydantic's signature; the
        copy shares nested values, which are never mutated)."""
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]

    @classmethod
    def model_validate(cls: type[R], data: Mapping[str, Any]) -> R:
        """A record from its own ``model_dump(mode="json")``; unknown keys are ignored."""
        names = {item.name for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
        readers = cls._readers
        values = {
            key: (readers[key](value) if key in readers and value is not None else value)
            for key, value in data.items() if key in names
        }
        return cls(**values)

    @classmethod
    def model_validate_json(cls: type[R], raw: str | bytes) -> R:
        return cls.model_validate(json.loads(raw))


def read_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(
        str(value).replace("Z", "+00:00"))
