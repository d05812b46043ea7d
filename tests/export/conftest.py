"""Tiny runs to export: GPT-2-style and Llama-style configs, char and BPE tokenizers, each trained for two steps.

Before training, every norm gain and bias is drawn away from its default (1 and 0), so that a norm or a bias put
in the wrong place in an exported file changes the logits by far more than the tolerance.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from qkv.cli.main import main
from qkv.export.run import Run, read_run
from qkv.model import Transformer, preset
from qkv.text import split_train_validation, train_tokenizer
from qkv.training import TrainConfig, train

os.environ["HF_HUB_OFFLINE"] = "1"  # transformers, where a test uses it, must never reach the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "cats", "sit", "on", "mats")
CONTEXT = 16
TOLERANCE = 1e-5

# name → (family or preset, tokenizer, config overrides)
VARIANTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gpt2-char": ("tiny", "char", {}),
    "gpt2-bpe": ("tiny", "bpe", {}),
    "gpt2-sinusoidal-untied": (
        "tiny",
        "char",
        {"positions": "sinusoidal", "activation": "relu", "tie_embeddings": False, "mlp_width": 48, "norm_eps": 1e-6},
    ),
    "gpt2-no-positions": ("tiny", "char", {"positions": "none", "activation": "gelu"}),
    "llama-char": ("llama", "char", {"kv_heads": 2, "rope_theta": 500.0, "mlp_width": 48}),
    "llama-bpe-tied": ("llama", "bpe", {"tie_embeddings": True, "norm_eps": 1e-6}),
    "llama-biases": ("llama", "char", {"attention_bias": True, "mlp_bias": True, "head_width": 16, "kv_heads": 1}),
}
HF_VARIANTS = list(VARIANTS)
GGUF_VARIANTS = ["llama-char", "llama-bpe-tied"]  # the Llama recipe without biases


def small_text(lines: int = 60, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(7)) for _ in range(lines)) + "\n"


def make_run(run_dir: Path, family: str, tokenizer_kind: str, **overrides: Any) -> Path:
    """A run trained for two steps on a small text, through qkv's own training loop and checkpoints."""
    text = small_text()
    tokenizer = train_tokenizer(
        "bpe" if tokenizer_kind == "bpe" else "char", text, 300 if tokenizer_kind == "bpe" else None
    )
    sizes = {"context": CONTEXT, "width": 32, "layers": 2, "heads": 4}
    config = preset(family, vocab_size=tokenizer.vocab_size, **{**sizes, **overrides})
    torch.manual_seed(0)
    model = Transformer(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1:
                parameter.uniform_(-0.5, 0.5) if name.endswith("bias") else parameter.uniform_(0.5, 1.5)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, validation_ids = split_train_validation(ids, context=CONTEXT)
    steps = TrainConfig(steps=2, batch_size=4, warmup_steps=1, eval_interval=2, eval_batches=1, precision="float32")
    train(
        model,
        model_config=config,
        tokenizer_json=tokenizer.to_json(),
        train_ids=train_ids,
        validation_ids=validation_ids,
        config=steps,
        run_dir=run_dir,
    )
    return run_dir


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every variant's run directory, trained once per session."""
    root = tmp_path_factory.mktemp("runs")
    return {
        name: make_run(root / name, family, tokenizer, **overrides)
        for name, (family, tokenizer, overrides) in VARIANTS.items()
    }


def reference(run: Run) -> Transformer:
    """The run's model, built and loaded by qkv itself: the logits every export must reproduce."""
    model = Transformer(run.config)
    model.load_state_dict(run.tensors)
    return model.eval()


def sample_ids(run: Run, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, run.config.vocab_size, (batch, CONTEXT), generator=generator)


@pytest.fixture(scope="session")
def read() -> Any:
    cache: dict[Path, Run] = {}

    def read_once(path: Path) -> Run:
        if path not in cache:
            cache[path] = read_run(path)
        return cache[path]

    return read_once


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run_cli(argv: list[str]) -> Result:
    """``qkv ARGV`` in this process, its exit status and what it wrote."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return Result(code, out.getvalue(), err.getvalue())
