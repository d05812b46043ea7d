"""The attention core: one function, :func:`attend`, with two paths behind it.

* :func:`exact_attention` is written to be read beside the article: scores → mask → softmax → weighted sum
  of values. It returns the weights.
* :func:`fused_attention` calls :func:`torch.nn.functional.scaled_dot_product_attention` (flash or
  memory-efficient kernels); it never materialises the ``(B, H, T, S)`` weights.

Both follow the same conventions and are proven equal, outputs and gradients, by the tests:

* ``queries (B, H, T, K)``; ``keys`` and ``values`` ``(B, G, S, K)`` with ``H`` a multiple of ``G``
  (grouped-query attention; ``G == H`` is multi-head, ``G == 1`` multi-query). Values may have their own
  width ``(B, G, S, K_v)``.
* ``mask`` is boolean, ``True`` where attention is allowed, broadcastable to ``(B, H, T, S)``.
* ``causal`` hides the future. When ``T != S`` the queries are the last ``T`` positions of the ``S`` keys,
  so query ``t`` sees keys ``0 … t + S - T``.
* ``bias`` is an optional float term added to the scores (ALiBi's distance penalty), broadcastable to
  ``(B, H, T, S)``. It is not a mask: masks are boolean.
* ``queries``, ``keys`` and ``values`` share one floating-point dtype and one device; ``bias`` has that dtype
  too, and ``mask`` and ``bias`` live on that device. Anything else is an :class:`InputError` naming the
  tensors, raised before PyTorch can raise a vaguer one (or, across devices, quietly copy).
* **A query that may see no key at all** gets an output of **zero** (and weights of zero), on both paths:
  never NaN, whatever its own vector or the keys and values hold.
* **NaN in, NaN out**, on both paths: a NaN in a query, or in a key that query may see, makes its whole output
  NaN; a NaN in a value it may see comes out in the components that value is read into. The fully-masked rule
  above comes first. Whether a NaN at a position the query may *not* see reaches it depends on the kernel (a
  hidden value meets a zero weight, and 0 × NaN is NaN): do not rely on it either way. Nothing is checked for
  NaN: it flows through.

Which path :func:`attend` takes is one setting, ``"fused"`` (the default) or ``"exact"``: :func:`use` sets it
for the whole process, ``with implementation(name):`` for the code inside the block (a context variable, so
each thread and each asyncio task keeps its own block), and ``need_weights=True`` always takes the exact path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal, cast

import torch
import torch.nn.functional as F

from qkv.attention import masks
from qkv.errors import InputError, check_choice
from qkv.shapes import ShapeError, Tensor, describe, require_rank

__all__ = [
    "IMPLEMENTATIONS",
    "SDPA_HAS_GQA",
    "Implementation",
    "attend",
    "current_implementation",
    "exact_attention",
    "fused_attention",
    "implementation",
    "use",
]

Implementation = Literal["fused", "exact"]
IMPLEMENTATIONS: tuple[Implementation, ...] = ("fused", "exact")

_chosen: Implementation = "fused"  # the process's choice, set by use()
_within: ContextVar[Implementation | None] = ContextVar("qkv.attention.implementation", default=None)

# scaled_dot_product_attention shares key/value heads itself (enable_gqa) from PyTorch 2.5 on (the fast decoder
# reads this too).
SDPA_HAS_GQA = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 5)

# PyTorch's CPU flash kernel takes a row's maximum score with a scalar std::max for the keys that do not fill a
# whole vector register, and std::max drops NaN: a row of fewer keys than one register holds (16 floats with
# AVX-512) whose scores are all NaN then looks fully masked and comes out as zeros. The kernel's masked variant
# reduces with a NaN-keeping maximum, so rows shorter than this take it (a no-op mask; they are cheap anyway).
_SHORT_ROW = 16

_ONE_DTYPE = "attention needs floating-point queries, keys and values of one dtype"


def _check_dtypes_and_devices(queries: Tensor, keys: Tensor, values: Tensor) -> None:
    """Raise one :class:`InputError` naming the tensors whose dtype or device differs; a few comparisons."""
    dtype, device = queries.dtype, queries.device
    if (
        dtype.is_floating_point
        and keys.dtype is dtype  # dtypes are singletons
        and values.dtype is dtype
        and keys.device == device
        and values.device == device
    ):
        return
    named = (("queries", queries), ("keys", keys), ("values", values))
    not_float = [f"{name} are {_name(t.dtype)}" for name, t in named if not t.is_floating_point()]
    if not_float:
        raise InputError(f"{', '.join(not_float)}; {_ONE_DTYPE} (convert with .float() or .to(queries.dtype))")
    differ = [f"{name} are {_name(t.dtype)}" for name, t in named[1:] if t.dtype != dtype]
    if differ:
        raise InputError(
            f"queries are {_name(dtype)} but {', '.join(differ)}; {_ONE_DTYPE} (convert with .to(queries.dtype))"
        )
    elsewhere = [f"{name} are on {t.device}" for name, t in named[1:] if t.device != device]
    raise InputError(
        f"queries are on {device} but {', '.join(elsewhere)}; attention needs queries, keys and values on one "
        "device (move them with .to(queries.device))"
    )


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _check(queries: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None, bias: Tensor | None) -> None:
    """Raise one clear :class:`ShapeError` naming every shape involved (or :class:`InputError` naming the dtypes
    or devices), before PyTorch raises a vague one. Only metadata is read: this runs on every call."""
    require_rank("queries", queries, "BHTK")
    require_rank("keys", keys, "BGSK")
    require_rank("values", values, "BGSK")
    _check_dtypes_and_devices(queries, keys, values)
    B, H, T, K = queries.shape

    def shapes(*names: str) -> str:  # described only when an error is raised: this runs on every call
        described = {
            "queries": describe(queries.shape, "BHTK"),
            "keys": describe(keys.shape, "BGSK"),
            "values": describe(values.shape, "BGSK"),
        }
        return ", ".join(f"{name} {described[name]}" for name in names)

    if keys.shape[0] != B or values.shape[0] != B:
        raise ShapeError(f"batch sizes differ: {shapes('queries', 'keys', 'values')}")
    if keys.shape[1] != values.shape[1]:
        raise ShapeError(f"keys and values need the same number of heads G: {shapes('keys', 'values')}")
    G = keys.shape[1]
    if G == 0 or H % G != 0:
        raise ShapeError(f"query heads H={H} must be a multiple of key/value heads G={G}: {shapes('queries', 'keys')}")
    if keys.shape[2] != values.shape[2]:
        raise ShapeError(f"keys and values need the same number of positions S: {shapes('keys', 'values')}")
    if keys.shape[3] != K:
        raise ShapeError(f"queries and keys need the same head width K: {shapes('queries', 'keys')}")
    S = keys.shape[2]
    for name, extra in (("mask", mask), ("bias", bias)):
        if extra is None:
            continue
        if extra.device != queries.device:
            raise ShapeError(f"{name} is on {extra.device} but queries are on {queries.device}; move it there")
        if name == "mask" and extra.dtype != torch.bool:
            raise ShapeError(f"mask must be boolean (True where attention is allowed), got dtype {extra.dtype}")
        if name == "bias" and extra.dtype != queries.dtype:
            if not extra.is_floating_point():
                raise InputError(
                    f"bias is {_name(extra.dtype)}; bias is a float term added to the scores, in the queries' dtype "
                    f"({_name(queries.dtype)}). To hide keys, pass booleans (True where allowed) as mask="
                )
            raise InputError(
                f"bias is {_name(extra.dtype)} but queries are {_name(queries.dtype)}; bias must have the queries' "
                "dtype (convert it with .to(queries.dtype))"
            )
        try:
            torch.broadcast_shapes(extra.shape, (B, H, T, S))
        except RuntimeError:
            raise ShapeError(
                f"{name} of shape {tuple(extra.shape)} does not broadcast to the scores (B, H, T, S) = "
                f"{(B, H, T, S)} of {shapes('queries', 'keys')}"
            ) from None
        if extra.dim() > 4:
            raise ShapeError(f"{name} has {extra.dim()} dimensions; at most 4, broadcastable to (B, H, T, S)")


def _allowed(T: int, S: int, causal: bool, mask: Tensor | None, device: torch.device) -> Tensor | None:
    """The one boolean mask both paths obey: the user's mask AND the causal mask (if asked)."""
    return masks.combine(mask, masks.causal(T, S, device=device) if causal else None)


def exact_attention(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    *,
    causal: bool = False,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Attention as the article builds it, returning ``(output (B, H, T, K_v), weights (B, H, T, S))``."""
    _check(queries, keys, values, mask, bias)
    _, H, T, K = queries.shape
    G, S = keys.shape[1], keys.shape[2]
    scale = 1.0 / math.sqrt(K) if scale is None else scale

    # Grouped-query: each key/value head serves H // G consecutive query heads.
    keys = keys.repeat_interleave(H // G, dim=1)  # (B, H, S, K)
    values = values.repeat_interleave(H // G, dim=1)  # (B, H, S, K_v)

    # (B, H, T, S): relevance of every key to every query. Scaled and masked in place: scores are
    # the largest tensor here, and the softmax's gradient needs only its own output.
    scores = (queries @ keys.transpose(-2, -1)).mul_(scale)
    if bias is not None:
        scores = scores.add_(bias)
    allowed = _allowed(T, S, causal, mask, queries.device)
    if allowed is not None:
        scores = scores.masked_fill_(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (B, H, T, S), each row sums to 1
    del scores
    sees_something: Tensor | None = None  # (…, T, 1), set only when some row sees no key at all
    if allowed is not None:
        sees_something = allowed.any(dim=-1, keepdim=True)
        if bool(sees_something.all()):
            sees_something = None
    if sees_something is not None:
        # A row with every key hidden is all -inf and softmax gives NaN there: define it as zero weight.
        weights = torch.where(sees_something, weights, torch.zeros((), dtype=weights.dtype))
    output = weights @ values  # (B, H, T, K_v): each query's weighted sum of values
    if sees_something is not None:  # and zero output, even where a NaN value meets a zero weight (0 × NaN is NaN)
        output = torch.where(sees_something, output, torch.zeros((), dtype=output.dtype))
    return output, weights


def fused_attention(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    *,
    causal: bool = False,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    scale: float | None = None,
) -> Tensor:
    """The same maths through PyTorch's fused kernel; returns ``output (B, H, T, K_v)`` only."""
    _check(queries, keys, values, mask, bias)
    H, T = queries.shape[1], queries.shape[2]
    G, S = keys.shape[1], keys.shape[2]

    is_causal = False
    allowed = mask
    if causal:
        if T == S and mask is None and bias is None:
            is_causal = True  # the kernel's own causal path, which skips the masked half
        elif T > 1:  # one new query at the end of the cache sees every key: nothing to hide
            allowed = masks.combine(mask, masks.causal(T, S, device=queries.device))

    attn_mask: Tensor | None = allowed
    if bias is not None:
        attn_mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
    if attn_mask is None and S < _SHORT_ROW:  # keep NaN in short rows (see _SHORT_ROW): the masked variant
        # Additive and in the queries' dtype, so the kernel need not convert it: -inf above the diagonal (T == S).
        attn_mask = queries.new_full((T, S), float("-inf")).triu_(1) if is_causal else queries.new_zeros(1, 1)
        is_causal = False

    if G != H and not SDPA_HAS_GQA:  # PyTorch < 2.5: expand the shared heads by hand
        keys = keys.repeat_interleave(H // G, dim=1)  # (B, H, S, K)
        values = values.repeat_interleave(H // G, dim=1)  # (B, H, S, K_v)
    gqa = {"enable_gqa": True} if G != H and SDPA_HAS_GQA else {}
    output = F.scaled_dot_product_attention(
        queries, keys, values, attn_mask=attn_mask, is_causal=is_causal, scale=scale, **gqa
    )  # (B, H, T, K_v)

    if allowed is not None:
        sees_something = allowed.any(dim=-1, keepdim=True)  # (…, T, 1)
        if not bool(sees_something.all()):
            output = torch.where(sees_something, output, torch.zeros((), dtype=output.dtype))
    return output


def _checked(name: object) -> Implementation:
    check_choice("attention", "implementation", name, IMPLEMENTATIONS)
    return cast(Implementation, name)


def use(name: Implementation) -> None:
    """From now on, :func:`attend` takes the ``"fused"`` or the ``"exact"`` path, in every thread (a
    ``with implementation(...)`` block still decides inside itself)."""
    global _chosen
    _chosen = _checked(name)


@contextmanager
def implementation(name: Implementation) -> Iterator[None]:
    """Within the block, :func:`attend` takes the ``"fused"`` or the ``"exact"`` path; the previous choice comes
    back on the way out, whatever happens. Blocks nest, and each thread or asyncio task has its own."""
    token = _within.set(_checked(name))
    try:
        yield
    finally:
        _within.reset(token)


def current_implementation() -> Implementation:
    """The path :func:`attend` takes here and now when the weights are not asked for. Code that
    :func:`torch.compile` compiles sees the choice of :func:`use` only (it cannot read a block's)."""
    if torch.compiler.is_compiling():
        return _chosen
    within = _within.get()
    return _chosen if within is None else within


def attend(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    *,
    causal: bool = False,
    mask: Tensor | None = None,
    scale: float | None = None,
    need_weights: bool = False,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention: ``softmax(Q Kᵀ · scale + bias, masked) V``.

    Args:
        queries: ``(B, H, T, K)``.
        keys: ``(B, G, S, K)`` with ``H`` a multiple of ``G``.
        values: ``(B, G, S, K_v)``.
        causal: hide the future (bottom-right aligned when ``T != S``).
        mask: boolean, ``True`` where allowed, broadcastable to ``(B, H, T, S)``.
        scale: multiplies the scores; ``1/√K`` by default.
        need_weights: take the exact path, whatever :func:`current_implementation` says, for its weights.
        bias: float term added to the scores, broadcastable to ``(B, H, T, S)`` (ALiBi).

    Returns:
        ``(output, weights)``: output ``(B, H, T, K_v)``; weights ``(B, H, T, S)`` whenever the exact path ran,
        ``None`` when the fused one did. A query allowed to see no key gets zero output and zero weights.
    """
    if need_weights or current_implementation() == "exact":
        return exact_attention(queries, keys, values, causal=causal, mask=mask, bias=bias, scale=scale)
    return fused_attention(queries, keys, values, causal=causal, mask=mask, bias=bias, scale=scale), None
