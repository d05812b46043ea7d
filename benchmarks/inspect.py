"""Inspection: ``qkv attend`` from start to exit, and the extra memory of a whole trace.

* attend: ``python -m qkv attend "<the article's sentence>" --model minilm`` timed from start to exit (Python's
  start-up, the imports, loading, the trace, the drawing), alternating with the floor every PyTorch command pays,
  ``python -c "import torch"``; one warm-up run of each first.
* trace: ``qkv.trace`` of a text of ``--tokens`` tokens (the start of ``qkv train``'s corpus, cut at a token
  boundary) through every layer and head of ``--model``, in a fresh process after a warm-up trace: the peak
  resident memory beyond the loaded model's, beside the weights it must hold, ``4·L·H·T²`` bytes.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import harness
from qkv.data.registry import PACKAGED, find_packaged
from qkv.inspection.trace import trace
from qkv.pretrained import load
from qkv.pretrained.model import read_parts
from qkv.text import default_corpus

SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"


@dataclass(frozen=True)
class Config:
    rounds: int = 5
    tokens: int = field(default=512, metadata={"help": "the traced text's length in tokens"})
    model: str = field(default="smollm2", metadata={"help": "the pretrained model to trace"})
    attend_model: str = field(default="minilm", metadata={"help": "the model qkv attend runs"})
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        harness.require_positive(self, "rounds", "tokens")


QUICK = {"rounds": 2, "tokens": 32, "model": "minilm"}


def commands(config: Config) -> dict[str, list[str]]:
    """The timed commands, by the names the report gives them."""
    attend = [sys.executable, "-m", "qkv", "attend", SENTENCE, "--model", config.attend_model, "--color", "never"]
    return {f"qkv attend --model {config.attend_model}": attend, "import torch": [sys.executable, "-c", "import torch"]}


def text_of_tokens(tokenizer: Any, source: str, tokens: int) -> str:
    """The longest start of ``source`` that ``tokenizer`` reads as exactly ``tokens`` tokens, specials included."""
    ids, pieces = tokenizer.encode_with_pieces(source[: 20 * tokens])
    special = sum(1 for i in ids if tokenizer.is_special(i))
    text_pieces = [piece for i, piece in zip(ids, pieces, strict=True) if not tokenizer.is_special(i)]
    for count in range(tokens - special, max(0, tokens - special - 8), -1):
        text = "".join(text_pieces[:count])
        if len(tokenizer.encode(text)) == tokens:
            return text
    raise harness.BenchmarkError(f"found no start of the corpus that is exactly {tokens} tokens long")


def trace_case(model: str, tokens: int) -> Callable[[], object]:
    """The memory worker's case: one whole trace of a ``tokens``-token text through the loaded ``model``."""
    loaded = load(model)
    text = text_of_tokens(loaded.tokenizer, default_corpus().text, tokens)
    return lambda: trace(loaded, text)


def _run(command: list[str], timeout_s: float) -> None:
    harness.Process(command, timeout_s=timeout_s, pipes=False).wait()


def run(config: Config, say: harness.Say) -> harness.Report:
    harness.require_memory()  # before minutes of timing, not after
    timed = commands(config)
    cases = {name: partial(_run, command, config.timeout_s) for name, command in timed.items()}
    progress = lambda r: say(f"attend: round {r}/{config.rounds}" if r else "attend: a warm-up round")  # noqa: E731
    seconds = harness.round_robin(cases, rounds=config.rounds + 1, on_round=progress)
    seconds = {name: samples[1:] for name, samples in seconds.items()}  # the first round warmed the file caches
    rows = [[name, f"{statistics.median(s):.2f}", f"{min(s):.2f}", f"{max(s):.2f}"] for name, s in seconds.items()]
    say(f"trace: {config.tokens} tokens through {config.model}, every layer and head (fresh process)")
    params = {"model": config.model, "tokens": config.tokens}
    peak = harness.peak_in_fresh_process("benchmarks.inspect", "trace_case", params, timeout_s=config.timeout_s)
    location = find_packaged(config.model)[1] if config.model in PACKAGED else Path(config.model).expanduser()
    shape = read_parts(location).config
    weights = 4 * shape.layers * shape.heads * config.tokens**2
    memory_row = [config.model, str(config.tokens), f"{shape.layers} × {shape.heads}", *harness.memory_cells(peak)]
    memory_row += [harness.mb(weights), f"{peak.peak_extra / weights:.2f}"]
    memory_headers = [
        "model",
        "tokens",
        "layers × heads",
        "rest MB",
        "extra MB",
        "peak MB",
        "weights MB",
        "extra/weights",
    ]
    return harness.Report(
        [
            harness.Table("Wall time from start to exit, s", ["command", "median s", "min s", "max s"], rows),
            harness.Table("The trace's memory (MB = 10⁶ bytes)", memory_headers, [memory_row]),
        ],
        {"attend_s": statistics.median(seconds[next(iter(timed))]), "trace_extra_mb": peak.peak_extra / harness.MB},
    )


if __name__ == "__main__":
    sys.exit(harness.main("inspect", Config, run, QUICK))
