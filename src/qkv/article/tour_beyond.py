"""The tour's Part 4: what the article left out — softmax, heads, the ``1/√K`` scale, positions, stacking.

Each section prints numbers that :mod:`qkv.article.beyond` computes now, on MiniLM's vectors (the article's
database, then its first layer as the model runs it) and, for stacking, on a trace of the whole model. The
heads are checked against ``qkv.attend`` while the tour runs, like the final link.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from qkv.article.beyond import (
    Sharpness,
    compare_normalisations,
    head_scores,
    layer_focus,
    merge_heads,
    multi_head_attention,
    sharpness,
    shuffle_check,
    split_heads,
    top_per_head,
    width_spread,
)
from qkv.article.first_layer import FirstLayer
from qkv.article.part3_queries import query_relevance
from qkv.article.tour_base import Context, Figure, Section, num, word_trace
from qkv.article.tour_parts import FINAL_LINK_TOLERANCE, RILEY
from qkv.attention.kernels import attend
from qkv.errors import InputError
from qkv.shapes import Tensor

__all__ = ["KEYS", "SEED", "WIDTHS", "heads", "left_out", "positions", "scale", "softmax", "stacking"]

#: The widths K at which the scale section measures random dot products.
WIDTHS = (8, 32, 128, 384)
#: How many random keys each random query is scored against.
KEYS = 10
#: Seeds the random vectors of the scale section and the shuffle of the positions section.
SEED = 0


def left_out(context: Context) -> list[Section]:
    """Part 4, all of it: an introduction, then one section per detail."""
    say = context.say
    intro_lines = (say("left.intro"),) if context.quick else (say("left.intro"), say("left.list"))
    intro = Section(4, say("left.title"), intro_lines)
    return [intro, softmax(context), heads(context), scale(context), positions(context), stacking(context)]


def softmax(context: Context) -> Section:
    words, say, head = context.words, context.say, context.head
    scores = query_relevance(head.queries, head.keys)  # (T, S): Part 3's relevances
    compared = compare_normalisations(scores)
    softmaxed = torch.softmax(scores / math.sqrt(head.head_width), dim=-1)  # (T, S): the final link's weights
    riley = head.focus
    best, worst = int(scores[riley].argmax()), int(scores[riley].argmin())
    summed = compared.summed[riley]  # (S,)
    if bool(summed[worst] > summed[best]):
        verdict = "soft.reversed"
    elif bool((summed < 0).any()):
        verdict = "soft.negative"
    else:
        verdict = "soft.fine"
    lines = [
        say(
            "soft.scores",
            head=head.head,
            best=words[best],
            high=num(scores[riley, best]),
            worst=words[worst],
            low=num(scores[riley, worst]),
        ),
        say(
            "soft.summed",
            best=words[best],
            high=num(summed[best]),
            worst=words[worst],
            low=num(summed[worst]),
            total=num(scores[riley].sum()),
            verdict=say(verdict),
        ),
        say(
            "soft.softmaxed",
            best=words[best],
            high=num(softmaxed[riley, best]),
            worst=words[worst],
            low=num(softmaxed[riley, worst]),
        ),
    ]
    if context.quick:
        return Section(4, say("soft.title"), tuple(lines))
    kept = int((softmaxed.argmax(dim=-1) == scores.argmax(dim=-1)).sum())
    lines.append(
        say(
            "soft.sentence",
            reversed=compared.reversed_rows,
            negative=compared.negative_rows,
            rows=len(words),
            kept=kept,
        )
    )
    lines.append(say("soft.why"))
    return Section(4, say("soft.title"), tuple(lines))


def _first_layer_attention(layer: FirstLayer, *, positions: bool) -> Callable[[Tensor], Tensor]:
    """Word embeddings ``(T, D)`` → the first layer's attention outputs ``(T, D)``, its heads side by side."""

    def run(embeddings: Tensor) -> Tensor:
        queries, keys, values = layer.project(layer.inputs(embeddings, positions=positions))
        return multi_head_attention(queries, keys, values, layer.heads).output

    return run


def heads(context: Context) -> Section:
    database, words, say = context.database, context.words, context.say
    layer = database.first_layer()
    run = context.head.layer  # the first layer on the words, without positions: Parts 2–3's head among them
    queries, keys, values = run.queries, run.keys, run.values  # (T, D) each
    result = multi_head_attention(queries, keys, values, layer.heads)  # (T, D), (H, T, S)
    _check_against_attend(result.output, result.weights, queries, keys, values, layer.heads)

    riley = context.head.focus
    lines = [say("heads.split", width=layer.width, heads=layer.heads, head_width=layer.head_width)]
    if not context.quick:
        norm, raw = (f"{float(x.norm(dim=-1).mean()):.1f}" for x in (run.inputs, database.embeddings(words)))
        lines.append(say("heads.inputs", norm=norm, raw=raw))
    lines.append(say("heads.riley"))
    tops = top_per_head(result.weights, riley)
    cells = [say("heads.cell", head=h, word=words[top[0][0]], weight=num(top[0][1])) for h, top in enumerate(tops)]
    lines += ["  " + "   ".join(cells[i : i + 3]) for i in range(0, len(cells), 3)]
    distinct = len({top[0][0] for top in tops})
    lines.append(say("heads.distinct", distinct=distinct, heads=layer.heads))
    chosen = context.head
    lines.append(say("heads.article", head=chosen.head, there=num(chosen.there), back=num(chosen.back)))
    if not context.quick:
        lines.append(say("heads.concat", heads=layer.heads, head_width=layer.head_width, width=layer.width))
    lines.append(say("heads.checked", heads=layer.heads, tolerance=f"{FINAL_LINK_TOLERANCE:.0e}"))
    every_head = word_trace(result.weights[None], words)  # (1, H, T, S)
    grid = Figure(every_head, say("heads.figure", heads=layer.heads))
    sharpest = max(range(layer.heads), key=lambda h: tops[h][0][1])  # the head most sure of riley's word
    word, weight = tops[sharpest][0]
    caption = say("heads.sharpest", head=sharpest, word=words[word], weight=num(weight))
    arcs = Figure(every_head, caption, head=sharpest)
    return Section(4, say("heads.title"), tuple(lines), (arcs, grid))


def _check_against_attend(
    output: Tensor, weights: Tensor, queries: Tensor, keys: Tensor, values: Tensor, heads: int
) -> None:
    """Raise ``RuntimeError`` unless the readable heads equal ``qkv.attend`` with ``heads`` heads."""
    q, k, v = (split_heads(x, heads)[None] for x in (queries, keys, values))  # (1, H, T, K) each
    attended, attend_weights = attend(q, k, v, need_weights=True)  # (1, H, T, K), (1, H, T, S)
    assert attend_weights is not None
    merged = merge_heads(attended[0])  # (H, T, K) → (T, D)
    worst = max(float((merged - output).abs().max()), float((attend_weights[0] - weights).abs().max()))
    if not worst <= FINAL_LINK_TOLERANCE:
        raise RuntimeError(f"the tour's heads disagree with qkv.attend by {worst:.3g}")


def scale(context: Context) -> Section:
    say = context.say
    generator = torch.Generator().manual_seed(SEED)
    spreads = [width_spread(width, keys=KEYS, generator=generator) for width in WIDTHS]
    lines = [say("scale.variance")]
    for spread in spreads if not context.quick else [spreads[0], spreads[-1]]:
        ratio = f"{spread.variance / spread.width:.2f}"
        variance, scaled = f"{spread.variance:.1f}", f"{spread.scaled_variance:.2f}"
        lines.append(say("scale.variance_row", width=spread.width, variance=variance, ratio=ratio, scaled=scaled))
    if not context.quick:
        lines.append(say("scale.softmax", keys=KEYS, even=f"{1 / KEYS:.2f}", bits=f"{math.log2(KEYS):.2f}"))
        lines += [say("scale.softmax_row", width=s.width, **_sharpness_values(s.unscaled, s.scaled)) for s in spreads]
    lines.append(_real_sharpness(context))
    if not context.quick:
        lines.append(say("scale.why"))
    return Section(4, say("scale.title"), tuple(lines))


def _sharpness_values(unscaled: Sharpness, scaled: Sharpness) -> dict[str, str]:
    return {
        "max_u": f"{unscaled.max_weight:.2f}",
        "bits_u": f"{unscaled.entropy:.2f}",
        "max_s": f"{scaled.max_weight:.2f}",
        "bits_s": f"{scaled.entropy:.2f}",
    }


def _real_sharpness(context: Context) -> str:
    """The first layer's heads on the sentence, softmax with and without ``1/√K``."""
    words, run = context.words, context.head.layer
    layer = context.database.first_layer()
    scores = head_scores(run.queries, run.keys, layer.heads)  # (H, T, S)
    unscaled = sharpness(torch.softmax(scores, dim=-1))
    scaled = sharpness(torch.softmax(scores / math.sqrt(layer.head_width), dim=-1))
    return context.say(
        "scale.real",
        head_width=layer.head_width,
        even=f"{1 / len(words):.2f}",
        bits=f"{math.log2(len(words)):.2f}",
        **_sharpness_values(unscaled, scaled),
    )


def positions(context: Context) -> Section:
    database, words, say = context.database, context.words, context.say
    layer = database.first_layer()
    embeddings = database.embeddings(words)  # (T, D)
    order = torch.randperm(len(words), generator=torch.Generator().manual_seed(SEED)).tolist()
    check = shuffle_check(
        embeddings,
        order,
        _first_layer_attention(layer, positions=False),
        _first_layer_attention(layer, positions=True),
    )
    lines = [
        say("pos.shuffle", shuffled=" ".join(words[i] for i in order)),
        say("pos.without", difference=f"{check.without_positions:.1e}", size=f"{check.output_scale:.2f}"),
        say("pos.with", difference=f"{check.with_positions:.2f}"),
        say("pos.bag"),
    ]
    return Section(4, say("pos.title"), tuple(lines))


def stacking(context: Context) -> Section:
    say = context.say
    trace = context.model_trace
    if trace is None:
        raise InputError(
            "Part 4's stacking section needs MiniLM's trace of the sentence: pass "
            "model_trace=qkv.trace(qkv.load('minilm'), SENTENCE)"
        )
    labels = trace.labels
    riley = _token_index(labels, RILEY)
    focus = layer_focus(trace.weights, trace.layers, trace.special, riley, top=3)
    lines = [] if context.quick else [say("stack.layers", layers=len(trace.layers))]
    lines += [say("stack.model", tokens=len(labels), token=labels[riley]), say("stack.header")]
    for entry in focus:
        top = " · ".join(f"{labels[i]} {num(w)}" for i, w in entry.top)
        lines.append(
            say(
                "stack.row",
                layer=entry.layer,
                special=num(entry.special_share),
                entropy=f"{entry.entropy:.2f}",
                top=top,
            )
        )
    first, last = (_besides(entry.top, riley) for entry in (focus[0], focus[-1]))
    if first is not None and last is not None:
        lines.append(
            say("stack.moves", first=focus[0].layer, last=focus[-1].layer, before=labels[first], after=labels[last])
        )
    if not context.quick:
        shares = [entry.special_share for entry in focus]
        lines.append(say("stack.rest", low=num(min(shares)), high=num(max(shares))))
    figure = Figure(trace, say("stack.figure", layers=len(trace.layers), heads=trace.heads))
    return Section(4, say("stack.title"), tuple(lines), (figure,))


def _besides(top: tuple[tuple[int, float], ...], token: int) -> int | None:
    """The first of ``top``'s tokens that is not ``token`` itself."""
    return next((index for index, _ in top if index != token), None)


def _token_index(labels: list[str], word: str) -> int:
    """The first token that spells ``word`` (any case)."""
    for index, label in enumerate(labels):
        if label.lower() == word:
            return index
    raise InputError(f"the trace has no token {word!r}; its tokens are {labels}: pass the trace of the tour's sentence")
