"""The tour as one self-contained HTML page: the same sections and numbers as the terminal, with figures.

:func:`tour_html` lays the page out; the pictures come from ``draw``, a function the caller passes that turns
a :class:`~qkv.article.tour_base.Figure` into SVG bytes (``qkv tour --html`` draws with
:mod:`qkv.render.figures`). Each picture is embedded as a ``data:`` URI, the style is inline: the page needs
no network and names no address, so it opens the same offline, from a mail attachment or a USB stick.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable

from qkv.article.tour_base import Figure, Section, Tour

__all__ = ["STYLE", "tour_html"]

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; background: #fff; }
h1 { font-size: 1.45rem; margin: 0.2rem 0 0.8rem; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 0.4rem; border-bottom: 2px solid #c0392b; padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin: 1.6rem 0 0.3rem; color: #2c5d8f; }
pre { font: 13px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; white-space: pre-wrap;
  background: #f4f4f4; border-radius: 4px; padding: 0.6rem 0.8rem; margin: 0.3rem 0; overflow-x: auto; }
nav ol { columns: 2; margin: 0.4rem 0 0; padding-left: 1.3rem; font-size: 0.93rem; }
nav a, nav a:visited { color: #2c5d8f; text-decoration: none; }
figure { margin: 0.8rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; margin-top: 0.2rem; }
"""


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
        f"<title>{html.escape(tour.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
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
