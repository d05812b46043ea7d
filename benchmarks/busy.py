"""Busy machine: qkv's commands under OpenMP wait policies, on the machine as it is and beside a CPU hog.

Each sample runs in a fresh process, whose environment sets the policy (libgomp reads it once, at import):

* ``default``: libgomp's own spinning, ``GOMP_SPINCOUNT=300000`` (its documented default): qkv before it chose;
* ``qkv``: nothing set, so the command chooses (:mod:`qkv.threads`); a decode worker is given what the command
  would choose, the short spin and the decode threads for its model's size;
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE``, no spinning at all.

The cases (``--cases``):

* ``generate``: ``qkv generate --model smollm2 --dtype int4``, greedy, ``--tokens`` tokens: the seconds to the
  first text on stdout, and to the end;
* ``train``: ``qkv train --preset tiny --steps STEPS`` to the end;
* ``decode``: the quiet-machine guard, a worker process per policy and model (``--decode-models``: ``small``,
  the generate benchmark's context-256 model, and ``smollm2:int4``), the tokens per second of decoding
  ``--decode-tokens`` tokens at batch 1 after a prompt whose prefill is untimed.

Correctness first: every policy must print the same text, reach the same losses and pick the same tokens before
any figure is reported. Rounds are interleaved: each round runs every policy once per case, in an order rotated
from round to round, first on the machine as it is, then (``--hog``) beside one ``while True: pass`` process per
core, started for that half of the round and killed after it (each also ends itself after ``--hog-limit-s``).
The one-minute load average is read after every sample and reported beside each figure. ``--realtime`` runs the
measured processes at real-time priority (``chrt -f 10``, Linux, root only): the figures of a quiet machine on a
shared one, as nothing else then takes their cores (so it needs ``--no-hog``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import harness
from qkv.errors import ConfigError
from qkv.threads import SPIN_COUNT, WAIT_SETTINGS

POLICIES: dict[str, dict[str, str]] = {
    "default": {"GOMP_SPINCOUNT": "300000"},
    "qkv": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
}
CASES = ("generate", "train", "decode")
DECODE_MODELS = ("small", "smollm2:int4")
PROMPT = "Tell me a long story about a dog named Riley who never stops moving."
DECODE_PROMPT = "The capital of France is a city that"


@dataclass(frozen=True)
class Config:
    cases: tuple[str, ...] = field(default=CASES, metadata={"help": ", ".join(CASES)})
    policies: tuple[str, ...] = field(default=tuple(POLICIES), metadata={"help": ", ".join(POLICIES)})
    rounds: int = 3
    tokens: int = field(default=64, metadata={"help": "tokens qkv generate writes"})
    steps: int = field(default=200, metadata={"help": "steps qkv train takes"})
    decode_models: tuple[str, ...] = field(default=DECODE_MODELS, metadata={"help": "small, smollm2:DTYPE"})
    decode_tokens: int = 64
    hog: bool = field(default=True, metadata={"help": "also measure beside one busy-looping process per core"})
    hog_limit_s: int = field(default=1800, metadata={"help": "each hog process ends itself after this"})
    realtime: bool = field(default=False, metadata={"help": "run the measured processes at real-time priority"})
    timeout_s: int = field(default=600, metadata={"help": "a command or worker running longer fails the run"})

    def __post_init__(self) -> None:
        harness.require_positive(self, "rounds", "tokens", "steps", "decode_tokens", "hog_limit_s", "timeout_s")
        harness.require_some(self, "cases", CASES)
        harness.require_some(self, "policies", tuple(POLICIES))
        if "default" not in self.policies:
            raise ConfigError("Config.policies must include default: every ratio is taken against it")
        for model in self.decode_models:
            name, _, dtype = model.partition(":")
            if name not in ("small", "smollm2") or (name == "small" and dtype):
                raise ConfigError(f"Config.decode_models: {model!r} is not small or smollm2:DTYPE")
        if self.realtime and self.hog:
            raise ConfigError("Config.realtime measures a quiet machine; a hog would never run (add --no-hog)")


QUICK = {"rounds": 1, "tokens": 8, "steps": 20, "decode_tokens": 16, "decode_models": ("small",)}


# -- the environment of one policy ----------------------------------------------------------------------------


def environment(policy: str) -> dict[str, str]:
    """This process's environment without any OpenMP wait setting, plus ``policy``'s, and the checkout on the
    path (a command runs this checkout's qkv)."""
    paths = [str(Path(importlib.import_module("qkv").__file__ or "").parents[1]), str(harness.ROOT)]
    environ = {key: value for key, value in os.environ.items() if key not in WAIT_SETTINGS}
    environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**environ, **POLICIES[policy]}


def priority(config: Config) -> list[str]:
    """The command prefix that runs a process at real-time priority, or none."""
    if not config.realtime:
        return []
    if shutil.which("chrt") is None or subprocess.run(["chrt", "-f", "10", "true"], check=False).returncode:
        raise harness.BenchmarkError("--realtime needs chrt and the right to use SCHED_FIFO (root, on Linux)")
    return ["chrt", "-f", "10"]


# -- the hog --------------------------------------------------------------------------------------------------

HOG = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end: pass"


@contextlib.contextmanager
def hogging(processes: int, limit_s: float) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``processes`` busy loops, each ending itself after ``limit_s``; killed when the block ends."""
    command = [sys.executable, "-c", HOG.format(limit=limit_s)]
    hogs = [subprocess.Popen(command, stdin=subprocess.DEVNULL) for _ in range(processes)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


# -- the commands ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """One run of a command: seconds to its first output on stdout (None: none) and to its end; its output."""

    first_s: float | None
    total_s: float
    out: str
    err: str


def run_command(command: Sequence[str], env: Mapping[str, str], timeout_s: float) -> Timed:
    """Run ``command``, timing the first bytes of its stdout and its end; a failure is a BenchmarkError."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)
        timer = threading.Timer(timeout_s, process.kill)
        timer.start()
        assert process.stdout is not None
        first, chunks = None, []
        while chunk := os.read(process.stdout.fileno(), 1 << 16):
            if first is None and chunk.strip():
                first = time.perf_counter() - start
            chunks.append(chunk)
        code = process.wait()
        total = time.perf_counter() - start
        timer.cancel()
        err.seek(0)
        said = err.read()
    if code:
        tail = " | ".join(said.strip().splitlines()[-3:]) or "no message"
        raise harness.BenchmarkError(f"{' '.join(command[2:5])} stopped with exit status {code}: {tail}")
    return Timed(first, total, b"".join(chunks).decode("utf-8", "replace"), said)


def generate_command(config: Config) -> list[str]:
    return [sys.executable, "-m", "qkv", "generate", "--model", "smollm2", "--dtype", "int4", "--prompt", PROMPT,
            "--tokens", str(config.tokens)]  # fmt: skip


def train_command(config: Config, out: Path) -> list[str]:
    return [sys.executable, "-m", "qkv", "train", "--preset", "tiny", "--steps", str(config.steps), "--out", str(out)]


def final_losses(err: str) -> str:
    """The ``loss: train …, validation …`` line qkv train ends with."""
    return next((line for line in err.splitlines() if line.startswith("loss: ")), "no loss line")


# -- the decode workers ---------------------------------------------------------------------------------------


def decode_case(model: str, tokens: int, policy: str) -> Callable[[], dict[str, Any]]:
    """The decode worker's case: ``{"seconds": …, "tokens": [...]}`` for ``tokens`` greedy tokens at batch 1 after
    a prompt, timed from the first token (the prompt's prefill is not timed). Under the ``qkv`` policy it runs
    on the threads the command would choose for its size."""
    import torch

    from qkv.generation import GREEDY, generate
    from qkv.threads import decode_threads, use_threads

    name, _, dtype = model.partition(":")
    if name == "small":
        from benchmarks.generate import INIT_STD, model_config
        from qkv.model import Transformer

        torch.manual_seed(0)
        transformer = Transformer(model_config(4, 4, 128, 256, 65)).eval()
        for parameter in transformer.parameters():  # the generate benchmark's spread: greedy tokens vary
            torch.nn.init.normal_(parameter, std=INIT_STD)
        prompt = torch.zeros(1, 1, dtype=torch.long)  # (B=1, T=1)
    else:
        from qkv.pretrained import load

        loaded = load(name, dtype=dtype or "float32")
        transformer = loaded.model
        prompt = torch.tensor([loaded.encode(DECODE_PROMPT)])  # (B=1, T)
    if policy == "qkv":
        use_threads(decode_threads(transformer.config.parameter_count()))  # low-bit layers hold buffers

    def decode() -> dict[str, Any]:
        stream = generate(transformer, prompt, tokens, GREEDY)
        picked = [int(next(stream))]
        start = time.perf_counter()
        picked += [int(token) for token in stream]
        return {"seconds": time.perf_counter() - start, "tokens": picked}

    return decode


# -- the rounds -----------------------------------------------------------------------------------------------


@dataclass
class Samples:
    """What one (case, measure, hog) cell collected per policy: seconds per round, and the load after each."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    load: dict[str, list[float]] = field(default_factory=dict)

    def add(self, policy: str, seconds: float) -> None:
        self.seconds.setdefault(policy, []).append(seconds)
        self.load.setdefault(policy, []).append(os.getloadavg()[0])


def rotated(names: Sequence[str], r: int) -> list[str]:
    shift = r % len(names)
    order = [*names[shift:], *names[:shift]]
    return order[::-1] if (r // len(names)) % 2 else order


class Bench:
    """The commands and workers of one run, and what they agree on."""

    def __init__(self, config: Config, say: harness.Say, scratch: Path) -> None:
        self.config, self.say, self.scratch, self.prefix = config, say, scratch, priority(config)
        self.agreed: dict[str, str] = {}  # case → what the first policy printed, picked or reached
        self.workers: dict[tuple[str, str], harness.Process] = {}
        self.calls: dict[str, int] = {}  # decode model → calls per sample
        self.runs = 0

    def agree(self, case: str, policy: str, result: str) -> None:
        first = self.agreed.setdefault(case, result)
        if result != first:
            raise harness.BenchmarkError(
                f"{case} under {policy} gave {result[:80]!r}, not {first[:80]!r}: the policies do not compute the "
                "same thing; nothing reported"
            )

    def command(self, case: str, policy: str) -> Timed:
        self.runs += 1
        if case == "generate":
            timed = run_command([*self.prefix, *generate_command(self.config)], environment(policy), self.timeout)
            self.agree(case, policy, timed.out)
        else:
            out = self.scratch / f"run-{self.runs}"
            timed = run_command([*self.prefix, *train_command(self.config, out)], environment(policy), self.timeout)
            self.agree(case, policy, final_losses(timed.err))
            shutil.rmtree(out, ignore_errors=True)
        return timed

    @property
    def timeout(self) -> float:
        return self.config.timeout_s

    def decode(self, model: str, policy: str) -> float:
        """Seconds per decoded token: the median of this model's calls per sample."""
        key = (model, policy)
        if key not in self.workers:
            self.say(f"decode {model}: starting the {policy} worker")
            params = json.dumps({"model": model, "tokens": self.config.decode_tokens, "policy": policy})
            threads = str(os.cpu_count() or 1)  # the qkv policy's case chooses its own
            command = [*self.prefix, sys.executable, "-m", "benchmarks.harness", "benchmarks.busy", "decode_case"]
            # A worker is no qkv command, which would choose the spin itself: it is given the spin chosen.
            env = {**environment(policy), **({"GOMP_SPINCOUNT": str(SPIN_COUNT)} if policy == "qkv" else {})}
            self.workers[key] = harness.Process([*command, params, threads], timeout_s=self.timeout * 4, env=env)
            first = self.workers[key].ask("run 1")["values"][0]  # the warm-up
            self.agree(f"decode {model}", policy, json.dumps(first["tokens"]))
            self.calls.setdefault(model, harness.calls_per_sample(first["seconds"]))
        values = self.workers[key].ask(f"run {self.calls[model]}")["values"]
        for value in values:
            self.agree(f"decode {model}", policy, json.dumps(value["tokens"]))
        per_token = [value["seconds"] / (len(value["tokens"]) - 1) for value in values]
        return statistics.median(per_token)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.wait()


def measure(config: Config, say: harness.Say, bench: Bench) -> dict[tuple[str, str, bool], Samples]:
    cells: dict[tuple[str, str, bool], Samples] = {}
    hogs = os.cpu_count() or 1
    for r in range(config.rounds):
        for hog in (False, True) if config.hog else (False,):
            with hogging(hogs, config.hog_limit_s) if hog else contextlib.nullcontext():
                beside = f" beside {hogs} hogs" if hog else ""
                say(f"round {r + 1}/{config.rounds}{beside} (load {os.getloadavg()[0]:.2f})")
                for case in config.cases:
                    for policy in rotated(config.policies, r):
                        if case == "decode":
                            for model in config.decode_models:
                                seconds = bench.decode(model, policy)
                                cells.setdefault((f"decode {model}", "s/token", hog), Samples()).add(policy, seconds)
                            continue
                        timed = bench.command(case, policy)
                        cells.setdefault((case, "total s", hog), Samples()).add(policy, timed.total_s)
                        if case == "generate" and timed.first_s is not None:
                            cells.setdefault((case, "first text s", hog), Samples()).add(policy, timed.first_s)
                        say(f"{case} {policy}{beside}: {timed.total_s:.1f} s (load {os.getloadavg()[0]:.2f})")
    return cells


def measure_key(case: str, measure_name: str, hog: bool) -> str:
    """``generate_first_text_hog``, ``decode_smollm2_int4_as_is``: the name of qkv's ratio in the JSON line."""
    words = [case, *([] if measure_name == "s/token" else [measure_name.removesuffix(" s")]), "hog" if hog else "as is"]
    return "_".join(words).replace(" ", "_").replace(":", "_")


def figure(measure_name: str, seconds: float) -> str:
    return f"{1 / seconds:,.0f} tok/s" if measure_name == "s/token" else f"{seconds:.2f}"


def run(config: Config, say: harness.Say) -> harness.Report:
    for name in WAIT_SETTINGS:  # each policy sets its own; this process's PyTorch has read them already
        if os.environ.pop(name, None) is not None:
            say(f"{name} left out of the measured processes' environment: each policy sets its own")
    with tempfile.TemporaryDirectory(prefix="qkv-busy-") as scratch:
        bench = Bench(config, say, Path(scratch))
        try:
            cells = measure(config, say, bench)
        finally:
            with contextlib.suppress(harness.BenchmarkError):
                bench.close()
    rows, measures = [], {}
    for (case, measure_name, hog), samples in cells.items():
        for policy in config.policies:
            seconds, load = samples.seconds[policy], samples.load[policy]
            ratio = harness.paired_ratio(samples.seconds["default"], seconds)
            cells_ = [figure(measure_name, statistics.median(seconds)), f"{min(load):.1f}–{max(load):.1f}"]
            rows.append([case, measure_name, "hog" if hog else "as is", policy, *cells_, f"{ratio:.2f}"])
            if policy == "qkv":
                measures[measure_key(case, measure_name, hog)] = ratio
    headers = ["case", "measure", "machine", "policy", "median", "load (1 min)", "× default"]
    title = f"{os.cpu_count()} CPUs, {config.rounds} rounds{', real-time priority' if config.realtime else ''}"
    notes = [
        "× default: how many times faster than libgomp's default spinning (the median of per-round ratios);",
        "machine: as is (whatever else runs), or hog (one busy loop per core besides); load: after each sample.",
    ]
    return harness.Report([harness.Table(title, headers, rows, left=4)], measures, notes)


if __name__ == "__main__":
    sys.exit(harness.main("busy", Config, run, QUICK))
