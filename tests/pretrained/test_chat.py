"""Chat templates render in a sandbox, as transformers renders them; bad messages and templates are one error."""

from __future__ import annotations

import pytest

from qkv.pretrained.chat import ChatTemplateError, render_chat

TEMPLATE = (
    "{% for message in messages %}{{ bos_token }}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def test_a_string_is_one_user_message_and_special_tokens_are_variables() -> None:
    assert render_chat(TEMPLATE, "Hi", special_tokens={"bos_token": "<s>"}) == "<s>user: Hi\nassistant:"


def test_blocks_are_trimmed_as_in_transformers() -> None:
    template = "{% for m in messages %}\n    {% if m %}\n{{ m['content'] }}\n    {% endif %}\n{% endfor %}"
    assert render_chat(template, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "a\nb\n"


def test_tojson_and_loop_controls_are_available() -> None:
    template = "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m | tojson }}{% endfor %}"
    two = [{"role": "user", "content": "é"}, {"role": "user", "content": "x"}]
    assert render_chat(template, two) == '{"role": "user", "content": "é"}'


@pytest.mark.parametrize(
    ("template", "messages", "message"),
    [
        (TEMPLATE, [{"role": "user"}], r"message 0 must be a mapping with text 'role' and 'content'"),
        (TEMPLATE, [], r"no messages given"),
        ("{{ raise_exception('only user turns') }}", "Hi", r"refused the messages: only user turns"),
        ("{% for %}", "Hi", r"cannot be rendered"),
        ("{{ messages.__class__.__mro__ }}", "Hi", r"cannot be rendered"),  # the sandbox keeps Python out
    ],
)
def test_bad_messages_and_templates_are_one_clear_error(template: str, messages: object, message: str) -> None:
    with pytest.raises(ChatTemplateError, match=message):
        render_chat(template, messages)  # type: ignore[arg-type]
