"""qkv's error types (importable without PyTorch) and the validation helpers of the frozen configs."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = [
    "ConfigData",
    "ConfigError",
    "InputError",
    "ShapeError",
    "check_choice",
    "check_positive",
    "check_types",
]


class InputError(ValueError):
    """Input a user can fix (a config, a shape, a file, a checkpoint); the message names the problem and the fix.

    The command line prints the message on one line and exits non-zero, without a traceback.
    """


class ConfigError(InputError):
    """A configuration value is invalid; the message names ``Config.field`` and what would be valid."""


class ShapeError(InputError):
    """A tensor's shape does not fit what the operation needs; the message names every shape involved."""


def check_positive(config: str, field: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{config}.{field} must be a positive integer, got {value!r}")


def check_choice(config: str, field: str, value: object, choices: Iterable[object]) -> None:
    options = tuple(choices)
    if value not in options:
        listed = ", ".join(repr(c) for c in options)
        raise ConfigError(f"{config}.{field}={value!r} is not one of {listed}")


def _accepts(annotation: object, value: object) -> bool:
    """Whether ``value`` fits a config field's annotation (int, float, bool, str, Literal, X | None)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(option, value) for option in typing.get_args(annotation))
    if origin is typing.Literal:  # the value itself is checked by check_choice, with the choices listed
        return any(type(value) is type(choice) for choice in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def check_types(config: object) -> None:
    """Raise :class:`ConfigError` naming the first field whose value has the wrong type (e.g. from JSON)."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, field.name)
        if not _accepts(hints[field.name], value):
            hint = hints[field.name]
            expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            raise ConfigError(f"{type(config).__name__}.{field.name}={value!r} has the wrong type; expected {expected}")


ConfigT = TypeVar("ConfigT", bound="ConfigData")


class ConfigData:
    """Mixin for the frozen config dataclasses: to and from plain data (JSON), refusing unknown fields."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[ConfigT], data: Mapping[str, Any]) -> ConfigT:
        """Build from plain data (e.g. parsed JSON); an unknown field is named, with the known ones."""
        known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__} has no field {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)
