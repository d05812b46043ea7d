"""The tour's Parts 1–3 and the final link, each a function of the :class:`~qkv.article.tour_base.Context`.

Every number comes from :mod:`~qkv.article.part1_mixing`, :mod:`~qkv.article.part2_keys` and
:mod:`~qkv.article.part3_queries` at run time. Parts 2–3 read their keys and queries from the head of MiniLM's
first layer that :mod:`~qkv.article.one_head` picks now (where riley ⇒ dog outweighs dog ⇒ riley most), so
each part shows its own idea; the article's literal vectors (raw embeddings through the full width) appear
beside them as the honest failure: unit keys' dot products below 0, and near-even weights.

The final link, Part 3 + softmax + ``1/√K`` == ``qkv.attend``, is checked while the tour runs; a mismatch
raises ``RuntimeError`` instead of printing a wrong claim.
"""

from __future__ import annotations

import math

import torch

from qkv.article.one_head import FOCUS, OTHER
from qkv.article.part1_mixing import cosine_similarity, fixed_ratio_weights, mix, mix_every_pair
from qkv.article.part2_keys import ArticleMathError, check_normalisation, key_relevance, normalise
from qkv.article.part3_queries import part3_attention, part3_via_attend, part3_with_softmax, query_relevance
from qkv.article.tour_base import Context, Figure, Section, num, table, word_trace
from qkv.shapes import Tensor

__all__ = ["DOG", "FINAL_LINK_TOLERANCE", "RATIO", "RILEY", "SIMILAR_WORDS", "final_link", "part1", "part2", "part3"]

#: Part 1's mixing ratio, the article's 0.75.
RATIO = 0.75
#: The words Part 1 measures "riley" against, before and after mixing in "dog".
SIMILAR_WORDS = ("dog", "puppy", "person")
#: The largest difference allowed between Part 3 + softmax and ``qkv.attend`` (float64 vectors).
FINAL_LINK_TOLERANCE = 1e-10

RILEY, DOG = FOCUS, OTHER


def part1(context: Context) -> list[Section]:
    database, words, say = context.database, context.words, context.say
    v_riley, v_dog = database.value(RILEY), database.value(DOG)
    mixed = mix(v_riley, v_dog, ratio=RATIO)  # (D,)
    lines = [say("part1.rule", ratio=RATIO, rest=f"{1 - RATIO:.2f}"), say("part1.similarity_head")]
    for word in SIMILAR_WORDS:
        other = database.value(word)
        before, after = num(cosine_similarity(v_riley, other)), num(cosine_similarity(mixed, other))
        lines.append(say("part1.similarity_row", word=word, before=before, after=after))
    closer = cosine_similarity(mixed, v_dog) > cosine_similarity(v_riley, v_dog)
    lines.append(say("part1.closer" if closer else "part1.not_closer"))

    # The same rule applied to every pair: each word keeps 0.75 of itself and spreads 0.25 over the rest.
    values = database.values(words)  # (T, D)
    weights = fixed_ratio_weights(len(words), RATIO)  # (T, T)
    every_pair = mix_every_pair(values, RATIO)  # (T, D)
    riley, dog, so = words.index(RILEY), words.index(DOG), words.index("so")
    similarities = cosine_similarity(values[:, None], values[None])  # (T, T)
    mixed_similarities = cosine_similarity(every_pair[:, None], every_pair[None])  # (T, T)
    off_diagonal = ~torch.eye(len(words), dtype=torch.bool)
    lines += [
        say("part1.every_pair"),
        say("part1.same_weight", dog=num(weights[riley, dog]), so=num(weights[riley, so])),
        say(
            "part1.reaches_only",
            every=num(cosine_similarity(every_pair[riley], v_dog)),
            alone=num(cosine_similarity(mixed, v_dog)),
        ),
        say(
            "part1.blur",
            before=num(similarities[off_diagonal].mean()),
            after=num(mixed_similarities[off_diagonal].mean()),
        ),
    ]
    if not context.quick:
        lines.append(say("part1.fixed_row"))
        lines += table(words, weights[riley])
    lines.append(say("part1.need"))
    return [Section(1, say("part1.title"), tuple(lines))]


def part2(context: Context) -> list[Section]:
    words, say, head = context.words, context.say, context.head
    riley, dog = head.focus, head.other
    keys, values = head.unit_keys, head.values  # (S, K) unit, (S, D)
    lines = [
        say("part2.source", head=head.head, heads=head.layer.heads, width=head.head_width),
        say("part2.choice", head=head.head, heads=head.layer.heads, there=num(head.there), back=num(head.back)),
    ]
    if not context.quick:
        norm, raw = (f"{float(x.norm(dim=-1).mean()):.1f}" for x in (head.layer.inputs, values))
        lines.append(say("part2.inputs", norm=norm, raw=raw))
    relevances = key_relevance(keys)  # (S, S)
    there, back = relevances[riley, dog], relevances[dog, riley]
    verdict = say("part2.same" if bool(there == back) else "part2.different")
    lines.append(say("part2.pair", there=num(there), back=num(back)))
    lines.append(say("part2.symmetric", verdict=verdict, gap=f"{float((relevances - relevances.T).abs().max()):.1e}"))
    if not context.quick:
        others = relevances - 3 * torch.eye(len(words), dtype=relevances.dtype)  # (S, S): a word is not its own match
        riley_best, dog_best = int(others[riley].argmax()), int(others[dog].argmax())
        lines.append(
            say(
                "part2.closest",
                riley_best=words[riley_best],
                riley_value=num(relevances[riley, riley_best]),
                dog_best=words[dog_best],
                dog_value=num(relevances[dog, dog_best]),
            )
        )

    # Dividing by the row sums: a proper weighted average when every relevance is ≥ 0.
    report = check_normalisation(relevances)
    weights = normalise(relevances, strict=False)  # (S, S)
    if report.ok:
        lines.append(say("part2.positive", low=num(relevances.min())))
    else:
        lines.append(say("part2.range", negatives=int((relevances < 0).sum()), total=relevances.numel()))
    if not context.quick:
        lines.append(say("part2.row_head"))
        lines += table(words, weights[riley])
    lines.append(
        say(
            "part2.divided",
            there=num(weights[riley, dog]),
            back=num(weights[dog, riley]),
            riley_sum=num(relevances[riley].sum()),
            dog_sum=num(relevances[dog].sum()),
        )
    )
    v_dog = values[dog]
    lines.append(
        say(
            "part2.new_value",
            before=num(cosine_similarity(values[riley], v_dog)),
            after=num(cosine_similarity(weights[riley] @ values, v_dog)),
        )
    )
    lines += _raw_keys(context)
    lines.append(say("part2.wrong", value=num(there)))
    return [Section(2, say("part2.title"), tuple(lines))]


def _raw_keys(context: Context) -> list[str]:
    """The article's literal keys (raw embeddings, full width): dot products of unit keys lie in [-1, 1]."""
    database, words, say, head = context.database, context.words, context.say, context.head
    riley, dog = head.focus, head.other
    keys = database.keys(words)  # (S, D) unit
    relevances = key_relevance(keys)  # (S, S)
    row = relevances[riley]  # (S,)
    lowest = int(row.argmin())
    lines = [
        say("part2.raw", there=num(relevances[riley, dog]), width=keys.shape[1]),
        say("part2.raw_range", negatives=int((relevances < 0).sum()), total=relevances.numel()),
        say("part2.lowest", word=words[lowest], value=num(row[lowest])),
    ]
    report = check_normalisation(row)
    weights = normalise(row, strict=False)  # (S,)
    subtracted = bool(weights[lowest] < 0)
    key = "part2.keeps_subtracted" if subtracted else "part2.keeps"
    lines.append(say(key, total=num(report.row_sums[0]), own=num(weights[riley]), word=words[lowest],
                     weight=num(weights[lowest])))  # fmt: skip
    if not context.quick:
        lines.append(say("part2.scale", total=num(weights.sum()), times=f"{float(report.amplification[0]):.2f}"))
    if not check_normalisation(relevances).ok:
        lines.append(say("part2.raises"))
    return lines


def part3(context: Context) -> list[Section]:
    words, say, head = context.words, context.say, context.head
    queries, keys, values = head.queries, head.keys, head.values  # (T, K), (S, K), (S, D)
    riley, dog = head.focus, head.other
    scores = query_relevance(queries, keys)  # (T, S)
    there, back = scores[riley, dog], scores[dog, riley]
    verdict = say("part3.asymmetric" if bool(there != back) else "part3.equal")
    lines = [
        say("part3.source", head=head.head),
        say("part3.pair", there=num(there), back=num(back)),
        say("part3.gap", verdict=verdict, gap=f"{float((scores - scores.T).abs().max()):.3f}"),
        say(
            "part3.ranks",
            riley_rank=_rank(scores[riley], dog),
            dog_rank=_rank(scores[dog], riley),
            rows=len(words),
            dog_best=words[int(scores[dog].argmax())],
            dog_value=num(scores[dog].max()),
        ),
    ]
    report = check_normalisation(scores)
    lines.append(say("part3.range", low=num(scores.min()), high=num(scores.max())))
    try:
        part3_attention(queries, keys, values)
        lines.append(say("part3.holds"))
    except ArticleMathError as error:
        summed = normalise(scores, strict=False)  # (T, S): the division done anyway
        lines.append(
            say(
                "part3.anyway",
                there=num(summed[riley, dog]),
                back=num(summed[dog, riley]),
                own=num(summed[riley, riley]),
            )
        )
        lines.append(
            say(
                "part3.raises",
                negative=report.negative_count,
                total=scores.numel(),
                negative_rows=len(report.negative_rows),
                flipped=len(report.flipped_rows),
                rows=len(words),
                near_zero=len(report.near_zero_rows),
            )
        )
        if not context.quick:
            lines.append("  " + say("part3.error", message=error))  # folded when printed
    return [Section(3, say("part3.title"), tuple(lines)), final_link(context, queries, keys, values)]


def _rank(row: Tensor, index: int) -> int:
    """1 for the highest entry of ``row``, 2 for the next…: where ``row[index]`` stands."""
    return int((row > row[index]).sum()) + 1


def final_link(context: Context, queries: Tensor, keys: Tensor, values: Tensor) -> Section:
    words, say, head = context.words, context.say, context.head
    width = queries.shape[1]
    scale = 1.0 / math.sqrt(width)
    new_values, weights = part3_with_softmax(queries, keys, values)  # (T, D), (T, S)
    exact_values, exact_weights = part3_via_attend(queries, keys, values, need_weights=True)
    fused_values, _ = part3_via_attend(queries, keys, values)
    assert exact_weights is not None  # need_weights=True always returns them
    differences = {
        "link.exact_outputs": float((new_values - exact_values).abs().max()),
        "link.exact_weights": float((weights - exact_weights).abs().max()),
        "link.fused_outputs": float((new_values - fused_values).abs().max()),
    }
    worst = max(differences.values())
    if not worst <= FINAL_LINK_TOLERANCE:  # `not <=` also catches NaN
        # Not the reader's mistake but ours: the two implementations must agree.
        raise RuntimeError(f"Part 3 + softmax disagrees with qkv.attend by {worst:.3g}: {differences}")

    lines = [
        say("link.formula", scale=f"{scale:.4f}", width=width),
        say("link.rows", gap=f"{float((weights.sum(dim=-1) - 1).abs().max()):.1e}"),
    ]
    for name, difference in differences.items():
        lines.append(say("link.difference", name=say(name), difference=f"{difference:.1e}"))
    lines.append(say("link.checked", tolerance=f"{FINAL_LINK_TOLERANCE:.0e}"))

    riley, dog = head.focus, head.other
    top = torch.topk(weights[riley], k=3)
    attended = ", ".join(f"{words[int(i)]} {num(w)}" for w, i in zip(top.values, top.indices, strict=True))
    lines.append(say("link.attends", attended=attended, uniform=num(1 / len(words))))
    there, back = weights[riley, dog], weights[dog, riley]
    dog_best = int(weights[dog].argmax())
    payoff = "link.payoff" if bool(there > 2 * back) else "link.no_payoff"
    lines.append(say(payoff, there=num(there), back=num(back), dog_best=words[dog_best],
                     dog_value=num(weights[dog, dog_best])))  # fmt: skip
    v_dog = values[dog]
    lines.append(
        say(
            "link.new_value",
            before=num(cosine_similarity(values[riley], v_dog)),
            after=num(cosine_similarity(new_values[riley], v_dog)),
        )
    )
    lines.append(_raw_link(context))
    if not context.quick:
        raw = query_relevance(queries, keys)  # (T, S)
        lines.append(say("link.why"))
        lines.append(say("link.spread", unscaled=f"{float(raw.std()):.3f}", scaled=f"{float((raw * scale).std()):.3f}"))
    figure = Figure(word_trace(weights[None, None], words), say("link.figure", head=head.head))  # (1, 1, T, S)
    return Section(3, say("link.title"), tuple(lines), (figure,))


def _raw_link(context: Context) -> str:
    """The same final link on the article's literal vectors: raw embeddings through the full width."""
    database, words, head = context.database, context.words, context.head
    queries, keys, values = database.queries(words), database.keys(words), database.values(words)  # (T, D) each
    _, weights = part3_with_softmax(queries, keys, values)  # (T, S)
    riley, dog = head.focus, head.other
    return context.say(
        "link.raw",
        width=queries.shape[1],
        there=num(weights[riley, dog]),
        back=num(weights[dog, riley]),
        uniform=num(1 / len(words)),
        top=num(weights.max()),
        times=f"{float(head.layer.inputs.norm(dim=-1).mean() / values.norm(dim=-1).mean()):.0f}",
    )
