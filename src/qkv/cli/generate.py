"""``qkv generate MODEL --prompt TEXT`` — generate text from any model, streamed to the terminal.

MODEL (or ``--model MODEL``, as ``qkv attend`` takes it) is a run directory written by ``qkv train``, a known
name (``smollm2``; see ``qkv models``), a Hugging Face directory or a Llama-family ``.gguf``: all load through
:func:`qkv.load` into the same handle, and generate the same way. What differs is the model's own:

- a **chat model** (one whose files carry a chat template, like SmolLM2) gets the prompt wrapped in that
  template, stops at its end-of-turn token, and only its answer is printed; it answers greedily unless
  ``--temperature`` says otherwise. ``--raw`` sends the prompt as it is and prints it before the continuation.
- **every other model** (a run, GPT-2) continues the prompt, printed first, sampling at temperature
  ``CONTINUE_TEMPERATURE`` (0.8) unless ``--temperature`` says otherwise: greedy continuation of free text
  soon loops.

``--dtype`` picks float32 (default), bfloat16 or int4 weights (int4: a GGUF's own 4-bit blocks).

``--show-attention [K]`` adds, after the text, one line per generated token: the K earlier tokens (3 by default)
it attends to most, with their weights, averaged over the heads of one layer (``--attention-layer``, the last
by default; ``-1`` counts from the end, as ``qkv attend --layer`` does)::

    'ing'  ⇒ 'Rom' 0.31 · 'O' 0.12 · ':' 0.08

A token's weights are its own row (what it attends to when it is read back in to predict the next token); the
token itself is left out and the weights are not renormalised. The text still streams as it is generated; the
lines follow it, so that they never break it up. A model generates through qkv's Transformer rather than its
fast twin when attention is shown (the same tokens, more slowly). Lines longer than the terminal wrap under
their first target.

A text cut short by ``--tokens`` (rather than ended by the model or a ``--stop`` string) is followed by a line
on stderr saying so: ``[… stopped at --tokens 300]``.
"""

from __future__ import annotations

import argparse
import codecs
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from qkv.cli import progress
from qkv.cli.errors import UserError, resolve_index
from qkv.cli.output import columns, wrap
from qkv.cli.train import parse_seed
from qkv.errors import check_text
from qkv.threads import decode_threads, use_threads, user_chose_threads

if TYPE_CHECKING:
    import torch

    from qkv.generation import SamplingConfig
    from qkv.inspection import AttendedToken
    from qkv.pretrained import Model

CONTINUE_TEMPERATURE = 0.8  # the default for a model that continues text; a chat model answers greedily
SHOWN_TOKENS = 3  # --show-attention without a number
# The sampling flags, named in SamplingConfig's errors (qkv.cli.from_config.speak_in_flags).
FLAG_NAMES = {
    "SamplingConfig.temperature": "--temperature",
    "SamplingConfig.top_k": "--top-k",
    "SamplingConfig.top_p": "--top-p",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate text from a model: a run you trained, a known name, a directory or a .gguf",
        description="Generate text from a model, streamed as it comes: a run `qkv train` wrote, a known name "
        "(smollm2), a Hugging Face directory or a .gguf. A chat model answers the prompt in its own template "
        "(greedily unless --temperature says otherwise); any other model continues it, sampling at temperature "
        f"{CONTINUE_TEMPERATURE}. --show-attention adds what each generated token attended to.",
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        help="a run directory written by `qkv train`, a known name (smollm2; see `qkv models`), a Hugging Face "
        "directory or a .gguf file",
    )
    parser.add_argument(
        "--model", dest="model_option", metavar="MODEL", help="the same as MODEL, as `qkv attend` takes it"
    )
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--tokens", type=int, default=300, help="how many tokens to generate (default 300)")
    parser.add_argument(
        "--temperature",
        type=float,
        help=f"0 is greedy (default: 0 for a chat model, {CONTINUE_TEMPERATURE} for any other)",
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
        help="send the prompt as it is, not wrapped in a chat model's template (and print it first)",
    )
    parser.add_argument(
        "--dtype",
        metavar="DTYPE",
        help="float32 (default), bfloat16, or int4 (a GGUF's own 4-bit blocks: fastest, least memory)",
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
    parser.set_defaults(handler=run, flag_names=FLAG_NAMES)


def run(args: argparse.Namespace) -> int:
    """Every check on the flags first (a mistake costs no loading time), then load, then stream the text."""
    name = _model_name(args)
    if args.tokens < 1:
        raise UserError(f"--tokens must be at least 1, got {args.tokens}")
    if args.show_attention is not None and args.show_attention < 1:
        raise UserError(f"--show-attention K must be at least 1, got {args.show_attention}")
    if args.attention_layer is not None and args.show_attention is None:
        raise UserError("--attention-layer chooses the layer --show-attention averages; add --show-attention")
    if not args.prompt:
        raise UserError("--prompt is empty; give at least one character")
    check_text("--prompt", args.prompt)
    for stop in args.stop:
        if not stop:
            raise UserError('--stop "" would stop before the first token; give the text to stop at')
        check_text("--stop", stop)
    from qkv.data.registry import PACKAGED
    from qkv.pretrained.lowbit import WEIGHT_FORMATS

    dtype = args.dtype or "float32"
    if dtype not in WEIGHT_FORMATS:
        raise UserError(f"--dtype {dtype!r} is not one of {', '.join(WEIGHT_FORMATS)}")
    known = PACKAGED.get(name)
    if known is not None and known.kind != "causal":
        language_models = ", ".join(other for other, entry in PACKAGED.items() if entry.kind == "causal")
        raise UserError(
            f"{name} is a sentence encoder and writes no text; generate with a language model "
            f"({language_models}), or look inside it with: qkv attend TEXT --model {name}"
        )
    _sampling(args, 0.0)  # the sampling flags are checked now; the default temperature depends on the model
    progress.loading(name)
    import torch

    from qkv.pretrained import load

    model = load(name, dtype=dtype)
    if not model.is_causal:
        raise UserError(f"{name} is an encoder and writes no text; generate with a language model (smollm2)")
    if not user_chose_threads():  # (decode_threads samples the machine's load for 0.1 s: only when it decides)
        parameters = model.config.parameter_count()  # low-bit layers hold buffers, not parameters: by the config
        use_threads(decode_threads(parameters))  # one thread for a small model, the idle cores for a large one
    chat = model.chat_template is not None and not args.raw
    sampling = _sampling(args, 0.0 if model.chat_template is not None else CONTINUE_TEMPERATURE)
    prompt = model.chat_prompt(args.prompt) if chat else args.prompt
    ids = _fit_context(model.encode(prompt), model.config.context, args, name)
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    layer = model.config.layers - 1
    if args.attention_layer is not None:
        layer = resolve_index("--attention-layer", args.attention_layer, model.config.layers, "layers")
    progress.forward(f"reading the prompt ({len(ids)} tokens)", parameters, len(ids))
    if not chat:
        sys.stdout.write(args.prompt)
    if args.show_attention is not None:
        _stream_with_attention(model, ids, sampling, generator, args, layer)
        return 0
    produced = _Count(model.stream(ids, args.tokens, sampling=sampling, generator=generator))
    _say_if_cut(write_stream(produced, model.tokenizer.decode_bytes, args.stop), produced.count, args.tokens)
    return 0


class _Count:
    """The tokens of an iterator, counted as they pass."""

    def __init__(self, tokens: Iterator[int]) -> None:
        self.tokens, self.count = tokens, 0

    def __iter__(self) -> Iterator[int]:
        for token in self.tokens:
            self.count += 1
            yield token


def _say_if_cut(stopped: bool, produced: int, limit: int) -> None:
    """Mark a text that ``--tokens`` cut (every token used, no stop string or end-of-text reached)."""
    if not stopped and produced >= limit:
        sys.stdout.flush()
        print(f"[… stopped at --tokens {limit}]", file=sys.stderr)


def _model_name(args: argparse.Namespace) -> str:
    """The one model, given as MODEL or as --model."""
    if args.model is not None and args.model_option is not None:
        raise UserError(f"give the model once: MODEL ({args.model}) or --model ({args.model_option}), not both")
    name = args.model if args.model is not None else args.model_option
    if name is None:
        raise UserError(
            "give a model: qkv generate runs/NAME (a run `qkv train` wrote) or qkv generate --model smollm2"
        )
    return str(name)


def _stream_with_attention(
    model: Model,
    ids: list[int],
    sampling: SamplingConfig,
    generator: torch.Generator | None,
    args: argparse.Namespace,
    layer: int,
) -> None:
    """Stream the text as :func:`write_stream` does, then print each generated token's attention line."""
    from qkv.inspection import generate_attending

    steps: list[AttendedToken] = []

    def tokens() -> Iterator[int]:
        for step in generate_attending(
            model.model, ids, args.tokens, sampling, generator=generator, layer=layer, stop_ids=model.stop_ids
        ):
            steps.append(step)
            yield step.token

    _say_if_cut(write_stream(tokens(), model.tokenizer.decode_bytes, args.stop), len(steps), args.tokens)
    if steps:
        heads = model.config.heads
        header = (
            f"attention in layer {steps[0].layer} (of 0…{model.config.layers - 1}), averaged over its {heads} "
            f"head{'s' * (heads > 1)}:",
            f"each generated token ⇒ the {args.show_attention} earlier tokens it attends to most",
        )
        sys.stdout.write("\n" + "".join(wrap(line) + "\n" for line in header))
        sys.stdout.write(
            "".join(line + "\n" for line in attention_lines(steps, model.tokenizer.pieces, args.show_attention))
        )


def attention_lines(steps: list[AttendedToken], pieces: Any, top: int, width: int | None = None) -> list[str]:
    """``'ing'  ⇒ 'Rom' 0.31 · 'O' 0.12 · ':' 0.08``: a line per step, the tokens shown as labels.

    A step whose targets do not fit ``width`` (the terminal's) goes on under its first target, one target never
    split across lines; a token too long for any line is shortened with ``…``."""
    from qkv.inspection import token_labels

    width = width or columns() - 1
    shown = [token_labels(pieces(list(step.keys))) for step in steps]  # each step's keys, the token itself last
    column = min(max(len(repr(labels[-1])) for labels in shown), width // 3)  # generated tokens, in one column
    lines = []
    for step, labels in zip(steps, shown, strict=True):
        head = _fit(repr(labels[-1]), column).ljust(column) + "  ⇒ "
        targets = [_fit(f"{labels[key]!r} {weight:.2f}", width - len(head)) for key, weight in step.top(top)]
        line = head
        for i, target in enumerate(targets):
            joined = (" · " if i else "") + target
            if i and len(line) + len(joined) > width:
                lines.append(line.rstrip())
                line, joined = " " * len(head), target
            line += joined
        lines.append(line.rstrip())
    return lines


def _fit(text: str, width: int) -> str:
    """``text``, cut to ``width`` characters with a final ``…`` when it is longer."""
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def write_stream(tokens: Iterable[int], to_bytes: Any, stops: list[str]) -> bool:
    """Print the text of ``tokens`` as they come, ending just before the first of ``stops`` to appear; whether one
    did."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    produced, written = "", 0  # the generated text, and how much of it is on stdout
    stopped = False
    for token in tokens:
        produced += decoder.decode(to_bytes([token]))
        stop_at = min((i for s in stops if (i := produced.find(s)) >= 0), default=-1)
        if stop_at >= 0:
            sys.stdout.write(produced[written:stop_at])
            stopped = True
            break
        # Hold back an ending that may be the start of a stop string, so that no part of one is printed.
        held = max((k for s in stops for k in range(1, len(s)) if produced.endswith(s[:k])), default=0)
        sys.stdout.write(produced[written : len(produced) - held])
        written = len(produced) - held
        sys.stdout.flush()
    else:
        sys.stdout.write(produced[written:] + decoder.decode(b"", final=True))
    sys.stdout.write("\n")
    return stopped


def _sampling(args: argparse.Namespace, default_temperature: float) -> Any:
    """The sampling flags, at ``default_temperature`` unless ``--temperature`` is given."""
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
