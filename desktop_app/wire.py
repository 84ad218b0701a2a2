"""Typed replies: decoded JSON into small immutable objects, strict about what the contract says.

``parse(Shape, data)`` builds ``Shape`` (a Reply subclass, or ``list[Shape]``) from decoded
JSON. A field without a default is required: a reply without it, or with a value of the
wrong type (a string for an int, an unknown enum value ...), is a ReplyError, never a
guess. Fields the sender adds later are ignored, so a newer server or agent does not break
this storefront. Neither pydantic nor dataclasses: building ~40 such classes at import
costs them 60-200 ms, on the UI thread, at every start; a Reply class costs nothing until
its first parse (on a worker thread).
"""
from __future__ import annotations

import inspect
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar, Self, dataclass_transform

_MISSING = object()


class ReplyError(Exception):
    """An answer that is not the contract: a field missing or of the wrong type."""

    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem
        from PySide6.QtCore import QCoreApplication
        self.user_message = QCoreApplication.translate(
            "ReplyError", "An answer was not understood (the parts of TokenRent on this computer and the "
                          "server do not speak the same version). Please update the app.")


@dataclass_transform(kw_only_default=True, frozen_default=True)
class Reply:
    """A reply shape: annotated fields (a class attribute is the default of an optional one).
    Immutable once built; equal when of one class with equal fields. (Type checkers read the
    subclasses as frozen keyword-only dataclasses: dataclass_transform.)"""

    __fields__: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = tuple(n for n in inspect.get_annotations(cls) if not n.startswith("_"))
        cls.__fields__ = tuple(dict.fromkeys((*cls.__fields__, *own)))

    def __init__(self, **values: Any) -> None:
        for name in self.__fields__:
            if name in values:
                value = values.pop(name)
            else:
                value = getattr(type(self), name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{type(self).__name__}: {name} is required")
                if isinstance(value, (list, dict)):
                    value = type(value)(value)   # a default is never shared between replies
            object.__setattr__(self, name, value)
        if values:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(values)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is a reply: it does not change")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in self.__fields__)

    __hash__ = None  # type: ignore[assignment]   # mutable lists inside: not hashable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__fields__)})"

    def replace(self, **changes: Any) -> Self:
        return type(self)(**{**{n: getattr(self, n) for n in self.__fields__}, **changes})


def parse(shape: Any, data: Any, where: str = "") -> Any:
    """``data`` as ``shape``; ReplyError names the first field that does not fit."""
    return _convert(shape, data, where or _name(shape))


def dump(value: Any) -> Any:
    """A reply back to JSON-ready data (the library cache stores replies this way)."""
    if isinstance(value, Reply):
        return {n: dump(getattr(value, n)) for n in value.__fields__}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def field_names(shape: type[Reply]) -> tuple[set[str], set[str]]:
    """(every field, the required ones) of a reply shape: for the contract tests."""
    return set(shape.__fields__), {n for n in shape.__fields__ if not hasattr(shape, n)}


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(shape: type) -> dict[str, Any]:
    """The resolved field types of a reply shape, worked out once (on first parse)."""
    hints = _HINTS.get(shape)
    if hints is None:
        hints = _HINTS[shape] = typing.get_type_hints(shape)
    return hints


def _name(shape: Any) -> str:
    return getattr(shape, "__name__", str(shape))


def _convert(shape: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(shape)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(shape)
        if data is None and type(None) in options:
            return None
        real = [o for o in options if o is not type(None)]
        if len(real) == 1:
            return _convert(real[0], data, where)
        raise ReplyError(where, "unsupported union")          # not used by our shapes
    if origin is list:
        if not isinstance(data, list):
            raise ReplyError(where, f"expected a list, got {type(data).__name__}")
        (item,) = typing.get_args(shape)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:   # a JSON object with string keys, e.g. the agent's kid -> member map
        if not isinstance(data, dict):
            raise ReplyError(where, f"expected an object, got {type(data).__name__}")
        key, item = typing.get_args(shape)
        if key is not str:
            raise ReplyError(where, "unsupported type: object keys are strings")
        return {str(k): _convert(item, v, f"{where}[{k!r}]") for k, v in data.items()}
    if isinstance(shape, type) and issubclass(shape, Reply):
        if not isinstance(data, dict):
            raise ReplyError(where, f"expected an object, got {type(data).__name__}")
        hints, values = _hints(shape), {}
        for name in shape.__fields__:
            if name in data:
                values[name] = _convert(hints[name], data[name], f"{where}.{name}")
            elif not hasattr(shape, name):
                raise ReplyError(f"{where}.{name}", "missing")
        return shape(**values)
    if isinstance(shape, type) and issubclass(shape, Enum):
        try:
            return shape(data)
        except ValueError:
            raise ReplyError(where, f"{data!r} is not one of {[m.value for m in shape]}") from None
    if shape is datetime:
        return _datetime(data, where)
    if shape is Any:
        return data
    if shape is float:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
    elif shape in (int, str, bool):
        if type(data) is shape:
            return data
    else:
        raise ReplyError(where, f"unsupported type {shape!r}")
    raise ReplyError(where, f"expected {shape.__name__}, got {type(data).__name__} {data!r:.40}")


def _datetime(data: Any, where: str) -> datetime:
    if not isinstance(data, str):
        raise ReplyError(where, f"expected an RFC 3339 time, got {type(data).__name__}")
    try:
        value = datetime.fromisoformat(data)       # 3.11+: "Z" included
    except ValueError:
        raise ReplyError(where, f"{data!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise ReplyError(where, f"{data!r} has no UTC offset")
    return value.astimezone(UTC)
