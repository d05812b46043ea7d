"""``qkv tour`` — the article's three parts on its sentence, with real vectors and computed numbers.

The text is built by :func:`qkv.article.tour.build_tour`; this module only parses options and prints.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tour",
        help="the article, runnable: its three parts with computed numbers",
        description="Walk through the article's three parts on its sentence, with MiniLM's real vectors.",
    )
    parser.add_argument("--quick", action="store_true", help="the short version (what `make demo` runs)")
    parser.add_argument(
        "--part",
        type=int,
        choices=(1, 2, 3),
        metavar="N",
        help="show only part N (1–3); part 3 ends with the final link",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qkv.article.tour import build_tour

    print("\n".join(build_tour(quick=args.quick, part=args.part)))
    return 0
