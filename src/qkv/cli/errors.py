"""User-facing errors: the CLI prints their message on one line and exits non-zero, without a traceback."""

from __future__ import annotations

from qkv.errors import InputError

__all__ = ["UserError"]


class UserError(InputError):
    """A mistake in the user's input; the message names the problem and the fix."""
