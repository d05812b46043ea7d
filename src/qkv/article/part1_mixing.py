"""Part 1 of the article: let "Riley" take on some of the meaning of "dog" by fixed-ratio mixing.

The article keeps most of ``v_riley`` and blends in a little of ``v_dog``::

    v_riley = ratio * v_riley + (1 - ratio) * v_dog        # ratio = 0.75

That works for one hand-picked pair. Applied to a whole sentence, every word would take the same share of
every other word: the ratio cannot know that "dog" matters to "riley" and "so" does not.
:func:`fixed_ratio_weights` writes that attempt as a matrix, the same shape as the attention weights of
Parts 2 and 3, so the failure is visible: every row has the same pattern, whatever the words are.
"""

from __future__ import annotations

import torch

from qkv.errors import InputError
from qkv.shapes import ShapeError, Tensor

__all__ = ["cosine_similarity", "fixed_ratio_weights", "mix", "mix_every_pair"]


def _check_ratio(ratio: float) -> None:
    if not 0.0 <= ratio <= 1.0:
        raise InputError(f"ratio must lie in [0, 1] (the share of the word's own value kept), got {ratio}")


def mix(v_riley: Tensor, v_dog: Tensor, ratio: float = 0.75) -> Tensor:
    """The article's update: keep ``ratio`` of ``v_riley``, take ``1 - ratio`` of ``v_dog``. Shapes ``(D,)``."""
    _check_ratio(ratio)
    if v_riley.shape != v_dog.shape:
        raise ShapeError(f"the two values need the same shape: {tuple(v_riley.shape)} and {tuple(v_dog.shape)}")
    return ratio * v_riley + (1 - ratio) * v_dog


def cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    """How close two meanings are: ``a · b / (|a| |b|)``, in [-1, 1]. Works on the last axis."""
    return (a * b).sum(dim=-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def fixed_ratio_weights(num_words: int, ratio: float = 0.75) -> Tensor:
    """``(T, T)``: Part 1 applied to every pair at once, as weights like those of Parts 2 and 3.

    Each word keeps ``ratio`` of itself and shares ``1 - ratio`` equally among the other words, so row
    ``i`` is the same for every sentence of that length. Rows sum to 1.
    """
    _check_ratio(ratio)
    if num_words < 2:
        raise ShapeError(f"mixing every pair needs at least two words, got {num_words}")
    others = (1 - ratio) / (num_words - 1)
    eye = torch.eye(num_words, dtype=torch.float64)  # (T, T)
    return ratio * eye + others * (1 - eye)  # (T, T)


def mix_every_pair(values: Tensor, ratio: float = 0.75) -> Tensor:
    """``(T, D)``: every word's value mixed with every other word's at the same fixed ratio."""
    if values.dim() != 2:
        raise ShapeError(f"values must be (T, D), got {tuple(values.shape)}")
    weights = fixed_ratio_weights(values.shape[0], ratio).to(values.dtype)  # (T, T)
    return weights @ values  # (T, D)
