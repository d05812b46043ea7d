"""Benchmarks behind ``qkv bench NAME``: each one measures qkv against a peer in the same run.

A benchmark is a module with two functions (see :class:`BenchmarkModule`):

* ``add_arguments(parser)`` adds its own options to an :class:`argparse.ArgumentParser`;
* ``run_cli(args, out, log)`` runs it, writes its report to ``out`` and its progress to ``log``, and returns
  an exit code.

To add one, write ``qkv/bench/NAME.py`` with those two functions and add a line to :data:`BENCHMARKS`.
Importing this package is cheap: a benchmark's module (and PyTorch) loads only when it runs.

Shared helpers: :mod:`qkv.bench.timing` (alternating rounds, medians, paired ratios),
:mod:`qkv.bench.memory` (peak extra memory of one call, measured in a fresh process) and
:mod:`qkv.bench.report` (plain-text and Markdown tables).
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import Protocol, TextIO, cast

__all__ = ["BENCHMARKS", "BenchmarkEntry", "BenchmarkError", "BenchmarkModule", "load"]


class BenchmarkError(RuntimeError):
    """A benchmark could not produce honest numbers (paths disagree, a measuring process failed, ...)."""


class BenchmarkModule(Protocol):
    """What a benchmark module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run_cli(self, args: argparse.Namespace, out: TextIO, log: TextIO) -> int: ...


@dataclass(frozen=True)
class BenchmarkEntry:
    """A registered benchmark: the module that implements it and a one-line summary for ``--help``."""

    module: str
    summary: str


BENCHMARKS: dict[str, BenchmarkEntry] = {
    "attention": BenchmarkEntry(
        "qkv.bench.attention",
        "qkv's fused and exact attention, and a naive softmax(QKᵀ/√K)V, against SDPA: time and peak memory",
    ),
    "train": BenchmarkEntry(
        "qkv.bench.train",
        "a full training step (char-level, 4 layers, width 128) against transformers' GPT-2: tokens/s, memory",
    ),
    "generate": BenchmarkEntry(
        "qkv.bench.generate",
        "500 tokens at batch 1 from a context-256 model: cached, uncached, and transformers' GPT-2 generate",
    ),
    "pretrained": BenchmarkEntry(
        "qkv.bench.pretrained",
        "SmolLM2 decode, prefill, load and memory, and MiniLM embeddings, against transformers",
    ),
    "inspect": BenchmarkEntry(
        "qkv.bench.inspection",
        "qkv attend on MiniLM from start to exit, and the extra memory of tracing 512 tokens through SmolLM2",
    ),
}


def load(name: str) -> BenchmarkModule:
    """Import the module of the benchmark registered as ``name`` (a ``KeyError`` if there is none)."""
    return cast(BenchmarkModule, importlib.import_module(BENCHMARKS[name].module))
