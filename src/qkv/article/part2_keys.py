"""Part 2 of the article: unit keys say how related two words are; relevances weight a sum of values.

Every word now has a value ``v`` (its meaning) and a unit key ``k`` (what it relates to). The relevance of
two words is the dot product of their keys, and a word's new value is the sum of every value weighted by
its relevance, after dividing the relevances by their sum::

    relevances = [k_riley · k for k in keys]
    relevances /= sum(relevances)
    v_riley = relevances · values

Two things the article glosses over, said here in code:

* **The dot product is symmetric**: ``k_riley · k_dog == k_dog · k_riley``, so "riley" attends to "dog"
  exactly as strongly as "dog" attends to "riley" (before normalising). Part 3 exists to break this.
* **Unit keys' dot products lie in [-1, 1], not [0, 1]** as the article says. A negative relevance
  subtracts a word's value, a row whose sum is negative has every sign flipped by the division, and a row
  whose sum is near zero is blown up. :func:`normalise` detects all three: by default it raises
  :class:`ArticleMathError`; with ``strict=False`` it divides anyway, and :func:`check_normalisation`
  returns the full :class:`NormalisationReport`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qkv.errors import InputError
from qkv.shapes import ShapeError, Tensor

__all__ = [
    "ArticleMathError",
    "NormalisationReport",
    "check_normalisation",
    "key_relevance",
    "normalise",
    "pair_update",
    "part2_attention",
    "part2_update",
    "relevance",
    "require_unit",
]


class ArticleMathError(InputError):
    """The article's maths does not hold for these numbers; the message says where and why."""


@dataclass(frozen=True)
class NormalisationReport:
    """What dividing relevances by their row sums would do, row by row (a 1-D input is one row, row 0).

    ``amplification`` is ``sum |r| / |sum r|`` per row: exactly 1 when every relevance is ≥ 0 (the weights
    then form a weighted average); above 1 when some are negative; huge (or inf) when the sum is near 0.
    """

    row_sums: Tensor  # (rows,)
    amplification: Tensor  # (rows,)
    negative_rows: tuple[int, ...]  # rows with a negative relevance: that word's value is subtracted
    flipped_rows: tuple[int, ...]  # rows whose sum is < 0: dividing reverses the sign of every weight
    near_zero_rows: tuple[int, ...]  # rows whose amplification reaches max_amplification: division by ~0
    negative_count: int
    most_negative: float

    @property
    def ok(self) -> bool:
        """True when sum-normalisation gives a proper weighted average (the article's assumption)."""
        return not (self.negative_rows or self.flipped_rows or self.near_zero_rows)

    def explain(self) -> str:
        """One paragraph naming every problem, for an error message or the tour."""
        if self.ok:
            return "every relevance is ≥ 0: sum-normalisation gives weights in [0, 1] that sum to 1"

        def rows(indices: tuple[int, ...]) -> str:
            shown = ", ".join(str(i) for i in indices[:8])
            return shown + (f" (+{len(indices) - 8} more)" if len(indices) > 8 else "")

        problems = []
        if self.negative_rows:
            problems.append(
                f"{self.negative_count} relevance(s) are negative (lowest {self.most_negative:+.3f}) in row(s) "
                f"{rows(self.negative_rows)}, so those words' values would be subtracted"
            )
        if self.flipped_rows:
            problems.append(
                f"row(s) {rows(self.flipped_rows)} sum to less than 0, so dividing flips the sign of every weight"
            )
        if self.near_zero_rows:
            worst = float(self.amplification.max())
            problems.append(
                f"row(s) {rows(self.near_zero_rows)} sum to nearly 0, so dividing blows the weights up "
                f"(up to {worst:.3g}× their own scale)"
            )
        return (
            "sum-normalisation needs relevances ≥ 0 (the article assumes unit keys' dot products lie in [0, 1]; "
            "they lie in [-1, 1], and with queries they are unbounded): "
            + "; ".join(problems)
            + ". Softmax (Part 3's final link) makes every weight positive; strict=False divides anyway."
        )


def relevance(k_riley: Tensor, k_dog: Tensor) -> Tensor:
    """The article's ``k_riley · k_dog``: how strongly two words relate. Symmetric by construction."""
    return (k_riley * k_dog).sum(dim=-1)


def pair_update(v_riley: Tensor, v_dog: Tensor, relevance: Tensor | float) -> Tensor:
    """The article's first Part 2 update, exactly as it is written::

        v_riley = relevance * v_riley + (1 - relevance) * v_dog

    Note the direction: as written, relevance 1 keeps ``v_riley`` unchanged and relevance 0 replaces it by
    ``v_dog`` (the article's text says the opposite). A negative relevance (possible: see the module
    docstring) pushes ``v_riley`` *away* from itself.
    """
    return relevance * v_riley + (1 - relevance) * v_dog


def require_unit(name: str, vectors: Tensor, *, tolerance: float = 1e-4) -> None:
    """Raise :class:`ArticleMathError` unless every vector along the last axis has length 1."""
    lengths = vectors.norm(dim=-1)
    if not bool(torch.all((lengths - 1).abs() <= tolerance)):
        raise ArticleMathError(
            f"Part 2 needs unit {name}, but their lengths range over [{float(lengths.min()):.4g}, "
            f"{float(lengths.max()):.4g}]: divide each by its length first"
        )


def key_relevance(keys: Tensor) -> Tensor:
    """``(S, S)``: every word's relevance to every other, ``keys @ keysᵀ``. Symmetric: ``r[i, j] == r[j, i]``."""
    if keys.dim() != 2:
        raise ShapeError(f"keys must be (S, D), got {tuple(keys.shape)}")
    require_unit("keys", keys)
    return keys @ keys.T  # (S, S)


def check_normalisation(relevances: Tensor, *, max_amplification: float = 10.0) -> NormalisationReport:
    """Say what :func:`normalise` would do to ``relevances`` ``(S,)`` or ``(T, S)``, without dividing."""
    if relevances.dim() not in (1, 2):
        raise ShapeError(f"relevances must be (S,) or (T, S), got {tuple(relevances.shape)}")
    rows = relevances.reshape(-1, relevances.shape[-1])  # (rows, S)
    row_sums = rows.sum(dim=-1)  # (rows,)
    # sum|r| / |sum r|: how much larger the weights are than the relevances themselves (1 for a clean row).
    amplification = rows.abs().sum(dim=-1) / row_sums.abs()  # inf where a row sums to exactly 0
    negative = rows < 0  # (rows, S)

    def where(condition: Tensor) -> tuple[int, ...]:
        return tuple(int(i) for i in torch.nonzero(condition).flatten())

    return NormalisationReport(
        row_sums=row_sums,
        amplification=amplification,
        negative_rows=where(negative.any(dim=-1)),
        flipped_rows=where(row_sums < 0),
        near_zero_rows=where(~(amplification < max_amplification)),  # also catches 0/0 = NaN
        negative_count=int(negative.sum()),
        most_negative=float(rows.min()),
    )


def normalise(relevances: Tensor, *, strict: bool = True, max_amplification: float = 10.0) -> Tensor:
    """The article's ``relevances /= sum(relevances)``, row by row: each row then sums to 1.

    ``relevances`` is ``(S,)`` (one word, as in Part 2) or ``(T, S)`` (every word, as in Part 3); the sum is
    over the last axis, kept for broadcasting. With ``strict=True`` (the default) it raises
    :class:`ArticleMathError` when any relevance is negative, a row sum is negative, or a row sum is so close
    to zero that the weights grow ``max_amplification`` times or more. With ``strict=False`` it divides
    regardless; the rows still sum to 1 (unless a sum is exactly 0), but the weights may be negative or huge.
    """
    report = check_normalisation(relevances, max_amplification=max_amplification)
    if strict and not report.ok:
        raise ArticleMathError(report.explain())
    return relevances / relevances.sum(dim=-1, keepdim=True)  # (…, S) / (…, 1)


def part2_update(values: Tensor, keys: Tensor, index: int, *, strict: bool = True) -> tuple[Tensor, Tensor]:
    """The article's Part 2 for one word: returns ``(new value (D,), weights (S,))``.

    ``values (S, D)`` and unit ``keys (S, D)`` are the sentence's; ``index`` picks the word being updated
    ("riley"). Its own key is included, as the article says, to preserve some of its own value.
    """
    if values.dim() != 2 or keys.dim() != 2 or values.shape[0] != keys.shape[0]:
        raise ShapeError(f"values (S, D) and keys (S, D) must match: {tuple(values.shape)}, {tuple(keys.shape)}")
    require_unit("keys", keys)
    relevances = keys @ keys[index]  # (S,): [k_riley · k for k in keys]
    weights = normalise(relevances, strict=strict)  # (S,), sums to 1
    return weights @ values, weights  # (D,): the weighted sum of values


def part2_attention(values: Tensor, keys: Tensor, *, strict: bool = True) -> tuple[Tensor, Tensor]:
    """Part 2 for every word at once: ``(new values (T, D), weights (T, S))`` with ``T == S``.

    ``weights = normalise(keys @ keysᵀ)``; ``new values = weights @ values``.
    """
    if values.dim() != 2 or values.shape[0] != keys.shape[0]:
        raise ShapeError(f"values (S, D) and keys (S, D) must match: {tuple(values.shape)}, {tuple(keys.shape)}")
    weights = normalise(key_relevance(keys), strict=strict)  # (T, S), rows sum to 1
    return weights @ values, weights  # (T, D)
