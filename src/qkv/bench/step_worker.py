"""A benchmark case that runs in a process of its own, driven step by step from the benchmark's process.

Some cases cannot share a process with the others: ``torch.compile``'s kernels bring their own OpenMP threads,
which then compete with PyTorch's for the same two cores and slow every case of the process. Such a case is
built in a worker (``python -m qkv.bench.step_worker MODULE FACTORY PARAMS_JSON``) and driven through a pipe:

* the worker builds the case with ``FACTORY(**PARAMS)``, runs the checked steps and prints
  ``{"losses": [...]}``;
* then each line ``run N`` on its standard input runs ``N`` steps back to back, answered by ``{"ok": true}``;
  ``quit`` ends it.

In the benchmark's process a :class:`StepWorker` is a callable like any in-process case (``steps_per_call`` steps a
call), so :func:`qkv.bench.timing.round_robin` interleaves it with the others, timed by the caller (the pipe's
round trip, ≈ 0.1 ms, is inside the measured time). Its steps run back to back, a whole sample a call: the
processes hand the cores over once per sample, not once per step, so that neither's idle threads, still
spinning for work, take time from the other's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import IO

from qkv.bench import BenchmarkError, memory

__all__ = ["StepWorker", "main"]


class StepWorker:
    """The benchmark's handle on a case running in a worker process; calling it runs one step there."""

    def __init__(
        self, module: str, factory: str, params: Mapping[str, object], *, checked_steps: int, threads: int
    ) -> None:
        env = memory.worker_env()  # the worker imports this qkv
        command = [sys.executable, "-m", "qkv.bench.step_worker", module, factory, json.dumps(dict(params))]
        command += ["--checked-steps", str(checked_steps), "--threads", str(threads)]
        self.name = f"{factory}({params.get('case', '')})"
        self.steps_per_call = 1
        self._process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        losses = self._reply()["losses"]
        self.losses: list[float] = [float(x) for x in losses] if isinstance(losses, list) else []

    def __call__(self) -> None:
        self._send(f"run {self.steps_per_call}")
        self._reply()

    def close(self) -> None:
        if self._process.poll() is None:
            self._send("quit")
            self._process.wait(timeout=30)

    def _send(self, line: str) -> None:
        stdin = self._pipe(self._process.stdin)
        stdin.write(line + "\n")
        stdin.flush()

    def _reply(self) -> dict[str, object]:
        line = self._pipe(self._process.stdout).readline()
        if not line:
            self._process.wait(timeout=30)
            stderr = self._process.stderr.read() if self._process.stderr else ""
            tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no message"
            raise BenchmarkError(f"step worker {self.name} stopped (exit status {self._process.returncode}): {tail}")
        reply: dict[str, object] = json.loads(line)
        return reply

    @staticmethod
    def _pipe(stream: IO[str] | None) -> IO[str]:
        if stream is None:  # never: the process is started with both pipes
            raise BenchmarkError("the step worker has no pipe")
        return stream


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qkv.bench.step_worker")
    parser.add_argument("module")
    parser.add_argument("factory")
    parser.add_argument("params", help="JSON object of keyword arguments for the factory")
    parser.add_argument("--checked-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if not args.module.startswith("qkv.bench."):
        parser.error(f"cases live under qkv.bench, got module {args.module!r}")

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    step = getattr(importlib.import_module(args.module), args.factory)(**json.loads(args.params))
    losses = [float(step()) for _ in range(args.checked_steps)]  # the first compiles, where the case does
    print(json.dumps({"losses": losses}), flush=True)
    for line in sys.stdin:
        command, _, count = line.strip().partition(" ")
        if command == "quit":
            break
        if command != "run" or not count.isdigit():
            raise SystemExit(f"step worker: unknown command {line.strip()!r}")
        for _ in range(int(count)):
            step()
        print('{"ok": true}', flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
