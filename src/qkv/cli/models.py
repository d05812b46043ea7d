"""``qkv models`` — the pretrained models qkv knows: what each is, its size, where it comes from, whether it is here.

Instant: it imports neither PyTorch nor the model packages (they are located with ``importlib.util.find_spec``).
"""

from __future__ import annotations

import argparse
from typing import Any

from qkv.cli.output import fold_path, wrap


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the pretrained models qkv knows, with sizes, sources and whether they are installed",
        description="The pretrained models qkv loads by name (qkv attend --model NAME, qkv generate --model NAME, "
        "qkv.load(NAME)). Any Hugging Face directory (BERT, GPT-2, Llama) or Llama-family .gguf file also loads "
        "by its path.",
    )
    parser.set_defaults(handler=run)


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    from qkv.data.registry import available

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
    return 0
