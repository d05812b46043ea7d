"""``qkv generate RUN --prompt TEXT`` — sample text from a model you trained, streamed to the terminal.

``qkv generate --model smollm2 --prompt TEXT`` — the same from a pretrained language model (a known name, a
Hugging Face directory or a Llama-family ``.gguf``). A chat model gets the prompt wrapped in its own chat
template, stops at its end-of-turn token, and only its answer is printed; ``--raw`` sends the prompt as it is
and prints it before the continuation. Pretrained models generate greedily unless ``--temperature`` says
otherwise; ``--dtype`` picks float32 (default), bfloat16 or int4 weights.

``--show-attention [K]`` adds, after the text, one line per generated token: the K earlier tokens (3 by default)
it attends to most, with their weights, averaged over the heads of one layer (``--attention-layer``, the last
by default)::

    'ing'  ⇒ 'Rom' 0.31 · 'O' 0.12 · ':' 0.08

A token's weights are its own row (what it attends to when it is read back in to predict the next token); the
token itself is left out and the weights are not renormalised. The text still streams as it is generated; the
lines follow it, so that they never break it up. A pretrained model generates through qkv's Transformer
rather than its fast twin when attention is shown (the same tokens, more slowly).
"""

from __future__ import annotations

import argparse
import codecs
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qkv.cli.errors import UserError
from qkv.cli.train import parse_seed
from qkv.errors import check_text

if TYPE_CHECKING:
    import torch

    from qkv.generation import SamplingConfig
    from qkv.inspection import AttendedToken
    from qkv.model import Transformer
    from qkv.text.tokenizers import Tokenizer

RUN_TEMPERATURE = 0.8  # sampling, for a model you trained; pretrained models decode greedily by default
SHOWN_TOKENS = 3  # --show-attention without a number


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
    parser.add_argument("--seed", type=parse_seed, help="random seed, for the same text every time")
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
    parser.add_argument(
        "--show-attention",
        nargs="?",
        type=int,
        const=SHOWN_TOKENS,
        metavar="K",
        help=f"after the text, list for each generated token the K earlier tokens it attended to most (default "
        f"{SHOWN_TOKENS}), weights averaged over the heads of one layer (--attention-layer; the token itself left out)",
    )
    parser.add_argument(
        "--attention-layer",
        type=int,
        metavar="N",
        help="with --show-attention: the layer whose heads are averaged (default: the last; -1 counts from the end)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.tokens < 1:
        raise UserError(f"--tokens must be at least 1, got {args.tokens}")
    if args.show_attention is not None and args.show_attention < 1:
        raise UserError(f"--show-attention K must be at least 1, got {args.show_attention}")
    if args.attention_layer is not None and args.show_attention is None:
        raise UserError("--attention-layer chooses the layer --show-attention averages; add --show-attention")
    if args.run is not None and args.model is not None:
        raise UserError(f"give either RUN ({args.run}) or --model ({args.model}), not both")
    if not args.prompt:
        raise UserError("--prompt is empty; give at least one character")
    check_text("--prompt", args.prompt)
    for stop in args.stop:
        if not stop:
            raise UserError('--stop "" would stop before the first token; give the text to stop at')
        check_text("--stop", stop)
    if args.model is not None:
        return run_pretrained(args)
    if args.run is None:
        raise UserError("give a run directory (qkv generate RUN) or a pretrained model (qkv generate --model smollm2)")
    for flag, value in (("--raw", args.raw or None), ("--dtype", args.dtype)):
        if value is not None:
            raise UserError(f"{flag} applies to pretrained models (--model); a run is generated as it was trained")
    import torch

    from qkv.generation import generate
    from qkv.model import Transformer
    from qkv.text.tokenizers import tokenizer_from_json
    from qkv.training import load_checkpoint, load_weights

    sampling = _sampling(args, RUN_TEMPERATURE)
    checkpoint = load_checkpoint(args.run)
    tokenizer = tokenizer_from_json(checkpoint.tokenizer_json)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    ids = _fit_context(tokenizer.encode(args.prompt), checkpoint.model_config.context, args, "this model")
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None

    if args.show_attention is not None:
        _check_layer(args.attention_layer, model)
    sys.stdout.write(args.prompt)
    if args.show_attention is not None:
        _stream_with_attention(model, tokenizer, ids, sampling, generator, args)
        return 0
    tokens = (
        int(token[0]) for token in generate(model, torch.tensor([ids]), args.tokens, sampling, generator=generator)
    )
    write_stream(tokens, tokenizer.decode_bytes, args.stop)
    return 0


def _check_layer(layer: int | None, model: Transformer) -> None:
    count = len(model.blocks)
    if layer is not None and not -count <= layer < count:
        raise UserError(f"--attention-layer {layer} is out of range; this model has layers 0…{count - 1}")


def _stream_with_attention(
    model: Transformer,
    tokenizer: Tokenizer,
    ids: list[int],
    sampling: SamplingConfig,
    generator: torch.Generator | None,
    args: argparse.Namespace,
    stop_ids: tuple[int, ...] = (),
) -> None:
    """Stream the text as :func:`write_stream` does, then print each generated token's attention line."""
    from qkv.inspection import generate_attending

    layer = -1 if args.attention_layer is None else args.attention_layer
    steps: list[AttendedToken] = []

    def tokens() -> Iterator[int]:
        for step in generate_attending(
            model, ids, args.tokens, sampling, generator=generator, layer=layer, stop_ids=stop_ids
        ):
            steps.append(step)
            yield step.token

    write_stream(tokens(), tokenizer.decode_bytes, args.stop)
    if steps:
        heads = model.config.heads
        sys.stdout.write(
            f"\nattention in layer {steps[0].layer} (of 0…{len(model.blocks) - 1}), averaged over its {heads} "
            f"head{'s' * (heads > 1)}: each generated token ⇒ the {args.show_attention} earlier tokens it attends "
            "to most\n"
        )
        sys.stdout.write("".join(line + "\n" for line in attention_lines(steps, tokenizer.pieces, args.show_attention)))


def attention_lines(steps: list[AttendedToken], pieces: Any, top: int) -> list[str]:
    """``'ing'  ⇒ 'Rom' 0.31 · 'O' 0.12 · ':' 0.08``: one line per step, the tokens shown as labels."""
    from qkv.inspection import token_labels

    shown = [token_labels(pieces(list(step.keys))) for step in steps]  # each step's keys, the token itself last
    width = max(len(repr(labels[-1])) for labels in shown)  # the generated tokens, quoted, in one column
    lines = []
    for step, labels in zip(steps, shown, strict=True):
        targets = " · ".join(f"{labels[key]!r} {weight:.2f}" for key, weight in step.top(top))
        lines.append(f"{labels[-1]!r:<{width}}  ⇒ {targets}".rstrip())
    return lines


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
    sampling = _sampling(args, 0.0)
    import torch

    from qkv.pretrained import load

    model = load(args.model, dtype=dtype)
    if not model.is_causal:
        raise UserError(f"{args.model} is an encoder and writes no text; generate with a language model (smollm2)")
    chat = model.chat_template is not None and not args.raw
    prompt = model.chat_prompt(args.prompt) if chat else args.prompt
    ids = _fit_context(model.encode(prompt), model.config.context, args, args.model)
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    if args.show_attention is not None:
        _check_layer(args.attention_layer, model.model)
    if not chat:
        sys.stdout.write(args.prompt)
    if args.show_attention is not None:
        _stream_with_attention(model.model, model.tokenizer, ids, sampling, generator, args, model.stop_ids)
        return 0
    tokens = model.stream(ids, args.tokens, sampling=sampling, generator=generator)
    write_stream(tokens, model.tokenizer.decode_bytes, args.stop)
    return 0


def _sampling(args: argparse.Namespace, default_temperature: float) -> Any:
    """The sampling flags; a run samples at ``RUN_TEMPERATURE`` by default, a chat model answers greedily."""
    from qkv.generation import SamplingConfig

    temperature = default_temperature if args.temperature is None else args.temperature
    return SamplingConfig(temperature=temperature, top_k=args.top_k, top_p=args.top_p)


def _fit_context(ids: list[int], context: int, args: argparse.Namespace, reader: str) -> list[int]:
    """``ids`` if ``reader`` can read them all, else refused or cropped to the last ``context`` (``--long-prompt``)."""
    if len(ids) <= context:
        return ids
    if args.long_prompt == "refuse":
        raise UserError(
            f"the prompt is {len(ids)} tokens and {reader} reads at most {context}; shorten it or pass "
            "--long-prompt crop to keep its last tokens"
        )
    print(f"(prompt cropped to its last {context} of {len(ids)} tokens)", file=sys.stderr)
    return ids[-context:]


def _looks_like_a_path(text: str) -> bool:
    from pathlib import Path

    return Path(text).expanduser().exists()
