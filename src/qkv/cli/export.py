"""``qkv export RUN --to hf DIR`` / ``--to gguf FILE`` — a model you trained, in a format other tools load.

``hf`` writes a Hugging Face directory that ``transformers`` loads with its stock classes (GPT2LMHeadModel for
the presets, LlamaForCausalLM for a Llama-style run); ``gguf`` writes one file for llama.cpp (Llama-style runs).
A config the format cannot express is refused with one line naming the field; nothing is written until the
export is complete, and an existing target is only replaced with ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FORMATS = ("hf", "gguf")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a trained run as a Hugging Face directory (--to hf) or a GGUF file for llama.cpp (--to gguf)",
        description="Write the latest checkpoint of RUN in an open format: a Hugging Face directory (config.json, "
        "model.safetensors, tokenizer files) that transformers loads with GPT2LMHeadModel or LlamaForCausalLM, or "
        "a GGUF file for llama.cpp's llama architecture (Llama-style runs).",
    )
    parser.add_argument("run", metavar="RUN", help="a run or checkpoint directory written by `qkv train`")
    parser.add_argument("--to", required=True, choices=FORMATS, help="hf (a directory) or gguf (one file)")
    parser.add_argument("target", metavar="TARGET", help="the directory (hf) or .gguf file (gguf) to write")
    parser.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="weights' precision (default float32)"
    )
    parser.add_argument("--force", action="store_true", help="replace TARGET if it exists")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qkv.export.gguf import export_gguf
    from qkv.export.hf import export_hf
    from qkv.export.run import read_run
    from qkv.export.support import ARCHITECTURES, hf_family
    from qkv.export.target import check_target

    directory = args.to == "hf"
    target = Path(args.target).expanduser()
    check_target(target, directory=directory, force=args.force)  # before the run is read: a bad target costs nothing
    run = read_run(args.run)
    if directory:
        written = export_hf(run, target, dtype=args.dtype, force=args.force)
        kind = ARCHITECTURES[hf_family(run.config)]
    else:
        written = export_gguf(run, target, dtype=args.dtype, force=args.force)
        kind = "GGUF, llama architecture"
    tied = run.config.tie_embeddings
    parameters = sum(tensor.numel() for name, tensor in run.tensors.items() if not (tied and name == "lm_head.weight"))
    print(
        f"wrote {written} ({kind}, {parameters:,} parameters, {args.dtype}, {run.tokenizer.kind} tokenizer "
        f"of {run.tokenizer.vocab_size} tokens)"
    )
    return 0
