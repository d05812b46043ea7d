"""The tour: the article's three parts on its sentence, narrated, with every number computed now.

:func:`build_tour` returns the text as lines; it prints nothing (``qkv tour`` prints them). The vectors
are MiniLM's (see :mod:`qkv.article.vectors`) and every figure below comes from the functions of
:mod:`~qkv.article.part1_mixing`, :mod:`~qkv.article.part2_keys` and :mod:`~qkv.article.part3_queries`
at run time: nothing is canned. The final link, Part 3 + softmax + ``1/√K`` == ``qkv.attend``, is
checked while the tour runs; a mismatch raises ``RuntimeError`` instead of printing a wrong claim.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import torch

from qkv.article.part1_mixing import cosine_similarity, fixed_ratio_weights, mix, mix_every_pair
from qkv.article.part2_keys import ArticleMathError, check_normalisation, key_relevance, normalise, relevance
from qkv.article.part3_queries import part3_attention, part3_via_attend, part3_with_softmax, query_relevance
from qkv.article.vectors import SENTENCE, VectorDatabase, default_database, split_words
from qkv.shapes import Tensor

__all__ = ["FINAL_LINK_TOLERANCE", "PARTS", "RATIO", "SIMILAR_WORDS", "build_tour", "num"]

PARTS = (1, 2, 3)
#: Part 1's mixing ratio, the article's 0.75.
RATIO = 0.75
#: The words Part 1 measures "riley" against, before and after mixing in "dog".
SIMILAR_WORDS = ("dog", "puppy", "person")
#: The largest difference allowed between Part 3 + softmax and ``qkv.attend`` (float64 vectors).
FINAL_LINK_TOLERANCE = 1e-10

RILEY, DOG = "riley", "dog"


def num(x: Tensor | float) -> str:
    """How the tour writes a number: signed, three decimals (the tests format expected numbers with it)."""
    return f"{float(x):+.3f}"


def _rule(title: str) -> list[str]:
    return ["", title, "─" * len(title)]


def _table(words: Sequence[str], numbers: Tensor, *, per_line: int = 5, indent: str = "  ") -> list[str]:
    """``word +0.123`` cells, aligned in columns, ``per_line`` to a line."""
    cells = [f"{word:>12} {num(x)}" for word, x in zip(words, numbers.tolist(), strict=True)]
    return [indent + "".join(cells[i : i + per_line]) for i in range(0, len(cells), per_line)]


def build_tour(*, quick: bool = False, part: int | None = None, database: VectorDatabase | None = None) -> list[str]:
    """The tour's text, one string per line. ``part`` shows only that part (3 includes the final link)."""
    if part is not None and part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(map(str, PARTS))}, got {part}")
    database = default_database() if database is None else database
    words = split_words(SENTENCE)
    lines = [
        "qkv tour — the article's self-attention, built in three parts, on real vectors",
        f"sentence: {SENTENCE!r}",
        f"words:    {' · '.join(words)}",
    ]
    if not quick:
        split = [f"{word} = {' + '.join(database.pieces(word))}" for word in words if len(database.pieces(word)) > 1]
        lines.append(f"Vectors are MiniLM's (width D = {database.value(RILEY).shape[0]}). Words cut into pieces get")
        lines.append(f"the mean of their pieces' vectors: {'; '.join(split)}.")
    sections = {1: _part1, 2: _part2, 3: _part3}
    for number in PARTS if part is None else (part,):
        lines += sections[number](database, words, quick)
    return lines


def _part1(database: VectorDatabase, words: list[str], quick: bool) -> list[str]:
    lines = _rule("Part 1 — mixing two values at a fixed ratio")
    v_riley, v_dog = database.value(RILEY), database.value(DOG)
    mixed = mix(v_riley, v_dog, ratio=RATIO)  # (D,)
    lines.append(f"v_riley ← {RATIO} · v_riley + {1 - RATIO:.2f} · v_dog")
    lines.append("cosine similarity of riley to:   before    after")
    for word in SIMILAR_WORDS:
        other = database.value(word)
        before, after = cosine_similarity(v_riley, other), cosine_similarity(mixed, other)
        lines.append(f"  {word:<30} {num(before):>7}  {num(after):>7}")
    closer = cosine_similarity(mixed, v_dog) > cosine_similarity(v_riley, v_dog)
    lines.append("riley now carries some of dog's meaning." if closer else "riley did not move towards dog.")

    # The same rule applied to every pair: each word keeps 0.75 of itself and spreads 0.25 over the rest.
    values = database.values(words)  # (T, D)
    weights = fixed_ratio_weights(len(words), RATIO)  # (T, T)
    every_pair = mix_every_pair(values, RATIO)  # (T, D)
    riley, dog = words.index(RILEY), words.index(DOG)
    similarities = cosine_similarity(values[:, None], values[None])  # (T, T)
    mixed_similarities = cosine_similarity(every_pair[:, None], every_pair[None])  # (T, T)
    off_diagonal = ~torch.eye(len(words), dtype=torch.bool)
    lines.append("Mixing every pair at the same ratio fails: the ratio cannot tell which words matter.")
    so = words.index("so")
    lines.append(
        f"  riley gives dog weight {num(weights[riley, dog])}, the same as 'so' {num(weights[riley, so])}"
        " and every other word;"
    )
    lines.append(
        f"  riley's similarity to dog reaches only {num(cosine_similarity(every_pair[riley], v_dog))}"
        f" (mixing dog alone: {num(cosine_similarity(mixed, v_dog))}),"
    )
    lines.append(
        f"  and the words blur together: mean similarity between words {num(similarities[off_diagonal].mean())}"
        f" → {num(mixed_similarities[off_diagonal].mean())}."
    )
    if not quick:
        lines.append("  The weights are fixed in advance, whatever the words; riley's row:")
        lines += _table(words, weights[riley])
    lines.append("We need a measure of how much each word should take from each other word.")
    return lines


def _part2(database: VectorDatabase, words: list[str], quick: bool) -> list[str]:
    lines = _rule("Part 2 — unit keys: relevance = k_a · k_b, normalised, weights a sum of values")
    k_riley, k_dog = database.key(RILEY), database.key(DOG)
    riley_to_dog, dog_to_riley = relevance(k_riley, k_dog), relevance(k_dog, k_riley)
    lines.append(
        f"riley ⇒ dog: k_riley · k_dog = {num(riley_to_dog)}   dog ⇒ riley: k_dog · k_riley = {num(dog_to_riley)}"
        f"   {'the same' if bool(riley_to_dog == dog_to_riley) else 'different'}."
    )
    keys, values = database.keys(words), database.values(words)  # (S, D) unit, (S, D)
    relevances = key_relevance(keys)  # (S, S)
    lines.append(
        f"The dot product is symmetric: over the whole sentence, max |r[a, b] − r[b, a]| = "
        f"{float((relevances - relevances.T).abs().max()):.1e}."
    )

    # The article says unit keys' dot products lie in [0, 1]. They lie in [-1, 1].
    riley = words.index(RILEY)
    row = relevances[riley]  # (S,)
    lowest = int(row.argmin())
    negatives = int((relevances < 0).sum())
    lines.append(
        f"Dot products of unit vectors lie in [-1, 1], not [0, 1]: {negatives} of the {relevances.numel()} "
        "relevances here are negative;"
    )
    lines.append(f"  riley's lowest is riley · {words[lowest]} = {num(row[lowest])}.")
    if not quick:
        lines.append("  riley's relevances, k_riley · k for every word:")
        lines += _table(words, row)
    report = check_normalisation(row)
    weights = normalise(row, strict=False)  # (S,)
    lines.append(f"Sum-normalising riley's row divides by its sum, {num(report.row_sums[0])}:")
    lines.append(
        f"  riley keeps weight {num(weights[riley])}, {words[lowest]} gets {num(weights[lowest])}"
        + (" (its value is subtracted);" if bool(weights[lowest] < 0) else ";")
    )
    lines.append(
        f"  the weights sum to {num(weights.sum())} but are {float(report.amplification[0]):.2f}× larger "
        "than the relevances' own scale."
    )
    sentence_report = check_normalisation(relevances)
    lines.append(
        f"  Over the sentence: {len(sentence_report.negative_rows)} of {len(words)} rows have negative "
        f"relevances, {len(sentence_report.flipped_rows)} sum below 0, {len(sentence_report.near_zero_rows)}"
        " sum to nearly 0."
    )
    if not sentence_report.ok:
        lines.append("  normalise() raises ArticleMathError on such rows unless told strict=False.")
    new_riley = weights @ values  # (D,)
    lines.append(
        f"The new v_riley is a weighted sum of values; its similarity to dog: "
        f"{num(cosine_similarity(values[riley], values[words.index(DOG)]))} → "
        f"{num(cosine_similarity(new_riley, values[words.index(DOG)]))}."
    )
    lines.append("What is wrong: relevance is symmetric, but riley → dog matters more than dog → riley.")
    return lines


def _part3(database: VectorDatabase, words: list[str], quick: bool) -> list[str]:
    lines = _rule("Part 3 — queries: relevance = q_a · k_b, new_V = normalise(Q @ K.T) @ V")
    queries, keys, values = database.queries(words), database.keys(words), database.values(words)  # (T, D) each
    riley, dog = words.index(RILEY), words.index(DOG)
    scores = query_relevance(queries, keys)  # (T, S)
    lines.append(
        f"riley ⇒ dog: q_riley · k_dog = {num(scores[riley, dog])}   "
        f"dog ⇒ riley: q_dog · k_riley = {num(scores[dog, riley])}"
        f"   {'asymmetric' if bool(scores[riley, dog] != scores[dog, riley]) else 'equal here'}."
    )
    lines.append(f"Over the sentence, max |r[a, b] − r[b, a]| = {float((scores - scores.T).abs().max()):.3f}.")

    report = check_normalisation(scores)
    lines.append(f"Queries are not unit vectors: relevances range over [{num(scores.min())}, {num(scores.max())}];")
    lines.append(f"  riley's row sums to {num(report.row_sums[riley])}, dog's to {num(report.row_sums[dog])}.")
    try:
        part3_attention(queries, keys, values)
        lines.append("The article's sum-normalisation holds on this sentence.")
    except ArticleMathError as error:
        lines.append(
            f"So normalise(Q @ K.T) raises ArticleMathError: {report.negative_count} of {scores.numel()} "
            "relevances are negative,"
        )
        lines.append(
            f"  {len(report.flipped_rows)} of {len(words)} rows sum below 0 (dividing would flip every weight's"
            f" sign), {len(report.near_zero_rows)} sum to nearly 0."
        )
        if not quick:
            lines += textwrap.wrap(
                f"ArticleMathError: {error}", width=100, initial_indent="  ", subsequent_indent="    "
            )

    lines += _final_link(queries, keys, values, words, quick)
    return lines


def _final_link(queries: Tensor, keys: Tensor, values: Tensor, words: list[str], quick: bool) -> list[str]:
    lines = _rule("The final link — Part 3 + softmax + 1/√K is qkv.attend")
    width = queries.shape[1]
    scale = 1.0 / math.sqrt(width)
    new_values, weights = part3_with_softmax(queries, keys, values)  # (T, D), (T, S)
    exact_values, exact_weights = part3_via_attend(queries, keys, values, need_weights=True)
    fused_values, _ = part3_via_attend(queries, keys, values)
    assert exact_weights is not None  # need_weights=True always returns them
    differences = {
        "exact path, outputs": float((new_values - exact_values).abs().max()),
        "exact path, weights": float((weights - exact_weights).abs().max()),
        "fused path, outputs": float((new_values - fused_values).abs().max()),
    }
    worst = max(differences.values())
    if not worst <= FINAL_LINK_TOLERANCE:  # `not <=` also catches NaN
        # Not the reader's mistake but ours: the two implementations must agree.
        raise RuntimeError(f"Part 3 + softmax disagrees with qkv.attend by {worst:.3g}: {differences}")

    lines.append(f"softmax(Q @ K.T · {scale:.4f}) @ V, with K = {width} and 1/√K = {scale:.4f}:")
    lines.append(
        "  softmax weights are all positive and every row sums to 1: max |row sum − 1| = "
        f"{float((weights.sum(dim=-1) - 1).abs().max()):.1e}"
    )
    for name, difference in differences.items():
        lines.append(f"  max |part3_with_softmax − qkv.attend| ({name}): {difference:.1e}")
    lines.append(f"  checked: equal within {FINAL_LINK_TOLERANCE:.0e}.")

    riley = words.index(RILEY)
    top = torch.topk(weights[riley], k=3)
    attended = ", ".join(f"{words[int(i)]} {num(w)}" for w, i in zip(top.values, top.indices, strict=True))
    lines.append(f"riley now attends most to: {attended} (uniform would be {num(1 / len(words))}).")
    if not quick:
        raw = query_relevance(queries, keys)  # (T, S)
        lines.append("Why 1/√K: a dot product of K terms, each of spread 1, has spread √K; dividing by √K keeps")
        lines.append("  scores at the same spread whatever the width, so softmax does not drift to all-or-nothing.")
        lines.append(
            f"  Score spread (std) here: {float(raw.std()):.3f} unscaled, {float((raw * scale).std()):.3f} scaled."
        )
    return lines
