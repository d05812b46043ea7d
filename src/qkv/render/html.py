"""A trace as one self-contained HTML file: inline CSS and JavaScript, the weights inside, no network at all.

The page shows one head at a time, picked by a layer and a head menu ("mean" averages the heads):

- the tokens twice, in two columns, with a line from each token on the left to each token it attends to on
  the right, as thick and as opaque as the weight (the ``MAX_LINES`` strongest; lines to the sink tokens are
  grey); hovering a token on the left keeps only its lines and writes the weights beside their targets, hovering
  one on the right shows who attends to it;
- a heatmap of the same weights (row: a token, column: the token it attends to), whose row and column
  headings highlight the same way (left out for texts over ``HEATMAP_LIMIT`` tokens). Like every heatmap of
  qkv it is shaded against the head's scale (:mod:`qkv.render.scale`), sink columns in grey;
- the head's entropy, attended distance, asymmetry and sink share (:mod:`qkv.data.metrics`).

**Size.** A view carries at most ``max_bytes`` (``MAX_PAGE_BYTES``, 5 MB, by default), so that a long trace
cannot freeze a notebook (a 244-token SmolLM2 trace was 86 MB). The weights travel as base64 float32 (exact)
when all of them fit; else as uint8 (each weight to within 1/510), the starting layer first, then the layers
nearest to it, as many whole layers as fit; else the starting head alone. The page says what it holds, and the
menus offer only that. A single head that does not fit is an :class:`~qkv.errors.InputError` naming the
longest text that does.

**Without JavaScript** (scripts off, or a viewer that strips them) the view shows a static summary instead: the
starting head's strongest arrows and the metrics of every head of its layer. **Colours** follow the reader's
theme (``prefers-color-scheme``, and JupyterLab's and VS Code's dark themes).

:func:`trace_html` writes a whole page; :func:`trace_fragment` a ``<div>`` to embed. In a notebook,
``show(trace)`` as a cell's last line draws the fragment: it returns a :class:`TraceView`, whose
``_repr_html_`` Jupyter calls (CircuitsVis' pattern: the renderer owns the display, the trace stays plain data).

The view's CSS and JavaScript are files beside this module (``static/trace.css``, ``static/trace.js``: package
data, checked by ``node --check`` in the tests), inlined into every fragment so that a page needs no server and
no network. The script is a classic one (no ES modules, which a ``file://`` page cannot load) that sets up every
``div.qkv-trace`` on the page not yet set up: several views can share a page or a notebook.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import torch

from qkv.data.metrics import asymmetry as asymmetry_of
from qkv.data.metrics import attended_distance, entropy, relative_asymmetry, sink_share, strongest_arrows
from qkv.data.trace import AttentionTrace, _ranges
from qkv.errors import InputError
from qkv.shapes import Tensor

__all__ = [
    "HEATMAP_LIMIT",
    "MAX_LINES",
    "MAX_PAGE_BYTES",
    "TraceView",
    "show",
    "static_text",
    "trace_fragment",
    "trace_html",
]

HEATMAP_LIMIT = 96  # tokens; beyond, the heatmap table would hold too many cells for a browser to stay quick
MAX_PAGE_BYTES = 5_000_000  # bytes of one view (page or notebook fragment), unless max_bytes says otherwise
MAX_LINES = 3000  # lines drawn at most for one head: its strongest
STATIC_ARROWS = 12  # arrows in the summary shown without JavaScript
SLACK = 2048  # bytes kept free for the markup around the data


@cache
def static_text(name: str) -> str:
    """A file of ``qkv/render/static/`` (package data: ``trace.css``, ``trace.js``), read once."""
    return (resources.files("qkv.render") / "static" / name).read_text(encoding="utf-8")


# -- what the view carries -------------------------------------------------------------------------------------


def _encoded(matrices: Tensor, encoding: str) -> str:
    """``(N, T, S)`` weights as base64: float32 little-endian, or uint8 ``round(255 · w)``."""
    if encoding == "float32":
        raw = matrices.detach().to(torch.float32).cpu().contiguous().numpy().astype("<f4").tobytes()
    else:
        levels = (matrices.detach().double().cpu().clamp(0, 1) * 255).round().to(torch.uint8)  # (N, T, S)
        raw = levels.contiguous().numpy().tobytes()
    return base64.b64encode(raw).decode("ascii")


def _b64(count: int) -> int:
    """The length of ``count`` bytes in base64."""
    return 4 * math.ceil(count / 3)


def _choose(trace: AttentionTrace, index: int, head: int | None, room: int) -> tuple[str, list[tuple[int, int]]]:
    """What fits in ``room`` bytes: the encoding and the ``(layer index, head)`` matrices held, in order (head
    ``-1``: the mean of the layer's heads, computed here)."""
    L, H, T, S = trace.weights.shape
    if _b64(4 * L * H * T * S) <= room:
        return "float32", [(layer, h) for layer in range(L) for h in range(H)]
    per_layer = _b64(H * T * S)
    nearest = sorted(range(L), key=lambda layer: (abs(layer - index), layer))  # the starting layer, then its nearest
    count = min(room // per_layer, L)
    if count >= 1:
        chosen = sorted(nearest[:count])
        return "uint8", [(layer, h) for layer in chosen for h in range(H)]
    if _b64(T * S) <= room:
        return "uint8", [(index, -1 if head is None else head)]
    longest = int(math.sqrt(max(room, 0) * 3 / 4))
    raise InputError(
        f"one head of {T} tokens needs {_b64(T * S):,} bytes, more than the {max(room, 0):,} left for weights in "
        f"this view's cap: show at most {longest} tokens, or raise max_bytes"
    )


def _metrics(trace: AttentionTrace) -> list[list[list[float]]]:
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
    return [[[round(float(v), 4) for v in head_row] for head_row in layer_row] for layer_row in metrics.tolist()]


def _payload(trace: AttentionTrace, index: int, head: int | None, room: int | None) -> dict[str, Any]:
    """The view's data, its weights within ``room`` bytes (``None``: without weights, to measure the rest)."""
    data: dict[str, Any] = {
        "model": trace.model,
        "tokens": trace.labels,
        "special": list(trace.special),
        "sinks": list(trace.sinks),
        "causal": trace.causal,
        "sinkNames": trace.sink_names if any(trace.sinks) else "",
        "layers": list(trace.layers),
        "heads": trace.heads,
        "layer": index,
        "head": -1 if head is None else head,
        "metrics": _metrics(trace),
        "maxLines": MAX_LINES,
        "encoding": "float32",
        "held": [],
        "weights": "",
    }
    if room is None:
        return data
    encoding, held = _choose(trace, index, head, room)
    matrices = torch.stack(
        [trace.weights[layer].double().mean(dim=0) if h < 0 else trace.weights[layer, h] for layer, h in held]
    )  # (N, T, S)
    data.update(encoding=encoding, held=[list(pair) for pair in held], weights=_encoded(matrices, encoding))
    return data


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' can close it or start a comment."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- the markup ------------------------------------------------------------------------------------------------


def _held_note(trace: AttentionTrace, data: dict[str, Any], cap: int) -> str:
    """What the view holds, when it is not every weight exactly (empty when it is)."""
    held: list[list[int]] = data["held"]
    L, H = trace.weights.shape[:2]
    if data["encoding"] == "float32":
        return ""
    cap_text = f"{cap / 1e6:.1f} MB"
    if len(held) == L * H:
        return f"Weights rounded to 1/255 to keep this view under {cap_text}."
    if held[0][1] < 0 or len(held) == 1:
        which = "the mean of its heads" if held[0][1] < 0 else f"head {held[0][1]}"
        what = f"layer {trace.layers[held[0][0]]}, {which}, only"
    else:
        layers = sorted({trace.layers[layer] for layer, _ in held})
        what = f"layer{'s' * (len(layers) > 1)} {_ranges(layers)} of {_ranges(trace.layers)}"
    return (
        f"This view holds {what} (weights rounded to 1/255) to stay under {cap_text}; pick another layer with "
        "layer= (qkv attend --layer), or raise max_bytes."
    )


def _static_summary(trace: AttentionTrace, index: int, head: int | None) -> str:
    """The view without JavaScript: the starting head's strongest arrows, the metrics of its layer's heads."""
    layer = trace.layers[index]
    weights = trace.head_weights(layer, head)  # (T, S)
    labels = trace.labels
    which = f"head {head}" if head is not None else f"the mean of its {trace.heads} heads"
    arrows = strongest_arrows(weights, top=STATIC_ARROWS, sinks=trace.sinks)
    rows = "".join(
        f"<tr><td>{html.escape(labels[a.query])}</td><td>⇒</td><td>{html.escape(labels[a.key])}</td>"
        f"<td>{a.weight:.2f}</td></tr>"
        for a in arrows
    )
    metrics = _metrics(trace)[index]
    names = [*(str(h) for h in range(trace.heads)), "mean"]
    heads = "".join(
        f"<tr><td>{name}</td>" + "".join(f"<td>{value:.2f}</td>" for value in (m[0], m[1], m[3], m[4])) + "</tr>"
        for name, m in zip(names, metrics, strict=True)
    )
    sinks = f" and the sinks {html.escape(trace.sink_names)}" if any(trace.sinks) else ""
    return (
        '<div class="qkv-static" data-role="static">'
        "<p>The interactive view needs JavaScript. Layer "
        f"{layer}, {which}: the strongest arrows (without self-attention{sinks}).</p>"
        f'<table class="qkv-arrows">{rows or "<tr><td>(none)</td></tr>"}</table>'
        f"<p>Every head of layer {layer}:</p>"
        '<table class="qkv-table"><tr><th>head</th><th>entropy (bits)</th><th>distance (tokens)</th>'
        f"<th>asymmetry (of max)</th><th>sink share</th></tr>{heads}</table></div>"
    )


def trace_fragment(
    trace: AttentionTrace,
    *,
    layer: int | None = None,
    head: int | None = None,
    compact: bool = True,
    max_bytes: int = MAX_PAGE_BYTES,
) -> str:
    """A ``<div>`` with its own style and script showing ``trace``, at most ``max_bytes`` long (UTF-8); it starts
    on ``layer`` (the last captured by default) and ``head`` (``None``: the mean of the heads). ``compact``
    leaves out the heatmap."""
    index = trace.layer_index(layer)
    if head is not None and not 0 <= head < trace.heads:
        raise InputError(f"head {head} is out of range; this model has heads 0…{trace.heads - 1}")
    title = f"{trace.model} · " if trace.model else ""
    heatmap = ""
    if not compact and len(trace.tokens) <= HEATMAP_LIMIT:
        heatmap = '<table class="qkv-heatmap" data-role="heatmap"></table>'
    elif not compact:
        heatmap = f"<p>(the heatmap is left out above {HEATMAP_LIMIT} tokens)</p>"
    static = _static_summary(trace, index, head)

    def fragment(data: dict[str, Any], note: str) -> str:
        held = f'<div class="qkv-note">{html.escape(note)}</div>\n' if note else ""
        return (
            '<div class="qkv-trace">\n'
            f"<style>{static_text('trace.css')}</style>\n"
            f'<div class="qkv-title">{html.escape(title)}attention, {len(trace.tokens)} tokens</div>\n'
            f'<div class="qkv-text">{html.escape(trace.text)}</div>\n'
            f"{static}\n{held}"
            '<div class="qkv-controls">'
            '<label>layer <select data-role="layer"></select></label>'
            '<label>head <select data-role="head"></select></label>'
            '<span class="qkv-metrics" data-role="metrics"></span></div>\n'
            f'<div class="qkv-body"><svg data-role="arrows" role="img"></svg>{heatmap}</div>\n'
            '<div class="qkv-help">Hover a token on the left to see where it looks, on the right to see who looks '
            "at it. Line thickness: the weight; opacity and colour: the weight against the head's scale (its "
            "99th percentile outside the sinks); grey lines go to the sinks. "
            '<span data-role="lines"></span></div>\n'
            f'<script type="application/json" data-role="data">{_script_json(data)}</script>\n'
            f"<script>{static_text('trace.js')}</script>\n"
            "</div>"
        )

    longest_note = 260 + len(trace.model)  # bytes the note may take, at most
    fixed = len(fragment(_payload(trace, index, head, None), "").encode("utf-8")) + longest_note + SLACK
    data = _payload(trace, index, head, max_bytes - fixed)
    return fragment(data, _held_note(trace, data, max_bytes))


def trace_html(
    trace: AttentionTrace, *, layer: int | None = None, head: int | None = None, max_bytes: int = MAX_PAGE_BYTES
) -> str:
    """A whole HTML page showing ``trace`` (see :func:`trace_fragment`), with the heatmap."""
    title = html.escape(f"qkv attention · {trace.model}" if trace.model else "qkv attention")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{title}</title>\n</head>\n<body>\n"
        f"{trace_fragment(trace, layer=layer, head=head, compact=False, max_bytes=max_bytes - 400)}\n"
        "</body>\n</html>\n"
    )


@dataclass(frozen=True)
class TraceView:
    """An HTML view a notebook displays: Jupyter calls :meth:`_repr_html_`; ``str()`` gives the same HTML."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"TraceView({len(self.html.encode('utf-8')):,} bytes of HTML)"


def show(
    trace: AttentionTrace, *, layer: int | None = None, head: int | None = None, max_bytes: int = MAX_PAGE_BYTES
) -> TraceView:
    """``trace`` in a notebook: the compact view of :func:`trace_fragment` (no heatmap, at most ``max_bytes``),
    starting on ``layer`` (the last captured by default) and ``head`` (``None``: the mean of the heads)."""
    return TraceView(trace_fragment(trace, layer=layer, head=head, max_bytes=max_bytes))
