"""User-facing errors: the CLI prints their message on one line and exits non-zero, without a traceback."""

from __future__ import annotations

from qkv.errors import InputError

__all__ = ["UserError", "resolve_index"]


class UserError(InputError):
    """A mistake in the user's input; the message names the problem and the fix."""


def resolve_index(flag: str, value: int, count: int, things: str) -> int:
    """``value`` as an index among ``count`` ``things``, counting from the end when negative (``-1``: the last,
    as in Python), the same for every flag that picks a layer or a head; else one line naming the range."""
    if not -count <= value < count:
        raise UserError(
            f"{flag} {value} is out of range; this model has {things} 0…{count - 1} (or -{count}…-1 from the end)"
        )
    return value % count
