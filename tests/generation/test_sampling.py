"""Sampling: temperature 0 is argmax, top-k stays inside torch.topk, top-p keeps the smallest prefix whose mass
reaches p, temperature reshapes the distribution as softmax(logits / t), and bad settings name their field."""

from __future__ import annotations

import math

import pytest
import torch

from qkv.errors import ConfigError
from qkv.generation import SamplingConfig, sample_next

DRAWS = 4000  # one row per draw: every row holds the same logits


def draws(logits: torch.Tensor, config: SamplingConfig, seed: int = 0) -> torch.Tensor:
    """``DRAWS`` samples from one row of logits ``(V,)``."""
    return sample_next(logits.expand(DRAWS, -1), config, torch.Generator().manual_seed(seed))


def frequencies(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.bincount(tokens, minlength=vocab).double() / len(tokens)


def nucleus(probabilities: list[float], p: float) -> set[int]:
    """The reference top-p set: tokens by falling probability, until their sum first reaches p."""
    order = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])
    kept: set[int] = set()
    total = 0.0
    for index in order:
        kept.add(index)
        total += probabilities[index]
        if total >= p:
            break
    return kept


def test_temperature_zero_is_argmax() -> None:
    logits = torch.randn(64, 50)
    assert torch.equal(sample_next(logits, SamplingConfig(temperature=0)), logits.argmax(dim=-1))


def test_temperature_zero_ignores_top_k_and_top_p() -> None:
    logits = torch.randn(8, 30)
    config = SamplingConfig(temperature=0, top_k=3, top_p=0.5)
    assert torch.equal(sample_next(logits, config), logits.argmax(dim=-1))


@pytest.mark.parametrize("k", [1, 3, 10])
def test_top_k_never_samples_outside_the_top_k(k: int) -> None:
    logits = torch.randn(200, 40) * 3
    tokens = sample_next(logits, SamplingConfig(top_k=k), torch.Generator().manual_seed(k))
    allowed = torch.topk(logits, k, dim=-1).indices  # (B, k)
    assert (allowed == tokens[:, None]).any(dim=-1).all()


def test_top_k_samples_the_top_k_in_proportion_to_their_probabilities() -> None:
    logits = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5])
    expected = torch.zeros(6, dtype=torch.float64)
    expected[:3] = torch.softmax(logits[:3].double(), dim=-1)
    assert torch.allclose(frequencies(draws(logits, SamplingConfig(top_k=3)), 6), expected, atol=0.03)


PROBABILITIES = [0.04, 0.3, 0.02, 0.15, 0.25, 0.1, 0.08, 0.05, 0.01]


@pytest.mark.parametrize("p", [0.2, 0.5, 0.6, 0.75, 0.9, 0.96, 0.999])  # none on a boundary
def test_top_p_keeps_the_smallest_prefix_whose_mass_reaches_p(p: float) -> None:
    logits = torch.tensor(PROBABILITIES).log()
    kept = nucleus(PROBABILITIES, p)
    seen = set(draws(logits, SamplingConfig(top_p=p)).tolist())
    assert seen == kept  # nothing outside; every kept token (each at least 1 %) shows up in 4000 draws


def test_top_p_renormalises_over_the_kept_tokens() -> None:
    logits = torch.tensor(PROBABILITIES).log()
    kept = sorted(nucleus(PROBABILITIES, 0.75))
    expected = torch.zeros(len(PROBABILITIES), dtype=torch.float64)
    expected[kept] = torch.tensor([PROBABILITIES[i] for i in kept], dtype=torch.float64)
    expected /= expected.sum()
    observed = frequencies(draws(logits, SamplingConfig(top_p=0.75)), len(PROBABILITIES))
    assert torch.allclose(observed, expected, atol=0.03)


def test_top_p_on_random_rows_stays_inside_each_rows_nucleus() -> None:
    logits = torch.randn(300, 25) * 2
    tokens = sample_next(logits, SamplingConfig(top_p=0.8), torch.Generator().manual_seed(3))
    for row, token in zip(torch.softmax(logits.double(), dim=-1).tolist(), tokens.tolist(), strict=True):
        assert token in nucleus(row, 0.8)


def test_top_p_of_one_keeps_everything() -> None:
    logits = torch.zeros(5)
    assert set(draws(logits, SamplingConfig(top_p=1.0)).tolist()) == set(range(5))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_samples_softmax_of_logits_over_t(temperature: float) -> None:
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5])
    expected = torch.softmax(logits.double() / temperature, dim=-1)
    observed = frequencies(draws(logits, SamplingConfig(temperature=temperature)), 4)
    assert torch.allclose(observed, expected, atol=0.03)


def test_the_same_generator_seed_draws_the_same_tokens() -> None:
    logits = torch.randn(50, 20)
    config = SamplingConfig(temperature=0.9, top_k=8, top_p=0.9)
    first = sample_next(logits, config, torch.Generator().manual_seed(4))
    assert torch.equal(first, sample_next(logits, config, torch.Generator().manual_seed(4)))
    assert not torch.equal(first, sample_next(logits, config, torch.Generator().manual_seed(5)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", math.nan),
        ("temperature", math.inf),
        ("top_k", 0),
        ("top_k", -2),
        ("top_k", 2.5),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_p", math.nan),
    ],
)
def test_invalid_sampling_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"SamplingConfig\.{field}\b"):
        SamplingConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("temperature", [1e-9, 1e-30, 1e-40, 1e-45, 1e-300, 5e-324])
@pytest.mark.parametrize("options", [{}, {"top_k": 3}, {"top_p": 0.5}], ids=["plain", "top-k", "top-p"])
def test_a_tiny_temperature_never_gives_nan_and_picks_the_likeliest_token(
    temperature: float, options: dict[str, float]
) -> None:
    logits = torch.tensor([[3.0, 80.0, -5.0, 79.5], [1e-3, 0.0, -1e3, 2e-3], [-90.0, -88.0, -89.0, -95.0]])
    config = SamplingConfig(temperature=temperature, **options)  # type: ignore[arg-type]
    for seed in range(20):
        assert sample_next(logits, config, torch.Generator().manual_seed(seed)).tolist() == [1, 3, 1]


def test_a_small_temperature_still_samples_between_exact_ties() -> None:
    logits = torch.tensor([5.0, 5.0, -1.0])
    assert set(draws(logits, SamplingConfig(temperature=1e-20)).tolist()) == {0, 1}


@pytest.mark.parametrize("temperature", [1e6, 1e300])
def test_a_huge_temperature_samples_uniformly(temperature: float) -> None:
    logits = torch.tensor([50.0, 0.0, -50.0, 10.0])
    observed = frequencies(draws(logits, SamplingConfig(temperature=temperature)), 4)
    assert torch.allclose(observed, torch.full((4,), 0.25, dtype=torch.float64), atol=0.03)
