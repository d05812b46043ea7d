"""A tiny language-model setup shared by the training tests: a small text, a char tokenizer, a tiny model."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from qkv.model import Transformer, TransformerConfig, preset
from qkv.shapes import Tensor
from qkv.text import CharTokenizer, split_train_validation
from qkv.training import TrainConfig, TrainResult, train

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "cats", "sit", "on", "mats")


def small_text(lines: int = 120, seed: int = 0) -> str:
    """A few kilobytes of word salad: enough windows for batches, small enough to train on in milliseconds."""
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(7)) for _ in range(lines)) + "\n"


@dataclass(frozen=True)
class Tiny:
    model_config: TransformerConfig
    tokenizer_json: str
    train_ids: Tensor
    validation_ids: Tensor

    def model(self) -> Transformer:
        torch.manual_seed(0)
        return Transformer(self.model_config)

    def train(self, model: Transformer, run_dir: Path, config: TrainConfig, **options: Any) -> TrainResult:
        return train(
            model,
            model_config=self.model_config,
            tokenizer_json=self.tokenizer_json,
            train_ids=self.train_ids,
            validation_ids=self.validation_ids,
            config=config,
            run_dir=run_dir,
            **options,
        )


@pytest.fixture(scope="session")
def tiny() -> Tiny:
    text = small_text()
    tokenizer = CharTokenizer.train(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, validation_ids = split_train_validation(ids, context=16)
    config = preset("tiny", vocab_size=tokenizer.vocab_size, context=16, width=32)
    return Tiny(config, tokenizer.to_json(), train_ids, validation_ids)


QUICK = TrainConfig(
    steps=8,
    batch_size=4,
    learning_rate=3e-3,
    min_learning_rate=3e-4,
    warmup_steps=2,
    eval_interval=3,
    eval_batches=2,
    seed=7,
)
"""Eight steps of four sequences, with validation and a checkpoint every three steps."""


@pytest.fixture
def quick() -> TrainConfig:
    return QUICK
