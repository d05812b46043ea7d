"""The Build view's data: the article's vectors for a sentence, computed by :mod:`qkv.article` as the tour
computes them, and the nearest words to a mixed vector (Part 1).

Two sets of vectors go to the page, as the tour uses them:

* the article's literal database — each word's raw embedding (``values``), its unit key and its query through
  the first layer's full width (``keys``, ``queries``): the honest failure of Parts 2–3;
* MiniLM's first layer as the model runs it (``first_layer``): ``LayerNorm(embedding + token type)``
  projected to queries, keys and values, without and with position vectors; and the head of it that
  :func:`qkv.article.one_head.article_head` picks for the sentence (``article_head``), whose keys and queries
  are Parts 2–3's in the tour.

The page rebuilds attention from these vectors in the browser, step by step; ``reference`` holds Python's
own numbers for the same steps, so that the page (and its tests) can show how far its arithmetic is from
``qkv.attend``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from qkv.article.beyond import merge_heads, split_heads
from qkv.article.one_head import LayerRun, article_head, run_first_layer
from qkv.article.part2_keys import key_relevance
from qkv.article.part3_queries import part3_via_attend, part3_with_softmax, query_relevance
from qkv.article.vectors import SENTENCE, VectorDatabase, split_words
from qkv.attention.kernels import attend
from qkv.errors import InputError
from qkv.serve.inputs import RequestError
from qkv.shapes import Tensor

__all__ = ["Article"]

_DIGITS = 8  # significant digits of every number sent (float64 inside)


def _numbers(values: Tensor) -> Any:
    """A float64 tensor as nested lists, each number rounded to 8 significant digits."""
    return _round(values.tolist())


def _round(value: Any) -> Any:
    if isinstance(value, list):
        return [_round(item) for item in value]
    return float(f"{value:.{_DIGITS}g}")


def _projections(run: LayerRun) -> dict[str, Any]:
    """The first layer's queries, keys and values (each ``(W, D)``) as JSON."""
    return {"queries": _numbers(run.queries), "keys": _numbers(run.keys), "values": _numbers(run.values)}


def _attend_difference(run: LayerRun) -> float:
    """``max |the layer's heads − qkv.attend's fused path|`` over the outputs."""
    q, k, v = (split_heads(x, run.heads)[None] for x in (run.queries, run.keys, run.values))  # (1, H, W, K) each
    fused, _ = attend(q, k, v)  # (1, H, W, K)
    return float((merge_heads(fused[0]) - run.output).abs().max())  # (H, W, K) → (W, D)


class Article:
    """MiniLM's article vectors (:class:`~qkv.article.vectors.VectorDatabase`, read on first use) as JSON."""

    def __init__(self, database: VectorDatabase | None = None) -> None:
        self._database = database
        self._default: dict[str, Any] | None = None
        self._vocabulary: tuple[list[str], Tensor] | None = None

    @property
    def database(self) -> VectorDatabase:
        if self._database is None:
            self._database = VectorDatabase()
        return self._database

    def words(self, text: str | None, limit: int) -> list[str]:
        """The sentence's words as the article splits them, within ``limit``."""
        words = split_words(SENTENCE if text is None else text)
        if len(words) < 2:
            raise RequestError("the Build view needs a sentence of at least two words")
        if len(words) > limit:
            raise RequestError(f"the sentence has {len(words)} words; the Build view takes at most {limit}")
        return words

    def build(self, text: str | None, limit: int) -> dict[str, Any]:
        """Values, unit keys and queries of every word (and the same with positions added), plus Python's
        reference numbers for Parts 2 and 3 and the final link (call in the worker)."""
        if text is None and self._default is not None:
            return self._default
        words = self.words(text, limit)
        database = self.database
        try:
            values, keys, queries = database.values(words), database.keys(words), database.queries(words)  # (W, D)
        except InputError as error:  # a word MiniLM has no pieces for
            raise RequestError(str(error)) from None
        head = article_head(database, words)  # Parts 2–3's head, as the tour picks it
        placed_run = run_first_layer(database, words, positions=True)  # (W, D) each, with positions
        layer = database.first_layer()
        positions = layer.position_vectors(len(words))  # (W, D)
        placed = values + positions  # (W, D): each word's value with its position added
        (wq, bq), (wk, bk) = layer.to_q, layer.to_k
        placed_keys = placed @ wk.T + bk  # (W, D)
        placed_queries = placed @ wq.T + bq  # (W, D)
        scores = query_relevance(queries, keys)  # (W, W)
        output, scaled = part3_with_softmax(queries, keys, values)  # (W, D), (W, W): softmax(QKᵀ/√D) V
        fused, _ = part3_via_attend(queries, keys, values)  # the same through qkv.attend's fused path
        head_scores = query_relevance(head.queries, head.keys)  # (W, W): Part 3 on the head
        head_output, head_weights = part3_with_softmax(head.queries, head.keys, values)  # (W, D), (W, W)
        head_fused, _ = part3_via_attend(head.queries, head.keys, values)
        data = {
            "sentence": SENTENCE if text is None else text,
            "words": words,
            "width": layer.width,
            "heads": layer.heads,
            "values": _numbers(values),
            "keys": _numbers(keys),
            "queries": _numbers(queries),
            "positions": _numbers(positions),
            "with_positions": {
                "keys": _numbers(placed_keys / placed_keys.norm(dim=-1, keepdim=True)),
                "queries": _numbers(placed_queries),
            },
            "first_layer": {**_projections(head.layer), "with_positions": _projections(placed_run)},
            "article_head": {
                "head": head.head,
                "width": head.head_width,
                "focus": head.focus,
                "other": head.other,
                "there": _round(head.there),
                "back": _round(head.back),
            },
            "reference": {
                "part2_relevance": _numbers(key_relevance(keys)),
                "part3_scores": _numbers(scores),
                "softmax_weights": _numbers(torch.softmax(scores, dim=-1)),
                "scaled_softmax_weights": _numbers(scaled),
                "output": _numbers(output),
                "attend_difference": float((output - fused).abs().max()),
                "head_relevance": _numbers(key_relevance(head.unit_keys)),
                "head_scores": _numbers(head_scores),
                "head_weights": _numbers(head_weights),
                "head_output": _numbers(head_output),
                "head_attend_difference": float((head_output - head_fused).abs().max()),
                "layer_weights": _numbers(head.layer.weights),
                "layer_output": _numbers(head.layer.output),
                "layer_attend_difference": _attend_difference(head.layer),
            },
        }
        if text is None:
            self._default = data
        return data

    def nearest(self, vector: list[float], k: int, exclude: list[str]) -> list[dict[str, Any]]:
        """The ``k`` words of MiniLM's vocabulary whose values are closest to ``vector`` by cosine, leaving
        out ``exclude`` (call in the worker)."""
        words, table = self._table()
        query = torch.tensor(vector, dtype=table.dtype)  # (D,)
        if query.shape != (table.shape[1],):
            raise RequestError(f'"vector" must hold {table.shape[1]} numbers, got {query.shape[0]}')
        length = float(query.norm())
        if not (math.isfinite(length) and length > 0):
            raise RequestError('"vector" must be finite and not all zeros')
        similarity = table @ (query / length)  # (V,)
        skip = {word.lower() for word in exclude}
        found: list[dict[str, Any]] = []
        candidates = similarity.topk(min(similarity.shape[0], k + len(skip))).indices  # enough to skip every excluded
        for index in candidates.tolist():
            if words[index] not in skip:
                found.append({"word": words[index], "similarity": float(f"{float(similarity[index]):.6g}")})
                if len(found) == k:
                    break
        return found

    def _table(self) -> tuple[list[str], Tensor]:
        """The whole words of MiniLM's vocabulary (no ``##`` pieces, no ``[…]`` tokens) and their value
        vectors as unit rows ``(V, D)`` (float32), read once."""
        if self._vocabulary is None:
            from safetensors import safe_open
            from tokenizers import Tokenizer

            folder = self.database.model_dir
            vocabulary = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab()
            kept = sorted(
                (index, word)
                for word, index in vocabulary.items()
                if not word.startswith(("##", "[")) and any(character.isalpha() for character in word)
            )
            with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
                table = weights.get_tensor("embeddings.word_embeddings.weight")  # (V_all, D)
            rows = table[torch.tensor([index for index, _ in kept])].float()  # (V, D)
            self._vocabulary = ([word for _, word in kept], rows / rows.norm(dim=-1, keepdim=True))
        return self._vocabulary
