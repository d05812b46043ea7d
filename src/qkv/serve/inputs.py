"""Reading a request: a bounded JSON body, typed fields with ranges, path numbers; every mistake one line.

Each check raises :class:`RequestError` (an :class:`~qkv.errors.InputError`) carrying its HTTP status; the app
turns it into ``{"error": "…"}`` with that status. Nothing here trusts a type: JSON's ``true`` is not a number,
``1.5`` is not an integer, ``NaN`` is not a temperature.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request

from qkv.errors import InputError

__all__ = [
    "Busy",
    "NotFound",
    "RequestError",
    "TooLarge",
    "bool_field",
    "check_known",
    "float_field",
    "int_field",
    "path_int",
    "read_json",
    "string_field",
    "string_list_field",
    "text_field",
]


class RequestError(InputError):
    """A request the server refuses; ``status`` is the HTTP status it answers with (400 unless said)."""

    status = 400


class NotFound(RequestError):
    status = 404


class TooLarge(RequestError):
    status = 413


class Busy(RequestError):
    status = 429


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request's body as a JSON object, refused past ``limit`` bytes (without reading further)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge(f"the request body is over {limit // 1024} KB; send less")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise TooLarge(f"the request body is over {limit // 1024} KB; send less")
    except ClientDisconnect:
        raise RequestError("the client went away while sending the request") from None
    if not body:
        raise RequestError("the request has no body; send a JSON object")
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RequestError(f"the body is not valid JSON ({message})") from None
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_known(body: Mapping[str, Any], known: tuple[str, ...]) -> None:
    """Refuse a field the endpoint does not take (a typo would otherwise be silently ignored)."""
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise RequestError(f"unknown field {unknown[0][:40]!r}; this endpoint takes {', '.join(known)}")


def string_field(body: Mapping[str, Any], name: str, *, max_chars: int, default: str | None = None) -> str:
    value = body.get(name, default)
    if value is None:
        raise RequestError(f'"{name}" is missing; give a string')
    if not isinstance(value, str):
        raise RequestError(f'"{name}" must be a string, got {_kind(value)}')
    if len(value) > max_chars:
        raise RequestError(f'"{name}" is {len(value):,} characters long; the limit is {max_chars:,}')
    return value


def text_field(body: Mapping[str, Any], name: str, *, max_chars: int) -> str:
    """A text to run through a model: a string of at most ``max_chars`` characters, not only whitespace."""
    value = string_field(body, name, max_chars=max_chars)
    if not value.strip():
        raise RequestError(f'"{name}" is empty; give at least one word')
    return value


def int_field(body: Mapping[str, Any], name: str, *, low: int, high: int, default: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError(f'"{name}" must be an integer from {low} to {high}, got {_kind(value)}')
    if not low <= value <= high:
        raise RequestError(f'"{name}" must be from {low} to {high}, got {value}')
    return value


def float_field(body: Mapping[str, Any], name: str, *, low: float, high: float, default: float) -> float:
    value = body.get(name, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise RequestError(f'"{name}" must be a number from {low:g} to {high:g}, got {_kind(value)}')
    if not (math.isfinite(value) and low <= value <= high):
        raise RequestError(f'"{name}" must be from {low:g} to {high:g}, got {value:g}')
    return float(value)


def bool_field(body: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise RequestError(f'"{name}" must be true or false, got {_kind(value)}')
    return value


def string_list_field(
    body: Mapping[str, Any], name: str, *, max_items: int, max_chars: int, default: tuple[str, ...] = ()
) -> list[str]:
    value = body.get(name, list(default))
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RequestError(f'"{name}" must be a list of strings, got {_kind(value)}')
    if len(value) > max_items:
        raise RequestError(f'"{name}" holds {len(value)} items; the limit is {max_items}')
    if any(len(item) > max_chars for item in value):
        raise RequestError(f'every item of "{name}" must be at most {max_chars} characters')
    return value


_INTEGER = re.compile(r"-?[0-9]{1,9}")


def path_int(value: str, name: str) -> int:
    """A number in the URL's path (``/head/3/5``)."""
    if not _INTEGER.fullmatch(value):
        raise RequestError(f"{name} must be an integer, got {value[:20]!r}")
    return int(value)


def _kind(value: Any) -> str:
    """How a wrong value is named in a message: its JSON type, and the value when it is short."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}
    names[dict] = "an object"
    if value is None:
        return "null"
    kind = names.get(type(value), type(value).__name__)
    shown = json.dumps(value)[:24] if isinstance(value, (bool, int, float)) else ""
    return f"{kind} {shown}".rstrip()
