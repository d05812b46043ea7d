"""The tour's words, in English and Spanish: one table of templates per language, with the same keys.

Templates are :meth:`str.format` strings; the numbers in them are formatted before they go in (by
:func:`qkv.article.tour_base.num` and friends), the same way in both languages. The texts were written for
this project; they retell the article's ideas, not its words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from qkv.article.messages_en import MESSAGES as ENGLISH
from qkv.article.messages_es import MESSAGES as SPANISH
from qkv.errors import InputError

__all__ = ["LANGS", "TABLES", "Lang", "Messages", "messages"]

Lang = Literal["en", "es"]
LANGS: tuple[Lang, ...] = ("en", "es")
TABLES: Mapping[Lang, Mapping[str, str]] = {"en": ENGLISH, "es": SPANISH}


class Messages:
    """``say("part1.title")`` or ``say("part1.row", word="dog", before="+0.057")``: one language's texts."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang
        self._table = TABLES[lang]

    def __call__(self, key: str, **values: object) -> str:
        return self._table[key].format(**values)


def messages(lang: str) -> Messages:
    """The texts of ``lang`` (``"en"`` or ``"es"``); any other language is a ``ValueError`` naming the choices."""
    for known in LANGS:
        if lang == known:
            return Messages(known)
    raise InputError(f"the tour speaks {' and '.join(LANGS)}, not {lang!r}")
