"""The tour as one self-contained HTML page: the same sections and numbers as the terminal, with figures.

:func:`tour_html` lays the page out; the pictures come from ``draw``, a function the caller passes that turns
a :class:`~qkv.article.tour_base.Figure` into SVG bytes (``qkv tour --html`` draws with
:mod:`qkv.render.figures`). Each picture is embedded as a ``data:`` URI, the style is inline: the page needs
no network and names no address, so it opens the same offline, from a mail attachment or a USB stick. The
style is a file beside this module (``static/tour.css``, package data), inlined into the page.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from functools import cache
from importlib import resources

from qkv.article.tour_base import Figure, Section, Tour

__all__ = ["style", "tour_html"]


@cache
def style() -> str:
    """The page's CSS, ``qkv/article/static/tour.css`` (package data), read once."""
    return (resources.files("qkv.article") / "static" / "tour.css").read_text(encoding="utf-8")


def tour_html(tour: Tour, draw: Callable[[Figure], bytes] | None = None) -> str:
    """The whole page. Without ``draw`` the figures are left out (the text is complete without them)."""
    seen: set[int] = set()
    headings = []
    bodies = []
    for number, section in enumerate(tour.sections):
        level = 3 if section.part in seen else 2  # a part's first section heads it; the rest sit below
        seen.add(section.part)
        anchor = f"s{number}"
        headings.append(f'<li><a href="#{anchor}">{html.escape(section.title)}</a></li>')
        bodies.append(_section(section, anchor, level, draw))
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(tour.lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(tour.title)}</title>\n<style>{style()}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{html.escape(tour.title)}</h1>\n"
        f"<pre>{html.escape(chr(10).join(tour.header))}</pre>\n"
        f"<nav><ol>{''.join(headings)}</ol></nav>\n" + "\n".join(bodies) + "\n</main>\n</body>\n</html>\n"
    )


def _section(section: Section, anchor: str, level: int, draw: Callable[[Figure], bytes] | None) -> str:
    parts = [f'<section id="{anchor}">', f"<h{level}>{html.escape(section.title)}</h{level}>"]
    if section.lines:
        parts.append(f"<pre>{html.escape(chr(10).join(section.lines))}</pre>")
    if draw is not None:
        for figure in section.figures:
            source = "data:image/svg+xml;base64," + base64.b64encode(draw(figure)).decode("ascii")
            caption = html.escape(figure.caption)
            parts.append(f'<figure><img src="{source}" alt="{caption}"><figcaption>{caption}</figcaption></figure>')
    parts.append("</section>")
    return "\n".join(parts)
