"""The attention benchmark: its baseline is causal attention, paths that disagree stop it before anything is
timed, and it runs end to end at a tiny size, its report ending with a JSON line."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from benchmarks import attention, harness


def main(flags: list[str]) -> int:
    return harness.main("attention", attention.Config, attention.run, attention.QUICK, flags)


def test_the_naive_baseline_is_causal_attention() -> None:
    q, k, v = attention.make_inputs(16, batch=2, heads=3, head_width=8, seed=0)
    torch.testing.assert_close(
        attention.naive_attention(q, k, v), F.scaled_dot_product_attention(q, k, v, is_causal=True)
    )


def test_paths_that_disagree_stop_the_benchmark_before_timing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(attention.PATHS, "fused", lambda q, k, v: attention.naive_attention(q, k, v) + 1e-2)
    assert main(["--sizes", "8", "--rounds", "1", "--no-memory"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "disagree with naive: fused by 0.01" in err and "timing round" not in err


@pytest.mark.slow
def test_it_runs_end_to_end_and_ends_with_a_json_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(harness, "MIN_SAMPLE_S", 0.01)
    assert main(["--sizes", "32", "--rounds", "1"]) == 0  # with memory: a fresh process per path
    out, err = capsys.readouterr()
    result = json.loads(out.splitlines()[-1])
    rows = result["tables"]["B=8 H=4 K=64, causal, float32"]
    assert [row["path"] for row in rows] == list(attention.PATHS)
    assert all(float(row["peak extra MB"]) > 0 and float(row["max abs diff vs naive"]) <= 1e-4 for row in rows)
    assert [v["status"] for v in result["verdicts"]][1:] == ["SKIP", "SKIP"]  # judged at T=4096 only
    assert result["verdicts"][0]["measure"] == "fused_over_sdpa" and "timing round 1/1" in err
