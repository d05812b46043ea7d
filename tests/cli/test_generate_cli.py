"""``qkv generate``: the prompt then the continuation on stdout; the same seed gives the same text; --stop
ends the text before the stop string; --tokens counts tokens; a long prompt is cropped only when asked."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_cli

GREEDY = ["--temperature", "0", "--prompt", "the "]
SEEDED = ["--seed", "5", "--prompt", "the "]  # sampled: varied text, the same every time


def continuation(run: Path, *arguments: str) -> str:
    result = run_cli(["generate", str(run), *arguments])
    assert result.code == 0, result.err
    assert result.out.endswith("\n")
    return result.out[:-1]


def test_the_same_seed_gives_identical_text_and_another_seed_does_not(trained: Path) -> None:
    first = continuation(trained, "--seed", "5", "--tokens", "60")
    assert first == continuation(trained, "--seed", "5", "--tokens", "60")
    assert first != continuation(trained, "--seed", "6", "--tokens", "60")


def test_output_is_the_prompt_then_exactly_the_requested_number_of_tokens(trained: Path) -> None:
    text = continuation(trained, *GREEDY, "--tokens", "25")  # a char tokenizer: one token is one character
    assert text.startswith("the ") and len(text) == len("the ") + 25


def test_generation_stops_just_before_the_stop_string(trained: Path) -> None:
    generated = continuation(trained, *SEEDED, "--tokens", "40")[len("the ") :]
    stop = generated[10:12]  # a string the greedy continuation is known to contain
    stopped = continuation(trained, *SEEDED, "--tokens", "40", "--stop", stop)
    assert stopped == "the " + generated[: generated.index(stop)]


def test_the_earliest_of_several_stop_strings_wins(trained: Path) -> None:
    generated = continuation(trained, *SEEDED, "--tokens", "40")[len("the ") :]
    early, late = generated[5:7], generated[20:23]
    stopped = continuation(trained, *SEEDED, "--tokens", "40", "--stop", late, "--stop", early)
    assert stopped == "the " + generated[: min(generated.index(early), generated.index(late))]


def test_text_held_back_for_a_stop_string_that_never_completes_is_still_printed(trained: Path) -> None:
    text = continuation(trained, *SEEDED, "--tokens", "30")
    assert continuation(trained, *SEEDED, "--tokens", "30", "--stop", text[-1] + "#") == text  # no "#" in the corpus


def test_a_long_prompt_is_cropped_to_the_context_when_asked_and_says_so(trained: Path) -> None:
    prompt = "the quick brown fox jumps over a lazy dog"  # 41 characters, context 16
    result = run_cli(["generate", str(trained), "--prompt", prompt, "--long-prompt", "crop", "--tokens", "5"])
    assert result.code == 0 and result.out.startswith(prompt) and len(result.out) == len(prompt) + 5 + 1
    assert "cropped to its last 16 of 41 tokens" in result.err


def test_generation_reads_a_checkpoint_directory_as_well_as_a_run(trained: Path) -> None:
    assert continuation(trained / "checkpoint", *GREEDY, "--tokens", "9") == continuation(
        trained, *GREEDY, "--tokens", "9"
    )


def test_generating_past_the_context_keeps_going(trained: Path) -> None:
    assert len(continuation(trained, "--seed", "1", "--tokens", "70")) == len("\n") + 70


def test_a_text_cut_by_tokens_is_marked_on_stderr(trained: Path) -> None:
    result = run_cli(["generate", str(trained), *SEEDED, "--tokens", "12"])
    assert result.code == 0 and result.err.strip().splitlines()[-1] == "[… stopped at --tokens 12]"
    assert "stopped" not in result.out  # the text itself is unchanged


def test_a_text_ended_by_a_stop_string_is_not_marked(trained: Path) -> None:
    generated = continuation(trained, *SEEDED, "--tokens", "40")[len("the ") :]
    result = run_cli(["generate", str(trained), *SEEDED, "--tokens", "40", "--stop", generated[10:12]])
    assert result.code == 0 and "stopped at --tokens" not in result.err
