"""``qkv bench inspect``: how long ``qkv attend`` takes from the shell, and the memory a whole trace needs.

Two cases, each against the issue's target:

* ``attend`` — ``python -m qkv attend "<the article's sentence>" --model minilm`` as a subprocess, timed from
  start to exit: Python's start-up, the imports, loading MiniLM, the trace and the terminal rendering, what a
  user waits for. One warm-up run (file caches), then ``--repeats`` runs. In the same rounds, alternating with
  it, the floor: ``python -c "import torch"``, what any command that uses PyTorch pays before it starts.
  Target: median under 3 s.
* ``trace`` — :func:`qkv.trace` of a 512-token text through SmolLM2, every layer and every head, in a fresh
  process (:mod:`qkv.bench.memory`): the peak resident memory beyond that of the process with the model loaded
  (one warm-up trace first). Beside it, what the trace must hold: its weights, ``4·L·H·T²`` bytes (30 layers ×
  9 heads × 512² × 4 B = 283 MB). Target: under 1 GB (10⁹ bytes) extra.

The text is the first ``--tokens`` tokens of the corpus ``qkv train`` uses by default (Shakespeare's plays),
cut at a token boundary so that it is exactly that many tokens long.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from qkv.bench import BenchmarkError, memory
from qkv.bench.report import (
    Verdict,
    add_report_arguments,
    format_table,
    format_verdicts,
    load_average,
    positive_int,
    run_and_report,
)
from qkv.errors import ConfigError

if TYPE_CHECKING:
    from qkv.pretrained import PretrainedTokenizer

__all__ = [
    "InspectBenchConfig",
    "InspectReport",
    "Verdict",
    "add_arguments",
    "format_report",
    "run",
    "run_cli",
    "text_of_tokens",
    "trace_case",
    "verdicts",
]

SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"
MAX_ATTEND_S = 3.0
MAX_TRACE_EXTRA = 1e9  # bytes: "less than 1 GB extra memory"
MB = 1e6


@dataclass(frozen=True)
class InspectBenchConfig:
    rounds: int = 5
    tokens: int = 512
    trace_model: str = "smollm2"
    attend_model: str = "minilm"
    threads: int | None = None
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("rounds", "tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"InspectBenchConfig.{name} must be at least 1, got {getattr(self, name)}")

    @property
    def attend_command(self) -> list[str]:
        return [sys.executable, "-m", "qkv", "attend", SENTENCE, "--model", self.attend_model, "--color", "never"]

    @property
    def floor_command(self) -> list[str]:
        return [sys.executable, "-c", "import torch"]


# -- the trace's memory, in the worker process --------------------------------------------------------------


def text_of_tokens(tokenizer: PretrainedTokenizer, source: str, tokens: int) -> str:
    """The longest start of ``source`` that a pretrained tokenizer reads as exactly ``tokens`` tokens (its
    special tokens included), cut at a token boundary."""
    ids, pieces = tokenizer.encode_with_pieces(source[: 20 * tokens])
    special = sum(1 for i in ids if tokenizer.is_special(i))
    text_pieces = [piece for i, piece in zip(ids, pieces, strict=True) if not tokenizer.is_special(i)]
    for count in range(tokens - special, max(0, tokens - special - 8), -1):
        text = "".join(text_pieces[:count])
        if len(tokenizer.encode(text)) == tokens:
            return text
    raise BenchmarkError(f"found no start of the corpus that is exactly {tokens} tokens long")


def trace_case(model: str, tokens: int) -> Callable[[], object]:
    """The memory worker's factory: load ``model``, cut a ``tokens``-token text, return one whole trace of it."""
    from qkv.inspection.trace import trace
    from qkv.pretrained import PretrainedTokenizer, load
    from qkv.text import default_corpus

    loaded = load(model)
    if not isinstance(loaded.tokenizer, PretrainedTokenizer):  # text_of_tokens reads its pieces and special tokens
        raise BenchmarkError(f"{model}: the trace benchmark measures pretrained models (minilm, smollm2)")
    text = text_of_tokens(loaded.tokenizer, default_corpus().text, tokens)
    return lambda: trace(loaded, text)


# -- the report -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceMemory:
    model: str
    tokens: int
    layers: int
    heads: int
    peak: memory.PeakMemory

    @property
    def weight_bytes(self) -> int:
        """What the trace must hold: float32 weights ``(L, H, T, S)``."""
        return 4 * self.layers * self.heads * self.tokens**2


@dataclass(frozen=True)
class InspectReport:
    config: InspectBenchConfig
    attend_s: tuple[float, ...]  # one run of `qkv attend` each
    floor_s: tuple[float, ...]  # one run of `python -c "import torch"` each, in the same rounds
    trace: TraceMemory
    machine: str
    torch_version: str
    load_average: tuple[float, float] | None


def _wall_time(command: Sequence[str], timeout_s: float) -> float:
    """Seconds from start to exit of ``command`` (its output dropped); a failure is a :class:`BenchmarkError`."""
    env = memory.worker_env()  # runs this qkv
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{' '.join(command[1:])} ran past {timeout_s:.0f} s") from None
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-2:]) or "no message"
        raise BenchmarkError(f"{' '.join(command[1:3])} … failed with exit status {done.returncode}: {tail}")
    return seconds


def run(config: InspectBenchConfig, progress: Callable[[str], None] | None = None) -> InspectReport:
    say = progress or (lambda _message: None)
    load_start = load_average()
    if not memory.supported():  # before minutes of timing, not after
        raise BenchmarkError("measuring peak memory needs Linux /proc/self/status and /proc/self/clear_refs")

    # 1. qkv attend from start to exit, alternating with the floor; the first pair warms the file caches.
    say(f'attend: qkv attend "{SENTENCE}" --model {config.attend_model} (warm-up)')
    _wall_time(config.attend_command, config.timeout_s)
    _wall_time(config.floor_command, config.timeout_s)
    attend: list[float] = []
    floor: list[float] = []
    for index in range(config.rounds):
        say(f"attend: round {index + 1}/{config.rounds}")
        pair = [(attend, config.attend_command), (floor, config.floor_command)]
        for samples, command in pair if index % 2 == 0 else pair[::-1]:
            samples.append(_wall_time(command, config.timeout_s))

    # 2. The trace's peak extra memory, in a fresh process that has loaded the model.
    say(f"trace: {config.tokens} tokens through {config.trace_model}, every layer and head (fresh process)")
    threads = config.threads or _torch_threads()
    params: dict[str, int | str] = {"model": config.trace_model, "tokens": config.tokens}
    peak = memory.measure_peak_in_subprocess(
        memory.MemoryCase("qkv.bench.inspection", "trace_case", params), threads=threads, timeout_s=config.timeout_s
    )
    layers, heads = _shape_of(config.trace_model)
    import torch

    return InspectReport(
        config=config,
        attend_s=tuple(attend),
        floor_s=tuple(floor),
        trace=TraceMemory(config.trace_model, config.tokens, layers, heads, peak),
        machine=f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        torch_version=torch.__version__,
        load_average=None if load_start is None or (load_end := load_average()) is None else (load_start, load_end),
    )


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _shape_of(model: str) -> tuple[int, int]:
    """Layers and heads of a pretrained model, from its files (without building it)."""
    from qkv.data import registry
    from qkv.pretrained.model import read_parts

    if model in registry.PACKAGED:
        _, location = registry.find_packaged(model)
    else:
        location = Path(model).expanduser()
    config = read_parts(location).config
    return config.layers, config.heads


def verdicts(report: InspectReport) -> list[Verdict]:
    attend = statistics.median(report.attend_s)
    extra = report.trace.peak.peak_extra
    return [
        Verdict(
            "PASS" if attend < MAX_ATTEND_S else "FAIL",
            f"qkv attend on {report.config.attend_model}, the article's sentence, start to exit < {MAX_ATTEND_S:g} s",
            f"{attend:.2f} s median (importing torch alone: {statistics.median(report.floor_s):.2f} s)",
        ),
        Verdict(
            "PASS" if extra < MAX_TRACE_EXTRA else "FAIL",
            f"tracing {report.trace.tokens} tokens through {report.trace.model} (all layers, all heads) < 1 GB extra",
            f"{_mb(extra)} MB extra ({_mb(report.trace.weight_bytes)} MB of it the weights themselves)",
        ),
    ]


def _mb(nbytes: int) -> str:
    return f"{nbytes / MB:.1f}" if nbytes < 100 * MB else f"{nbytes / MB:,.0f}"


def format_report(report: InspectReport, *, markdown: bool = False) -> str:
    config, trace = report.config, report.trace
    load = report.load_average
    about = [
        f"torch {report.torch_version}, {report.machine}"
        + ("" if load is None else f", load average {load[0]:.1f} → {load[1]:.1f}")
        + ".",
        f"Wall time from start to exit of each command, median over {config.rounds} runs after one warm-up, the two "
        "commands alternating. Memory in a fresh process: resident with the model loaded, the extra at the trace's "
        "high point (its result held), and the trace's own weights (MB = 10⁶ bytes).",
    ]
    time_rows = [
        [
            name,
            f"{statistics.median(samples):.2f}",
            f"{min(samples):.2f}",
            f"{max(samples):.2f}",
        ]
        for name, samples in (
            (f"qkv attend --model {config.attend_model}", report.attend_s),
            ("import torch", report.floor_s),
        )
    ]
    times = format_table(["command", "median s", "min s", "max s"], time_rows, markdown=markdown, left=1)
    memory_row = [
        f"trace {trace.model}",
        str(trace.tokens),
        f"{trace.layers} × {trace.heads}",
        _mb(trace.peak.resident_before),
        _mb(trace.peak.peak_extra),
        _mb(trace.weight_bytes),
        f"{trace.peak.peak_extra / trace.weight_bytes:.2f}",
    ]
    memory_table = format_table(
        ["case", "tokens", "layers × heads", "rest MB", "extra MB", "weights MB", "extra/weights"],
        [memory_row],
        markdown=markdown,
        left=1,
    )
    judged = verdicts(report)
    if markdown:
        targets = format_verdicts(judged, markdown=True)
        return "\n\n".join([" ".join(about), times, memory_table, targets]) + "\n"
    targets = format_verdicts(judged)
    return "\n\n".join(["\n".join(about), times, memory_table, targets]) + "\n"


# -- the command line -----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = InspectBenchConfig()
    parser.add_argument(
        "--repeats", type=positive_int, default=defaults.rounds, metavar="N", help="timed runs of qkv attend"
    )
    parser.add_argument(
        "--tokens", type=positive_int, default=defaults.tokens, metavar="N", help="length of the traced text, in tokens"
    )
    parser.add_argument(
        "--model", default=defaults.trace_model, metavar="MODEL", help="the pretrained model to trace (default smollm2)"
    )
    parser.add_argument(
        "--attend-model",
        default=defaults.attend_model,
        metavar="MODEL",
        help="the model qkv attend runs (default minilm)",
    )
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch threads of the trace")
    add_report_arguments(parser)


def run_cli(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    config = InspectBenchConfig(
        rounds=args.repeats,
        tokens=args.tokens,
        trace_model=args.model,
        attend_model=args.attend_model,
        threads=args.threads,
    )
    return run_and_report(args, lambda progress: run(config, progress), format_report, verdicts, out=out, log=log)
