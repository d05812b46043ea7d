"""Generation: greedy decoding at batch 1 from a context-256 model, cached and uncached, against the peer.

One model in two implementations: transformers' ``GPT2LMHeadModel`` and a qkv ``Transformer`` holding copies
of its weights, drawn with a spread of 0.3 (not GPT-2's 0.02) so that greedy decoding varies its tokens. The
peer cannot go past its 256 positions, so it makes ``context - 1`` tokens; qkv makes ``--tokens`` (cached and
uncached) and ``context - 1`` for the like-for-like comparison. All must pick the same first ``context - 1``
tokens before anything is timed.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks import harness
from benchmarks.gpt2 import gpt2_peer, qkv_twin
from qkv.errors import ConfigError
from qkv.generation import GREEDY, generate, generate_uncached
from qkv.model import Transformer, TransformerConfig, preset
from qkv.shapes import Tensor

INIT_STD = 0.3


@dataclass(frozen=True)
class Config:
    layers: int = 4
    heads: int = 4
    width: int = 128
    context: int = 256
    vocab_size: int = 65
    tokens: int = field(default=500, metadata={"help": "tokens qkv generates, cached and uncached"})
    rounds: int = 5
    seed: int = 0
    memory: bool = field(default=True, metadata={"help": "measure each generation's memory in a fresh process"})

    def __post_init__(self) -> None:
        harness.require_positive(self, "layers", "heads", "width", "vocab_size", "tokens", "rounds")
        if self.context < 2:
            raise ConfigError(f"Config.context must be at least 2, got {self.context}")


QUICK = {"layers": 1, "heads": 2, "width": 32, "context": 16, "tokens": 20, "rounds": 2}


def model_config(layers: int, heads: int, width: int, context: int, vocab_size: int) -> TransformerConfig:
    return preset("small", vocab_size=vocab_size, layers=layers, heads=heads, width=width, context=context)


def _prompt() -> Tensor:
    return torch.zeros(1, 1, dtype=torch.long)  # (B=1, T=1)


def qkv_case(model: Transformer, tokens: int, cached: bool) -> Callable[[], Tensor]:
    stream = generate if cached else generate_uncached
    return lambda: torch.stack(list(stream(model, _prompt(), tokens, GREEDY)), dim=1)  # (1, tokens)


def peer_case(peer: Any, tokens: int) -> Callable[[], Tensor]:
    def run_once() -> Tensor:
        prompt = _prompt()
        with torch.inference_mode():
            # the mask, or token 0 (the pad id) would be masked as padding; min_new_tokens: no early stop
            out = peer.generate(
                prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=tokens, min_new_tokens=tokens,
                do_sample=False, use_cache=True,
            )  # fmt: skip
        return out[:, 1:]  # (1, tokens)

    return run_once


def memory_case(case: str, tokens: int, **shape: int) -> Callable[[], Tensor]:
    """The memory worker's case: one generation; qkv's process never imports transformers."""
    if case == "peer":
        return peer_case(gpt2_peer(model_config(**shape), seed=0, initializer_range=INIT_STD).eval(), tokens)
    torch.manual_seed(0)
    return qkv_case(Transformer(model_config(**shape)).eval(), tokens, cached=case == "qkv")


def check_agreement(outputs: Mapping[str, Tensor], length: int) -> None:
    """Every case's first ``length`` tokens must be the same."""
    first, reference = next(iter(outputs.items()))
    for label, output in outputs.items():
        mismatch = (output[:, :length] != reference[:, :length]).nonzero()
        if len(mismatch):
            at = int(mismatch[0, 1])
            raise harness.BenchmarkError(
                f"{label} picks token {int(output[0, at])} at position {at}, {first} picks {int(reference[0, at])}: "
                "the cases do not compute the same thing; nothing timed"
            )


def run(config: Config, say: harness.Say) -> harness.Report:
    shape = {name: getattr(config, name) for name in ("layers", "heads", "width", "context", "vocab_size")}
    peer = gpt2_peer(model_config(**shape), seed=config.seed, initializer_range=INIT_STD).eval()
    model = qkv_twin(peer, model_config(**shape))
    short = config.context - 1
    runs = {  # label → (case, tokens, one generation)
        f"qkv {config.tokens}": ("qkv", config.tokens, qkv_case(model, config.tokens, cached=True)),
        f"qkv-uncached {config.tokens}": ("qkv-uncached", config.tokens, qkv_case(model, config.tokens, cached=False)),
        f"qkv {short}": ("qkv", short, qkv_case(model, short, cached=True)),
        f"peer {short}": ("peer", short, peer_case(peer, short)),
    }
    outputs, first_s = harness.first_calls({label: generation for label, (_, _, generation) in runs.items()}, say)
    check_agreement(outputs, min(short, config.tokens))
    say(f"the cases agree on the first {min(short, config.tokens)} tokens")
    peaks: dict[str, harness.PeakMemory | None] = dict.fromkeys(runs)
    for label, (case, tokens, _) in runs.items() if config.memory else ():
        say(f"{label}: peak memory (fresh process)")
        params = {"case": case, "tokens": tokens, **shape}
        peaks[label] = harness.peak_in_fresh_process("benchmarks.generate", "memory_case", params)
    seconds = harness.interleaved({label: generation for label, (_, _, generation) in runs.items()}, config.rounds, say)
    per_token = {label: [s / runs[label][1] for s in samples] for label, samples in seconds.items()}
    rows = []
    for label, (case, tokens, _) in runs.items():
        median, memory = statistics.median(seconds[label]), peaks[label]
        cells = [
            harness.ms(median),
            f"{tokens / median:,.0f}",
            f"{median / tokens * 1000:.3f}",
            f"{first_s[label]:.2f}",
        ]
        rows.append([case, str(tokens), *cells, *harness.memory_cells(memory)])
    headers = ["case", "tokens", "ms total", "tokens/s", "ms/token", "first s", "rest MB", "extra MB", "peak MB"]
    title = f"{config.layers} layers, {config.heads} heads, width {config.width}, context {config.context}, greedy"
    measures = {
        "cached_over_uncached": harness.paired_ratio(
            per_token[f"qkv-uncached {config.tokens}"], per_token[f"qkv {config.tokens}"]
        ),
        "qkv_over_peer": harness.paired_ratio(per_token[f"peer {short}"], per_token[f"qkv {short}"]),
    }
    return harness.Report([harness.Table(title, headers, rows)], measures)


if __name__ == "__main__":
    sys.exit(harness.main("generate", Config, run, QUICK))
