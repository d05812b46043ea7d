"""Inspection sits beside the model: capture who attends to whom without changing what the model computes.

    import qkv
    from qkv.inspection import head_metrics

    result = qkv.trace(qkv.load("minilm"), "Evan's dog Riley is so hyperactive, she never stops moving")
    head_metrics(result).entropy          # (L, H): how spread out each head's attention is, in bits

The trace and the metrics are plain data, defined below every layer in :mod:`qkv.data` (the renderers and the
article read them too); they are re-exported here beside the capture functions. See docs/inspection.md: the
trace, its JSON, the metrics and the renderers.
"""

from qkv.data.metrics import (
    Arrow,
    HeadMetrics,
    asymmetry,
    attended_distance,
    entropy,
    head_metrics,
    relative_asymmetry,
    sink_share,
    strongest_arrows,
    top_attended,
)
from qkv.data.trace import AttentionTrace, token_labels, word_spans, word_weights
from qkv.inspection.attending import AttendedToken, generate_attending
from qkv.inspection.capture import capture_attention
from qkv.inspection.trace import LoadedModel

# The function ``trace`` is not re-exported here: ``qkv.inspection.trace`` stays the module (patchable, and
# never shadowed). Call it as ``qkv.trace`` or ``from qkv.inspection.trace import trace``.

__all__ = [
    "Arrow",
    "AttendedToken",
    "AttentionTrace",
    "HeadMetrics",
    "LoadedModel",
    "asymmetry",
    "attended_distance",
    "capture_attention",
    "entropy",
    "generate_attending",
    "head_metrics",
    "relative_asymmetry",
    "sink_share",
    "strongest_arrows",
    "token_labels",
    "top_attended",
    "word_spans",
    "word_weights",
]
