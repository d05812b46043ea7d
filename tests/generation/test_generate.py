"""Generation: the cached path (prefill + one-token decode steps) picks exactly the tokens the uncached
reference picks, for every position scheme; past the context it crops and keeps going; same seed, same text."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qkv.attention.positions import POSITION_SCHEMES
from qkv.errors import ShapeError
from qkv.generation import SamplingConfig, generate, generate_uncached, sample_next
from qkv.model import Transformer, TransformerConfig

VOCAB, CONTEXT = 17, 16
SAMPLINGS = {
    "greedy": SamplingConfig(temperature=0),
    "sampled": SamplingConfig(temperature=1.0),
    "top-k": SamplingConfig(temperature=0.8, top_k=5),
    "top-p": SamplingConfig(temperature=1.2, top_p=0.9),
}


@functools.cache
def model_with(positions: str) -> Transformer:
    """A model trained a little to count modulo VOCAB: greedy decoding varies, and distributions stay broad."""
    config = TransformerConfig(vocab_size=VOCAB, context=CONTEXT, width=32, layers=2, heads=4, positions=positions)  # type: ignore[arg-type]
    torch.manual_seed(1)
    model = Transformer(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    counting = torch.arange(1000) % VOCAB
    for _ in range(25):
        starts = torch.randint(len(counting) - CONTEXT, (8, 1)) + torch.arange(CONTEXT + 1)  # (B, T + 1)
        windows = counting[starts]
        logits = model(windows[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def tokens(stream: object) -> torch.Tensor:
    return torch.stack(list(stream), dim=1)  # type: ignore[call-overload]  # (B, new)


PROMPT = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])  # (B=2, T=5)


@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("positions", POSITION_SCHEMES)
def test_cached_generation_equals_uncached_within_the_context(positions: str, sampling: str) -> None:
    model, config, new = model_with(positions), SAMPLINGS[sampling], CONTEXT - PROMPT.shape[1] + 1
    cached = tokens(generate(model, PROMPT, new, config, generator=torch.Generator().manual_seed(2)))
    uncached = tokens(generate_uncached(model, PROMPT, new, config, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(cached, uncached)
    assert len(set(cached.flatten().tolist())) > 2  # the text varies: the comparison means something


@functools.cache
def random_model(positions: str) -> Transformer:
    """Untrained, with weights far larger than GPT-2's init: every next-token distribution hangs on the window."""
    config = TransformerConfig(vocab_size=VOCAB, context=CONTEXT, width=32, layers=2, heads=4, positions=positions)  # type: ignore[arg-type]
    torch.manual_seed(2)
    model = Transformer(config)
    for parameter in model.parameters():
        nn.init.normal_(parameter, std=0.4)
    return model.eval()


def crop_reference(model: Transformer, prompt: torch.Tensor, new: int, seed: int) -> torch.Tensor:
    """Sampling written out with the documented crop: past the context, keep the newest half + 1 tokens."""
    generator, window, out = torch.Generator().manual_seed(seed), prompt, []
    for _ in range(new):
        logits = model(window)[:, -1]  # the whole window recomputed
        token = sample_next(logits, SAMPLINGS["sampled"], generator)
        out.append(token)
        window = torch.cat([window, token[:, None]], dim=1)
        if window.shape[1] > CONTEXT:
            window = window[:, -(CONTEXT // 2 + 1) :]
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("positions", POSITION_SCHEMES)
def test_past_the_context_generation_crops_and_keeps_going(positions: str) -> None:
    model = random_model(positions)
    with torch.no_grad():
        cropped = crop_reference(model, PROMPT, 3 * CONTEXT, seed=4)
    generator = torch.Generator().manual_seed(4)
    cached = tokens(generate(model, PROMPT, 3 * CONTEXT, SAMPLINGS["sampled"], generator=generator))
    assert cached.shape == (2, 3 * CONTEXT) and torch.equal(cached, cropped)


def test_sampling_past_the_context_yields_every_token_in_the_vocabulary_range() -> None:
    out = tokens(generate(model_with("rope"), PROMPT, 5 * CONTEXT, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, 5 * CONTEXT) and int(out.min()) >= 0 and int(out.max()) < VOCAB


def test_same_seed_gives_identical_output_and_another_seed_does_not() -> None:
    model = model_with("learned")

    def run(seed: int) -> torch.Tensor:
        return tokens(generate(model, PROMPT, 30, SAMPLINGS["sampled"], generator=torch.Generator().manual_seed(seed)))

    assert torch.equal(run(7), run(7)) and not torch.equal(run(7), run(8))


def test_greedy_generation_is_the_argmax_of_the_model_after_the_prompt() -> None:
    model = model_with("alibi")
    first = next(iter(generate(model, PROMPT, 1, SAMPLINGS["greedy"])))
    with torch.no_grad():
        assert torch.equal(first, model(PROMPT)[:, -1].argmax(dim=-1))


def test_a_prompt_filling_the_whole_context_still_generates() -> None:
    model, prompt = model_with("sinusoidal"), torch.arange(CONTEXT)[None] % VOCAB
    out = tokens(generate(model, prompt, 3, SAMPLINGS["greedy"]))
    with torch.no_grad():
        assert out.shape == (1, 3) and int(out[0, 0]) == int(model(prompt)[0, -1].argmax())


@pytest.mark.parametrize(
    "prompt", [torch.zeros(1, CONTEXT + 1, dtype=torch.long), torch.zeros(1, 0, dtype=torch.long), torch.zeros(4)]
)
def test_prompts_that_do_not_fit_are_refused_with_a_shape_error(prompt: torch.Tensor) -> None:
    with pytest.raises(ShapeError):
        next(iter(generate(model_with("learned"), prompt, 1)))


@pytest.mark.parametrize("batch", [1, 2], ids=["fast decoder", "module steps"])
@pytest.mark.parametrize("bad", [VOCAB, -1, 10**9])
def test_a_prompt_id_outside_the_vocabulary_is_one_input_error_on_every_path(batch: int, bad: int) -> None:
    from qkv.errors import InputError

    prompt = torch.zeros(batch, 4, dtype=torch.long)
    prompt[-1, 2] = bad
    with pytest.raises(InputError, match=rf"^token id {bad} at \({batch - 1}, 2\) is out of range: the model has 17"):
        next(iter(generate(model_with("learned"), prompt, 1)))
