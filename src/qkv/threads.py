"""How qkv's commands run PyTorch's CPU threads: how an idle thread waits, and how many threads a phase uses.

PyTorch's CPU kernels share out their work through OpenMP (GNU libgomp in the Linux wheels). When a thread has
finished its share it spins, waiting for the next piece of work, before it sleeps: 300,000 spins by default
(a few milliseconds). On a quiet machine that makes back-to-back small operations fast; on a busy one the spinning
threads take the cores that the thread everyone waits for needs, and a command runs 3–7× slower (and 15–20× for
training the tiny preset). ``OMP_WAIT_POLICY=PASSIVE`` (no spinning) fixes the busy case but makes small-op work
2–5× slower on a quiet machine. qkv's commands take the middle: a short spin, :data:`SPIN_COUNT` (about 0.1 ms
here), long enough to bridge the gap between two operations, short enough to yield the core soon on a busy
machine; and one thread where a second gains nothing on a quiet machine (decoding a model of at most
:data:`ONE_THREAD_PARAMETERS` parameters at batch 1). ``python -m benchmarks.busy`` measures the choice.

The wait policy is read by libgomp once, when PyTorch is imported, so :func:`choose_wait_policy` runs first thing
in the ``qkv`` command (before any PyTorch import). A user's own settings always win: any of
:data:`WAIT_SETTINGS` in the environment leaves the wait policy alone, and any of :data:`THREAD_SETTINGS` leaves
the thread count alone. Library code never calls these: ``import qkv`` changes nothing.

This module imports no PyTorch at import time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping

__all__ = [
    "ONE_THREAD_PARAMETERS",
    "SPIN_COUNT",
    "THREAD_SETTINGS",
    "WAIT_SETTINGS",
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


def decode_threads(parameters: int) -> int | None:
    """The threads for generating from a model of ``parameters`` parameters at batch 1: one for a small model
    (a second thread only waits for it, and far longer on a busy machine), ``None`` (PyTorch's default: every
    core) for a larger one, whose matrix–vector products the cores share with profit."""
    return 1 if parameters <= ONE_THREAD_PARAMETERS else None


def use_threads(count: int | None, environ: Mapping[str, str] | None = None) -> bool:
    """Run PyTorch on ``count`` threads from now on, unless ``count`` is ``None`` or the user chose the number
    (:func:`user_chose_threads`); whether it changed anything. Imports PyTorch."""
    if count is None or user_chose_threads(environ):
        return False
    import torch

    torch.set_num_threads(count)
    return True
