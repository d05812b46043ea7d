"""A trace as one self-contained HTML file: inline CSS and JavaScript, the weights inside, no network at all.

The page shows one head at a time, picked by a layer and a head menu ("mean" averages the heads):

- the tokens twice, in two columns, with a line from each token on the left to each token it attends to on
  the right, as thick and as opaque as the weight; hovering a token on the left keeps only its lines and
  writes the weights beside their targets, hovering one on the right shows who attends to it;
- a heatmap of the same weights (row: a token, column: the token it attends to), whose row and column
  headings highlight the same way (left out for texts over ``HEATMAP_LIMIT`` tokens);
- the head's entropy, attended distance, asymmetry and sink share (:mod:`qkv.data.metrics`).

:func:`trace_html` writes a whole page; :func:`trace_fragment` a ``<div>`` to embed. In a notebook,
``show(trace)`` as a cell's last line draws the fragment: it returns a :class:`TraceView`, whose
``_repr_html_`` Jupyter calls (CircuitsVis' pattern: the renderer owns the display, the trace stays plain data).
The weights travel as base64 float32, exactly as in the trace's JSON.

The view's CSS and JavaScript are files beside this module (``static/trace.css``, ``static/trace.js``: package
data, checked by ``node --check`` in the tests), inlined into every fragment so that a page needs no server and
no network. The script is a classic one (no ES modules, which a ``file://`` page cannot load) that sets up every
``div.qkv-trace`` on the page not yet set up: several views can share a page or a notebook.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import torch

from qkv.data.metrics import asymmetry as asymmetry_of
from qkv.data.metrics import attended_distance, entropy, relative_asymmetry, sink_share
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError

__all__ = ["HEATMAP_LIMIT", "MAX_PAGE_WEIGHTS", "TraceView", "show", "static_text", "trace_fragment", "trace_html"]

HEATMAP_LIMIT = 96  # tokens; beyond, the heatmap table would hold too many cells for a browser to stay quick
MAX_PAGE_WEIGHTS = 64 * 1024**2  # bytes of float32 weights a page carries (base64 makes them a third larger)


@cache
def static_text(name: str) -> str:
    """A file of ``qkv/render/static/`` (package data: ``trace.css``, ``trace.js``), read once."""
    return (resources.files("qkv.render") / "static" / name).read_text(encoding="utf-8")


def _payload(trace: AttentionTrace, layer: int | None, head: int | None) -> dict[str, Any]:
    index = trace.layer_index(layer)
    L, H, T, _ = trace.weights.shape
    if 4 * trace.weights.numel() > MAX_PAGE_WEIGHTS:
        longest = int((MAX_PAGE_WEIGHTS / (4 * L * H)) ** 0.5)
        raise InputError(
            f"a page of {T} tokens × {L} layers × {H} heads would carry {4 * trace.weights.numel() / 1024**2:.0f} "
            f"MiB of weights, more than a browser handles well; show at most {longest} tokens, or fewer layers"
        )
    if head is not None and not 0 <= head < trace.heads:
        raise InputError(f"head {head} is out of range; this model has heads 0…{trace.heads - 1}")
    weights = trace.weights.double()  # (L, H, T, S)
    every = torch.cat([weights, weights.mean(dim=1, keepdim=True)], dim=1)  # (L, H + 1, T, S): the mean last
    metrics = torch.stack(
        [
            entropy(every),
            attended_distance(every),
            asymmetry_of(every),
            relative_asymmetry(every),
            sink_share(every, trace.sinks),
        ],
        dim=-1,
    )  # (L, H + 1, 5)
    array = trace.weights.detach().to(torch.float32).cpu().contiguous().numpy().astype("<f4")
    return {
        "model": trace.model,
        "tokens": trace.labels,
        "special": list(trace.special),
        "sinkNames": " ".join(
            dict.fromkeys(label for label, sink in zip(trace.labels, trace.sinks, strict=True) if sink)
        ),
        "layers": list(trace.layers),
        "heads": trace.heads,
        "layer": index,
        "head": -1 if head is None else head,
        "metrics": [[[round(float(v), 4) for v in head_row] for head_row in layer_row] for layer_row in metrics],
        "weights": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' can close it or start a comment."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def trace_fragment(
    trace: AttentionTrace, *, layer: int | None = None, head: int | None = None, compact: bool = True
) -> str:
    """A ``<div>`` with its own style and script showing ``trace``; it starts on ``layer`` (the last captured
    by default) and ``head`` (``None``: the mean of the heads). ``compact`` leaves out the heatmap."""
    data = _script_json(_payload(trace, layer, head))
    title = f"{trace.model} · " if trace.model else ""
    heatmap = ""
    if not compact and len(trace.tokens) <= HEATMAP_LIMIT:
        heatmap = '<table class="qkv-heatmap" data-role="heatmap"></table>'
    elif not compact:
        heatmap = f"<p>(the heatmap is left out above {HEATMAP_LIMIT} tokens)</p>"
    return (
        '<div class="qkv-trace">\n'
        f"<style>{static_text('trace.css')}</style>\n"
        f'<div class="qkv-title">{html.escape(title)}attention, {len(trace.tokens)} tokens</div>\n'
        f'<div class="qkv-text">{html.escape(trace.text)}</div>\n'
        '<div class="qkv-controls">'
        '<label>layer <select data-role="layer"></select></label>'
        '<label>head <select data-role="head"></select></label>'
        '<span class="qkv-metrics" data-role="metrics"></span></div>\n'
        f'<div class="qkv-body"><svg data-role="arrows" role="img"></svg>{heatmap}</div>\n'
        '<div class="qkv-help">Hover a token on the left to see where it looks, on the right to see who looks at '
        "it. Line thickness and opacity: the weight.</div>\n"
        f'<script type="application/json" data-role="data">{data}</script>\n'
        f"<script>{static_text('trace.js')}</script>\n"
        "</div>"
    )


def trace_html(trace: AttentionTrace, *, layer: int | None = None, head: int | None = None) -> str:
    """A whole HTML page showing ``trace`` (see :func:`trace_fragment`), with the heatmap."""
    title = html.escape(f"qkv attention · {trace.model}" if trace.model else "qkv attention")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n</head>\n<body>\n"
        f"{trace_fragment(trace, layer=layer, head=head, compact=False)}\n</body>\n</html>\n"
    )


@dataclass(frozen=True)
class TraceView:
    """An HTML view a notebook displays: Jupyter calls :meth:`_repr_html_`; ``str()`` gives the same HTML."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


def show(trace: AttentionTrace, *, layer: int | None = None, head: int | None = None) -> TraceView:
    """``trace`` in a notebook: the compact view of :func:`trace_fragment` (no heatmap), starting on ``layer``
    (the last captured by default) and ``head`` (``None``: the mean of the heads)."""
    return TraceView(trace_fragment(trace, layer=layer, head=head))
