"""``qkv bench NAME [OPTIONS]`` — benchmarks, each against a peer in the same run.

The benchmarks are registered in :data:`qkv.bench.BENCHMARKS`; each parses its own options
(``qkv bench attention --help``). The report goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from qkv.cli.errors import UserError


class _BenchmarkParser(argparse.ArgumentParser):
    """A benchmark's own options: a mistake becomes a one-line :class:`UserError` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see {self.prog} --help)")


def register(subparsers: Any) -> None:
    from qkv.bench import BENCHMARKS

    listing = "\n".join(f"  {name:<12} {entry.summary}" for name, entry in BENCHMARKS.items())
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks, each against a peer in the same run",
        description="Run a benchmark: its report goes to stdout, its progress to stderr.",
        epilog=f"benchmarks:\n{listing}\n\nEach takes its own options: qkv bench NAME --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("benchmark", nargs="?", metavar="NAME", help=f"one of: {', '.join(BENCHMARKS)}")
    parser.add_argument("options", nargs=argparse.REMAINDER, metavar="OPTIONS", help="the benchmark's own options")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qkv.bench import BENCHMARKS, BenchmarkError, load

    choices = ", ".join(BENCHMARKS)
    if args.benchmark is None:
        raise UserError(f"name a benchmark: one of {choices} (e.g. qkv bench attention)")
    if args.benchmark not in BENCHMARKS:
        raise UserError(f"unknown benchmark {args.benchmark!r}; choose one of: {choices}")
    benchmark = load(args.benchmark)
    parser = _BenchmarkParser(prog=f"qkv bench {args.benchmark}", description=BENCHMARKS[args.benchmark].summary)
    benchmark.add_arguments(parser)
    options = parser.parse_args(args.options)
    try:
        return benchmark.run_cli(options, sys.stdout, sys.stderr)
    except BenchmarkError as error:
        print(f"qkv bench {args.benchmark}: error: {error}", file=sys.stderr)
        return 1
