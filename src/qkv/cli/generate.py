"""``qkv generate RUN --prompt TEXT`` — sample text from a model you trained, streamed to the terminal."""

from __future__ import annotations

import argparse
import codecs
import sys
from typing import Any

from qkv.cli.errors import UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("generate", help="generate text from a trained model (a run directory)")
    parser.add_argument("run", metavar="RUN", help="a run or checkpoint directory written by `qkv train`")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--tokens", type=int, default=300, help="how many tokens to generate (default 300)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, help="sample only among the k likeliest tokens")
    parser.add_argument("--top-p", type=float, help="sample only among the likeliest tokens covering p")
    parser.add_argument("--seed", type=int, help="random seed, for the same text every time")
    parser.add_argument("--stop", action="append", default=[], help="stop once this text appears (repeatable)")
    parser.add_argument(
        "--long-prompt",
        choices=("refuse", "crop"),
        default="refuse",
        help="a prompt longer than the context: refuse (default) or keep its last tokens",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.tokens < 1:
        raise UserError(f"--tokens must be at least 1, got {args.tokens}")
    import torch

    from qkv.generation import SamplingConfig, generate
    from qkv.model import Transformer
    from qkv.text.tokenizers import tokenizer_from_json
    from qkv.training import load_checkpoint, load_weights

    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    checkpoint = load_checkpoint(args.run)
    tokenizer = tokenizer_from_json(checkpoint.tokenizer_json)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    if not args.prompt:
        raise UserError("--prompt is empty; give at least one character to continue")
    ids = tokenizer.encode(args.prompt)
    context = checkpoint.model_config.context
    if len(ids) > context:
        if args.long_prompt == "refuse":
            raise UserError(
                f"the prompt is {len(ids)} tokens and this model's context holds {context}; shorten it or pass "
                "--long-prompt crop to keep its last tokens"
            )
        print(f"(prompt cropped to its last {context} of {len(ids)} tokens)", file=sys.stderr)
        ids = ids[-context:]
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    produced, written = "", 0  # the generated text, and how much of it is on stdout
    sys.stdout.write(args.prompt)
    for token in generate(model, torch.tensor([ids]), args.tokens, sampling, generator=generator):
        produced += decoder.decode(tokenizer.decode_bytes([int(token[0])]))
        stop_at = min((i for s in args.stop if (i := produced.find(s)) >= 0), default=-1)
        if stop_at >= 0:
            sys.stdout.write(produced[written:stop_at])
            break
        # Hold back an ending that may be the start of a stop string, so that no part of one is printed.
        held = max((k for s in args.stop for k in range(1, len(s)) if produced.endswith(s[:k])), default=0)
        sys.stdout.write(produced[written : len(produced) - held])
        written = len(produced) - held
        sys.stdout.flush()
    else:
        sys.stdout.write(produced[written:] + decoder.decode(b"", final=True))
    sys.stdout.write("\n")
    return 0
