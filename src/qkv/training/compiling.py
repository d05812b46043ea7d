"""Whether a training compiles its model (``TrainConfig.compile``), and where inductor keeps what it compiled.

``compile=None`` (the default) compiles a run of at least :data:`AUTO_COMPILE_STEPS` steps where
:func:`torch.compile` can build the model (on a CPU it needs a C++ compiler, on CUDA Triton) and leaves shorter
runs eager: the first compiled step costs tens of seconds while inductor's on-disk cache is cold (a few seconds
once it holds the graphs) and the compiler's modules add about 85 MB to the process, which a short run's faster
steps do not pay back (BENCHMARKS.md, training). A run records the concrete choice, so a resume computes alike.

This module imports no PyTorch: the CLI decides with it before the first step.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

__all__ = ["AUTO_COMPILE_STEPS", "can_compile", "cpp_compiler", "inductor_cache_dir", "resolve_compile"]

AUTO_COMPILE_STEPS = 5000  # from here a compile pays for itself even with inductor's cache cold


def cpp_compiler() -> str | None:
    """The path of the C++ compiler inductor calls (``$CXX``, else ``g++``; ``clang++`` on macOS, ``cl`` on
    Windows), or ``None`` when it is not on the ``PATH``."""
    default = "cl" if sys.platform == "win32" else "clang++" if sys.platform == "darwin" else "g++"
    return shutil.which(os.environ.get("CXX") or default)


def can_compile(device_type: str) -> bool:
    """Whether inductor can build code for a device of this type here: a C++ compiler for the CPU, Triton for
    CUDA; no other device."""
    if device_type == "cpu":
        return cpp_compiler() is not None
    if device_type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return False


def resolve_compile(choice: bool | None, steps: int, device_type: str) -> bool:
    """The concrete choice: ``choice`` when given, else (auto) whether a run of ``steps`` more steps is long enough
    (:data:`AUTO_COMPILE_STEPS`) and the device can compile (:func:`can_compile`)."""
    if choice is not None:
        return choice
    return steps >= AUTO_COMPILE_STEPS and can_compile(device_type)


def inductor_cache_dir() -> Path:
    """Where ``qkv train`` keeps inductor's compiled graphs: ``$XDG_CACHE_HOME/qkv/inductor``, else
    ``~/.cache/qkv/inductor`` (inductor's own default is a folder under ``/tmp``, gone after a reboot)."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "qkv" / "inductor"
