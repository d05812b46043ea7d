"""Renderers: they take data (loss histories, attention traces from :mod:`qkv.data`), never a model, and write
pictures or text.

- :mod:`qkv.render.terminal` — one head as a heatmap, its strongest arrows and its metrics, for a terminal;
- :mod:`qkv.render.figures` — PNG/SVG: the heatmap grid of every head, the arc diagram of one (their words from a
  ``FigureText``, English by default);
- :mod:`qkv.render.html` — one self-contained, offline HTML view, drawn by the explorer's modules (:mod:`qkv.web`)
  inlined, and ``show(trace)`` for notebooks;
- :mod:`qkv.render.table` — words folded from tokens, one line per word;
- :mod:`qkv.render.loss_curve` — a training run's loss curve.

Every heatmap shades a head as :mod:`qkv.data.scale` says: against a high percentile of its weights outside the
sink tokens (``trace.sinks``), so that a sink does not wash out the rest.
"""
