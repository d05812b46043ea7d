"""``qkv tour`` — placeholder registration; the tour is written in qkv.article.tour."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("tour", help="the article, runnable: its three parts with computed numbers")
    parser.add_argument("--quick", action="store_true", help="a short version")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
