"""Plain data that several layers share, kept below all of them.

Not datasets (training batches live in :mod:`qkv.training.data`, corpora in :mod:`qkv.text`): these are the
types and tables that the inspection, the renderers, the article and the loaders all read, so that none of
them has to re-implement another's to obey the layering.

- :mod:`qkv.data.trace` — :class:`~qkv.data.trace.AttentionTrace`, who attends to whom as plain data, its JSON,
  and the token/word helpers (``token_labels``, ``word_spans``, ``word_weights``);
- :mod:`qkv.data.metrics` — numbers that describe a head from its weights (entropy, attended distance,
  asymmetry, sink share, the strongest arrows);
- :mod:`qkv.data.scale` — how every heatmap and thumbnail shades a head: against a high percentile of its
  weights outside the sink tokens, so that a sink does not wash out the rest;
- :mod:`qkv.data.thumbnails` — every head's weights as a small uint8 picture (the explorer's overview and
  ``qkv train --watch`` store the same ones);
- :mod:`qkv.data.registry` — the known pretrained models and the default corpus, the packages that carry them
  and the ``python -m pip`` commands that install them, the sha256 each weights file must have, and what a
  weights file is from its first bytes (imports no PyTorch);
- :mod:`qkv.data.tensors` — named tensors (or rows of one) read from a safetensors file.

This package imports only :mod:`qkv.errors`, :mod:`qkv.shapes` and :mod:`qkv.files` (a test checks), and
importing it imports none of its modules.
"""
