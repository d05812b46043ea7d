"""The measuring helpers: interleaved timing rounds, paired ratios, and the fresh-process memory method."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from qkv.bench import BenchmarkError, attention, memory, timing
from qkv.bench.report import format_table


def test_round_robin_interleaves_the_calls_and_rotates_the_order() -> None:
    log: list[str] = []
    samples = timing.round_robin(
        {"a": lambda: log.append("a"), "b": lambda: log.append("b")}, rounds=2, calls={"a": 3, "b": 1}
    )
    assert log == ["a", "a", "b", "a", "a", "b", "a", "a"]  # b sits mid-round; at the tie a and b take turns
    assert [len(s) for s in samples.values()] == [2, 2]


def test_paired_ratio_is_the_median_of_per_round_ratios() -> None:
    assert timing.paired_ratio([2.0, 30.0, 4.0], [1.0, 10.0, 2.0]) == 2.0


def test_calls_per_sample_makes_a_sample_last_the_minimum() -> None:
    assert timing.calls_per_sample(1.0) == 1
    assert timing.calls_per_sample(0.001, min_sample_s=0.05) == 50


@pytest.mark.skipif(not memory.supported(), reason="needs Linux /proc/self/clear_refs")
def test_a_known_allocation_measures_its_size_in_a_fresh_process() -> None:
    nbytes = 64_000_000
    case = memory.MemoryCase("qkv.bench.memory", "allocation_case", {"nbytes": nbytes})
    measured = memory.measure_in_subprocess(case, threads=1, timeout_s=120)
    assert abs(measured - nbytes) < 2_000_000, measured


@pytest.mark.skipif(not memory.supported(), reason="needs Linux /proc/self/clear_refs")
def test_a_failing_worker_is_a_benchmark_error() -> None:
    case = memory.MemoryCase("qkv.elsewhere", "factory")  # refused before torch loads
    with pytest.raises(BenchmarkError, match="failed with exit status"):
        memory.measure_in_subprocess(case, threads=1, timeout_s=120)


def test_the_naive_baseline_is_causal_attention() -> None:
    q, k, v = attention.make_inputs(16, batch=2, heads=3, head_width=8, seed=0)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(attention.naive_attention(q, k, v), expected)


def test_tables_align_text_and_mark_markdown_alignment() -> None:
    assert format_table(["x", "n"], [["ab", "1"]], left=1) == "x   n\n--  -\nab  1"
    assert format_table(["x", "n"], [["ab", "1"]], markdown=True, left=1).splitlines()[1] == "| :-- | --: |"
