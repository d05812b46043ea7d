"""The tour as one self-contained HTML page: the same sections and numbers as the terminal, with figures.

:func:`tour_html` lays the page out; the figures come from functions the caller passes, since the renderers sit
above this layer (``qkv tour --html`` passes :mod:`qkv.render.figures` and :mod:`qkv.render.html`):

- ``draw`` turns a :class:`~qkv.article.tour_base.Figure` into SVG bytes, embedded as a ``data:`` URI;
- ``views`` (:class:`Views`) turns it into an interactive view: the explorer's layer × head grid of thumbnails,
  a hovered token's lines and the heatmap canvas through viridis, drawn by the front end's modules inlined as one
  classic script (:mod:`qkv.web`). The picture is what the view shows where scripts do not run; once the view
  runs, the picture stays a click away, folded under it.

The style is inline: the page needs no network and names no address, so it opens the same offline, from a mail
attachment or a USB stick. The page's own style is a file beside this module (``static/tour.css``, package data);
the views' style and script come with ``views``, written once however many figures there are.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from qkv.article.tour_base import Figure, Section, Tour

__all__ = ["Views", "style", "tour_html"]


@cache
def style() -> str:
    """The page's CSS, ``qkv/article/static/tour.css`` (package data), read once."""
    return (resources.files("qkv.article") / "static" / "tour.css").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Views:
    """Interactive figures: ``fragment(figure, picture)`` is the figure's view as HTML, without style or script,
    showing ``picture`` (HTML, or ``None`` for none) where scripts do not run; ``style`` (CSS) and ``script``
    (one classic script that sets up every view above it) are what all views share, written once in the page."""

    fragment: Callable[[Figure, str | None], str]
    style: str
    script: str


def tour_html(tour: Tour, draw: Callable[[Figure], bytes] | None = None, views: Views | None = None) -> str:
    """The whole page. Without ``draw`` and ``views`` the figures are left out (the text is complete without
    them); with ``views`` each figure is an interactive view (its picture from ``draw`` shown without scripts)."""
    seen: set[int] = set()
    headings = []
    bodies = []
    for number, section in enumerate(tour.sections):
        level = 3 if section.part in seen else 2  # a part's first section heads it; the rest sit below
        seen.add(section.part)
        anchor = f"s{number}"
        headings.append(f'<li><a href="#{anchor}">{html.escape(section.title)}</a></li>')
        bodies.append(_section(section, anchor, level, draw, views))
    view_style = f"<style>{views.style}</style>\n" if views else ""
    view_script = f"<script>{views.script}</script>\n" if views else ""
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(tour.lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{html.escape(tour.title)}</title>\n<style>{style()}</style>\n{view_style}</head>\n<body>\n<main>\n"
        f"<h1>{html.escape(tour.title)}</h1>\n"
        f"<pre>{html.escape(chr(10).join(tour.header))}</pre>\n"
        f"<nav><ol>{''.join(headings)}</ol></nav>\n" + "\n".join(bodies) + f"\n</main>\n{view_script}</body>\n</html>\n"
    )


def _section(
    section: Section, anchor: str, level: int, draw: Callable[[Figure], bytes] | None, views: Views | None
) -> str:
    parts = [f'<section id="{anchor}">', f"<h{level}>{html.escape(section.title)}</h{level}>"]
    if section.lines:
        parts.append(f"<pre>{html.escape(chr(10).join(section.lines))}</pre>")
    for figure in section.figures:
        caption = html.escape(figure.caption)
        picture = None
        if draw is not None:
            source = "data:image/svg+xml;base64," + base64.b64encode(draw(figure)).decode("ascii")
            picture = f'<img src="{source}" alt="{caption}">'
        shown = views.fragment(figure, picture) if views is not None else picture
        if shown is not None:
            parts.append(f"<figure>{shown}<figcaption>{caption}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)
