"""nanoGPT: ``qkv train`` against nanoGPT's own ``train.py``, each a whole process, on the same text.

Both run nanoGPT's documented CPU configuration, char-level tinyshakespeare for ``--steps`` steps (4 layers,
4 heads, width 128, context 64, batch 12, learning rate 1e-3 decaying to 1e-4, no dropout, no compile):

* qkv: ``python -m qkv train INPUT --preset small --steps STEPS --out RUN``, with its defaults otherwise;
* nanoGPT: ``python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20
  --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=STEPS
  --lr_decay_iters=STEPS --dropout=0.0`` (its README's command) in its folder, writing to a scratch folder.

``INPUT`` is the very file nanoGPT's ``data/shakespeare_char/prepare.py`` read (its ``input.txt``). Each run
is a fresh process timed from spawn to exit, its peak resident memory read from ``wait4`` (the largest of its
process tree), its final validation loss parsed from what it prints. Rounds alternate which command runs first;
every ratio is the median of per-round ratios, and the load average is read before each run. Where nanoGPT or
its prepared data is missing, the benchmark says so on one line and reports every target as a SKIP.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import harness

NANOGPT_DIR = os.environ.get("NANOGPT_DIR", "/work/scratch/nanoGPT")
PREPARED = Path("data", "shakespeare_char")
NANOGPT_EVAL_INTERVAL = 250  # its config's
COMMANDS = ("qkv", "nanoGPT")
MEASURES = ("qkv_over_nanogpt_time", "qkv_validation_loss", "qkv_over_nanogpt_peak")


@dataclass(frozen=True)
class Config:
    rounds: int = 3
    steps: int = field(default=2000, metadata={"help": "training steps of each run"})
    nanogpt: str = field(default=NANOGPT_DIR, metadata={"help": "a clone of nanoGPT (default: $NANOGPT_DIR)"})
    timeout_s: int = field(default=900, metadata={"help": "a run lasting longer fails the benchmark"})

    def __post_init__(self) -> None:
        harness.require_positive(self, "rounds", "steps", "timeout_s")


QUICK = {"rounds": 1, "steps": 20}


@dataclass(frozen=True)
class Run:
    """One whole process: its wall seconds, peak resident bytes, final validation loss, the load before it."""

    seconds: float
    peak_bytes: int
    validation_loss: float
    load: float


def missing(folder: Path) -> str | None:
    """Why nanoGPT in ``folder`` cannot run this benchmark, with the fix; ``None`` when it can."""
    if not (folder / "train.py").is_file():
        return f"no nanoGPT at {folder}: clone https://github.com/karpathy/nanoGPT there, or pass --nanogpt DIR"
    prepared = folder / PREPARED
    if not all((prepared / name).is_file() for name in ("input.txt", "train.bin", "val.bin", "meta.pkl")):
        return (
            f"nanoGPT's char-level Shakespeare is not prepared in {prepared}: copy tinyshakespeare.txt there as "
            "input.txt and run python prepare.py in that folder"
        )
    return None


def qkv_command(config: Config, out: Path) -> list[str]:
    text = Path(config.nanogpt, PREPARED, "input.txt")
    return [sys.executable, "-m", "qkv", "train", str(text), "--preset", "small", "--steps", str(config.steps),
            "--out", str(out)]  # fmt: skip


def nanogpt_command(config: Config, out: Path) -> list[str]:
    """Its README's CPU command; a run whose steps are no multiple of its validation interval validates at its
    start and end only (nanoGPT validates only at multiples of it)."""
    steps = config.steps
    interval = NANOGPT_EVAL_INTERVAL if steps % NANOGPT_EVAL_INTERVAL == 0 else steps
    return [sys.executable, "train.py", "config/train_shakespeare_char.py", "--device=cpu", "--compile=False",
            "--eval_iters=20", "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4",
            "--n_head=4", "--n_embd=128", f"--max_iters={steps}", f"--lr_decay_iters={steps}", "--dropout=0.0",
            f"--eval_interval={interval}", f"--out_dir={out}"]  # fmt: skip


def qkv_validation_loss(output: str) -> float:
    """From ``loss: train 1.8515, validation 1.8894``, the line ``qkv train`` ends with."""
    found = re.findall(r"^loss: train \S+, validation (\S+)$", output, re.MULTILINE)
    return float(found[-1]) if found else math.nan


def nanogpt_validation_loss(output: str) -> float:
    """From the last ``step 2000: train loss 1.7648, val loss 1.8857`` nanoGPT printed."""
    found = re.findall(r"^step \d+: train loss \S+, val loss (\S+)$", output, re.MULTILINE)
    return float(found[-1]) if found else math.nan


def run_process(command: Sequence[str], cwd: Path, env: Mapping[str, str], timeout_s: float) -> tuple[float, int, str]:
    """Run ``command`` to its end: wall seconds, peak resident bytes of its tree (``wait4``'s ``ru_maxrss``: the
    largest of the process and its waited-for children), and its stdout and stderr together."""
    with tempfile.TemporaryFile("w+") as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        timer = threading.Timer(timeout_s, process.kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        said = output.read()
    if process.returncode:
        tail = " | ".join(said.strip().splitlines()[-3:]) or "no message"
        raise harness.BenchmarkError(f"{' '.join(command[1:4])} stopped with exit status {process.returncode}: {tail}")
    return seconds, usage.ru_maxrss * 1024, said  # ru_maxrss is in KiB on Linux


def environment() -> dict[str, str]:
    """This process's environment with this checkout's qkv first on the path (nanoGPT ignores it)."""
    qkv_root = Path(__import__("qkv").__file__ or "").parents[1]
    paths = [str(qkv_root), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def one_run(name: str, config: Config, scratch: Path) -> Run:
    out = scratch / name
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    if name == "qkv":
        seconds, peak, said = run_process(qkv_command(config, out), Path.cwd(), environment(), config.timeout_s)
        loss = qkv_validation_loss(said)
    else:
        command = nanogpt_command(config, out)
        seconds, peak, said = run_process(command, Path(config.nanogpt), environment(), config.timeout_s)
        loss = nanogpt_validation_loss(said)
    if not math.isfinite(loss):
        raise harness.BenchmarkError(f"{name} printed no final validation loss; the end of its output: {said[-200:]!r}")
    shutil.rmtree(out, ignore_errors=True)
    return Run(seconds, peak, loss, load)


def ratio_cells(runs: Mapping[str, list[Run]]) -> dict[str, float]:
    """qkv over nanoGPT: the medians of per-round ratios of time and peak memory; qkv's worst validation loss."""
    qkv, peer = runs["qkv"], runs["nanoGPT"]
    return {
        "qkv_over_nanogpt_time": harness.paired_ratio([r.seconds for r in qkv], [r.seconds for r in peer]),
        "qkv_validation_loss": max(r.validation_loss for r in qkv),
        "qkv_over_nanogpt_peak": harness.paired_ratio([r.peak_bytes for r in qkv], [r.peak_bytes for r in peer]),
    }


def run(config: Config, say: harness.Say) -> harness.Report:
    reason = missing(Path(config.nanogpt))
    if reason is not None:
        say(f"skipped: {reason}")
        return harness.Report([], dict.fromkeys(MEASURES), [reason])
    runs: dict[str, list[Run]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="qkv-nanogpt-") as folder:
        for r in range(config.rounds):
            for name in COMMANDS if r % 2 == 0 else COMMANDS[::-1]:
                say(f"round {r + 1}/{config.rounds}: {name}, {config.steps} steps (load {os.getloadavg()[0]:.2f})")
                done = one_run(name, config, Path(folder))
                runs[name].append(done)
                say(f"{name}: {done.seconds:.1f} s, validation loss {done.validation_loss:.4f}")
    measures = ratio_cells(runs)
    rows = []
    for r in range(config.rounds):
        qkv, peer = runs["qkv"][r], runs["nanoGPT"][r]
        rows.append([
            str(r + 1), f"{qkv.load:.2f} / {peer.load:.2f}", f"{qkv.seconds:.1f}", f"{peer.seconds:.1f}",
            f"{qkv.seconds / peer.seconds:.2f}", f"{qkv.validation_loss:.4f}", f"{peer.validation_loss:.4f}",
            harness.mb(qkv.peak_bytes), harness.mb(peer.peak_bytes),
        ])  # fmt: skip
    median = {name: {k: statistics.median(getattr(x, k) for x in runs[name]) for k in ("seconds", "peak_bytes")}
              for name in COMMANDS}  # fmt: skip
    rows.append([
        "median", "", f"{median['qkv']['seconds']:.1f}", f"{median['nanoGPT']['seconds']:.1f}",
        f"{measures['qkv_over_nanogpt_time']:.2f}", "", "", harness.mb(median["qkv"]["peak_bytes"]),
        harness.mb(median["nanoGPT"]["peak_bytes"]),
    ])  # fmt: skip
    headers = ["round", "load (qkv / nanoGPT)", "qkv s", "nanoGPT s", "qkv / nanoGPT", "qkv val loss"]
    headers += ["nanoGPT val loss", "qkv peak MB", "nanoGPT peak MB"]
    title = f"{config.steps} steps of nanoGPT's CPU configuration, each a whole process ({config.nanogpt})"
    notes = [
        "qkv: " + " ".join(qkv_command(config, Path("RUN"))[1:]),
        "nanoGPT: " + " ".join(nanogpt_command(config, Path("OUT"))[1:]),
        "the ratio row is the median of per-round ratios; peak MB is the largest resident set of the process tree",
    ]
    return harness.Report([harness.Table(title, headers, rows, 2)], measures, notes)


if __name__ == "__main__":
    sys.exit(harness.main("nanogpt", Config, run, QUICK))
