"""FastDecoder, the fast twin of the Transformer's cached forward pass: for every pre-norm causal decoder (GPT-2's
conventions and Llama's) the same logits as the Transformer recomputing the whole window, at prefill and at every
decode step across a crop; ``generate`` uses it at batch 1 and picks the module path's tokens; anything else falls
back to the Transformer."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from qkv.attention import implementation
from qkv.generation import SamplingConfig, decode_one_token, generate, generate_uncached
from qkv.generation.fast_decoder import FastDecoder, supports
from qkv.model import Transformer, preset
from qkv.shapes import ShapeError

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
}

UNSUPPORTED: dict[str, tuple[str, dict[str, Any]]] = {
    "alibi": ("tiny", {"positions": "alibi"}),
    "post-norm": ("tiny", {"norm_placement": "post"}),
    "bidirectional": ("tiny", {"causal": False}),
    "token types": ("tiny", {"token_types": 2}),
    "embedding norm": ("tiny", {"embedding_norm": True}),
}


@functools.cache
def model_for(name: str) -> Transformer:
    """Random weights with a wider spread than GPT-2's (so that greedy decoding varies its tokens), random biases
    and norm gains and shifts too (so that leaving one out shows)."""
    family, overrides = {**SUPPORTED, **UNSUPPORTED}[name]
    torch.manual_seed(0)
    model = Transformer(preset(family, vocab_size=VOCAB, context=CONTEXT, **overrides))
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
    tokens = torch.randint(VOCAB, (29,), generator=torch.Generator().manual_seed(1)).tolist()
    window = tokens[:5]
    decoder = FastDecoder(model, CONTEXT)
    assert_same_logits(decoder.prefill(torch.tensor(window)), recomputed(model, window))
    crops = 0
    for token in tokens[5:]:  # 24 decode steps
        window.append(token)
        if len(window) > CONTEXT:  # generate's crop: keep the newest half, prefill it, decode the new token
            window = window[-(CONTEXT // 2 + 1) :]
            decoder = FastDecoder(model, CONTEXT)
            decoder.prefill(torch.tensor(window[:-1]))
            crops += 1
        assert_same_logits(decoder.decode(token), recomputed(model, window))
    assert crops >= 1


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
def test_unsupported_models_fall_back_to_the_transformer(name: str, fast_steps: list[int]) -> None:
    model, prompt, greedy = model_for(name), torch.tensor([[3, 1, 4]]), SAMPLINGS["greedy"]
    assert not supports(model)
    with pytest.raises(ValueError, match="use the Transformer"):
        FastDecoder(model, CONTEXT)
    got = tokens(generate(model, prompt, 2 * CONTEXT, greedy))
    assert fast_steps == [] and got == tokens(generate(model, prompt, 2 * CONTEXT, greedy, decode=decode_one_token))


def test_a_capture_hook_a_batch_of_two_or_dropout_in_training_keep_the_transformer(fast_steps: list[int]) -> None:
    model = model_for("gpt2 tiny (tied head)")
    batch = torch.tensor([[3, 1, 4], [1, 5, 9]])
    tokens(generate(model, batch, 4))
    assert fast_steps == []
    attention = model.blocks[0].attention
    attention.weights_hook = lambda weights: None
    try:
        assert not supports(model)
        tokens(generate(model, batch[:1], 4))
        assert fast_steps == []
    finally:
        attention.weights_hook = None
    dropping = Transformer(preset("tiny", vocab_size=VOCAB, context=CONTEXT, dropout=0.1))
    assert not supports(dropping.train()) and supports(dropping.eval())


def test_the_exact_attention_path_keeps_the_transformer_and_picks_the_same_tokens(fast_steps: list[int]) -> None:
    model, prompt, greedy = model_for("gpt2 tiny (tied head)"), torch.tensor([[3, 1, 4]]), SAMPLINGS["greedy"]
    with implementation("exact"):
        assert not supports(model)
        exact = tokens(generate(model, prompt, 2 * CONTEXT, greedy))
    assert fast_steps == [] and supports(model)
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
