"""``qkv bench generate``: greedy generation at batch 1 from a context-256 model, cached and not, against the peer.

One model, two implementations: ``transformers``' ``GPT2LMHeadModel`` (random init, 4 layers, 4 heads, width 128,
context 256, 65 tokens) and qkv's :class:`~qkv.model.Transformer` holding copies of its weights
(:mod:`qkv.bench.peers`). Every case starts from the same one-token prompt and decodes greedily:

* ``qkv``          — :func:`qkv.generation.generate`: prefill, then one cached step per token; when the context
  is full it keeps the newest half and prefills again;
* ``qkv-uncached`` — :func:`qkv.generation.generate_uncached`: the whole (cropped) context again for every token;
* ``peer``         — ``peer.generate(prompt, max_new_tokens=…, do_sample=False, use_cache=True)``.

The peer cannot go past its 256 positions, so it makes ``context - 1`` = 255 tokens; qkv's cases make ``--tokens``
(500) and, for the like-for-like comparison, 255 as well. Before anything is timed the three must pick the same
255 tokens (the first ``context - 1``, where no cropping happens). The weights are drawn with a larger spread
than GPT-2's 0.02 (:data:`INIT_STD`), so that greedy decoding varies its tokens and the check means something;
the values do not change the work.

Targets (the issue): qkv's cached generation of 500 tokens ≥ 5× faster than recomputing the context per token,
and ≥ 2× the peer's tokens per second (at 255 tokens each).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import torch

from qkv.bench import BenchmarkError, memory, timing
from qkv.bench.peers import gpt2_peer, qkv_twin
from qkv.bench.report import (
    Verdict,
    add_report_arguments,
    format_ms,
    format_table,
    format_verdicts,
    load_average,
    positive_int,
    run_and_report,
)
from qkv.errors import ConfigError
from qkv.generation import GREEDY, generate, generate_uncached
from qkv.model import Transformer, TransformerConfig, preset
from qkv.shapes import Tensor

__all__ = [
    "GenerateBenchConfig",
    "GenerateReport",
    "RunResult",
    "add_arguments",
    "build_runs",
    "format_report",
    "memory_case",
    "run",
    "run_cli",
    "verdicts",
]

INIT_STD = 0.3
MIN_OVER_UNCACHED = 5.0
MIN_OVER_PEER = 2.0
MB = 1e6

LEGEND = {
    "qkv": "qkv.generation.generate: prefill, then one cached step per token (crops to the newest half when full)",
    "qkv-uncached": "qkv.generation.generate_uncached: the whole context again for every token (sliding crop)",
    "peer": "GPT2LMHeadModel.generate(prompt, do_sample=False, use_cache=True), transformers' default attention",
}


@dataclass(frozen=True)
class GenerateBenchConfig:
    layers: int = 4
    heads: int = 4
    width: int = 128
    context: int = 256
    vocab_size: int = 65
    tokens: int = 500
    rounds: int = 5
    threads: int | None = None
    seed: int = 0
    measure_memory: bool = True

    def __post_init__(self) -> None:
        for name in ("layers", "heads", "width", "vocab_size", "tokens", "rounds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"GenerateBenchConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.context < 2:
            raise ConfigError(f"GenerateBenchConfig.context must be at least 2, got {self.context}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"GenerateBenchConfig.threads must be at least 1, got {self.threads}")

    @property
    def peer_tokens(self) -> int:
        """As many as the peer can make from a one-token prompt: its context, less the prompt."""
        return self.context - 1


def model_config(config: GenerateBenchConfig) -> TransformerConfig:
    return preset(
        "small",
        vocab_size=config.vocab_size,
        layers=config.layers,
        heads=config.heads,
        width=config.width,
        context=config.context,
    )


def _prompt() -> Tensor:
    return torch.zeros(1, 1, dtype=torch.long)  # (B=1, T=1)


def _qkv_run(model: Transformer, tokens: int, cached: bool) -> Callable[[], Tensor]:
    stream = generate if cached else generate_uncached

    def run_once() -> Tensor:
        return torch.stack(list(stream(model, _prompt(), tokens, GREEDY)), dim=1)  # (1, tokens)

    return run_once


def _peer_run(peer: Any, tokens: int) -> Callable[[], Tensor]:
    prompt = _prompt()

    def run_once() -> Tensor:
        with torch.inference_mode():
            sequences = peer.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),  # else token 0, the pad id, would be masked as padding
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                use_cache=True,
            )
        return sequences[:, prompt.shape[1] :]  # (1, tokens)

    return run_once


def build_runs(
    config: GenerateBenchConfig, *, with_peer: bool = True
) -> dict[str, tuple[str, int, Callable[[], Tensor]]]:
    """``label → (case, tokens, run_once)``: qkv cached and uncached at ``tokens``, qkv and the peer at 255."""
    shape = model_config(config)
    peer = gpt2_peer(shape, seed=config.seed, initializer_range=INIT_STD).eval()
    model = qkv_twin(peer, shape)
    runs = {
        f"qkv {config.tokens}": ("qkv", config.tokens, _qkv_run(model, config.tokens, cached=True)),
        f"qkv-uncached {config.tokens}": ("qkv-uncached", config.tokens, _qkv_run(model, config.tokens, cached=False)),
        f"qkv {config.peer_tokens}": ("qkv", config.peer_tokens, _qkv_run(model, config.peer_tokens, cached=True)),
    }
    if with_peer:
        runs[f"peer {config.peer_tokens}"] = ("peer", config.peer_tokens, _peer_run(peer, config.peer_tokens))
    return runs


def memory_case(case: str, tokens: int, layers: int, heads: int, width: int, context: int, vocab_size: int) -> Any:
    """The memory worker's factory: one generation of ``tokens`` by ``case``; qkv's process never loads transformers."""
    config = GenerateBenchConfig(layers=layers, heads=heads, width=width, context=context, vocab_size=vocab_size)
    if case == "peer":
        return _peer_run(gpt2_peer(model_config(config), seed=0, initializer_range=INIT_STD).eval(), tokens)
    torch.manual_seed(0)
    return _qkv_run(Transformer(model_config(config)).eval(), tokens, cached=case == "qkv")


@dataclass(frozen=True)
class RunResult:
    label: str
    case: str
    tokens: int
    seconds: tuple[float, ...]  # one generation of ``tokens``, one sample per round
    first_s: float
    memory: memory.PeakMemory | None

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.median_s


@dataclass(frozen=True)
class GenerateReport:
    config: GenerateBenchConfig
    threads: int
    torch_version: str
    machine: str
    runs: Mapping[str, RunResult]
    agreeing_tokens: int  # how many leading tokens all cases picked alike
    memory_note: str | None
    load_average: tuple[float, float] | None = None

    def speedup(self, label: str, over: str) -> float:
        """Median over rounds of the ratio of tokens per second (``label``'s over ``over``'s)."""
        a, b = self.runs[label], self.runs[over]
        return timing.paired_ratio([s / b.tokens for s in b.seconds], [s / a.tokens for s in a.seconds])


def _check_agreement(outputs: Mapping[str, Tensor], length: int) -> int:
    """Every case's first ``length`` tokens must be the same; returns ``length``."""
    reference_label, reference = next(iter(outputs.items()))
    for label, output in outputs.items():
        mismatch = (output[:, :length] != reference[:, :length]).nonzero()
        if len(mismatch):
            at = int(mismatch[0, 1])
            raise BenchmarkError(
                f"{label} picks token {int(output[0, at])} at position {at}, {reference_label} picks "
                f"{int(reference[0, at])}: the cases do not compute the same thing; nothing timed"
            )
    return length


def run(config: GenerateBenchConfig, progress: Callable[[str], None] | None = None) -> GenerateReport:
    say = progress or (lambda _message: None)
    load_start = load_average()
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        threads = torch.get_num_threads()
        say(
            f"generate: {config.layers} layers, {config.heads} heads, width {config.width}, context "
            f"{config.context}, vocab {config.vocab_size}, batch 1, greedy; {threads} threads"
        )
        runs = build_runs(config)

        # 1. The same tokens from every case, where none of them crops; these runs are also the warm-up.
        first_s: dict[str, float] = {}
        outputs: dict[str, Tensor] = {}
        for label, (_case, _tokens, run_once) in runs.items():
            say(f"{label}: first run (also the warm-up)")
            start = time.perf_counter()
            outputs[label] = run_once()
            first_s[label] = time.perf_counter() - start
        agreeing = _check_agreement(outputs, min(config.peer_tokens, config.tokens))
        distinct = len(set(outputs[next(iter(outputs))][0, :agreeing].tolist()))
        say(f"the cases agree on the first {agreeing} tokens ({distinct} distinct ones)")

        # 2. Peak memory, each generation in a fresh process.
        peaks: dict[str, memory.PeakMemory | None] = dict.fromkeys(runs)
        note = None
        if not config.measure_memory:
            note = "not measured (--no-memory)"
        elif not memory.supported():
            note = "not measured: needs Linux /proc/self/status and /proc/self/clear_refs"
        else:
            for label, (case, tokens, _run) in runs.items():
                say(f"{label}: peak memory (fresh process)")
                params: dict[str, int | str] = {
                    "case": case,
                    "tokens": tokens,
                    "layers": config.layers,
                    "heads": config.heads,
                    "width": config.width,
                    "context": config.context,
                    "vocab_size": config.vocab_size,
                }
                peaks[label] = memory.measure_peak_in_subprocess(
                    memory.MemoryCase("qkv.bench.generate", "memory_case", params), threads=threads
                )

        # 3. Time: the generations interleaved in every round; a short one is repeated to fill about a second.
        calls = {label: run_once for label, (_case, _tokens, run_once) in runs.items()}
        per_sample = {label: timing.calls_per_sample(timing.time_calls(call)) for label, call in calls.items()}
        samples = timing.round_robin(
            calls,
            rounds=config.rounds,
            calls=per_sample,
            on_round=lambda r: say(f"timing round {r + 1}/{config.rounds}"),
        )
    finally:
        torch.set_num_threads(previous_threads)
    results = {
        label: RunResult(label, case, tokens, tuple(samples[label]), first_s[label], peaks[label])
        for label, (case, tokens, _run) in runs.items()
    }
    return GenerateReport(
        config=config,
        threads=threads,
        torch_version=torch.__version__,
        machine=f"{platform.system()} {platform.machine()}",
        runs=results,
        agreeing_tokens=agreeing,
        memory_note=note,
        load_average=None if load_start is None or (load_end := load_average()) is None else (load_start, load_end),
    )


def verdicts(report: GenerateReport) -> list[Verdict]:
    config = report.config
    cached, uncached = f"qkv {config.tokens}", f"qkv-uncached {config.tokens}"
    like, peer = f"qkv {config.peer_tokens}", f"peer {config.peer_tokens}"
    over_uncached = report.speedup(cached, uncached)
    over_peer = report.speedup(like, peer)
    return [
        Verdict(
            "PASS" if over_uncached >= MIN_OVER_UNCACHED else "FAIL",
            f"{config.tokens} tokens cached ≥ {MIN_OVER_UNCACHED:g}× faster than recomputing the context per token",
            f"{over_uncached:.1f}× ({report.runs[cached].tokens_per_second:,.0f} vs "
            f"{report.runs[uncached].tokens_per_second:,.0f} tokens/s)",
        ),
        Verdict(
            "PASS" if over_peer >= MIN_OVER_PEER else "FAIL",
            f"≥ {MIN_OVER_PEER:g}× the peer's cached generate, {config.peer_tokens} tokens each",
            f"{over_peer:.2f}× ({report.runs[like].tokens_per_second:,.0f} vs "
            f"{report.runs[peer].tokens_per_second:,.0f} tokens/s)",
        ),
    ]


def _threads(count: int) -> str:
    return f"{count} thread" if count == 1 else f"{count} threads"


def _mb(nbytes: int | None) -> str:
    if nbytes is None:
        return "n/a"
    return f"{nbytes / MB:.1f}" if nbytes < 100 * MB else f"{nbytes / MB:.0f}"


def format_report(report: GenerateReport, *, markdown: bool = False) -> str:
    config = report.config
    load = report.load_average
    about = [
        f"Greedy generation, batch 1, one-token prompt, float32: {config.layers} layers, {config.heads} heads, width "
        f"{config.width}, context {config.context}, vocab {config.vocab_size}; torch {report.torch_version}, "
        f"{_threads(report.threads)}, {report.machine}, {os.cpu_count()} CPUs"
        + ("" if load is None else f", load average {load[0]:.1f} → {load[1]:.1f}")
        + ".",
        f"Every case picked the same first {report.agreeing_tokens} tokens (from the same weights). Time of one "
        f"whole generation: median over {config.rounds} rounds; in each round the cases' generations are "
        "interleaved (a short one repeated to fill about a second, its sample the median); ratios are medians of "
        "per-round ratios of tokens/s.",
        "Memory, in a fresh process per row: resident at rest (Python, torch, the model; the peer's process also "
        "holds transformers), the extra at the high point of one generation, and the process's peak (MB = 10⁶ bytes)."
        + (f" Memory {report.memory_note}." if report.memory_note else ""),
    ]
    rows = []
    for result in report.runs.values():
        peak = result.memory
        rows.append(
            [
                result.case,
                str(result.tokens),
                format_ms(result.median_s),
                f"{result.tokens_per_second:,.0f}",
                f"{result.median_s / result.tokens * 1000:.3f}",
                f"{result.first_s:.2f}",
                _mb(peak.resident_before if peak else None),
                _mb(peak.peak_extra if peak else None),
                _mb(peak.peak_resident if peak else None),
            ]
        )
    table = format_table(
        ["case", "tokens", "ms total", "tokens/s", "ms/token", "first s", "rest MB", "extra MB", "peak MB"],
        rows,
        markdown=markdown,
        left=1,
    )
    judged = verdicts(report)
    if markdown:
        legend = "\n".join(f"- `{case}`: {text}" for case, text in LEGEND.items())
        targets = format_verdicts(judged, markdown=True)
        return "\n\n".join([" ".join(about), legend, table, targets]) + "\n"
    legend = "\n".join(f"  {case:<13} {text}" for case, text in LEGEND.items())
    targets = format_verdicts(judged)
    return "\n\n".join(["\n".join(about), legend, table, targets]) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = GenerateBenchConfig()
    parser.add_argument("--tokens", type=positive_int, default=defaults.tokens, metavar="N", help="tokens to generate")
    parser.add_argument("--repeats", type=positive_int, default=defaults.rounds, metavar="N", help="timed rounds")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch threads")
    for name in ("layers", "heads", "width", "context"):
        parser.add_argument(f"--{name}", type=positive_int, default=getattr(defaults, name), metavar="N")
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory measurements")
    add_report_arguments(parser)


def run_cli(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    config = GenerateBenchConfig(
        layers=args.layers,
        heads=args.heads,
        width=args.width,
        context=args.context,
        tokens=args.tokens,
        rounds=args.repeats,
        threads=args.threads,
        measure_memory=not args.no_memory,
    )
    return run_and_report(args, lambda progress: run(config, progress), format_report, verdicts, out=out, log=log)
