"""Chat templates: the Jinja text a chat model ships with, rendered as Hugging Face ``transformers`` renders it.

Same environment as ``apply_chat_template``: a sandbox (a template is data and may not reach Python), blocks
trimmed, loop controls, ``tojson`` and ``raise_exception``; the variables are ``messages``,
``add_generation_prompt`` and the special tokens (``bos_token``, ``eos_token`` …).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from qkv.errors import InputError

__all__ = ["ChatTemplateError", "Message", "as_messages", "render_chat"]

Message = Mapping[str, str]


class ChatTemplateError(InputError):
    """A chat template that cannot be rendered, or messages it refuses."""


def as_messages(messages: str | Sequence[Message]) -> list[dict[str, str]]:
    """One user message for a string; otherwise each message checked to have a text ``role`` and ``content``."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not all(
            isinstance(message.get(key), str) for key in ("role", "content")
        ):
            raise ChatTemplateError(
                f"message {index} must be a mapping with text 'role' and 'content', e.g. "
                f"{{'role': 'user', 'content': 'Hi'}}; got {message!r}"
            )
        checked.append(dict(message))
    if not checked:
        raise ChatTemplateError("no messages given; a chat needs at least one message")
    return checked


def _raise(message: str) -> None:
    raise ChatTemplateError(f"the chat template refused the messages: {message}")


def _tojson(value: Any, indent: int | None = None, separators: Any = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)


def render_chat(
    template: str,
    messages: str | Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    special_tokens: Mapping[str, str] | None = None,
) -> str:
    """The prompt text ``template`` makes of ``messages`` (ending with the assistant's turn opened when
    ``add_generation_prompt``)."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise
    environment.globals["strftime_now"] = lambda format: datetime.now().strftime(format)
    try:
        compiled = environment.from_string(template)
        return compiled.render(
            messages=as_messages(messages),
            add_generation_prompt=add_generation_prompt,
            tools=None,
            documents=None,
            **dict(special_tokens or {}),
        )
    except TemplateError as error:
        raise ChatTemplateError(f"the chat template cannot be rendered: {error}") from None
