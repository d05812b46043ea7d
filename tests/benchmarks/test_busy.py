"""The busy-machine benchmark's method: each policy's environment, the hog started and ended, a command's first
output timed, policies that disagree stop the run, and the options checked in one line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from benchmarks import busy, harness
from qkv.threads import WAIT_SETTINGS


def test_each_policy_sets_its_own_wait_setting_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's: left out of every measured process
    monkeypatch.setenv("KMP_BLOCKTIME", "7")
    settings = {
        policy: {k: v for k, v in busy.environment(policy).items() if k in WAIT_SETTINGS} for policy in busy.POLICIES
    }
    assert settings == {
        "default": {"GOMP_SPINCOUNT": "300000"},  # libgomp's documented default, set explicitly
        "qkv": {},  # the command chooses
        "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    }
    assert str(harness.ROOT) in busy.environment("qkv")["PYTHONPATH"].split(os.pathsep)


def test_the_order_of_policies_turns_from_round_to_round() -> None:
    orders = [busy.rotated(["a", "b", "c"], r) for r in range(6)]
    assert orders[:3] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert orders[3] == ["c", "b", "a"]  # then reversed: no policy always follows the same one
    assert {order[0] for order in orders} == {"a", "b", "c"}


def test_the_hog_runs_one_busy_loop_per_process_and_ends_with_the_block() -> None:
    start = time.process_time()
    with busy.hogging(2, limit_s=60) as hogs:
        time.sleep(0.3)
        assert len(hogs) == 2 and all(hog.poll() is None for hog in hogs)
    assert all(hog.returncode is not None for hog in hogs)
    assert time.process_time() - start < 0.2  # the loops ran in their own processes


def test_a_hog_ends_itself_after_its_limit() -> None:
    with busy.hogging(1, limit_s=0.2) as (hog,):
        assert hog.wait(timeout=30) == 0


def test_a_command_is_timed_to_its_first_output_and_its_end() -> None:
    code = "import sys, time; time.sleep(0.3); print('hello', flush=True); time.sleep(0.3); print('x', file=sys.stderr)"
    timed = busy.run_command([sys.executable, "-c", code], dict(os.environ), timeout_s=60)
    assert timed.first_s is not None and 0.3 <= timed.first_s < timed.total_s and timed.total_s >= 0.6
    assert timed.out == "hello\n" and timed.err == "x\n"


def test_a_failing_command_stops_the_run_quoting_its_stderr() -> None:
    code = "import sys; print('no such model', file=sys.stderr); sys.exit(2)"
    with pytest.raises(harness.BenchmarkError, match="exit status 2: no such model"):
        busy.run_command([sys.executable, "-c", code], dict(os.environ), timeout_s=60)


def test_policies_that_disagree_stop_the_run(tmp_path: Path) -> None:
    bench = busy.Bench(busy.Config(hog=False), lambda _: None, tmp_path)
    bench.agree("train", "default", "loss: train 2.5944, validation 2.5967")
    bench.agree("train", "qkv", "loss: train 2.5944, validation 2.5967")
    with pytest.raises(harness.BenchmarkError, match=r"train under passive gave .* do not compute the same thing"):
        bench.agree("train", "passive", "loss: train 2.6000, validation 2.5967")


def test_the_ratio_names_say_case_measure_and_machine() -> None:
    assert busy.measure_key("generate", "first text s", True) == "generate_first_text_hog"
    assert busy.measure_key("decode smollm2:int4", "s/token", False) == "decode_smollm2_int4_as_is"


def test_final_losses_are_the_last_summary_line() -> None:
    assert (
        busy.final_losses("step 1\nloss: train 1.0, validation 2.0\ncheckpoint: x\n")
        == "loss: train 1.0, validation 2.0"
    )


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--realtime"], "a hog would never run (add --no-hog)"),
        (["--policies", "qkv,passive"], "must include default"),
        (["--decode-models", "gpt2"], "'gpt2' is not small or smollm2:DTYPE"),
        (["--cases", "serve"], "Config.cases must be some of generate, train, decode"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(flags: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        harness.main("busy", busy.Config, busy.run, busy.QUICK, flags)
    _, err = capsys.readouterr()
    assert exit_.value.code == 2 and err.count("\n") == 1 and said in err, err
