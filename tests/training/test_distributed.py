"""Two processes under torchrun train exactly like one process on the same global batch, and write one
checkpoint between them."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qkv.cli.main import main

from .conftest import small_text

TORCHRUN = Path(sys.executable).parent / "torchrun"


def train_losses(run: Path) -> list[list[float]]:
    return json.loads((run / "checkpoint" / "progress.json").read_text())["train_losses"]


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_two_processes_reach_the_losses_of_one_and_write_one_checkpoint(tmp_path: Path) -> None:
    corpus = tmp_path / "words.txt"
    corpus.write_text(small_text(lines=80))
    arguments = [str(corpus), "--preset", "tiny", "--context", "16", "--steps", "10", "--eval-interval", "5"]
    # float32: in bfloat16 a half batch rounds differently from a whole one, which is not what this test is about
    arguments += ["--seed", "3", "--lr", "3e-3", "--warmup", "2", "--precision", "float32"]
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", *arguments, "--out", str(tmp_path / "one")]) == 0
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "qkv", "train", *arguments]
    two = subprocess.run(
        [*command, "--out", str(tmp_path / "two")], capture_output=True, text=True, timeout=180, env=environment
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one_losses, two_losses = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert [step for step, _ in two_losses] == [step for step, _ in one_losses] == list(range(1, 11))
    assert [v for _, v in two_losses] == pytest.approx([v for _, v in one_losses], rel=0, abs=1e-4)
    assert [p.name for p in (tmp_path / "two").iterdir() if p.is_dir()] == ["checkpoint"]
    assert two.stderr.count("done (reached the step count)") == 1  # only rank 0 reports
