"""What a server is allowed to do: its limits, the hosts it answers to and where the user's runs are.

Plain data (no Starlette, no PyTorch): ``qkv serve`` builds a :class:`ServeConfig` from its flags before
anything heavy is imported.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LANGUAGES", "LOOPBACK_HOSTS", "Limits", "ServeConfig", "allowed_hosts_for", "is_loopback"]

#: The languages of the page and the article's texts.
LANGUAGES = ("en", "es")

#: The names a browser on this machine uses for a server bound to the loopback interface.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Limits:
    """Every input the API takes is bounded by one of these; going over is a one-line 4xx."""

    text_chars: int = 4000  # characters of a text to trace or a prompt
    tokens: int = 512  # tokens of a text to trace or a prompt (and never more than the model's context)
    build_words: int = 32  # words of the Build view's sentence
    generate_tokens: int = 256  # new tokens per generation
    max_temperature: float = 5.0
    max_top_k: int = 1000
    nearest_k: int = 50  # words /api/nearest returns at most
    exclude_words: int = 64  # words /api/nearest may be told to leave out
    body_bytes: int = 64 * 1024  # a request's JSON body
    cached_traces: int = 8  # traces kept for /head, /qk and /export (least recently used dropped first)
    cached_bytes: int = 512 * 1024**2  # and the bytes they may hold together

    def public(self) -> dict[str, Any]:
        """The limits the page needs to know (``GET /api/models``)."""
        return {
            "text_chars": self.text_chars,
            "tokens": self.tokens,
            "build_words": self.build_words,
            "generate_tokens": self.generate_tokens,
        }


@dataclass(frozen=True)
class ServeConfig:
    """``runs``: a folder whose training runs are offered as ``run:<name>``; ``allowed_hosts``: the ``Host``
    header values the server answers (``None``: any, when it listens on every interface)."""

    runs: Path | None = None
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS
    limits: Limits = field(default_factory=Limits)
    smollm2_dtype: str = "int4"  # the 4-bit blocks of the GGUF: the fastest way qkv runs SmolLM2
    threads: int | None = 1  # PyTorch's threads in the worker (None: PyTorch's default; see serve.models.Worker)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(bind: str) -> tuple[str, ...] | None:
    """The ``Host`` values a server bound to ``bind`` answers: loopback names (the guard against DNS
    rebinding), the bound name itself when it is not one, or any host when bound to every interface."""
    if is_loopback(bind):
        return LOOPBACK_HOSTS
    try:
        if ipaddress.ip_address(bind.strip("[]")).is_unspecified:  # 0.0.0.0 or ::
            return None
    except ValueError:
        pass
    return (*LOOPBACK_HOSTS, bind.strip("[]").lower())
