"""The guard around every request: the ``Host`` check, the security headers, and the last-resort 500.

* **Host**: a page on any website can make the browser send requests to ``127.0.0.1`` under a name it controls
  (DNS rebinding); the browser then sends that name in ``Host``. Only the names the server was started for are
  answered (loopback names by default); anything else is a 400.
* **Headers** on every response: ``Content-Security-Policy: default-src 'self'`` (the page can load nothing
  from anywhere else, and nothing inline), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer``, ``X-Frame-Options: DENY``. No CORS header is ever sent: other origins cannot read answers.
* **Unexpected errors** become a 500 with a one-line message and are counted (tests assert none happen); the
  traceback goes to the log, never to the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SECURITY_HEADERS", "Guard", "host_name"]

CSP = "default-src 'self'"
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_log = logging.getLogger("qkv.serve")


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port: ``localhost:8750`` → ``localhost``, ``[::1]:80`` → ``::1``."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware: checks ``Host``, adds the security headers, and turns an unexpected error into a 500."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: tuple[str, ...] | None, unexpected: Callable[[], None]) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {host.lower() for host in allowed_hosts}
        self.unexpected = unexpected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed is not None:
            host = host_name(Headers(scope=scope).get("host", ""))
            if host not in self.allowed:
                shown = host[:60] or "(none)"
                await _error(send, 400, f"this server answers only to {', '.join(sorted(self.allowed))}, not {shown}")
                return
        started = False

        async def secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name for name, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS]}
            await send(message)

        try:
            await self.app(scope, receive, secured)
        except Exception as error:
            _log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            self.unexpected()
            if started:
                raise
            await _error(send, 500, f"internal error: {type(error).__name__}: {' '.join(str(error).split())[:300]}")


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
