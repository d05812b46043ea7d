"""Timing on a shared machine: warm up, then alternate the cases and keep medians.

Another process can slow everything down for a while; if one case ran all its repetitions first and the
next case afterwards, such a spell would land on one of them only. Here every round takes one sample of
each case with their calls interleaved (:func:`round_robin`), so a slow spell hits them alike, and
comparisons use the median of per-round ratios (:func:`paired_ratio`), which cancels what the cases in a
round share.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = ["calls_per_sample", "paired_ratio", "round_robin", "time_calls"]

# Fast cases are called several times back to back per sample, so that one sample lasts at least this long
# and the clock's resolution and Python's overhead stay negligible.
MIN_SAMPLE_S = 1.0
MAX_CALLS_PER_SAMPLE = 10_000


def time_calls(fn: Callable[[], object], calls: int = 1) -> float:
    """Seconds per call of ``fn``, over ``calls`` calls back to back (each result dropped before the next)."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def calls_per_sample(seconds_per_call: float, min_sample_s: float | None = None) -> int:
    """How many calls make one sample last at least ``min_sample_s`` (default :data:`MIN_SAMPLE_S`)."""
    min_sample_s = MIN_SAMPLE_S if min_sample_s is None else min_sample_s
    if seconds_per_call >= min_sample_s:
        return 1
    return min(MAX_CALLS_PER_SAMPLE, math.ceil(min_sample_s / max(seconds_per_call, 1e-9)))


def round_robin(
    cases: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    calls: Mapping[str, int] | None = None,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Time every case in every round; seconds per call, one sample per round for each case.

    A sample of ``name`` is the median duration of its ``calls[name]`` calls in the round (1 if absent): the
    median, not the mean, so that a call preempted by another process does not count. Within a round the
    calls of all cases are interleaved, each case's spread evenly over the round (with 3 calls of a and 1 of
    b: a a b a), and the order of cases at a tie is rotated and reversed from round to round, so a slow
    spell, or the aftermath of a heavy neighbour, falls on all cases alike. ``on_round(r)`` is called before
    round ``r`` (0-based), e.g. to report progress. Warm-up is the caller's job.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    names = list(cases)
    counts = {name: max(1, (calls or {}).get(name, 1)) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        if on_round is not None:
            on_round(r)
        shift = (r // 2) % len(names)
        order = names[shift:] + names[:shift]  # rotated every other round ...
        if r % 2:
            order.reverse()  # ... and reversed in odd rounds: no case always follows the same neighbour
        rank = {name: i for i, name in enumerate(order)}
        schedule = sorted(((i + 0.5) / counts[name], rank[name], name) for name in names for i in range(counts[name]))
        durations: dict[str, list[float]] = {name: [] for name in names}
        gc.collect()
        for _, _, name in schedule:
            durations[name].append(time_calls(cases[name]))
        for name in names:
            samples[name].append(statistics.median(durations[name]))
    return samples


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median over rounds of ``numerators[r] / denominators[r]``: a ratio robust to a slow spell."""
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError(f"need equally many samples, at least one: {len(numerators)} and {len(denominators)}")
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))
