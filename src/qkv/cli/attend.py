"""``qkv attend TEXT --model MODEL`` — who attends to whom, in a model you trained or a pretrained one.

    qkv attend "Evan's dog Riley is so hyperactive, she never stops moving" --model minilm --layer 2 --head 0
    qkv attend "…" --model minilm --format html -o riley.html        # every layer and head, in a browser
    qkv attend "…" --model runs/demo --format png -o grid.png        # a heatmap per head, layers × heads

``--model`` is a run directory written by ``qkv train``, a known pretrained name (``minilm``, ``smollm2``), a
Hugging Face model directory or a ``.gguf`` file. ``--format`` (default: from the ``-o`` suffix, else terminal):

- ``terminal``: one head's heatmap (colour on a terminal, shades otherwise), strongest arrows and metrics;
- ``png``/``svg``: with ``--head``, the arc diagram of that head; without, the heatmap grid of every captured
  head (``--layer`` narrows it to one layer);
- ``html``: one self-contained page with a menu of every captured layer and head;
- ``json``: the trace itself (``AttentionTrace.load`` reads it back).

``--layer`` narrows what is captured (json, html, the grid) to one layer; without it every layer is captured,
except for the terminal and the arc diagram, which show the last layer. ``--layer`` and ``--head`` count from the
end when negative (``-1`` is the last), as ``qkv generate --attention-layer`` does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from qkv.cli import progress
from qkv.cli.errors import UserError, resolve_index
from qkv.cli.output import check_writable, emit
from qkv.errors import check_text
from qkv.threads import use_threads

if TYPE_CHECKING:
    from qkv.data.trace import AttentionTrace

FORMATS = ("terminal", "png", "svg", "html", "json")
PAGE_NOTICE_WEIGHTS = 5_000_000  # attention weights from which writing the HTML page takes about a second
SUFFIXES = {".png": "png", ".svg": "svg", ".html": "html", ".htm": "html", ".json": "json", ".txt": "terminal"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "attend",
        help="show who attends to whom for a text, in a trained or pretrained model",
        description="Show who attends to whom for a text: a heatmap and the strongest arrows in the terminal, "
        "or a picture, an HTML page or the trace as JSON.",
    )
    parser.add_argument("text", help="the text to look at")
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="a run directory written by `qkv train`, a pretrained name (minilm, smollm2), a Hugging Face "
        "model directory or a .gguf file",
    )
    parser.add_argument(
        "--layer",
        type=int,
        help="the one layer to capture and show (default: terminal and arcs the last, else all; -1 counts from "
        "the end)",
    )
    parser.add_argument(
        "--head", type=int, help="the head to show (default: the mean of the layer's heads; -1 counts from the end)"
    )
    parser.add_argument("--format", choices=FORMATS, help="what to write (default: from -o's suffix, else terminal)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of the terminal")
    parser.add_argument("--top", type=int, default=10, help="how many arrows to list (terminal; default 10)")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the terminal heatmap: auto (when writing to a terminal), always or never",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Everything that needs no model is checked first, so a mistake costs no loading time.
    if not args.text.strip():
        raise UserError('the text is empty; give at least one word, e.g. qkv attend "Riley is a dog" --model minilm')
    check_text("the text", args.text)
    if args.top < 0:
        raise UserError(f"--top must be 0 or more, got {args.top}")
    if args.output is not None:
        check_writable(Path(args.output))
    kind = _format(args.format, args.output)
    if kind == "png" and args.output is None:
        raise UserError("--format png writes a file: give it with -o FILE.png")
    progress.loading(args.model)
    # One forward pass of one text is small work; a second thread only adds waiting, and on a busy machine
    # PyTorch's idle threads spin against the one that works (BENCHMARKS.md, inspection).
    use_threads(1)
    from qkv.pretrained import load

    loaded = load(args.model)  # a run, a known name, a Hugging Face directory or a .gguf: one handle
    config = loaded.config
    if args.layer is not None:
        args.layer = resolve_index("--layer", args.layer, config.layers, "layers")
    if args.head is not None:
        args.head = resolve_index("--head", args.head, config.heads, "heads")

    from qkv.inspection.trace import trace

    one_head = kind == "terminal" or (kind in ("png", "svg") and args.head is not None)
    layer = config.layers - 1 if args.layer is None and one_head else args.layer
    layers = None if layer is None else [layer]  # --layer narrows the capture; without it, every layer
    tokens, parameters = len(loaded.encode(args.text)), sum(p.numel() for p in loaded.model.parameters())
    progress.forward(f"tracing {tokens} tokens through {args.model}", parameters, tokens)
    result = trace(loaded, args.text, layers=layers)
    if kind == "terminal":
        _terminal(result, args, layer)
    elif kind in ("png", "svg"):
        _picture(result, args, kind, layer)
    elif kind == "html":
        from qkv.render.html import trace_html

        if result.weights.numel() >= PAGE_NOTICE_WEIGHTS:
            progress.say(f"writing the page: {_maps(result)}")
        emit(args.output, trace_html(result, layer=layer, head=args.head))
    else:

        def write_json(file: BinaryIO) -> None:  # streamed: a large trace's JSON is never whole in memory
            result.write_json(file)
            file.write(b"\n")

        emit(args.output, write_json)
    return 0


def _format(given: str | None, output: str | None) -> str:
    if given is not None:
        return given
    if output is None:
        return "terminal"
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(
            f"cannot tell the format of {output} from its suffix; pass --format ({', '.join(FORMATS)}) or name it "
            f"{', '.join(SUFFIXES)}"
        )
    return SUFFIXES[suffix]


def _color(args: argparse.Namespace) -> bool:
    if args.color != "auto":
        return bool(args.color == "always")
    if args.output is not None or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return sys.stdout.isatty()


def _terminal(result: AttentionTrace, args: argparse.Namespace, layer: int | None) -> None:
    from qkv.render.terminal import render_terminal

    width = 100 if args.output is not None else None  # a file has no terminal width
    text = render_terminal(result, layer=layer, head=args.head, top=args.top, width=width, color=_color(args))
    emit(args.output, text + "\n")


def _picture(result: AttentionTrace, args: argparse.Namespace, kind: str, layer: int | None) -> None:
    from qkv.render.figures import arc_diagram, heatmap_grid

    image_format: Literal["png", "svg"] = "svg" if kind == "svg" else "png"
    if args.head is not None:
        progress.say(f"drawing the arcs of layer {layer}, head {args.head}")
        picture = arc_diagram(result, layer=layer, head=args.head, format=image_format)
    else:
        progress.say(f"drawing {_maps(result)}")
        picture = heatmap_grid(result, format=image_format)
    emit(args.output, picture)


def _maps(result: AttentionTrace) -> str:
    """``the heatmaps of 6 layers × 12 heads, 16 tokens each``: what a grid or a page shows."""
    layers, heads, tokens = result.weights.shape[:3]
    return f"the heatmaps of {layers} layers × {heads} heads, {tokens} tokens each"
