"""What the attention core accepts besides shapes: dtypes, devices, a bias's type, and NaN (on both paths)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qkv.attention import masks
from qkv.attention.kernels import attend, exact_attention, fused_attention
from qkv.attention.positions import ALiBiPositions
from qkv.errors import InputError

Tensor = torch.Tensor

B_, H_, G_, T_, S_, K_ = 2, 4, 2, 3, 5, 8
PATHS = {"exact": exact_attention, "fused": fused_attention, "attend": attend}
ONE_DTYPE = "attention needs floating-point queries, keys and values of one dtype"


def tensor(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, device: str = "cpu") -> Tensor:
    return torch.ones(shape, dtype=dtype, device=device)


def qkv(
    q: torch.dtype = torch.float32,
    k: torch.dtype = torch.float32,
    v: torch.dtype = torch.float32,
    *,
    k_device: str = "cpu",
    v_device: str = "cpu",
) -> tuple[Tensor, Tensor, Tensor]:
    return (
        tensor((B_, H_, T_, K_), q),
        tensor((B_, G_, S_, K_), k, k_device),
        tensor((B_, G_, S_, K_), v, v_device),
    )


# (description, (queries, keys, values), extra kwargs, fragments the message must hold)
BAD_TYPES: list[tuple[str, tuple[Tensor, Tensor, Tensor], dict[str, object], list[str]]] = [
    (
        "integer q, k, v",
        qkv(torch.int64, torch.int64, torch.int64),
        {},
        ["queries are int64", "keys are int64", ONE_DTYPE],
    ),
    ("integer values", qkv(v=torch.int32), {}, ["values are int32", ONE_DTYPE]),
    ("boolean keys", qkv(k=torch.bool), {}, ["keys are bool", ONE_DTYPE]),
    ("float64 keys", qkv(k=torch.float64), {}, ["queries are float32", "keys are float64", ONE_DTYPE]),
    ("bfloat16 values", qkv(v=torch.bfloat16), {}, ["queries are float32", "values are bfloat16", ONE_DTYPE]),
    (
        "float16 queries",
        qkv(torch.float16),
        {},
        ["queries are float16", "keys are float32", "values are float32", ONE_DTYPE],
    ),
    ("keys elsewhere", qkv(k_device="meta"), {}, ["queries are on cpu", "keys are on meta", "one device"]),
    ("values elsewhere", qkv(v_device="meta"), {}, ["queries are on cpu", "values are on meta", "one device"]),
    (
        "boolean bias",
        qkv(),
        {"bias": tensor((T_, S_), torch.bool)},
        ["bias is bool", "float term added to the scores", "mask="],
    ),
    ("integer bias", qkv(), {"bias": tensor((T_, S_), torch.int64)}, ["bias is int64", "mask="]),
    ("float64 bias", qkv(), {"bias": tensor((T_, S_), torch.float64)}, ["bias is float64", "queries are float32"]),
    ("bias elsewhere", qkv(), {"bias": tensor((T_, S_), device="meta")}, ["bias is on meta", "cpu"]),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("what", "tensors", "kwargs", "fragments"), BAD_TYPES, ids=[c[0] for c in BAD_TYPES])
def test_wrong_dtypes_and_devices_raise_one_input_error_naming_the_tensors(
    path: str, what: str, tensors: tuple[Tensor, Tensor, Tensor], kwargs: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(InputError) as raised:
        PATHS[path](*tensors, **kwargs)  # type: ignore[operator]
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_any_one_floating_dtype_is_accepted_and_kept(path: str, dtype: torch.dtype) -> None:
    queries, keys, values = (t.to(dtype) for t in qkv())
    bias = torch.zeros(T_, S_, dtype=dtype)
    output = PATHS[path](queries, keys, values, causal=True, bias=bias)  # type: ignore[operator]
    output = output[0] if isinstance(output, tuple) else output
    assert output.dtype == dtype and output.shape == (B_, H_, T_, K_)


def nan_cases(S_values: list[int]) -> list[tuple[int, int, bool, str]]:
    cases = []
    for S in S_values:
        for T in sorted({1, min(S, 3), S}):
            for causal in (False, True):
                for extra in ("none", "padding", "alibi"):
                    cases.append((T, S, causal, extra))
    return cases


# S around 16: PyTorch's CPU flash kernel loses NaN in rows shorter than one vector register.
@pytest.mark.parametrize(("T", "S", "causal", "extra"), nan_cases([1, 2, 7, 8, 15, 16, 17, 31, 40]))
def test_a_nan_query_gives_a_nan_output_row_on_both_paths(T: int, S: int, causal: bool, extra: str) -> None:
    B, H, G = 2, 4, 2
    queries, keys, values = torch.randn(B, H, T, 8), torch.randn(B, G, S, 8), torch.randn(B, G, S, 8)
    queries[0, 1, T - 1, 3] = float("nan")  # the last query: it sees key 0 under every mask here
    keep = torch.ones(B, S, dtype=torch.bool)
    keep[1, 1:] = False
    mask = masks.padding(keep) if extra == "padding" else None
    bias = ALiBiPositions(H, context=64)(T, S, offset=S - T) if extra == "alibi" else None  # (H, T, S)
    exact, _ = exact_attention(queries, keys, values, causal=causal, mask=mask, bias=bias)
    fused = fused_attention(queries, keys, values, causal=causal, mask=mask, bias=bias)
    for output in (exact, fused):
        assert output[0, 1, T - 1].isnan().all()
        output[0, 1, T - 1] = 0.0
        assert torch.isfinite(output).all()
    torch.testing.assert_close(fused, exact, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("S", [1, 5, 20])
def test_a_query_that_sees_only_a_nan_key_gets_nan_on_both_paths(S: int) -> None:
    queries, keys, values = torch.randn(1, 2, S, 8), torch.randn(1, 2, S, 8), torch.randn(1, 2, S, 8)
    keys[0, :, 0, 0] = float("nan")  # under causal, query 0 sees key 0 alone
    for output in (
        exact_attention(queries, keys, values, causal=True)[0],
        fused_attention(queries, keys, values, causal=True),
    ):
        assert output[:, :, 0].isnan().all()


def reference_nan_rows(
    allowed: Tensor, nan_queries: Tensor, nan_keys: Tensor, nan_values: Tensor, H: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``(sees_something, all_nan, some_nan)``, each ``(B, H, T)``, from boolean ``allowed (B, H, T, S)`` and
    which query ``(B, H, T)``, key and value ``(B, G, S)`` vectors hold a NaN. A NaN query or seen key spoils
    every score of the row, so all of its output; a NaN in a seen value spoils the components it is read into."""
    G = nan_keys.shape[1]

    def seen(nan: Tensor) -> Tensor:  # (B, G, S) -> (B, H, T): the query sees one of them
        return (allowed & nan.repeat_interleave(H // G, dim=1)[:, :, None, :]).any(-1)

    sees_something = allowed.any(-1)
    all_nan = sees_something & (nan_queries | seen(nan_keys))
    return sees_something, all_nan, all_nan | (sees_something & seen(nan_values))


@dataclass(frozen=True)
class NanCase:
    B: int
    H: int
    G: int
    T: int
    S: int
    causal: bool
    mask: str  # "none", "random" (some rows may see nothing) or "padding"
    bias: bool
    where: str  # "queries" or "keys and values"
    nans: int
    seed: int


@st.composite
def nan_case(draw: st.DrawFn) -> NanCase:
    H, G = draw(st.sampled_from([(4, 4), (4, 2), (4, 1)]))
    S = draw(st.integers(1, 24))  # across 16, where PyTorch's CPU kernel changes how it reduces a row
    return NanCase(
        B=draw(st.integers(1, 2)),
        H=H,
        G=G,
        T=draw(st.integers(1, S)),
        S=S,
        causal=draw(st.booleans()),
        mask=draw(st.sampled_from(["none", "random", "padding"])),
        bias=draw(st.booleans()),
        where=draw(st.sampled_from(["queries", "keys and values"])),
        nans=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@settings(max_examples=200, deadline=None)
@given(case=nan_case())
def test_nan_in_nan_out_agrees_on_both_paths_and_a_fully_masked_row_stays_zero(case: NanCase) -> None:
    """A NaN in a query, or in a key or value the query sees, makes its output NaN on both paths; a query that
    sees no key gets zeros on both; with NaN only in queries, every other row is finite and the paths agree."""
    B, H, G, T, S = case.B, case.H, case.G, case.T, case.S
    generator = torch.Generator().manual_seed(case.seed)

    def pick(n: int) -> int:
        return int(torch.randint(n, (), generator=generator))

    queries = torch.randn(B, H, T, 8, generator=generator, dtype=torch.float64)
    keys = torch.randn(B, G, S, 8, generator=generator, dtype=torch.float64)
    values = torch.randn(B, G, S, 8, generator=generator, dtype=torch.float64)
    for _ in range(case.nans):
        if case.where == "queries":
            queries[pick(B), pick(H), pick(T), pick(8)] = float("nan")
        else:
            (keys if pick(2) else values)[pick(B), pick(G), pick(S), pick(8)] = float("nan")
    mask: Tensor | None = None
    if case.mask == "random":
        mask = torch.rand(B, 1, T, S, generator=generator) < 0.5
    elif case.mask == "padding":
        mask = masks.padding(torch.rand(B, S, generator=generator) < 0.7)  # (B, 1, 1, S)
    bias = torch.randn(B, H, T, S, generator=generator, dtype=torch.float64) if case.bias else None

    exact, _ = exact_attention(queries, keys, values, causal=case.causal, mask=mask, bias=bias)
    fused = fused_attention(queries, keys, values, causal=case.causal, mask=mask, bias=bias)

    allowed = torch.ones(B, H, T, S, dtype=torch.bool)
    if mask is not None:
        allowed &= mask
    if case.causal:
        allowed &= torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)  # bottom-right aligned
    sees_something, all_nan, some_nan = reference_nan_rows(
        allowed, queries.isnan().any(-1), keys.isnan().any(-1), values.isnan().any(-1), H
    )
    for output in (exact, fused):
        assert (output[~sees_something] == 0).all(), "a query that sees no key must get zeros, NaN or not"
        assert output[all_nan].isnan().all(), "NaN in a query or a key it sees must spoil its whole output"
        assert output[some_nan].isnan().any(-1).all(), "NaN in a value a query sees must come out as NaN"
    if case.where == "queries":  # then no NaN is hidden from anyone: every other row is finite, and they agree
        assert torch.equal(exact.isnan(), fused.isnan())
        assert torch.isfinite(exact[~all_nan]).all()
        torch.testing.assert_close(fused[~all_nan], exact[~all_nan], atol=1e-10, rtol=1e-8)
