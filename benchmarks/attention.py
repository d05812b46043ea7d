"""Attention: qkv's fused and exact paths and a naive softmax(QKᵀ/√K)V against SDPA, forward, causal.

For each length T the four paths must agree with naive before anything is timed; then each path's peak extra
memory is measured in a fresh process, and the paths are timed in interleaved rounds.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F

from benchmarks import harness
from qkv.attention import attend
from qkv.errors import ConfigError
from qkv.shapes import Tensor

JUDGED_AT = 4096  # the length at which naive is compared with fused (BENCHMARKS.md's targets)


def naive_attention(queries: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    """Causal ``softmax(Q Kᵀ / √K) V`` as a textbook writes it, in plain torch."""
    T, K = queries.shape[-2], queries.shape[-1]
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(K)  # (B, H, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=queries.device).triu(1)  # (T, T), True above the diagonal
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ values  # (B, H, T, K)


PATHS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    "fused": lambda q, k, v: attend(q, k, v, causal=True)[0],
    "exact": lambda q, k, v: attend(q, k, v, causal=True, need_weights=True)[0],
    "naive": naive_attention,
}


@dataclass(frozen=True)
class Config:
    sizes: tuple[int, ...] = field(default=(256, 1024, 4096), metadata={"help": "sequence lengths T"})
    batch: int = 8
    heads: int = 4
    head_width: int = 64
    rounds: int = 5
    seed: int = 0
    tolerance: float = field(default=1e-4, metadata={"help": "largest difference allowed from naive's output"})
    memory: bool = field(default=True, metadata={"help": "measure each path's peak memory in a fresh process"})

    def __post_init__(self) -> None:
        harness.require_positive(self, "batch", "heads", "head_width", "rounds")
        if not self.sizes or min(self.sizes) < 1:
            raise ConfigError(f"Config.sizes must be positive lengths, got {self.sizes}")


QUICK = {"sizes": (64, 256), "rounds": 2}


def make_inputs(T: int, batch: int, heads: int, head_width: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Standard-normal ``queries, keys, values``, each ``(B, H, T, K)``."""
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, T, head_width, generator=generator) for _ in range(3))
    return q, k, v


def memory_case(path: str, T: int, batch: int, heads: int, head_width: int, seed: int) -> Callable[[], object]:
    """The memory worker's case: ``path`` once on fresh inputs."""
    run_path = partial(PATHS[path], *make_inputs(T, batch, heads, head_width, seed))
    return lambda: torch.inference_mode()(run_path)()


def run(config: Config, say: harness.Say) -> harness.Report:
    shape = {"batch": config.batch, "heads": config.heads, "head_width": config.head_width, "seed": config.seed}
    rows, ratios = [], []
    measures: dict[str, float | None] = {}
    for T in config.sizes:
        calls = {path: partial(fn, *make_inputs(T, **shape)) for path, fn in PATHS.items()}
        say(f"T={T}: every path's output is checked against naive's before anything is timed")
        with torch.inference_mode():
            outputs, first_s = harness.first_calls(calls, say)
        diffs = {path: float((out - outputs["naive"]).abs().max()) for path, out in outputs.items()}
        del outputs
        wrong = ", ".join(f"{path} by {diff:.3g}" for path, diff in diffs.items() if not diff <= config.tolerance)
        if wrong:
            raise harness.BenchmarkError(f"at T={T} the paths disagree with naive: {wrong}; nothing timed")
        peaks: dict[str, float | None] = dict.fromkeys(PATHS)
        for path in PATHS if config.memory else ():
            say(f"T={T}: peak memory of {path} (fresh process)")
            params = {"path": path, "T": T, **shape}
            peaks[path] = harness.peak_in_fresh_process("benchmarks.attention", "memory_case", params).peak_extra
        with torch.inference_mode():
            seconds = harness.interleaved(calls, config.rounds, say, first_s)
        over_sdpa = {path: harness.paired_ratio(seconds[path], seconds["sdpa"]) for path in PATHS}
        for path in PATHS:
            row = [
                str(T),
                path,
                harness.ms(statistics.median(seconds[path])),
                harness.ms(min(seconds[path])),
                f"{over_sdpa[path]:.2f}×",
            ]
            rows.append([*row, harness.mb(peaks[path]), f"{diffs[path]:.1e}"])
        share = peaks["fused"] / peaks["naive"] if peaks["fused"] is not None and peaks["naive"] else None
        naive_over_fused = harness.paired_ratio(seconds["naive"], seconds["fused"])
        ratios.append([str(T), f"{over_sdpa['fused']:.3f}×", f"{naive_over_fused:.1f}×", _share(share)])
        measures["fused_over_sdpa"] = max(over_sdpa["fused"], measures.get("fused_over_sdpa") or 0.0)
        if T == JUDGED_AT:
            measures.update(naive_over_fused_at_4096=naive_over_fused, fused_memory_share_at_4096=share)
    headers = ["T", "path", "median ms", "min ms", "× SDPA", "peak extra MB", "max abs diff vs naive"]
    return harness.Report(
        [
            harness.Table(
                f"B={config.batch} H={config.heads} K={config.head_width}, causal, float32", headers, rows, 2
            ),
            harness.Table("Ratios", ["T", "fused/SDPA time", "naive/fused time", "fused/naive memory"], ratios, 0),
        ],
        measures,
    )


def _share(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.2%}"


if __name__ == "__main__":
    sys.exit(harness.main("attention", Config, run, QUICK))
