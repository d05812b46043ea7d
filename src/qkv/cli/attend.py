"""``qkv attend TEXT --model RUN`` — where each word of a text looks, in a model you trained."""

from __future__ import annotations

import argparse
from typing import Any

from qkv.cli.errors import UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("attend", help="show who attends to whom for a text, in a trained model")
    parser.add_argument("text", help="the text to look at")
    parser.add_argument("--model", required=True, metavar="RUN", help="a run directory written by `qkv train`")
    parser.add_argument("--layer", type=int, help="the layer to show (default: the last)")
    parser.add_argument("--top", type=int, default=3, help="how many words to list for each word (default 3)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qkv.inspection.trace import trace
    from qkv.model import Transformer
    from qkv.render.table import word_arrows
    from qkv.text.tokenizers import tokenizer_from_json
    from qkv.training import load_checkpoint, load_weights

    checkpoint = load_checkpoint(args.model)
    layers = checkpoint.model_config.layers
    layer = layers - 1 if args.layer is None else args.layer
    if not 0 <= layer < layers:
        raise UserError(f"--layer {args.layer} is out of range; this model has layers 0…{layers - 1}")
    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    tokenizer = tokenizer_from_json(checkpoint.tokenizer_json)
    result = trace(model, tokenizer, args.text, layers=[layer], model_name=str(args.model))
    print(f'"{args.text}" in {args.model}')
    print("\n".join(word_arrows(result, layer=layer, top=args.top)))
    return 0
