"""How qkv's commands run PyTorch's CPU threads: how an idle thread waits, and how many threads a phase uses.

PyTorch's CPU kernels share out their work through OpenMP (GNU libgomp in the Linux wheels). When a thread has
finished its share it spins, waiting for the next piece of work, before it sleeps: 300,000 spins by default
(a few milliseconds). On a quiet machine that makes back-to-back small operations fast; on a busy one the spinning
threads take the cores that the thread everyone waits for needs, and a command runs 3–7× slower (and 15–20× for
training the tiny preset). ``OMP_WAIT_POLICY=PASSIVE`` (no spinning) fixes the busy case but makes small-op work
2–5× slower on a quiet machine. qkv's commands take the middle: a short spin, :data:`SPIN_COUNT` (about 0.1 ms
here), long enough to bridge the gap between two operations, short enough to yield the core soon on a busy
machine; and one thread where a second gains nothing on a quiet machine (decoding a model of at most
:data:`ONE_THREAD_PARAMETERS` parameters at batch 1), or where other programs already keep the cores busy
(:func:`decode_threads`). ``python -m benchmarks.busy`` measures the choice.

The wait policy is read by libgomp once, when PyTorch is imported, so :func:`choose_wait_policy` runs first thing
in the ``qkv`` command (before any PyTorch import). A user's own settings always win: any of
:data:`WAIT_SETTINGS` in the environment leaves the wait policy alone, and any of :data:`THREAD_SETTINGS` leaves
the thread count alone. Library code never calls these: ``import qkv`` changes nothing.

This module imports no PyTorch at import time.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, MutableMapping

__all__ = [
    "ONE_THREAD_PARAMETERS",
    "SPIN_COUNT",
    "THREAD_SETTINGS",
    "WAIT_SETTINGS",
    "busy_cores",
    "choose_wait_policy",
    "decode_threads",
    "use_threads",
    "user_chose_threads",
]

SPIN_COUNT = 10_000  # libgomp spins before an idle thread sleeps: about 0.13 ms on the machines measured
WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_LIBRARY")  # how OpenMP threads wait
THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # how many threads PyTorch starts with
ONE_THREAD_PARAMETERS = 2_000_000  # up to this size, decoding at batch 1 is as fast on one thread as on two


def choose_wait_policy(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` in ``environ`` (default: this process's environment), unless
    the user set any of :data:`WAIT_SETTINGS` or PyTorch is already imported (libgomp has read its settings, and
    a changed environment would only mislead). Returns what it set: ``{}`` when it set nothing.

    Child processes inherit the setting (``torchrun`` workers choose again, and find it set)."""
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or any(name in environ for name in WAIT_SETTINGS):
        return {}
    environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    return {"GOMP_SPINCOUNT": environ["GOMP_SPINCOUNT"]}


def user_chose_threads(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment sets PyTorch's thread count (any of :data:`THREAD_SETTINGS`)."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in THREAD_SETTINGS)


def busy_cores(window_s: float = 0.1) -> float:
    """How many cores other programs keep busy now: the share of the last ``window_s`` seconds the system's cores
    spent outside idle (Linux's ``/proc/stat``; this process sleeps meanwhile), in cores. Elsewhere, the one-minute
    load average (which also counts what this process itself ran lately)."""
    try:
        before = _cpu_times()
        time.sleep(window_s)
        after = _cpu_times()
    except (OSError, ValueError):
        return os.getloadavg()[0]
    busy, total = after[0] - before[0], after[1] - before[1]
    return 0.0 if total <= 0 else after[2] * busy / total


def _cpu_times() -> tuple[int, int, int]:
    """Busy and total clock ticks of all cores since boot, and the number of cores, from ``/proc/stat``."""
    with open("/proc/stat") as stat:
        lines = stat.read().splitlines()
    ticks = [int(field) for field in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks), cores


def decode_threads(parameters: int, *, busy: float | None = None, cores: int | None = None) -> int | None:
    """The threads for generating from a model of ``parameters`` parameters at batch 1.

    One for a small model (a second thread only waits for it, and far longer on a busy machine). A larger one's
    matrix–vector products share the cores with profit while nothing else runs: ``None`` (PyTorch's default,
    ``cores`` threads) when the cores other programs keep ``busy`` (:func:`busy_cores` when not given; half a core
    counts as one) leave all of them idle. Otherwise only the idle ones, at least one: a thread waiting for a core
    another program holds stalls every parallel operation, and decoding on two cores beside one busy program ran
    3× slower than on one (BENCHMARKS.md, pretrained). ``cores`` defaults to PyTorch's thread count (this imports
    PyTorch)."""
    if parameters <= ONE_THREAD_PARAMETERS:
        return 1
    if cores is None:
        import torch

        cores = torch.get_num_threads()
    taken = int((busy_cores() if busy is None else busy) + 0.5)
    return None if taken == 0 else max(1, cores - taken)


def use_threads(count: int | None, environ: Mapping[str, str] | None = None) -> bool:
    """Run PyTorch on ``count`` threads from now on, unless ``count`` is ``None`` or the user chose the number
    (:func:`user_chose_threads`); whether it changed anything. Imports PyTorch."""
    if count is None or user_chose_threads(environ):
        return False
    import torch

    torch.set_num_threads(count)
    return True
