"""``qkv bench attention``: qkv's attention paths against SDPA, forward pass, causal, in one run.

Four paths compute the same causal attention of the same ``queries, keys, values (B, H, T, K)``:

* ``sdpa``  — :func:`torch.nn.functional.scaled_dot_product_attention` called directly: the peer;
* ``fused`` — ``qkv.attend(q, k, v, causal=True)``, qkv's fused path (SDPA behind a checked API);
* ``exact`` — ``qkv.attend(q, k, v, causal=True, need_weights=True)``, the readable path that returns weights;
* ``naive`` — ``softmax(Q Kᵀ / √K, future masked) V`` written out in plain torch (:func:`naive_attention`).

For each ``T`` the benchmark first checks that the four outputs agree (a benchmark of wrong code is
worthless), then measures each path's peak extra memory in a fresh process (:mod:`qkv.bench.memory`), then
times the paths in alternating rounds (:mod:`qkv.bench.timing`). Targets (issue: the attention benchmark):
the fused path within 1.1× of SDPA; at ``T = 4096`` the fused path ≥ 5× faster than naive and using < 5%
of its memory.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TextIO

import torch
import torch.nn.functional as F

from qkv.attention import attend
from qkv.bench import BenchmarkError, memory, timing
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
from qkv.shapes import Tensor

__all__ = [
    "PATHS",
    "AttentionBenchConfig",
    "AttentionReport",
    "PathResult",
    "SizeResult",
    "Verdict",
    "add_arguments",
    "format_report",
    "make_inputs",
    "memory_case",
    "naive_attention",
    "run",
    "run_cli",
    "verdicts",
]

DEFAULT_SIZES = (256, 1024, 4096)
TARGET_T = 4096  # where the naive comparisons are judged
MAX_FUSED_OVER_SDPA = 1.1  # fused time / SDPA time, at every T
MIN_NAIVE_OVER_FUSED = 5.0  # naive time / fused time, at TARGET_T
MAX_FUSED_MEMORY_SHARE = 0.05  # fused memory / naive memory, at TARGET_T
MB = 1e6


def naive_attention(queries: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    """Causal ``softmax(Q Kᵀ / √K) V`` as a textbook writes it, in plain torch (the baseline, not qkv's)."""
    T, K = queries.shape[-2], queries.shape[-1]
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(K)  # (B, H, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=queries.device).triu(1)  # (T, T), True above the diagonal
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ values  # (B, H, T, K)


def _sdpa(queries: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    return F.scaled_dot_product_attention(queries, keys, values, is_causal=True)


def _fused(queries: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    output, _ = attend(queries, keys, values, causal=True)
    return output


def _exact(queries: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    output, _weights = attend(queries, keys, values, causal=True, need_weights=True)
    return output


PATHS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "sdpa": _sdpa,
    "fused": _fused,
    "exact": _exact,
    "naive": naive_attention,
}

PATH_LEGEND = {
    "sdpa": "torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True), called directly: the peer",
    "fused": "qkv.attend(q, k, v, causal=True): qkv's fused path",
    "exact": "qkv.attend(q, k, v, causal=True, need_weights=True): qkv's exact path, weights returned",
    "naive": "softmax(q @ kᵀ / √K with the future set to -inf) @ v, written out in plain torch",
}


@dataclass(frozen=True)
class AttentionBenchConfig:
    """What to measure. ``threads=None`` keeps torch's default; ``rounds`` is the number of timed samples."""

    sizes: tuple[int, ...] = DEFAULT_SIZES
    batch: int = 8
    heads: int = 4
    head_width: int = 64
    rounds: int = 5
    threads: int | None = None
    seed: int = 0
    tolerance: float = 1e-4  # largest absolute difference allowed between a path's output and naive's

    def __post_init__(self) -> None:
        for name in ("batch", "heads", "head_width", "rounds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"AttentionBenchConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not self.sizes or min(self.sizes) < 1:
            raise ConfigError(f"AttentionBenchConfig.sizes must be positive lengths, got {self.sizes}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"AttentionBenchConfig.threads must be at least 1, got {self.threads}")


@dataclass(frozen=True)
class PathResult:
    """One path at one ``T``: seconds per call (one sample per round), peak extra memory, error vs naive."""

    path: str
    seconds: tuple[float, ...]
    calls_per_sample: int
    peak_extra_bytes: int | None  # None where memory could not be measured
    max_abs_diff: float

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min_s(self) -> float:
        return min(self.seconds)


@dataclass(frozen=True)
class SizeResult:
    T: int
    paths: Mapping[str, PathResult]

    def time_ratio(self, numerator: str, denominator: str) -> float:
        """Median over rounds of ``time(numerator) / time(denominator)``."""
        return timing.paired_ratio(self.paths[numerator].seconds, self.paths[denominator].seconds)

    def memory_ratio(self, numerator: str, denominator: str) -> float | None:
        top, bottom = self.paths[numerator].peak_extra_bytes, self.paths[denominator].peak_extra_bytes
        if top is None or bottom is None or bottom == 0:
            return None
        return top / bottom


@dataclass(frozen=True)
class AttentionReport:
    config: AttentionBenchConfig
    threads: int
    torch_version: str
    machine: str
    memory_note: str | None  # why memory is missing, if it is
    sizes: tuple[SizeResult, ...]
    load_average: tuple[float, float] | None = None  # 1-minute load average at the start and at the end

    def at(self, T: int) -> SizeResult | None:
        return next((size for size in self.sizes if size.T == T), None)


def make_inputs(T: int, batch: int, heads: int, head_width: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Standard-normal ``queries, keys, values``, each ``(B, H, T, K)``, the same for every path."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, heads, T, head_width)  # (B, H, T, K)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))
    return q, k, v


def memory_case(path: str, T: int, batch: int, heads: int, head_width: int, seed: int) -> Callable[[], object]:
    """The memory worker's factory: build the inputs, return a function that runs ``path`` once."""
    run_path = partial(PATHS[path], *make_inputs(T, batch, heads, head_width, seed))

    def run_once() -> object:
        with torch.inference_mode():
            return run_path()

    return run_once


def _measure_size(
    T: int, config: AttentionBenchConfig, threads: int, measure_memory: bool, progress: Callable[[str], None]
) -> SizeResult:
    shape = {"batch": config.batch, "heads": config.heads, "head_width": config.head_width, "seed": config.seed}
    q, k, v = make_inputs(T, **shape)
    calls = {path: partial(fn, q, k, v) for path, fn in PATHS.items()}

    # 1. The paths must agree before any of them is timed; these calls are also the warm-up.
    progress(f"T={T}: checking that the {len(PATHS)} paths agree (also the warm-up)")
    first_call_s: dict[str, float] = {}
    outputs: dict[str, Tensor] = {}
    with torch.inference_mode():
        for path, call in calls.items():
            start = time.perf_counter()
            outputs[path] = call()
            first_call_s[path] = time.perf_counter() - start
    reference = outputs["naive"]
    diffs = {path: float((out - reference).abs().max()) for path, out in outputs.items()}
    del outputs, reference
    wrong = {path: diff for path, diff in diffs.items() if not diff <= config.tolerance}
    if wrong:
        listed = ", ".join(f"{path} by {diff:.3g}" for path, diff in wrong.items())
        raise BenchmarkError(
            f"at T={T} the paths disagree with naive (tolerance {config.tolerance:g}): {listed}; nothing timed"
        )
    progress(f"T={T}: agree, largest difference from naive {max(diffs.values()):.2g}")

    # 2. Peak extra memory, each path in a fresh process.
    peaks: dict[str, int | None] = dict.fromkeys(PATHS)
    if measure_memory:
        for path in PATHS:
            progress(f"T={T}: peak memory of {path} (fresh process)")
            case = memory.MemoryCase("qkv.bench.attention", "memory_case", {"path": path, "T": T, **shape})
            peaks[path] = memory.measure_in_subprocess(case, threads=threads)

    # 3. Time: a fast path gets several calls per sample; each round interleaves the calls of all paths.
    with torch.inference_mode():
        per_sample = {
            path: 1 if first_call_s[path] >= timing.MIN_SAMPLE_S else timing.calls_per_sample(timing.time_calls(call))
            for path, call in calls.items()
        }
        samples = timing.round_robin(
            calls,
            rounds=config.rounds,
            calls=per_sample,
            on_round=lambda r: progress(f"T={T}: timing round {r + 1}/{config.rounds}"),
        )
    return SizeResult(
        T,
        {path: PathResult(path, tuple(samples[path]), per_sample[path], peaks[path], diffs[path]) for path in PATHS},
    )


def run(config: AttentionBenchConfig, progress: Callable[[str], None] | None = None) -> AttentionReport:
    """Run the benchmark; ``progress`` receives a line of news at each step."""
    say = progress or (lambda _message: None)
    load_start = load_average()
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        threads = torch.get_num_threads()
        measure_memory = memory.supported()
        note = None if measure_memory else "not measured: needs Linux /proc/self/status and /proc/self/clear_refs"
        say(
            f"attention: B={config.batch} H={config.heads} K={config.head_width} causal, "
            f"T in {', '.join(map(str, config.sizes))}, {config.rounds} rounds, {threads} threads"
        )
        sizes = tuple(_measure_size(T, config, threads, measure_memory, say) for T in config.sizes)
    finally:
        torch.set_num_threads(previous_threads)
    return AttentionReport(
        config=config,
        threads=threads,
        torch_version=torch.__version__,
        machine=f"{platform.system()} {platform.machine()}",
        memory_note=note,
        sizes=sizes,
        load_average=None if load_start is None or (load_end := load_average()) is None else (load_start, load_end),
    )


def verdicts(report: AttentionReport) -> list[Verdict]:
    """The issue's three targets, judged on this report."""
    fused_sdpa = [(size.T, size.time_ratio("fused", "sdpa")) for size in report.sizes]
    worst = max(ratio for _, ratio in fused_sdpa)
    results = [
        Verdict(
            "PASS" if worst <= MAX_FUSED_OVER_SDPA else "FAIL",
            f"fused path within {MAX_FUSED_OVER_SDPA:g}× of SDPA's time, at every T",
            ", ".join(f"{ratio:.3f}× at T={T}" for T, ratio in fused_sdpa),
        )
    ]
    target = report.at(TARGET_T)
    speed_target = f"at T={TARGET_T} the fused path ≥ {MIN_NAIVE_OVER_FUSED:g}× faster than naive"
    memory_target = f"at T={TARGET_T} the fused path uses < {MAX_FUSED_MEMORY_SHARE:.0%} of naive's memory"
    if target is None:
        skipped = f"T={TARGET_T} not in --sizes"
        return [*results, Verdict("SKIP", speed_target, skipped), Verdict("SKIP", memory_target, skipped)]
    speedup = target.time_ratio("naive", "fused")
    results.append(Verdict("PASS" if speedup >= MIN_NAIVE_OVER_FUSED else "FAIL", speed_target, f"{speedup:.1f}×"))
    share = target.memory_ratio("fused", "naive")
    if share is None:
        results.append(Verdict("SKIP", memory_target, report.memory_note or "memory not measured"))
    else:
        fused_mb = _mb(target.paths["fused"].peak_extra_bytes)
        naive_mb = _mb(target.paths["naive"].peak_extra_bytes)
        measured = f"{share:.2%} ({fused_mb} MB vs {naive_mb} MB)"
        results.append(Verdict("PASS" if share < MAX_FUSED_MEMORY_SHARE else "FAIL", memory_target, measured))
    return results


def _load_note(load: tuple[float, float] | None) -> str:
    return "" if load is None else f", load average {load[0]:.1f} at the start and {load[1]:.1f} at the end"


def _mb(nbytes: int | None) -> str:
    if nbytes is None:
        return "n/a"
    mb = nbytes / MB
    return f"{mb:.0f}" if mb >= 100 else f"{mb:.1f}"


def _ratio(value: float | None, spec: str, suffix: str = "×") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def format_report(report: AttentionReport, *, markdown: bool = False) -> str:
    """The measured tables and the target verdicts, as plain text or as Markdown."""
    config = report.config
    rounds = config.rounds
    about = [
        f"Attention, forward pass only (inference mode), causal, float32, B={config.batch} H={config.heads} "
        f"K={config.head_width}; torch {report.torch_version}, {report.threads} threads, {report.machine}, "
        f"{os.cpu_count()} CPUs" + _load_note(report.load_average) + ".",
        f"Time (ms per call): median over {rounds} rounds; in each round the paths' calls are interleaved and a "
        "path's sample is the median of its calls; × SDPA is the median of per-round ratios.",
        "Peak extra memory: growth of resident memory at the high point of one warm call, in a fresh process per "
        "path and T; the output counts (MB = 10⁶ bytes)."
        + (f" Memory {report.memory_note}." if report.memory_note else ""),
    ]
    rows = []
    for size in report.sizes:
        for path, result in size.paths.items():
            rows.append(
                [
                    str(size.T),
                    path,
                    format_ms(result.median_s),
                    format_ms(result.min_s),
                    _ratio(size.time_ratio(path, "sdpa"), ".2f"),
                    _mb(result.peak_extra_bytes),
                    f"{result.max_abs_diff:.1e}",
                ]
            )
    main = format_table(
        ["T", "path", "median ms", "min ms", "× SDPA", "peak extra MB", "max abs diff vs naive"],
        rows,
        markdown=markdown,
        left=2,
    )
    ratio_rows = [
        [
            str(size.T),
            _ratio(size.time_ratio("fused", "sdpa"), ".3f"),
            _ratio(size.time_ratio("naive", "fused"), ".1f"),
            _ratio(size.memory_ratio("fused", "naive"), ".2%", ""),
        ]
        for size in report.sizes
    ]
    ratios = format_table(
        ["T", "fused/SDPA time", "naive/fused time", "fused/naive memory"], ratio_rows, markdown=markdown
    )
    judged = verdicts(report)
    if markdown:
        legend = "\n".join(f"- `{path}`: {text}" for path, text in PATH_LEGEND.items())
        targets = format_verdicts(judged, markdown=True)
        return "\n\n".join([" ".join(about), legend, main, ratios, targets]) + "\n"
    legend = "\n".join(f"  {path:<6} {text}" for path, text in PATH_LEGEND.items())
    targets = format_verdicts(judged)
    return "\n\n".join(["\n".join(about), legend, main, ratios, targets]) + "\n"


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated lengths like 256,1024, got {text!r}") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"lengths must be positive, got {text!r}")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=DEFAULT_SIZES,
        metavar="T,T,...",
        help=f"sequence lengths (default {','.join(map(str, DEFAULT_SIZES))}); the naive targets are judged at "
        f"T={TARGET_T}",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=AttentionBenchConfig.rounds,
        metavar="N",
        help=f"timed rounds (default {AttentionBenchConfig.rounds}); each takes one sample of every path, a fast "
        "path's sample being the median of its calls interleaved with the others' over about a second",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, metavar="N", help="torch threads (default: torch's default)"
    )
    add_report_arguments(parser)


def run_cli(args: argparse.Namespace, out: TextIO, log: TextIO) -> int:
    """Run with the parsed options, progress on ``log`` and the report on ``out``."""
    config = AttentionBenchConfig(sizes=args.sizes, rounds=args.repeats, threads=args.threads)
    return run_and_report(args, lambda progress: run(config, progress), format_report, verdicts, out=out, log=log)
