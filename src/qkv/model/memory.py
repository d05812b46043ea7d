"""How much memory the machine can still give, and a check that refuses a request it cannot hold.

Sizes a user controls — a config's layers and widths, a batch, a context — decide how much a model or a
training step allocates. Asked for too much, PyTorch either spends minutes building a model that the
operating system then kills, or dies in the allocator with a message about bytes. :func:`check_memory`
compares an estimate with what is free first and refuses in one line, naming both sizes and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from qkv.errors import TooLargeError

__all__ = ["HEADROOM", "available_bytes", "check_memory", "describe_bytes"]

#: The share of the free memory a request may take; the rest is left for everything an estimate leaves out.
HEADROOM = 0.9

_CGROUP = Path("/sys/fs/cgroup")


def _meminfo_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (free memory plus what the kernel can reclaim), in bytes."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other Unix systems: the free pages (an underestimate: it leaves out reclaimable caches)
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What a cgroup v2 memory limit (a container's) still allows, in bytes; ``None`` without a limit."""
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((_CGROUP / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def available_bytes(device: torch.device | str | None = None) -> int | None:
    """Bytes free for new tensors on ``device`` (default: PyTorch's default device); ``None`` where unknown.

    On the CPU, the smaller of the kernel's ``MemAvailable`` and a container's remaining limit; on a CUDA
    device, what the driver reports free. The ``meta`` device allocates nothing and has no limit (``None``).
    """
    where = torch.device(device) if device is not None else torch.get_default_device()
    if where.type == "cuda":
        free, _ = torch.cuda.mem_get_info(where)
        return int(free)
    if where.type != "cpu":
        return None
    found = [value for value in (_meminfo_available(), _cgroup_available()) if value is not None]
    return min(found) if found else None


def describe_bytes(count: int | float) -> str:
    """``1.5 GB``, ``640 MB``, ``12 kB``: a size for a message (decimal units)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{int(count)} bytes"


def check_memory(needed: int, what: str, fix: str, device: torch.device | str | None = None) -> None:
    """Raise :class:`~qkv.errors.TooLargeError` when ``needed`` bytes exceed :data:`HEADROOM` of the free memory.

    ``what`` says what would be allocated ("a model of 3.2 billion parameters") and ``fix`` what to change.
    Where the free memory cannot be known, nothing is refused.
    """
    available = available_bytes(device)
    if available is not None and needed > HEADROOM * available:
        raise TooLargeError(
            f"{what} needs about {describe_bytes(needed)} of memory, but only {describe_bytes(available)} is free; "
            f"{fix}"
        )
