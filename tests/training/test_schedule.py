"""The learning-rate schedule (linear warmup, then cosine to the floor) and TrainConfig's validation."""

from __future__ import annotations

import itertools
import math

import pytest

from qkv.errors import ConfigError
from qkv.training import TrainConfig
from qkv.training.schedule import learning_rate

CONFIG = TrainConfig(steps=50, warmup_steps=10, learning_rate=2e-3, min_learning_rate=2e-4)


def reference(step: int, steps: int, warmup: int, peak: float, floor: float) -> float:
    """The schedule written out independently: warmup reaches the peak on its last step, cosine ends at steps."""
    if step < warmup:
        return peak * (step + 1) / warmup
    angle = math.pi * min(step - warmup, steps - warmup) / (steps - warmup)
    return floor + (peak - floor) * (1 + math.cos(angle)) / 2


@pytest.mark.parametrize(("steps", "warmup"), [(50, 10), (7, 0), (100, 1), (12, 11)])
def test_schedule_matches_the_formula_at_every_step(steps: int, warmup: int) -> None:
    config = TrainConfig(steps=steps, warmup_steps=warmup, learning_rate=2e-3, min_learning_rate=2e-4)
    for step in range(steps + 1):
        assert learning_rate(step, config) == pytest.approx(reference(step, steps, warmup, 2e-3, 2e-4), rel=1e-12)


def test_warmup_is_linear_from_lr_over_warmup() -> None:
    rates = [learning_rate(step, CONFIG) for step in range(CONFIG.warmup_steps)]
    assert rates[0] == pytest.approx(CONFIG.learning_rate / CONFIG.warmup_steps)
    assert all(b - a == pytest.approx(rates[0]) for a, b in itertools.pairwise(rates))


def test_peak_is_reached_at_the_end_of_warmup_and_never_exceeded() -> None:
    rates = [learning_rate(step, CONFIG) for step in range(CONFIG.steps + 1)]
    assert rates[CONFIG.warmup_steps - 1] == rates[CONFIG.warmup_steps] == CONFIG.learning_rate == max(rates)


def test_cosine_decays_monotonically_to_the_floor_at_steps() -> None:
    rates = [learning_rate(step, CONFIG) for step in range(CONFIG.warmup_steps, CONFIG.steps + 1)]
    assert all(b <= a for a, b in itertools.pairwise(rates))
    assert rates[-1] == pytest.approx(CONFIG.min_learning_rate, rel=1e-12)
    assert learning_rate(CONFIG.steps + 5, CONFIG) == pytest.approx(CONFIG.min_learning_rate, rel=1e-12)


def test_halfway_through_the_decay_the_rate_is_the_midpoint() -> None:
    midpoint = CONFIG.warmup_steps + (CONFIG.steps - CONFIG.warmup_steps) // 2
    assert learning_rate(midpoint, CONFIG) == pytest.approx((CONFIG.learning_rate + CONFIG.min_learning_rate) / 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", 0),
        ("batch_size", -1),
        ("eval_interval", 0),
        ("eval_batches", 1.5),
        ("warmup_steps", -1),
        ("time_limit", 0.0),
        ("learning_rate", 0.0),
        ("learning_rate", math.nan),
        ("min_learning_rate", 1.0),
        ("weight_decay", -0.1),
        ("beta1", 1.0),
        ("beta2", -0.5),
        ("grad_clip", 0.0),
    ],
)
def test_invalid_train_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"TrainConfig\.{field}\b"):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_train_config_round_trips_through_a_dict_and_refuses_unknown_fields() -> None:
    config = TrainConfig(steps=3, time_limit=9.5, seed=4)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="no field bogus"):
        TrainConfig.from_dict({**config.to_dict(), "bogus": 1})
