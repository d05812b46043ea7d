"""The attention kernels: the exact path, the fused path, and the references they must agree with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qkv.attention import masks
from qkv.attention.kernels import attend, exact_attention, fused_attention
from qkv.attention.positions import ALiBiPositions
from qkv.errors import ShapeError

Tensor = torch.Tensor

# (T, S): square, a block of queries after a cache, one decoding query, and more queries than keys; then rows of
# 16 keys or more, which PyTorch's CPU flash kernel reduces differently (the fused path masks shorter rows).
SHAPES = [(5, 5), (3, 7), (1, 6), (6, 4), (17, 17), (2, 20)]
HEADS = [(4, 4), (4, 2), (4, 1)]  # (H, G): multi-head, grouped-query, multi-query
MASKS = ["none", "padding", "random"]
BIASES = ["none", "alibi", "random"]


def make_qkv(
    B: int, H: int, G: int, T: int, S: int, K: int = 8, *, K_v: int | None = None, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor, Tensor]:
    queries = torch.randn(B, H, T, K, dtype=dtype, requires_grad=True)
    keys = torch.randn(B, G, S, K, dtype=dtype, requires_grad=True)
    values = torch.randn(B, G, S, K if K_v is None else K_v, dtype=dtype, requires_grad=True)
    return queries, keys, values


def make_mask(kind: str, B: int, H: int, T: int, S: int) -> Tensor | None:
    """A boolean mask under which every query still sees key 0 (so no row is empty, even under causal)."""
    if kind == "none":
        return None
    if kind == "padding":
        keep = torch.ones(B, S, dtype=torch.bool)
        keep[-1, -2:] = False  # the last sequence ends in two padding tokens
        return masks.padding(keep)  # (B, 1, 1, S)
    allowed = torch.rand(B, H, T, S) < 0.6
    allowed[..., 0] = True
    return allowed


def make_bias(kind: str, B: int, H: int, T: int, S: int, dtype: torch.dtype = torch.float32) -> Tensor | None:
    if kind == "none":
        return None
    if kind == "alibi":
        return ALiBiPositions(H, context=32)(T, S, offset=max(S - T, 0)).to(dtype)  # (H, T, S)
    return torch.randn(B, 1, T, S, dtype=dtype)


def reference_attention(
    queries: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    *,
    causal: bool = False,
    mask: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Masked softmax attention with grouped-query heads, in float64 numpy, one row at a time."""
    B, H, T, K = queries.shape
    G, S = keys.shape[1], keys.shape[2]
    scale = 1.0 / math.sqrt(K) if scale is None else scale
    allowed = np.ones((B, H, T, S), dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, (B, H, T, S))
    if causal:  # query t is absolute position t + S - T and sees keys up to it
        allowed &= np.arange(S)[None, :] <= np.arange(T)[:, None] + (S - T)
    full_bias = np.zeros((B, H, T, S)) if bias is None else np.broadcast_to(bias, (B, H, T, S))
    output = np.zeros((B, H, T, values.shape[-1]))
    weights = np.zeros((B, H, T, S))
    for b in range(B):
        for h in range(H):
            g = h // (H // G)  # query head h reads key/value head g
            scores = queries[b, h] @ keys[b, g].T * scale + full_bias[b, h]
            for t in range(T):
                seen = allowed[b, h, t]
                if not seen.any():
                    continue
                exps = np.exp(scores[t, seen] - scores[t, seen].max())
                weights[b, h, t, seen] = exps / exps.sum()
            output[b, h] = weights[b, h] @ values[b, g]
    return output, weights


def grads(output: Tensor, upstream: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
    return torch.autograd.grad(output, inputs, upstream)


def matrix() -> list[tuple[int, int, bool, int, int, str, str]]:
    cases = []
    for T, S in SHAPES:
        for causal in (False, True):
            if causal and T > S:
                continue  # queries are the last T of S keys: T > S has no causal meaning (tested below)
            for H, G in HEADS:
                for mask in MASKS:
                    for bias in BIASES:
                        cases.append((T, S, causal, H, G, mask, bias))
    return cases


@pytest.mark.parametrize(("T", "S", "causal", "H", "G", "mask_kind", "bias_kind"), matrix())
def test_exact_and_fused_agree_in_outputs_and_gradients(
    T: int, S: int, causal: bool, H: int, G: int, mask_kind: str, bias_kind: str
) -> None:
    B = 2
    queries, keys, values = make_qkv(B, H, G, T, S)
    mask, bias = make_mask(mask_kind, B, H, T, S), make_bias(bias_kind, B, H, T, S)
    exact, _ = exact_attention(queries, keys, values, causal=causal, mask=mask, bias=bias)
    fused = fused_attention(queries, keys, values, causal=causal, mask=mask, bias=bias)
    torch.testing.assert_close(fused, exact, atol=1e-5, rtol=1e-5)
    upstream = torch.randn_like(exact)
    for g_fused, g_exact in zip(
        grads(fused, upstream, queries, keys, values), grads(exact, upstream, queries, keys, values), strict=True
    ):
        torch.testing.assert_close(g_fused, g_exact, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("T", "S"), [(5, 5), (3, 7), (1, 6), (17, 17), (1, 20)])
@pytest.mark.parametrize(("H", "G"), HEADS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("bias_kind", ["none", "alibi"])
def test_both_paths_match_a_float64_numpy_reference(
    T: int, S: int, H: int, G: int, causal: bool, mask_kind: str, bias_kind: str
) -> None:
    B = 2
    queries, keys, values = make_qkv(B, H, G, T, S, K_v=5, dtype=torch.float64)
    mask, bias = make_mask(mask_kind, B, H, T, S), make_bias(bias_kind, B, H, T, S, torch.float64)
    expected_out, expected_weights = reference_attention(
        queries.detach().numpy(),
        keys.detach().numpy(),
        values.detach().numpy(),
        causal=causal,
        mask=None if mask is None else mask.numpy(),
        bias=None if bias is None else bias.numpy(),
    )
    output, weights = exact_attention(queries, keys, values, causal=causal, mask=mask, bias=bias)
    fused = fused_attention(queries, keys, values, causal=causal, mask=mask, bias=bias)
    np.testing.assert_allclose(output.detach().numpy(), expected_out, atol=1e-10, rtol=1e-10)
    np.testing.assert_allclose(weights.detach().numpy(), expected_weights, atol=1e-12, rtol=1e-10)
    np.testing.assert_allclose(fused.detach().numpy(), expected_out, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("path", ["exact", "fused"])
def test_an_explicit_scale_replaces_one_over_root_k(path: str) -> None:
    queries, keys, values = make_qkv(1, 2, 2, 4, 4, dtype=torch.float64)
    expected, _ = reference_attention(
        queries.detach().numpy(), keys.detach().numpy(), values.detach().numpy(), causal=True, scale=0.3
    )
    output, _ = attend(queries, keys, values, causal=True, scale=0.3, need_weights=path == "exact")
    np.testing.assert_allclose(output.detach().numpy(), expected, atol=1e-10)


@pytest.mark.parametrize(("T", "S"), [(6, 6), (2, 6)])
@pytest.mark.parametrize(("H", "G"), HEADS)
def test_exact_path_matches_pytorch_sdpa_with_heads_expanded_by_hand(T: int, S: int, H: int, G: int) -> None:
    queries, keys, values = make_qkv(2, H, G, T, S)
    expanded_keys = keys.repeat_interleave(H // G, dim=1)  # (B, H, S, K)
    expanded_values = values.repeat_interleave(H // G, dim=1)
    visible = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)  # bottom-right aligned causal mask
    expected = F.scaled_dot_product_attention(queries, expanded_keys, expanded_values, attn_mask=visible)
    output, _ = exact_attention(queries, keys, values, causal=True)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)


def test_attend_returns_weights_only_when_asked_and_both_answers_agree() -> None:
    queries, keys, values = make_qkv(2, 4, 2, 5, 5)
    fast, no_weights = attend(queries, keys, values, causal=True)
    slow, weights = attend(queries, keys, values, causal=True, need_weights=True)
    assert no_weights is None and weights is not None and weights.shape == (2, 4, 5, 5)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("T", "S"), [(5, 5), (3, 7)])
@pytest.mark.parametrize("mask_kind", MASKS)
def test_every_weight_row_sums_to_one(T: int, S: int, mask_kind: str) -> None:
    queries, keys, values = make_qkv(2, 4, 2, T, S)
    mask = make_mask(mask_kind, 2, 4, T, S)
    _, weights = exact_attention(queries, keys, values, causal=True, mask=mask, bias=make_bias("alibi", 2, 4, T, S))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, T), atol=1e-6, rtol=0)
    assert (weights >= 0).all()


@pytest.mark.parametrize(("T", "S"), [(5, 5), (3, 7), (1, 4)])
def test_the_future_gets_exactly_zero_weight_under_causal(T: int, S: int) -> None:
    queries, keys, values = make_qkv(2, 4, 2, T, S)
    _, weights = exact_attention(queries, keys, values, causal=True)
    future = torch.arange(S)[None, :] > torch.arange(T)[:, None] + (S - T)  # (T, S)
    assert (weights[..., future] == 0).all()
    assert (weights[..., ~future] > 0).all()


def test_values_changed_in_the_future_do_not_change_a_causal_output() -> None:
    queries, keys, values = make_qkv(1, 2, 2, 4, 6)
    before = fused_attention(queries, keys, values, causal=True)
    keys2, values2 = keys.detach().clone(), values.detach().clone()
    keys2[:, :, 3:], values2[:, :, 3:] = 100.0, -100.0  # positions 3, 4, 5: only queries 1… see them
    after = fused_attention(queries, keys2, values2, causal=True)
    torch.testing.assert_close(after[:, :, 0], before[:, :, 0])  # query 0 sits at position 2
    assert not torch.allclose(after[:, :, 1], before[:, :, 1])


@pytest.mark.parametrize("bias_kind", ["none", "alibi"])
@pytest.mark.parametrize("causal", [False, True])
def test_a_query_that_sees_no_key_gets_zero_output_zero_weights_and_finite_gradients(
    bias_kind: str, causal: bool
) -> None:
    B, H, G, T, S = 2, 4, 2, 4, 4
    queries, keys, values = make_qkv(B, H, G, T, S, dtype=torch.float64)
    allowed = torch.ones(B, 1, T, S, dtype=torch.bool)
    allowed[0, :, 2] = False  # batch 0, query 2: every key hidden by the mask
    keep = torch.ones(B, S, dtype=torch.bool)
    keep[1, 0] = False  # batch 1, key 0 is padding: under causal, query 0 of batch 1 sees nothing either
    mask = masks.combine(allowed, masks.padding(keep))
    bias = make_bias(bias_kind, B, H, T, S, torch.float64)
    exact, weights = exact_attention(queries, keys, values, causal=causal, mask=mask, bias=bias)
    fused = fused_attention(queries, keys, values, causal=causal, mask=mask, bias=bias)
    empty = [(0, 2)] + ([(1, 0)] if causal else [])
    for output in (exact, fused):
        assert torch.isfinite(output).all()
        for b, t in empty:
            assert (output[b, :, t] == 0).all()
    for b, t in empty:
        assert (weights[b, :, t] == 0).all()
    expected, _ = reference_attention(
        queries.detach().numpy(),
        keys.detach().numpy(),
        values.detach().numpy(),
        causal=causal,
        mask=mask.numpy(),
        bias=None if bias is None else bias.numpy(),
    )
    np.testing.assert_allclose(fused.detach().numpy(), expected, atol=1e-10)
    upstream = torch.randn_like(exact)
    fused_grads = grads(fused, upstream, queries, keys, values)
    for g_fused, g_exact in zip(fused_grads, grads(exact, upstream, queries, keys, values), strict=True):
        assert torch.isfinite(g_fused).all() and torch.isfinite(g_exact).all()
        torch.testing.assert_close(g_fused, g_exact, atol=1e-10, rtol=1e-8)
    for b, t in empty:
        assert (fused_grads[0][b, :, t] == 0).all()  # a query that sees nothing does not learn either


# Bad input: (description, queries shape, keys shape, values shape, extra kwargs, fragments the message must hold)
B_, H_, G_, T_, S_, K_ = 2, 4, 2, 3, 5, 8
BAD_INPUTS = [
    ("queries rank", (B_, T_, K_), (B_, G_, S_, K_), (B_, G_, S_, K_), {}, ["queries", "4 dimensions", "(2, 3, 8)"]),
    ("keys rank", (B_, H_, T_, K_), (B_, S_, K_), (B_, G_, S_, K_), {}, ["keys", "4 dimensions", "(2, 5, 8)"]),
    (
        "values rank",
        (B_, H_, T_, K_),
        (B_, G_, S_, K_),
        (1, B_, G_, S_, K_),
        {},
        ["values", "4 dimensions", "(1, 2, 2, 5, 8)"],
    ),
    (
        "batch",
        (B_, H_, T_, K_),
        (3, G_, S_, K_),
        (3, G_, S_, K_),
        {},
        ["batch", "(B=2, H=4, T=3, K=8)", "(B=3, G=2, S=5, K=8)"],
    ),
    ("H not a multiple of G", (B_, 4, T_, K_), (B_, 3, S_, K_), (B_, 3, S_, K_), {}, ["H=4", "G=3"]),
    ("head width", (B_, H_, T_, K_), (B_, G_, S_, 6), (B_, G_, S_, K_), {}, ["K", "(B=2, H=4, T=3, K=8)", "K=6"]),
    ("keys/values S", (B_, H_, T_, K_), (B_, G_, S_, K_), (B_, G_, 4, K_), {}, ["S", "S=5", "S=4"]),
    ("keys/values G", (B_, H_, T_, K_), (B_, G_, S_, K_), (B_, 1, S_, K_), {}, ["G", "G=2", "G=1"]),
    (
        "float mask",
        (B_, H_, T_, K_),
        (B_, G_, S_, K_),
        (B_, G_, S_, K_),
        {"mask": torch.ones(T_, S_)},
        ["mask", "boolean", "float32"],
    ),
    (
        "mask shape",
        (B_, H_, T_, K_),
        (B_, G_, S_, K_),
        (B_, G_, S_, K_),
        {"mask": torch.ones(B_, 1, T_, 4, dtype=torch.bool)},
        ["mask", "(2, 1, 3, 4)", "(2, 4, 3, 5)"],
    ),
    (
        "mask rank",
        (B_, H_, T_, K_),
        (B_, G_, S_, K_),
        (B_, G_, S_, K_),
        {"mask": torch.ones(1, B_, H_, T_, S_, dtype=torch.bool)},
        ["mask", "5 dimensions"],
    ),
    (
        "bias shape",
        (B_, H_, T_, K_),
        (B_, G_, S_, K_),
        (B_, G_, S_, K_),
        {"bias": torch.zeros(3, T_, S_)},
        ["bias", "(3, 3, 5)", "(2, 4, 3, 5)"],
    ),
    ("causal T > S", (B_, H_, 6, K_), (B_, G_, S_, K_), (B_, G_, S_, K_), {"causal": True}, ["T=6", "S=5"]),
]


@pytest.mark.parametrize("path", ["exact", "fused", "attend"])
@pytest.mark.parametrize(
    ("what", "q_shape", "k_shape", "v_shape", "kwargs", "fragments"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_raises_a_shape_error_naming_the_shapes(
    path: str,
    what: str,
    q_shape: tuple[int, ...],
    k_shape: tuple[int, ...],
    v_shape: tuple[int, ...],
    kwargs: dict[str, object],
    fragments: list[str],
) -> None:
    function = {"exact": exact_attention, "fused": fused_attention, "attend": attend}[path]
    with pytest.raises(ShapeError) as raised:
        function(torch.randn(q_shape), torch.randn(k_shape), torch.randn(v_shape), **kwargs)  # type: ignore[operator]
    assert isinstance(raised.value, ValueError)
    for fragment in fragments:
        assert fragment in str(raised.value), f"{fragment!r} not in {raised.value}"
