"""qkv's error types (importable without PyTorch) and the validation helpers of the frozen configs."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ConfigError", "InputError", "ShapeError", "check_choice", "check_positive"]


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
