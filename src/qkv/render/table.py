"""Plain-text renderings of an attention trace: where each word looks."""

from __future__ import annotations

from qkv.data.trace import AttentionTrace, word_weights

__all__ = ["word_arrows"]


def word_arrows(trace: AttentionTrace, *, layer: int | None = None, top: int = 3) -> list[str]:
    """One line per word: ``riley ⇒ dog 0.37 · evan's 0.21 · riley 0.15`` (averaged over heads).

    ``layer`` is a model layer the trace captured (the last captured one by default).
    """
    index = trace.layer_index(layer)
    words, folded = word_weights(trace.weights[index].mean(dim=0), trace.tokens, trace.special)  # (W, W)
    width = max((len(word) for word in words), default=0)
    lines = [
        f"layer {trace.layers[index]}, averaged over {trace.weights.shape[1]} heads: word ⇒ the words it attends to"
    ]
    for a, word in enumerate(words):
        row = folded[a]
        order = row.argsort(descending=True)[:top]
        targets = " · ".join(f"{words[int(b)]} {float(row[b]):.2f}" for b in order if float(row[b]) > 0)
        lines.append(f"  {word:<{width}} ⇒ {targets}")
    return lines
