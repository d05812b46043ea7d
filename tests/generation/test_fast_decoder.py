"""FastDecoder, the fast twin of the Transformer's cached forward pass: for every pre-norm causal decoder (GPT-2's
conventions and Llama's) the same logits as the Transformer recomputing the whole window, at prefill and at every
decode step across a crop; ``generate`` uses it at batch 1 and picks the module path's tokens; anything else falls
back to the Transformer. Every config field is classified (``COMPUTES``), and every value it computes has a
parity case here, every value it refuses a fallback case."""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest
import torch

from qkv.attention import implementation
from qkv.errors import InputError
from qkv.generation import SamplingConfig, decode_one_token, fast_decoder, generate, generate_uncached
from qkv.generation.fast_decoder import COMPUTES, FastDecoder, supports
from qkv.inspection import capture_attention
from qkv.model import Transformer, TransformerConfig, preset
from qkv.shapes import ShapeError

KernelCalls = Callable[[], AbstractContextManager[Counter[str]]]  # the conftest's kernel_calls

VOCAB, CONTEXT = 23, 16

SUPPORTED: dict[str, tuple[str, dict[str, Any]]] = {
    "gpt2 tiny (tied head)": ("tiny", {}),
    "gpt2 small (tied head)": ("small", {}),
    "untied head": ("tiny", {"tie_embeddings": False}),
    "no biases": ("tiny", {"attention_bias": False, "mlp_bias": False, "norm_bias": False}),
    "sinusoidal positions": ("tiny", {"positions": "sinusoidal"}),
    "no positions": ("tiny", {"positions": "none"}),
    "relu": ("tiny", {"activation": "relu"}),
    "exact gelu": ("tiny", {"activation": "gelu"}),
    "no final norm": ("tiny", {"final_norm": False}),
    "llama with grouped-query attention": ("llama", {"width": 64, "layers": 2, "heads": 4, "kv_heads": 2}),
    "rope, layernorm and biases, one kv head": ("tiny", {"positions": "rope", "kv_heads": 1}),
    "swiglu with biases, learned positions": ("tiny", {"activation": "swiglu", "mlp_width": 96}),
    "head width apart from width / heads": ("tiny", {"heads": 2, "head_width": 24}),
    "large norm epsilon": ("tiny", {"norm_eps": 0.5}),
    "rope theta 500, rmsnorm epsilon": ("llama", {"width": 64, "layers": 2, "rope_theta": 500.0, "norm_eps": 0.5}),
    "dropout, in evaluation": ("tiny", {"dropout": 0.1}),
    "another vocabulary and context": ("tiny", {"vocab_size": 31, "context": 24}),
}

UNSUPPORTED: dict[str, tuple[str, dict[str, Any]]] = {
    "alibi": ("tiny", {"positions": "alibi"}),
    "post-norm": ("tiny", {"norm_placement": "post"}),
    "bidirectional": ("tiny", {"causal": False}),
    "token types": ("tiny", {"token_types": 2}),
    "embedding norm": ("tiny", {"embedding_norm": True}),
    "no LM head (an encoder)": ("tiny", {"lm_head": False, "tie_embeddings": False}),
}


def config_for(name: str) -> TransformerConfig:
    family, overrides = {**SUPPORTED, **UNSUPPORTED}[name]
    return preset(family, **{"vocab_size": VOCAB, "context": CONTEXT, **overrides})


@functools.cache
def model_for(name: str) -> Transformer:
    """Random weights with a wider spread than GPT-2's (so that greedy decoding varies its tokens), random biases
    and norm gains and shifts too (so that leaving one out shows)."""
    torch.manual_seed(0)
    model = Transformer(config_for(name))
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():
            gain = parameter.dim() == 1 and "norm" in parameter_name and parameter_name.endswith("weight")
            std = 2.5 / parameter.shape[1] ** 0.5 if parameter.dim() > 1 else 0.3
            parameter.normal_(mean=1.0 if gain else 0.0, std=std)
    return model.eval()


def recomputed(model: Transformer, window: list[int]) -> torch.Tensor:
    """The reference: the Transformer over the whole window, no cache; the last position's logits ``(V,)``."""
    with torch.no_grad():
        return model(torch.tensor([window]))[0, -1]


def assert_same_logits(got: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().item()
    assert scale > 0.1  # the logits are not all near zero: a relative tolerance means something
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("name", SUPPORTED)
def test_the_fast_decoder_computes_the_transformers_logits_at_every_step_across_a_crop(name: str) -> None:
    model = model_for(name)
    assert supports(model)
    context = model.config.context
    tokens = torch.randint(VOCAB, (29,), generator=torch.Generator().manual_seed(1)).tolist()
    window = tokens[:5]
    decoder = FastDecoder(model, context)
    assert_same_logits(decoder.prefill(torch.tensor(window)), recomputed(model, window))
    crops = 0
    for token in tokens[5:]:  # 24 decode steps
        window.append(token)
        if len(window) > context:  # generate's crop: keep the newest half, prefill it, decode the new token
            window = window[-(context // 2 + 1) :]
            decoder = FastDecoder(model, context)
            decoder.prefill(torch.tensor(window[:-1]))
            crops += 1
        assert_same_logits(decoder.decode(token), recomputed(model, window))
    assert crops >= 1


FIELDS = [field.name for field in dataclasses.fields(TransformerConfig)]


def choices(field: str) -> tuple[object, ...] | None:
    """Every value a field can take, where there are few (a flag, a named choice); None for a number."""
    hint = get_type_hints(TransformerConfig)[field]
    if hint is bool:
        return (False, True)
    return get_args(hint) if get_origin(hint) is Literal else None


def values(cases: dict[str, tuple[str, dict[str, Any]]], field: str) -> set[object]:
    return {getattr(config_for(name), field) for name in cases}


def test_every_config_field_is_classified_as_computed_or_refused_by_the_fast_decoder() -> None:
    """A field added to TransformerConfig fails here until fast_decoder.COMPUTES says what FastDecoder does with
    it (and until then supports() keeps every model on the Transformer)."""
    assert list(COMPUTES) == FIELDS, "say in fast_decoder.COMPUTES which values of each field FastDecoder computes"


@pytest.mark.parametrize("field", FIELDS)
def test_every_value_the_fast_decoder_computes_has_a_parity_case(field: str) -> None:
    """Each listed value (every value of a flag or a named choice; for a number, two different values) appears in
    a SUPPORTED model above, where it acts (a RoPE theta on a RoPE model)."""
    assert field in COMPUTES, f"classify {field} in fast_decoder.COMPUTES, then give it a parity or fallback case"
    computed, domain, seen = COMPUTES[field], choices(field), values(SUPPORTED, field)
    if computed is not None:
        assert seen == set(computed)
    elif domain is not None:
        assert seen == set(domain)
    else:
        assert len(seen) >= 2


@pytest.mark.parametrize("field", [field for field, computed in COMPUTES.items() if computed is not None])
def test_every_value_the_fast_decoder_refuses_has_a_fallback_case(field: str) -> None:
    """Each value outside COMPUTES (for a number, one of them) appears in an UNSUPPORTED model above, whose tests
    check that supports() refuses it (and, for a decoder, that generate falls back to the Transformer)."""
    computed, domain = set(COMPUTES[field] or ()), choices(field)
    refused = values(UNSUPPORTED, field) - computed
    if domain is not None:
        assert refused == set(domain) - computed
    else:
        assert len(refused) >= 1


def test_a_field_not_classified_yet_keeps_the_model_on_the_transformer(monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_for("gpt2 tiny (tied head)")
    assert supports(model)
    monkeypatch.delitem(COMPUTES, "dropout")
    assert not supports(model)


def test_grouped_query_attention_needs_pytorchs_own_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    grouped, plain = model_for("llama with grouped-query attention"), model_for("gpt2 tiny (tied head)")
    monkeypatch.setattr(fast_decoder, "SDPA_HAS_GQA", False)  # as on PyTorch before 2.5
    assert not supports(grouped) and supports(plain)


PARTS = ["gpt2 tiny (tied head)", "sinusoidal positions", "llama with grouped-query attention"]


@pytest.mark.parametrize("name", PARTS)
def test_a_prompt_given_in_parts_sees_its_cached_part(name: str) -> None:
    model, prompt = model_for(name), [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    decoder = FastDecoder(model, CONTEXT)
    decoder.prefill(torch.tensor(prompt[:4]))
    assert_same_logits(decoder.prefill(torch.tensor(prompt[4:])), recomputed(model, prompt))


@pytest.fixture
def fast_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the tokens FastDecoder decodes (to tell which path ``generate`` took)."""
    steps: list[int] = []
    decode = FastDecoder.decode

    def counting(self: FastDecoder, token: int | torch.Tensor) -> torch.Tensor:
        steps.append(1)
        return decode(self, token)

    monkeypatch.setattr(FastDecoder, "decode", counting)
    return steps


def tokens(stream: Iterator[torch.Tensor]) -> list[int]:
    return torch.cat(list(stream)).tolist()


SAMPLINGS = {
    "greedy": SamplingConfig(temperature=0),
    "sampled": SamplingConfig(temperature=1.0),
    "top-k": SamplingConfig(temperature=0.8, top_k=5),
}


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("name", ["gpt2 small (tied head)", "untied head", "llama with grouped-query attention"])
def test_generate_takes_the_fast_path_at_batch_one_and_picks_the_module_paths_tokens(
    name: str, sampling: str, fast_steps: list[int]
) -> None:
    model, prompt, new = model_for(name), torch.tensor([[3, 1, 4, 1, 5]]), 3 * CONTEXT  # crops twice or more

    def run(decode: Any = None) -> list[int]:
        generator = torch.Generator().manual_seed(5)
        return tokens(generate(model, prompt, new, SAMPLINGS[sampling], generator=generator, decode=decode))

    modules = run(decode_one_token)
    assert fast_steps == []  # an explicit step keeps generation on the module tree
    fast = run()
    assert len(fast_steps) == new  # every generated token read back in by the fast decoder
    assert fast == modules and len(set(fast)) > 3  # the same tokens, and they vary


def test_the_fast_path_picks_the_uncached_references_tokens_within_the_context(fast_steps: list[int]) -> None:
    model, prompt, greedy = model_for("gpt2 tiny (tied head)"), torch.tensor([[7, 2]]), SAMPLINGS["greedy"]
    new = CONTEXT - prompt.shape[1] + 1
    assert tokens(generate(model, prompt, new, greedy)) == tokens(generate_uncached(model, prompt, new, greedy))
    assert len(fast_steps) == new


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_the_fast_decoder_refuses_unsupported_models(name: str) -> None:
    model = model_for(name)
    assert not supports(model)
    with pytest.raises(InputError, match="use the Transformer"):
        FastDecoder(model, CONTEXT)


@pytest.mark.parametrize("name", [name for name in UNSUPPORTED if config_for(name).lm_head])  # decoders
def test_generate_falls_back_to_the_transformer_for_unsupported_models(name: str, fast_steps: list[int]) -> None:
    model, prompt, greedy = model_for(name), torch.tensor([[3, 1, 4]]), SAMPLINGS["greedy"]
    got = tokens(generate(model, prompt, 2 * CONTEXT, greedy))
    assert fast_steps == [] and got == tokens(generate(model, prompt, 2 * CONTEXT, greedy, decode=decode_one_token))


def test_a_batch_of_two_or_dropout_in_training_keep_the_transformer(fast_steps: list[int]) -> None:
    model = model_for("gpt2 tiny (tied head)")
    tokens(generate(model, torch.tensor([[3, 1, 4], [1, 5, 9]]), 4))
    assert fast_steps == []
    dropping = Transformer(preset("tiny", vocab_size=VOCAB, context=CONTEXT, dropout=0.1))
    assert not supports(dropping.train()) and supports(dropping.eval())


@pytest.mark.parametrize("name", ["gpt2 tiny (tied head)", "llama with grouped-query attention"])
def test_a_capture_point_takes_the_same_weights_from_the_fast_decoder_as_from_the_transformer(
    name: str, fast_steps: list[int]
) -> None:
    """Every call through a hooked layer hands over its weights (1, H, T, S): the prompt's, each step's, and a
    crop's prefill; the fast decoder's equal the Transformer's, whose exact path is the reference."""
    model, prompt, greedy = model_for(name), torch.tensor([[3, 1, 4]]), SAMPLINGS["greedy"]
    runs = {}
    for path, decode in (("fast", None), ("modules", decode_one_token)):
        with capture_attention(model, [0, -1]) as records:
            chosen = tokens(generate(model, prompt, 2 * CONTEXT, greedy, decode=decode))
        runs[path] = chosen, records
    assert len(fast_steps) == 2 * CONTEXT  # the fast run stayed fast, hooks and all
    (fast_tokens, fast), (module_tokens, modules) = runs["fast"], runs["modules"]
    assert fast_tokens == module_tokens
    for layer in fast:
        assert [w.shape for w in fast[layer]] == [w.shape for w in modules[layer]]
        assert fast[layer][0].shape[2] == 3 and fast[layer][1].shape[2] == 1  # the prompt, then one new query
        for mine, reference in zip(fast[layer], modules[layer], strict=True):
            torch.testing.assert_close(mine, reference, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(mine.sum(dim=-1), torch.ones(mine.shape[:-1]))
    assert model.blocks[0].attention.weights_hook is None  # the capture ended with its block


def test_the_exact_attention_path_runs_in_the_fast_decoder_and_picks_the_same_tokens(
    fast_steps: list[int], kernel_calls: KernelCalls
) -> None:
    model, prompt, greedy = model_for("gpt2 tiny (tied head)"), torch.tensor([[3, 1, 4]]), SAMPLINGS["greedy"]
    with implementation("exact"), kernel_calls() as calls:
        exact = tokens(generate(model, prompt, 2 * CONTEXT, greedy))
    assert len(fast_steps) == 2 * CONTEXT and calls["fused"] == 0 and calls["exact"] > 0
    assert exact == tokens(generate(model, prompt, 2 * CONTEXT, greedy))


def test_the_cache_holds_what_it_was_made_for() -> None:
    model = model_for("gpt2 tiny (tied head)")
    decoder = FastDecoder(model, 4)
    decoder.prefill(torch.tensor([1, 2, 3]))
    decoder.decode(4)
    with pytest.raises(ShapeError, match=r"holds 4 positions and has 4; 1 more do not fit"):
        decoder.decode(5)
    with pytest.raises(ShapeError, match=r"capacity must be 1…16"):
        FastDecoder(model, CONTEXT + 1)
