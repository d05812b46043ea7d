"""The front end that the explorer and the pages qkv writes share: files, and the function that inlines them.

``static/`` (package data) holds the JavaScript modules that draw the same things everywhere — a heatmap canvas
through viridis (``heatmap.js``, ``viridis.js``), the layer × head grid of thumbnails (``grid.js``), a hovered
token's lines (``lines.js``), small DOM helpers (``dom.js``), message templates (``words.js``) — the
self-contained trace view built from them (``trace_view.js``, ``trace_view.css``), and the words of both
languages (``i18n/en.json``, ``i18n/es.json``).

The explorer (``qkv serve``) serves these files under ``/static/`` beside its own, as ES modules. A page that
must open from ``file://`` (``qkv attend --format html``, ``qkv tour --html``, a notebook) cannot load modules,
so it carries them inlined as one classic script: :func:`inline_script` (in :mod:`qkv.web.inline`). This
package sits below every layer that writes or serves a page and imports nothing of qkv: it is data, plus the
few lines that read and inline it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from qkv.web.inline import InlineError, inline_script, module_order

__all__ = ["LANGUAGES", "InlineError", "inline_script", "module_order", "read", "words"]

LANGUAGES = ("en", "es")  # the languages of i18n/*.json


@cache
def read(name: str) -> str:
    """The text of ``static/<name>`` (package data), read once."""
    return (resources.files("qkv.web") / "static" / name).read_text(encoding="utf-8")


@cache
def _table(lang: str) -> dict[str, str]:
    table: dict[str, str] = json.loads(read(f"i18n/{lang}.json"))
    return table


def words(lang: str, prefix: str) -> dict[str, str]:
    """The message templates of ``lang`` (one of :data:`LANGUAGES`) whose key starts with ``prefix``."""
    if lang not in LANGUAGES:
        raise ValueError(f"no words in {lang!r}; the languages are {', '.join(LANGUAGES)}")
    return {key: text for key, text in _table(lang).items() if key.startswith(prefix)}
