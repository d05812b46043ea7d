"""Peak extra memory of one call, on CPU, measured honestly in a fresh process.

PyTorch keeps no allocator statistics on CPU, so we measure the process itself (Linux ``/proc``):

1. A fresh Python process (``python -m qkv.bench._worker``) builds the case: its inputs, and a function that
   runs the operation once. One process per case, so nothing left over from another case (cached memory,
   a grown heap) can hide or inflate its number.
2. It runs the operation once as a warm-up (thread pools, code pages, one-time buffers), drops the result.
3. It resets the kernel's high-water mark of resident memory (writing ``5`` to ``/proc/self/clear_refs``
   makes ``VmHWM`` equal to the current ``VmRSS``) and reads the resident memory ``VmRSS``.
4. It runs the operation once more, holding its result, and reads ``VmHWM``; the difference is the peak
   extra memory: every byte the call had resident at its high point, its result included.

The worker runs with glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed at 64 KiB, so every block of 64 KiB or more is
mapped fresh and handed back when freed. Otherwise glibc raises the threshold as large blocks are freed and
keeps freed memory in its heap, where the measured call could reuse memory the warm-up left behind and look
smaller than it is. Checked on a known allocation: an ``n``-byte tensor measures ``n`` bytes (to a page).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from qkv.bench import BenchmarkError

__all__ = [
    "MemoryCase",
    "PeakMemory",
    "allocation_case",
    "measure_in_subprocess",
    "measure_peak",
    "measure_peak_extra",
    "measure_peak_in_subprocess",
    "peak_resident_bytes",
    "reset_peak",
    "resident_bytes",
    "supported",
]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmark's child process: this one's, plus ``extra``, with the folder holding
    this ``qkv`` first on ``PYTHONPATH`` so that the child imports the very code being measured."""
    source_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH", "")) if p)
    return env


def supported() -> bool:
    """True where the high-water mark can be read and reset (Linux 4.0 or later)."""
    return _STATUS.is_file() and _CLEAR_REFS.exists() and os.access(_CLEAR_REFS, os.W_OK)


def _status_bytes(key: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise BenchmarkError(f"{_STATUS} has no {key} line")


def resident_bytes() -> int:
    """Resident memory of this process now (``VmRSS``)."""
    return _status_bytes("VmRSS")


def peak_resident_bytes() -> int:
    """Highest resident memory of this process since it started or since :func:`reset_peak` (``VmHWM``)."""
    return _status_bytes("VmHWM")


def reset_peak() -> None:
    """Make the high-water mark equal to the current resident memory."""
    _CLEAR_REFS.write_text("5")


@dataclass(frozen=True)
class PeakMemory:
    """One call's memory: resident bytes just before it, and the extra bytes resident at its high point."""

    resident_before: int
    peak_extra: int

    @property
    def peak_resident(self) -> int:
        """The process's resident memory at the call's high point (everything loaded, plus the call's extra)."""
        return self.resident_before + self.peak_extra


def measure_peak(fn: Callable[[], object]) -> PeakMemory:
    """Resident bytes before one call of ``fn``, and the bytes beyond them at the call's high point."""
    gc.collect()
    reset_peak()
    before = resident_bytes()
    result = fn()
    peak = peak_resident_bytes()
    del result
    return PeakMemory(before, max(0, peak - before))


def measure_peak_extra(fn: Callable[[], object]) -> int:
    """Bytes resident at the high point of one call of ``fn`` beyond those resident before it."""
    return measure_peak(fn).peak_extra


@dataclass(frozen=True)
class MemoryCase:
    """``factory(**params)`` in module ``module`` builds inputs and returns a function that runs the case once.

    The module must live under ``qkv.bench``; ``params`` must be JSON values.
    """

    module: str
    factory: str
    params: Mapping[str, int | float | str | bool] = field(default_factory=dict)


def measure_in_subprocess(case: MemoryCase, *, threads: int, timeout_s: float | None = None) -> int:
    """Peak extra bytes of one call of ``case``, measured in a fresh worker process (see the module doc)."""
    return measure_peak_in_subprocess(case, threads=threads, timeout_s=timeout_s).peak_extra


def measure_peak_in_subprocess(case: MemoryCase, *, threads: int, timeout_s: float | None = None) -> PeakMemory:
    """:func:`measure_peak` of one call of ``case`` (after a warm-up call), in a fresh worker process."""
    if not supported():
        raise BenchmarkError("measuring peak memory needs Linux /proc/self/status and /proc/self/clear_refs")
    env = worker_env(**WORKER_ENV)
    command = [
        sys.executable,
        "-m",
        "qkv.bench._worker",
        case.module,
        case.factory,
        json.dumps(dict(case.params)),
        "--threads",
        str(threads),
    ]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"memory worker for {case} ran past {timeout_s} s") from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or "no message"
        raise BenchmarkError(f"memory worker for {case} failed with exit status {done.returncode}: {tail}")
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return PeakMemory(int(result["resident_before_bytes"]), int(result["peak_extra_bytes"]))
    except (IndexError, KeyError, ValueError):
        raise BenchmarkError(f"memory worker for {case} printed no result: {done.stdout!r}") from None


def allocation_case(nbytes: int) -> Callable[[], object]:
    """A case of known size, to check the method: one call fills a new ``nbytes``-byte buffer."""
    import torch

    return lambda: torch.ones(nbytes, dtype=torch.uint8)
