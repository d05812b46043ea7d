"""The fresh process that measures one case's peak extra memory (see :mod:`qkv.bench.memory`).

    python -m qkv.bench._worker MODULE FACTORY PARAMS_JSON [--threads N]

writes one JSON line ``{"peak_extra_bytes": ..., "resident_before_bytes": ...}`` on stdout: the parent reads it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qkv.bench._worker")
    parser.add_argument("module")
    parser.add_argument("factory")
    parser.add_argument("params", help="JSON object of keyword arguments for the factory")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if not args.module.startswith("qkv.bench."):
        parser.error(f"cases live under qkv.bench, got module {args.module!r}")

    import torch

    from qkv.bench.memory import measure_peak

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    factory = getattr(importlib.import_module(args.module), args.factory)
    run_once = factory(**json.loads(args.params))
    run_once()  # warm-up: thread pools, code pages and one-time buffers are not the case's cost
    peak = measure_peak(run_once)
    sys.stdout.write(
        json.dumps({"peak_extra_bytes": peak.peak_extra, "resident_before_bytes": peak.resident_before}) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
