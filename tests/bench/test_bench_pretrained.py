"""``qkv bench pretrained``: its sentences are the same every run, its report judges each target from the
numbers it shows, and its options fail in one line; the heavy run itself is BENCHMARKS.md's."""

from __future__ import annotations

from qkv.bench import BENCHMARKS, pretrained
from qkv.bench.pretrained import PretrainedBenchConfig, PretrainedReport, Probe, Timed, format_report, verdicts
from qkv.cli.main import main


def report(decode_ratio: float = 2.0) -> PretrainedReport:
    return PretrainedReport(
        config=PretrainedBenchConfig(rounds=3),
        threads=2,
        torch_version="x",
        transformers_version="y",
        machine="test",
        wait_policy="PASSIVE",
        decode=(
            Timed("transformers", (10.0, 12.0, 11.0)),
            Timed("qkv int4", tuple(decode_ratio * v for v in (10, 12, 11))),
        ),
        prefill=(Timed("transformers", (500.0, 520.0, 510.0)), Timed("qkv int4", (600.0, 610.0, 590.0))),
        embed=(Timed("transformers", (100.0, 100.0, 100.0)), Timed("qkv", (90.0, 95.0, 99.0))),
        probes=(Probe("qkv int4", 1.5, 1.2, 450.0, 480.0, 3), Probe("transformers", 2.0, 20.0, 950.0, 1200.0, 1)),
        agreement={"int4": "first 33/33 greedy tokens as float32"},
    )


def test_sentences_are_the_same_every_run_and_vary_in_length() -> None:
    first = pretrained.sentences(200)
    assert first == pretrained.sentences(200) and len(set(first)) == 200
    lengths = [len(s.split()) for s in first]
    assert min(lengths) <= 5 and max(lengths) >= 30


def test_each_target_is_judged_from_the_reported_numbers() -> None:
    judged = {v.target.split(":")[0]: v for v in verdicts(report())}
    assert [v.status for v in judged.values()] == ["PASS", "PASS", "PASS", "PASS", "FAIL"]
    assert "qkv int4: 2.00×" in judged["SmolLM2 decode"].measured
    assert "450 MB" in judged["SmolLM2 resident memory < 600 MB in the low-precision mode"].measured
    assert verdicts(report(decode_ratio=1.4))[0].status == "FAIL"
    text = format_report(report())
    assert "qkv int4" in text and "FAIL  MiniLM" in text
    assert format_report(report(), markdown=True).count("| --") >= 4


def test_it_is_registered_and_bad_options_are_one_line(capsys: object) -> None:
    assert BENCHMARKS["pretrained"].module == "qkv.bench.pretrained"
    assert main(["bench", "pretrained", "--dtypes", "int8"]) == 2
