"""The benchmarks' method: interleaved rounds, paired ratios, flags from a config, targets from BENCHMARKS.md,
one-line errors, and peak memory measured in a fresh process."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchmarks import attention, harness


def test_round_robin_interleaves_the_calls_and_rotates_the_order() -> None:
    log: list[str] = []
    samples = harness.round_robin(
        {"a": lambda: log.append("a"), "b": lambda: log.append("b")}, rounds=2, calls={"a": 3, "b": 1}
    )
    assert log == ["a", "a", "b", "a", "a", "b", "a", "a"]  # b sits mid-round; at the tie a and b take turns
    assert [len(s) for s in samples.values()] == [2, 2]


def test_paired_ratio_is_the_median_of_per_round_ratios() -> None:
    assert harness.paired_ratio([2.0, 30.0, 4.0], [1.0, 10.0, 2.0]) == 2.0


def test_calls_per_sample_makes_a_sample_last_the_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "MIN_SAMPLE_S", 0.05)
    assert harness.calls_per_sample(1.0) == 1
    assert harness.calls_per_sample(0.001) == 50


@dataclass(frozen=True)
class Example:
    sizes: tuple[int, ...] = (1, 2)
    rate: float = 0.5
    text: str | None = field(default=None, metadata={"help": "a file"})
    memory: bool = True


def test_each_field_of_a_config_is_a_flag_and_unset_flags_stay_out() -> None:
    parser = argparse.ArgumentParser()
    harness.add_config_arguments(parser, Example)
    given = ["--sizes", "3,4", "--rate", "2", "--text", "x.txt", "--no-memory"]
    assert Example(**vars(parser.parse_args(given))) == Example((3, 4), 2.0, "x.txt", False)
    assert vars(parser.parse_args([])) == {}
    assert "a file (default None)" in parser.format_help()


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--sizes", "256,x"], "argument --sizes: expected comma-separated values"),
        (["--sizes", "0"], "Config.sizes must be positive lengths"),
        (["--rounds", "0"], "Config.rounds must be a positive integer"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_a_bad_flag_or_value_is_exit_2_with_one_line(
    flags: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        harness.main("attention", attention.Config, attention.run, attention.QUICK, flags)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("python -m benchmarks.attention: error:") and said in err, err


def test_every_benchmark_has_targets_in_benchmarks_md() -> None:
    for name in ("attention", "train", "nanogpt", "generate", "pretrained", "inspect"):
        assert harness.verdicts(name, {}), name


def test_a_target_passes_fails_or_is_skipped_by_its_measure(tmp_path: Path) -> None:
    table = "## Targets\n\n| benchmark | measure | target | what |\n|---|---|---|---|\n| b | `speedup` | ≥ 2 | fast |\n"
    (tmp_path / "B.md").write_text(table + "| b | memory | < 10 | small |\n\n## Next\n| b | x | < 1 | no |\n")
    judge = lambda measures: [v["status"] for v in harness.verdicts("b", measures, tmp_path / "B.md")]  # noqa: E731
    assert judge({"speedup": 2.0, "memory": 10.0}) == ["PASS", "FAIL"]
    assert judge({"speedup": 1.9}) == ["FAIL", "SKIP"]


def test_tables_align_text_and_mark_markdown_alignment() -> None:
    table = harness.Table("t", ["x", "n"], [["ab", "1"]])
    assert harness.format_table(table) == "t\nx   n\n--  -\nab  1"
    assert harness.format_table(table, markdown=True).splitlines()[2] == "| :-- | --: |"


@pytest.mark.slow
@pytest.mark.skipif(not harness.memory_supported(), reason="needs Linux /proc/self/clear_refs")
def test_a_known_allocation_measures_its_size_in_a_fresh_process() -> None:
    nbytes = 64_000_000
    peak = harness.peak_in_fresh_process(
        "benchmarks.harness", "allocation_case", {"nbytes": nbytes}, threads=1, timeout_s=120
    )
    assert abs(peak.peak_extra - nbytes) < 2_000_000, peak


@pytest.mark.slow
def test_a_worker_that_fails_is_a_benchmark_error_quoting_its_stderr() -> None:
    with pytest.raises(harness.BenchmarkError, match="exit status 1: cases live under benchmarks"):
        harness.worker("qkv.elsewhere", "factory", {}, threads=1, timeout_s=120).ask("run 1")
