"""``qkv`` — the command-line entry point.

Each subcommand lives in its own module exposing ``register(subparsers)``; its handler receives the parsed
arguments and returns an exit code. User mistakes (:class:`~qkv.errors.InputError`: flags, configs, shapes, files,
checkpoints) print one line on stderr and exit with status 2; nothing prints a traceback for them. A config's
error names the flag that set the field (``--lr``, not ``TrainConfig.learning_rate``): a subcommand declares
its flags' fields as ``flag_names`` (:func:`qkv.cli.from_config.speak_in_flags`). ``qkv`` alone lists the
commands and says where to start.

Before anything imports PyTorch, :func:`qkv.threads.choose_wait_policy` shortens how long OpenMP's idle threads
spin (unless the user set how they wait), so that a busy machine slows the commands down gracefully.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from qkv._version import __version__
from qkv.cli.from_config import speak_in_flags
from qkv.errors import InputError
from qkv.threads import choose_wait_policy

# Subcommand modules, imported only when the parser is built (they import torch lazily themselves).
SUBCOMMANDS = (
    "qkv.cli.train",
    "qkv.cli.generate",
    "qkv.cli.attend",
    "qkv.cli.models",
    "qkv.cli.tour",
    "qkv.cli.export",
    "qkv.cli.serve",
)


START = (  # what `qkv` alone says after the list of commands (80 columns)
    "New here? Start with `qkv tour`: the article's three parts, with real vectors.\n"
    "Then `qkv train` (your own small LLM), `qkv generate runs/latest`, `qkv attend`.\n"
    "Each command explains itself: qkv COMMAND --help"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qkv",
        description="Self-attention made real: the article's three parts, your own LLM, real models inspected.",
    )
    parser.add_argument("--version", action="version", version=f"qkv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    choose_wait_policy()  # first: libgomp reads it once, when PyTorch is imported
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        print(f"\n{START}")
        return 0
    try:
        code: int = args.handler(args)
    except (InputError, FileNotFoundError, PermissionError, IsADirectoryError) as error:
        # Input errors (configs, shapes, files, checkpoints, flags) already name the problem and the fix.
        message = speak_in_flags(str(error), getattr(args, "flag_names", {}))
        print(f"qkv {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qkv {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
