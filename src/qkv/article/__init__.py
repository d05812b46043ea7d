"""The article's constructions, written to be read beside it ("Motivating self-attention").

Teaching code, deliberately separate from the production core in :mod:`qkv.attention`:

* :mod:`~qkv.article.vectors` — the "vector database": ``get_value``, ``get_key``, ``get_query`` from MiniLM.
* :mod:`~qkv.article.part1_mixing` — Part 1: ``mix(v_riley, v_dog, ratio=0.75)``.
* :mod:`~qkv.article.one_head` — the keys and queries the tour's Parts 2–3 read: one head of MiniLM's first
  layer, picked as the tour runs (where "riley" attends to "dog" most beyond the other way round).
* :mod:`~qkv.article.part2_keys` — Part 2: unit keys, symmetric relevance, ``normalise``, ``part2_update``.
* :mod:`~qkv.article.part3_queries` — Part 3: ``normalise(Q @ K.T) @ V``, and with softmax and ``1/√K``
  it becomes ``qkv.attend``.
* :mod:`~qkv.article.first_layer` and :mod:`~qkv.article.beyond` — what the article left out, in numbers:
  softmax, heads, the ``1/√K`` scale, positions, stacked layers.
* :mod:`~qkv.article.tour` — the narrated walk (``qkv tour``): Parts 1–3 (:mod:`~qkv.article.tour_parts`),
  Part 4 (:mod:`~qkv.article.tour_beyond`), its texts in English and Spanish (:mod:`~qkv.article.messages`)
  and its HTML page (:mod:`~qkv.article.tour_page`).

Importing this package reads no files; the vectors load on first use.
"""

from __future__ import annotations

from qkv.article.one_head import ArticleHead, article_head
from qkv.article.part1_mixing import cosine_similarity, fixed_ratio_weights, mix, mix_every_pair
from qkv.article.part2_keys import (
    ArticleMathError,
    NormalisationReport,
    check_normalisation,
    key_relevance,
    normalise,
    pair_update,
    part2_attention,
    part2_update,
    relevance,
)
from qkv.article.part3_queries import part3_attention, part3_via_attend, part3_with_softmax, query_relevance
from qkv.article.vectors import (
    SENTENCE,
    VectorDatabase,
    get_key,
    get_keys,
    get_queries,
    get_query,
    get_value,
    get_values,
    split_words,
)

__all__ = [
    "SENTENCE",
    "ArticleHead",
    "ArticleMathError",
    "NormalisationReport",
    "VectorDatabase",
    "article_head",
    "check_normalisation",
    "cosine_similarity",
    "fixed_ratio_weights",
    "get_key",
    "get_keys",
    "get_queries",
    "get_query",
    "get_value",
    "get_values",
    "key_relevance",
    "mix",
    "mix_every_pair",
    "normalise",
    "pair_update",
    "part2_attention",
    "part2_update",
    "part3_attention",
    "part3_via_attend",
    "part3_with_softmax",
    "query_relevance",
    "relevance",
    "split_words",
]
