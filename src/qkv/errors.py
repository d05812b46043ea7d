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
    "TooLargeError",
    "check_choice",
    "check_positive",
    "check_seed",
    "check_text",
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


class TooLargeError(InputError):
    """A model, batch or table would need more memory than the machine has free; refused before allocating.

    The message gives the estimate, what is free, and what to make smaller.
    """


#: Random seeds PyTorch takes: 0 … 2⁶⁴ − 1.
SEED_LIMIT = 2**64


def check_seed(where: str, value: object) -> None:
    """A seed PyTorch can take (an integer in 0 … 2⁶⁴ − 1), else an error naming ``where``."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{where} must be a whole number from 0 to 2**64 - 1, got {value!r}")


def check_text(what: str, text: str, error: type[InputError] = InputError) -> None:
    """Refuse (with ``error``) text that is not valid Unicode: lone surrogates, which is how Python carries bytes
    that were not UTF-8 (in a command-line argument, a file name, an environment variable) and which no encoder
    accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as failure:
        position = failure.start
        code = ord(text[position])
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte that could not be decoded
            found = f"the byte 0x{code - 0xDC00:02x} at character {position} is not UTF-8"
        else:
            found = f"it holds the lone surrogate U+{code:04X} at character {position}"
        raise error(f"{what} is not valid UTF-8 text: {found}; give UTF-8 text") from None


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
