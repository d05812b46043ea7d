"""The nanoGPT benchmark: it reads each command's final validation loss, refuses an unprepared nanoGPT with the
fix, skips (every target a SKIP) where nanoGPT is missing, and runs end to end against a stand-in nanoGPT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import harness, nanogpt

NANOGPT_LOG = """\
step 0: train loss 4.2874, val loss 4.2823
iter 0: loss 4.2654, time 512.20ms, mfu -100.00%
step 2000: train loss 1.7648, val loss 1.8857
saving checkpoint to out
iter 2000: loss 1.6958, time 356.99ms, mfu 0.04%
"""
QKV_LOG = "step  2000  validation loss 1.8894\n\ndone (reached the step count)\nloss: train 1.8515, validation 1.8894\n"

# A stand-in for nanoGPT's train.py: it checks it was given the README's CPU flags, holds some memory, and prints
# validation lines as nanoGPT does.
FAKE_TRAIN = """\
import sys
flags = dict(arg[2:].split("=", 1) for arg in sys.argv[2:])
assert sys.argv[1] == "config/train_shakespeare_char.py" and flags["device"] == "cpu", sys.argv
assert flags["compile"] == "False" and flags["block_size"] == "64" and flags["batch_size"] == "12", flags
held = bytearray(50_000_000)
print(f"step {flags['max_iters']}: train loss 1.2345, val loss 2.3456")
"""


def test_the_final_validation_loss_is_read_from_each_commands_output() -> None:
    assert nanogpt.nanogpt_validation_loss(NANOGPT_LOG) == 1.8857
    assert nanogpt.qkv_validation_loss(QKV_LOG) == 1.8894
    assert all(loss != loss for loss in (nanogpt.qkv_validation_loss(""), nanogpt.nanogpt_validation_loss("")))


def test_a_missing_or_unprepared_nanogpt_is_named_with_the_fix(tmp_path: Path) -> None:
    assert "clone https://github.com/karpathy/nanoGPT" in str(nanogpt.missing(tmp_path))
    (tmp_path / "train.py").write_text("", encoding="utf-8")
    assert "run python prepare.py" in str(nanogpt.missing(tmp_path))


def test_nanogpt_validates_at_the_end_of_a_short_run() -> None:
    assert "--eval_interval=250" in nanogpt.nanogpt_command(nanogpt.Config(steps=2000), Path("out"))
    assert "--eval_interval=30" in nanogpt.nanogpt_command(nanogpt.Config(steps=30), Path("out"))


def test_without_nanogpt_every_target_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--nanogpt", str(tmp_path / "absent"), "--quick"]
    assert harness.main("nanogpt", nanogpt.Config, nanogpt.run, nanogpt.QUICK, flags) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.splitlines()[-1])
    assert [v["status"] for v in result["verdicts"]] == ["SKIP"] * 3
    assert [v["measure"] for v in result["verdicts"]] == list(nanogpt.MEASURES)
    assert err.count("\n") == 1 and "skipped: no nanoGPT at" in err


@pytest.mark.slow
def test_it_times_both_whole_processes_and_their_peak_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "nanoGPT"
    prepared = folder / nanogpt.PREPARED
    prepared.mkdir(parents=True)
    (folder / "train.py").write_text(FAKE_TRAIN, encoding="utf-8")
    for name in ("train.bin", "val.bin", "meta.pkl"):
        (prepared / name).write_bytes(b"")
    (prepared / "input.txt").write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    flags = ["--nanogpt", str(folder), "--steps", "2", "--rounds", "2"]
    assert harness.main("nanogpt", nanogpt.Config, nanogpt.run, nanogpt.QUICK, flags) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.splitlines()[-1])
    rows = next(iter(result["tables"].values()))
    assert [row["round"] for row in rows] == ["1", "2", "median"]
    assert all(row["nanoGPT val loss"] == "2.3456" for row in rows[:2])
    assert all(float(row["nanoGPT peak MB"]) > 50 for row in rows)  # the stand-in's 50 MB and Python's own
    assert result["measures"]["qkv_validation_loss"] > 2 and result["measures"]["qkv_over_nanogpt_time"] > 0
    assert [v["status"] for v in result["verdicts"]][1] == "FAIL"  # two steps do not reach 1.89
    assert "round 2/2: nanoGPT" in err and err.index("round 2/2: nanoGPT") < err.index("round 2/2: qkv")
    assert sys.executable in nanogpt.qkv_command(nanogpt.Config(), Path("run"))
