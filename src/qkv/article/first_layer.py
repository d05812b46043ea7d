"""MiniLM's first attention layer as the model runs it, for the details the article left out (Part 4).

The article's vectors (:mod:`qkv.article.vectors`) are raw word embeddings with no position, and its keys and
queries span the whole width. The real first layer of MiniLM does three things more before it attends:

* it adds a **position** vector (``embeddings.position_embeddings``) and a token-type vector to every word's
  embedding, then **normalises** the sum (``embeddings.LayerNorm``): the article's raw embeddings are about
  20 times shorter than what the layer reads;
* it projects the result to queries, keys *and values* (``to_q``, ``to_k``, ``to_v``);
* it splits each projection into ``heads`` slices of width ``K = D / heads`` (MiniLM: 12 heads of 32), and
  every head attends on its own.

:class:`FirstLayer` holds those tensors (read once from ``model.safetensors``); its methods are those steps,
one word per position (the real model works on word pieces, with ``[CLS]`` at position 0: word ``t`` of the
sentence takes position ``t + 1`` here, where it would stand after ``[CLS]`` if no word were cut into pieces).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from qkv.data.tensors import read_tensors
from qkv.shapes import ShapeError, Tensor

__all__ = ["FirstLayer", "read_first_layer"]

_PREFIX = "encoder.layer.0.attention.self"


@dataclass(frozen=True, eq=False)
class FirstLayer:
    """The tensors of MiniLM's embedding block and first attention layer (all ``(D,)`` or ``(D, D)``)."""

    norm_weight: Tensor  # (D,)
    norm_bias: Tensor  # (D,)
    norm_eps: float
    token_type: Tensor  # (D,): token type 0, which every word of one sentence has
    positions: Tensor  # (P, D): one row per position
    to_q: tuple[Tensor, Tensor]  # weight (D, D), bias (D,)
    to_k: tuple[Tensor, Tensor]
    to_v: tuple[Tensor, Tensor]
    heads: int

    @property
    def width(self) -> int:
        """D, the model width."""
        return int(self.norm_weight.shape[0])

    @property
    def head_width(self) -> int:
        """K = D / heads, the width of one head's queries and keys."""
        return self.width // self.heads

    def position_vectors(self, count: int) -> Tensor:
        """``(T, D)``: the position vectors of words ``0 … count − 1`` (positions ``1 … count``, after [CLS])."""
        if not 0 < count < self.positions.shape[0]:
            raise ShapeError(f"MiniLM has {self.positions.shape[0] - 1} word positions after [CLS]; asked {count}")
        return self.positions[1 : count + 1]  # (T, D)

    def inputs(self, embeddings: Tensor, *, positions: bool = True) -> Tensor:
        """``(T, D)``: what the first layer reads: ``LayerNorm(embedding + token type [+ position])``.

        With ``positions=False`` nothing tells the layer where a word stands: the article's setting.
        """
        if embeddings.dim() != 2 or embeddings.shape[1] != self.width:
            raise ShapeError(f"embeddings must be (T, {self.width}), got {tuple(embeddings.shape)}")
        summed = embeddings + self.token_type  # (T, D)
        if positions:
            summed = summed + self.position_vectors(embeddings.shape[0])  # (T, D)
        return F.layer_norm(summed, (self.width,), self.norm_weight, self.norm_bias, self.norm_eps)

    def project(self, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(queries, keys, values)``, each ``(T, D)``: the three learned projections of ``inputs (T, D)``."""
        (wq, bq), (wk, bk), (wv, bv) = self.to_q, self.to_k, self.to_v
        return inputs @ wq.T + bq, inputs @ wk.T + bk, inputs @ wv.T + bv  # (T, D) each


def read_first_layer(model_dir: Path, dtype: torch.dtype = torch.float64) -> FirstLayer:
    """Read :class:`FirstLayer` from MiniLM's ``model.safetensors`` and ``config.json`` in ``model_dir``."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    embeddings = ("LayerNorm.weight", "LayerNorm.bias", "token_type_embeddings.weight", "position_embeddings.weight")
    projections = ("query", "key", "value")
    names = [f"embeddings.{name}" for name in embeddings]
    names += [f"{_PREFIX}.{name}.{part}" for name in projections for part in ("weight", "bias")]
    tensors = {name: tensor.to(dtype) for name, tensor in read_tensors(model_dir / "model.safetensors", names).items()}

    def projection(name: str) -> tuple[Tensor, Tensor]:
        return tensors[f"{_PREFIX}.{name}.weight"], tensors[f"{_PREFIX}.{name}.bias"]  # (D_out, D_in), (D_out,)

    return FirstLayer(
        norm_weight=tensors["embeddings.LayerNorm.weight"],
        norm_bias=tensors["embeddings.LayerNorm.bias"],
        norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        token_type=tensors["embeddings.token_type_embeddings.weight"][0],
        positions=tensors["embeddings.position_embeddings.weight"],
        to_q=projection("query"),
        to_k=projection("key"),
        to_v=projection("value"),
        heads=int(config["num_attention_heads"]),
    )
