"""The explorer's benchmark: what it reads from the server (its address, Server-Timing, CPU seconds, the NDJSON
stream) and how BENCHMARKS.md's targets judge its measures; end to end against a real ``qkv serve`` (slow)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from benchmarks import harness, serve

TARGETS = {
    "page_s": 3.0,
    "minilm_trace_s": 0.2,
    "minilm_trace_kb": 100.0,
    "smollm2_trace_s": 2.0,
    "smollm2_trace_mb": 2.0,
    "head_s": 0.1,
    "first_token_s": 1.0,
    "capture_overhead": 0.2,
    "hover_ms": 16.0,
    "head_switch_ms": 16.0,
}


def test_the_address_is_read_from_the_line_qkv_serve_prints() -> None:
    assert serve.server_address("qkv serve: http://127.0.0.1:40123/  (Ctrl-C stops it)\n") == ("127.0.0.1", 40123)
    assert serve.server_address("qkv serve: http://[::1]:8750/  (Ctrl-C stops it)") == ("::1", 8750)
    with pytest.raises(harness.BenchmarkError, match="no loopback URL"):
        serve.server_address("qkv serve: http://example.com:80/")


def test_server_timing_is_read_as_seconds_by_name() -> None:
    assert serve.server_timing("model;dur=12.5, encode;dur=3") == {"model": 0.0125, "encode": 0.003}
    assert serve.server_timing('model;desc="the model";dur=1000') == {"model": 1.0}
    assert serve.server_timing("") == {} and serve.server_timing("cache") == {}


def test_cpu_seconds_are_user_plus_system_even_when_the_name_holds_spaces_and_parentheses() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S", "1", "2", "3", "0", "-1", "4194560", "10", "0", "0", "0", str(3 * ticks), str(ticks), "0", "0"]
    line = "4242 (python (a b)) " + " ".join(fields) + " 20 0 5"
    assert serve.cpu_seconds(line) == 4.0
    own = serve.cpu_seconds(Path(f"/proc/{os.getpid()}/stat").read_text())
    assert 0 < own < 1e6


def lines(*events: dict[str, object], times: tuple[float, ...] = ()) -> list[tuple[float, dict[str, object]]]:
    return [(times[i] if i < len(times) else float(i), event) for i, event in enumerate(events)]


def test_a_stream_gives_its_tokens_the_first_token_s_wait_and_the_time_per_token_after_it() -> None:
    start = {"type": "start", "prompt_tokens": ["a"], "layers": 30, "heads": 9, "layer": 29}
    tokens = [{"type": "token", "i": i, "id": 10 + i, "text": "x", "weights": [[1.0]]} for i in range(3)]
    cpu = iter([5.0, 5.5, 7.0])
    decoded = serve.read_stream(
        iter(lines(start, *tokens, {"type": "done", "reason": "tokens"}, times=(0.1, 0.8, 1.0, 1.4))),
        lambda: next(cpu),
    )
    assert decoded.tokens == (10, 11, 12) and decoded.first_s == 0.8
    assert decoded.per_token_s == pytest.approx(0.3) and decoded.cpu_per_token_s == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([{"type": "error", "error": "the prompt is too long"}], "the prompt is too long"),
        ([{"type": "token", "id": 1}, {"type": "token", "id": 2}], "without a done line"),
        ([{"type": "token", "id": 1}, {"type": "done", "reason": "stop"}], "fewer than two tokens"),
    ],
)
def test_a_stream_that_fails_ends_short_or_is_cut_is_an_error(events: list[dict[str, object]], message: str) -> None:
    with pytest.raises(harness.BenchmarkError, match=message):
        serve.read_stream(iter(lines(*events)), lambda: 0.0)


def test_an_answer_is_read_through_its_gzip_and_its_size_is_what_came_over_the_wire() -> None:
    body = json.dumps({"tokens": ["a"] * 1000}).encode()
    zipped = serve.Answer(200, gzip.compress(body), {"content-encoding": "gzip"}, 0.1, 0.0)
    assert zipped.json() == {"tokens": ["a"] * 1000} and len(zipped.wire) < len(body) == len(zipped.body)
    assert serve.Answer(200, body, {}, 0.1, 0.0).body == body


def test_the_targets_judge_each_measure_at_its_limit_and_skip_what_was_not_measured() -> None:
    at_limit = harness.verdicts("serve", TARGETS)
    assert {v["measure"] for v in at_limit} == set(TARGETS)  # every target is a measure the script reports
    assert all(v["status"] == "PASS" for v in at_limit)
    over = harness.verdicts("serve", {name: value * 1.01 for name, value in TARGETS.items()})
    assert all(v["status"] == "FAIL" for v in over)
    no_browser = harness.verdicts("serve", {**TARGETS, "hover_ms": None, "head_switch_ms": None})
    assert {v["measure"] for v in no_browser if v["status"] == "SKIP"} == {"hover_ms", "head_switch_ms"}


def test_unknown_sections_are_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        harness.main("serve", serve.Config, serve.run, serve.QUICK, ["--sections", "start,speed"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Config.sections must be some of start, inspect, generate, browser" in err


@pytest.mark.slow
def test_it_times_a_real_server_from_spawn_to_page_and_its_traces(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quick", "--sections", "start,inspect", "--smollm2-tokens", "16"]
    assert harness.main("serve", serve.Config, serve.run, serve.QUICK, argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    measures = result["measures"]
    assert 0 < measures["page_s"] < 60 and measures["minilm_trace_s"] > 0 and measures["head_s"] > 0
    assert 0 < measures["minilm_trace_kb"] < 1000 and 0 < measures["smollm2_trace_mb"] < 10
    skipped = {v["measure"] for v in result["verdicts"] if v["status"] == "SKIP"}
    assert skipped == {"first_token_s", "capture_overhead", "hover_ms", "head_switch_ms"}
