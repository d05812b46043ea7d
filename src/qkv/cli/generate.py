"""``qkv generate RUN --prompt TEXT`` — sample text from a model you trained, streamed to the terminal.

``qkv generate --model smollm2 --prompt TEXT`` — the same from a pretrained language model (a known name, a
Hugging Face directory or a Llama-family ``.gguf``). A chat model gets the prompt wrapped in its own chat
template, stops at its end-of-turn token, and only its answer is printed; ``--raw`` sends the prompt as it is
and prints it before the continuation. Pretrained models generate greedily unless ``--temperature`` says
otherwise; ``--dtype`` picks float32 (default), bfloat16 or int4 weights.
"""

from __future__ import annotations

import argparse
import codecs
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qkv.cli.errors import UserError

if TYPE_CHECKING:
    pass

RUN_TEMPERATURE = 0.8  # sampling, for a model you trained; pretrained models decode greedily by default


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate text from a trained model (a run directory) or a pretrained one (--model)"
    )
    parser.add_argument("run", metavar="RUN", nargs="?", help="a run or checkpoint directory written by `qkv train`")
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="a pretrained language model instead of RUN: a known name (smollm2; see `qkv models`), a Hugging "
        "Face directory or a .gguf file",
    )
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--tokens", type=int, default=300, help="how many tokens to generate (default 300)")
    parser.add_argument(
        "--temperature",
        type=float,
        help=f"0 is greedy (default {RUN_TEMPERATURE} for RUN, 0 for --model)",
    )
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
    parser.add_argument(
        "--raw",
        action="store_true",
        help="with --model: send the prompt as it is, not wrapped in the chat template (and print it first)",
    )
    parser.add_argument(
        "--dtype",
        metavar="DTYPE",
        help="with --model: float32 (default), bfloat16, or int4 (a GGUF's own 4-bit blocks: fastest, least memory)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.tokens < 1:
        raise UserError(f"--tokens must be at least 1, got {args.tokens}")
    if args.run is not None and args.model is not None:
        raise UserError(f"give either RUN ({args.run}) or --model ({args.model}), not both")
    if args.model is not None:
        return run_pretrained(args)
    if args.run is None:
        raise UserError("give a run directory (qkv generate RUN) or a pretrained model (qkv generate --model smollm2)")
    for flag, value in (("--raw", args.raw or None), ("--dtype", args.dtype)):
        if value is not None:
            raise UserError(f"{flag} applies to pretrained models (--model); a run is generated as it was trained")
    import torch

    from qkv.generation import SamplingConfig, generate
    from qkv.model import Transformer
    from qkv.text.tokenizers import tokenizer_from_json
    from qkv.training import load_checkpoint, load_weights

    temperature = RUN_TEMPERATURE if args.temperature is None else args.temperature
    sampling = SamplingConfig(temperature=temperature, top_k=args.top_k, top_p=args.top_p)
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

    sys.stdout.write(args.prompt)
    tokens = (
        int(token[0]) for token in generate(model, torch.tensor([ids]), args.tokens, sampling, generator=generator)
    )
    write_stream(tokens, tokenizer.decode_bytes, args.stop)
    return 0


def write_stream(tokens: Iterator[int], to_bytes: Any, stops: list[str]) -> None:
    """Print the text of ``tokens`` as they come, ending just before the first of ``stops`` to appear."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    produced, written = "", 0  # the generated text, and how much of it is on stdout
    for token in tokens:
        produced += decoder.decode(to_bytes([token]))
        stop_at = min((i for s in stops if (i := produced.find(s)) >= 0), default=-1)
        if stop_at >= 0:
            sys.stdout.write(produced[written:stop_at])
            break
        # Hold back an ending that may be the start of a stop string, so that no part of one is printed.
        held = max((k for s in stops for k in range(1, len(s)) if produced.endswith(s[:k])), default=0)
        sys.stdout.write(produced[written : len(produced) - held])
        written = len(produced) - held
        sys.stdout.flush()
    else:
        sys.stdout.write(produced[written:] + decoder.decode(b"", final=True))
    sys.stdout.write("\n")


def run_pretrained(args: argparse.Namespace) -> int:
    """``qkv generate --model MODEL``: every check on the flags first, then load, then stream the answer."""
    from qkv.pretrained.lowbit import PRECISIONS
    from qkv.pretrained.registry import PACKAGED

    if not args.prompt:
        raise UserError("--prompt is empty; give at least one character")
    dtype = args.dtype or "float32"
    if dtype not in PRECISIONS:
        raise UserError(f"--dtype {dtype!r} is not one of {', '.join(PRECISIONS)}")
    known = PACKAGED.get(args.model)
    if known is not None and known.kind != "causal":
        language_models = ", ".join(name for name, entry in PACKAGED.items() if entry.kind == "causal")
        raise UserError(
            f"{args.model} is a sentence encoder and writes no text; generate with a language model "
            f"({language_models}), or look inside it with: qkv attend TEXT --model {args.model}"
        )
    if known is None and not _looks_like_a_path(args.model):
        raise UserError(
            f"unknown model {args.model!r}; known models: {', '.join(PACKAGED)} (see qkv models), or give the "
            "path of a Hugging Face directory or a .gguf file"
        )
    sampling = _sampling(args)
    import torch

    from qkv.pretrained import load

    model = load(args.model, dtype=dtype)
    if not model.is_causal:
        raise UserError(f"{args.model} is an encoder and writes no text; generate with a language model (smollm2)")
    chat = model.chat_template is not None and not args.raw
    prompt = model.chat_prompt(args.prompt) if chat else args.prompt
    ids = model.encode(prompt)
    context = model.config.context
    if len(ids) > context:
        if args.long_prompt == "refuse":
            raise UserError(
                f"the prompt is {len(ids)} tokens and {args.model} reads at most {context}; shorten it or pass "
                "--long-prompt crop to keep its last tokens"
            )
        print(f"(prompt cropped to its last {context} of {len(ids)} tokens)", file=sys.stderr)
        ids = ids[-context:]
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    if not chat:
        sys.stdout.write(args.prompt)
    tokens = model.stream(ids, args.tokens, sampling=sampling, generator=generator)
    write_stream(tokens, model.tokenizer.decode_bytes, args.stop)
    return 0


def _sampling(args: argparse.Namespace) -> Any:
    from qkv.generation import SamplingConfig

    temperature = 0.0 if args.temperature is None else args.temperature
    return SamplingConfig(temperature=temperature, top_k=args.top_k, top_p=args.top_p)


def _looks_like_a_path(text: str) -> bool:
    from pathlib import Path

    return Path(text).expanduser().exists()
