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
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
from dataclasses import dataclass
from typing import Any

import torch

from qkv.data.metrics import asymmetry as asymmetry_of
from qkv.data.metrics import attended_distance, entropy, relative_asymmetry, sink_share
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError

__all__ = ["HEATMAP_LIMIT", "MAX_PAGE_WEIGHTS", "TraceView", "show", "trace_fragment", "trace_html"]

HEATMAP_LIMIT = 96  # tokens; beyond, the heatmap table would hold too many cells for a browser to stay quick
MAX_PAGE_WEIGHTS = 64 * 1024**2  # bytes of float32 weights a page carries (base64 makes them a third larger)
_NUMBERS = itertools.count()

_STYLE = """
.qkv-trace { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 8px 0; }
.qkv-trace .qkv-title { font-weight: 600; margin-bottom: 2px; }
.qkv-trace .qkv-text { color: #555; margin-bottom: 8px; }
.qkv-trace .qkv-controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin-bottom: 8px; }
.qkv-trace .qkv-metrics { color: #444; }
.qkv-trace .qkv-body { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
.qkv-trace svg text { font-size: 12px; cursor: default; dominant-baseline: middle; }
.qkv-trace svg text.qkv-special { fill: #888; }
.qkv-trace svg text.qkv-value { fill: #c0392b; font-size: 11px; }
.qkv-trace svg text.qkv-active { font-weight: 700; fill: #c0392b; }
.qkv-trace svg line { stroke: #2c5d8f; stroke-linecap: round; }
.qkv-trace.qkv-focus svg line { visibility: hidden; }
.qkv-trace.qkv-focus svg line.qkv-on { visibility: visible; }
.qkv-trace table.qkv-heatmap { border-collapse: collapse; font-size: 11px; }
.qkv-trace table.qkv-heatmap td { width: 13px; height: 13px; padding: 0; border: 1px solid #f4f4f4; }
.qkv-trace table.qkv-heatmap th { font-weight: normal; white-space: nowrap; cursor: default; padding: 0 3px; }
.qkv-trace table.qkv-heatmap th.qkv-column { writing-mode: vertical-rl; transform: rotate(180deg);
  text-align: left; padding: 3px 0; }
.qkv-trace table.qkv-heatmap th.qkv-active { color: #c0392b; font-weight: 700; }
.qkv-trace .qkv-help { color: #777; font-size: 12px; margin-top: 6px; }
"""

# Plain ES5, no libraries. It finds its own root by id (a notebook may show several traces) and builds the
# menus, the lines and the heatmap from the JSON beside it. No URL appears anywhere: the SVG namespace is read
# from the <svg> element the HTML parser made.
_SCRIPT = """
(function () {
  "use strict";
  var root = document.getElementById(ROOT_ID);
  if (!root || root.getAttribute("data-ready")) { return; }
  root.setAttribute("data-ready", "1");
  var data = JSON.parse(root.querySelector("script[data-role=data]").textContent);
  var raw = atob(data.weights), bytes = new Uint8Array(raw.length), i;
  for (i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
  var view = new DataView(bytes.buffer);
  var L = data.layers.length, H = data.heads, T = data.tokens.length;
  var layerMenu = root.querySelector("select[data-role=layer]");
  var headMenu = root.querySelector("select[data-role=head]");
  var metricsBox = root.querySelector("[data-role=metrics]");
  var svg = root.querySelector("svg[data-role=arrows]"), NS = svg.namespaceURI;
  var table = root.querySelector("table[data-role=heatmap]");

  function weight(l, h, t, s) { return view.getFloat32(4 * (((l * H + h) * T + t) * T + s), true); }
  function matrix(l, h) {
    var rows = [], t, s, k, v;
    for (t = 0; t < T; t++) {
      var row = [];
      for (s = 0; s < T; s++) {
        if (h >= 0) {
          v = weight(l, h, t, s);
        } else {
          v = 0;
          for (k = 0; k < H; k++) { v += weight(l, k, t, s); }
          v /= H;
        }
        row.push(v);
      }
      rows.push(row);
    }
    return rows;
  }
  function option(menu, value, label) {
    var o = document.createElement("option"); o.value = String(value); o.textContent = label; menu.appendChild(o);
  }
  function make(name, attributes, parent) {
    var e = document.createElementNS(NS, name), key;
    for (key in attributes) {
      if (Object.prototype.hasOwnProperty.call(attributes, key)) { e.setAttribute(key, attributes[key]); }
    }
    parent.appendChild(e);
    return e;
  }

  data.layers.forEach(function (layer, index) { option(layerMenu, index, String(layer)); });
  option(headMenu, -1, "mean of " + H);
  for (i = 0; i < H; i++) { option(headMenu, i, String(i)); }
  layerMenu.value = String(data.layer);
  headMenu.value = String(data.head);

  var ROW = 20, widest = 0;
  data.tokens.forEach(function (token) { widest = Math.max(widest, token.length); });
  var labelWidth = Math.min(160, 14 + 7.5 * widest), gap = 150;
  var leftX = labelWidth, rightX = labelWidth + gap, width = rightX + labelWidth + 44, height = T * ROW + 8;
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  var lineGroup = make("g", {}, svg), lefts = [], rights = [], leftValues = [], rightValues = [];
  data.tokens.forEach(function (token, t) {
    var y = 4 + ROW * t + ROW / 2, special = data.special[t] ? "qkv-special" : "";
    var left = make("text", {x: leftX - 8, y: y, "text-anchor": "end", "class": special}, svg);
    left.textContent = token; lefts.push(left);
    var right = make("text", {x: rightX + 8, y: y, "class": special}, svg);
    right.textContent = token; rights.push(right);
    leftValues.push(make("text", {x: 2, y: y, "class": "qkv-value"}, svg));
    rightValues.push(make("text", {x: width - 40, y: y, "class": "qkv-value"}, svg));
    left.addEventListener("mouseenter", function () { focus("from", t); });
    right.addEventListener("mouseenter", function () { focus("to", t); });
    left.addEventListener("mouseleave", unfocus);
    right.addEventListener("mouseleave", unfocus);
  });

  var current = [], lines = [], rowHeads = [], columnHeads = [];
  if (table) {
    var head = document.createElement("tr");
    head.appendChild(document.createElement("th"));
    data.tokens.forEach(function (token, s) {
      var th = document.createElement("th"); th.className = "qkv-column"; th.textContent = token;
      th.addEventListener("mouseenter", function () { focus("to", s); });
      th.addEventListener("mouseleave", unfocus);
      head.appendChild(th); columnHeads.push(th);
    });
    table.appendChild(head);
    data.tokens.forEach(function (token, t) {
      var tr = document.createElement("tr"), th = document.createElement("th"), s;
      th.textContent = token; th.style.textAlign = "right";
      th.addEventListener("mouseenter", function () { focus("from", t); });
      th.addEventListener("mouseleave", unfocus);
      tr.appendChild(th); rowHeads.push(th);
      for (s = 0; s < T; s++) { tr.appendChild(document.createElement("td")); }
      table.appendChild(tr);
    });
  }

  function draw() {
    var l = Number(layerMenu.value), h = Number(headMenu.value), t, s, largest = 0;
    current = matrix(l, h);
    for (t = 0; t < T; t++) { for (s = 0; s < T; s++) { largest = Math.max(largest, current[t][s]); } }
    largest = largest || 1;
    while (lineGroup.firstChild) { lineGroup.removeChild(lineGroup.firstChild); }
    lines = [];
    for (t = 0; t < T; t++) {
      for (s = 0; s < T; s++) {
        var w = current[t][s];
        if (w < 0.01 * largest) { continue; }
        var line = make("line", {
          x1: leftX, y1: 4 + ROW * t + ROW / 2, x2: rightX, y2: 4 + ROW * s + ROW / 2,
          "stroke-width": (0.4 + 5 * w).toFixed(2), "stroke-opacity": (0.08 + 0.92 * w / largest).toFixed(3)
        }, lineGroup);
        line.setAttribute("data-from", t); line.setAttribute("data-to", s);
        lines.push(line);
      }
    }
    if (table) {
      var cells = table.querySelectorAll("td");
      for (t = 0; t < T; t++) {
        for (s = 0; s < T; s++) {
          var cell = cells[t * T + s], v = current[t][s];
          cell.style.background = "rgba(192, 57, 43, " + (v / largest).toFixed(3) + ")";
          cell.title = data.tokens[t] + " \\u21d2 " + data.tokens[s] + ": " + v.toFixed(3);
        }
      }
    }
    var m = data.metrics[l][h < 0 ? H : h];
    metricsBox.textContent = "entropy " + m[0].toFixed(2) + " bits \\u00b7 mean distance " + m[1].toFixed(1) +
      " tokens \\u00b7 asymmetry \\u2016A \\u2212 A\\u1d40\\u2016 " + m[2].toFixed(2) + " (" + m[3].toFixed(2) +
      " of its maximum) \\u00b7 sink share " + m[4].toFixed(2) + " (to " + data.sinkNames + ")";
    unfocus();
  }
  function focus(kind, index) {
    unfocus();
    root.classList.add("qkv-focus");
    lines.forEach(function (line) {
      var on = Number(line.getAttribute(kind === "from" ? "data-from" : "data-to")) === index;
      if (on) { line.setAttribute("class", "qkv-on"); }
    });
    (kind === "from" ? lefts : rights)[index].setAttribute("class", "qkv-active");
    var heads = kind === "from" ? rowHeads : columnHeads;
    if (heads[index]) { heads[index].className += " qkv-active"; }
    for (var other = 0; other < T; other++) {
      var w = kind === "from" ? current[index][other] : current[other][index];
      (kind === "from" ? rightValues : leftValues)[other].textContent = w >= 0.005 ? w.toFixed(2) : "";
    }
  }
  function unfocus() {
    root.classList.remove("qkv-focus");
    lines.forEach(function (line) { line.removeAttribute("class"); });
    data.tokens.forEach(function (token, t) {
      var special = data.special[t] ? "qkv-special" : "";
      lefts[t].setAttribute("class", special); rights[t].setAttribute("class", special);
      leftValues[t].textContent = ""; rightValues[t].textContent = "";
      if (rowHeads[t]) { rowHeads[t].className = ""; columnHeads[t].className = "qkv-column"; }
    });
  }
  layerMenu.addEventListener("change", draw);
  headMenu.addEventListener("change", draw);
  draw();
}());
"""


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
    payload = _payload(trace, layer, head)
    data = _script_json(payload)
    number = next(_NUMBERS)
    root_id = f"qkv-trace-{hashlib.sha1(data.encode('ascii')).hexdigest()[:10]}-{number}"
    title = f"{trace.model} · " if trace.model else ""
    heatmap = ""
    if not compact and len(trace.tokens) <= HEATMAP_LIMIT:
        heatmap = '<table class="qkv-heatmap" data-role="heatmap"></table>'
    elif not compact:
        heatmap = f"<p>(the heatmap is left out above {HEATMAP_LIMIT} tokens)</p>"
    return (
        f'<div class="qkv-trace" id="{root_id}">\n'
        f"<style>{_STYLE}</style>\n"
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
        f"<script>{_SCRIPT.replace('ROOT_ID', json.dumps(root_id))}</script>\n"
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
