"""``qkv train [FILE|DIR] …`` — train a small language model on any text, or resume one."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from qkv.cli.errors import UserError

DEFAULTS = {"preset": "small", "tokenizer": "char"}


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"10m"``, ``"1h30m"`` → seconds."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; write e.g. 90s, 10m or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"the duration must be positive, got {text!r}")
    return total


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_seed(text: str) -> int:
    """A random seed PyTorch takes: a whole number from 0 to 2**64 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"{text} is not a seed; give a whole number from 0 to 2**64 - 1")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a language model on a text file or folder (default: Shakespeare's plays)",
        description="Train a small GPT-style language model. Without FILE, on the embedded Shakespeare corpus.",
    )
    parser.add_argument("corpus", nargs="?", metavar="FILE|DIR", help="a UTF-8 .txt file or a folder of them")
    parser.add_argument("--preset", help="model size: tiny, small (default) or medium")
    parser.add_argument("--context", type=_positive_int, help="context length in tokens (default: the preset's)")
    parser.add_argument("--tokenizer", choices=("char", "bpe"), help="char (default) or byte-level BPE")
    parser.add_argument("--vocab", type=_positive_int, help="BPE vocabulary size (default 2048)")
    parser.add_argument("--steps", type=_positive_int, help="total optimizer steps (default 2000)")
    parser.add_argument("--time", type=parse_duration, help="stop after this wall time, e.g. 10m")
    parser.add_argument("--batch-size", type=_positive_int, help="sequences per step (default 12)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    parser.add_argument("--warmup", type=int, help="warmup steps (default 100)")
    parser.add_argument("--eval-interval", type=_positive_int, help="validate and checkpoint every N steps")
    parser.add_argument("--seed", type=parse_seed, help="random seed (default 1337)")
    parser.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),  # qkv.training.precision.PRECISIONS, without importing torch here
        help="forward-pass arithmetic: bfloat16 mixed precision (weights and optimizer stay float32) or float32; "
        "auto (default) picks bfloat16 where the processor multiplies it natively (AMX, AVX-512 BF16, CUDA)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="run the model through torch.compile: ~1.4x faster steps here, after a first step that compiles "
        "(15-40 s, less with inductor's cache warm); pays off on runs of a few thousand steps",
    )
    parser.add_argument("--out", help="run directory (default runs/NAME-TIMESTAMP; runs/latest points to it)")
    parser.add_argument("--resume", metavar="RUN", help="continue the run in this directory")
    parser.set_defaults(handler=run)


def _contradictions(args: argparse.Namespace) -> None:
    if args.resume:
        fixed = {
            "FILE": args.corpus,
            "--preset": args.preset,
            "--context": args.context,
            "--tokenizer": args.tokenizer,
            "--vocab": args.vocab,
            "--out": args.out,
        }
        given = [flag for flag, value in fixed.items() if value is not None]
        if given:
            raise UserError(
                f"--resume continues a run with its own corpus, model and tokenizer; drop {', '.join(given)}"
            )
    if args.vocab is not None and (args.tokenizer or DEFAULTS["tokenizer"]) != "bpe":
        raise UserError("--vocab sets the BPE vocabulary size; add --tokenizer bpe or drop --vocab")


def _train_config(args: argparse.Namespace, base: Any) -> Any:
    from qkv.training import TrainConfig

    overrides = {
        "steps": args.steps,
        "time_limit": args.time,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "warmup_steps": args.warmup,
        "eval_interval": args.eval_interval,
        "seed": args.seed,
        "precision": args.precision,
        "compile": args.compile,
    }
    data = (base or TrainConfig()).to_dict()
    data.update({k: v for k, v in overrides.items() if v is not None})
    if args.lr is not None:
        data["min_learning_rate"] = min(data["min_learning_rate"], args.lr / 10)
    return TrainConfig.from_dict(data)


def _default_run_dir(corpus_name: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", corpus_name).strip("-") or "run"
    return Path("runs") / f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _point_latest(run_dir: Path) -> None:
    """Make ``runs/latest`` (beside the run) a symlink to it, replaced atomically."""
    latest = run_dir.parent / "latest"
    if latest.exists() and not latest.is_symlink():
        return  # a real directory called "latest": leave it alone
    temporary = run_dir.parent / f".latest-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(run_dir.name)
    os.replace(temporary, latest)


class ProgressLine:
    """One line on stderr, rewritten in place on a terminal, printed every ``every`` steps otherwise."""

    def __init__(self, total: int, every: int) -> None:
        self.total, self.every = total, max(1, every)
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()

    def show(self, event: Any) -> None:
        if event.kind == "step":
            if not self.tty and event.step % self.every:
                return
            remaining = (self.total - event.step) * (event.elapsed_seconds / max(event.step, 1))
            line = (
                f"step {event.step:>6}/{self.total}  loss {event.loss:6.3f}  lr {event.learning_rate:.2e}  "
                f"{event.tokens_per_second / 1000:6.1f}k tok/s  eta {remaining:5.0f}s"
            )
            print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)
        elif event.kind == "validation":
            end = "\n" if self.tty else ""
            print(f"{end}step {event.step:>6}  validation loss {event.loss:.4f}", file=sys.stderr, flush=True)
        elif event.kind == "data_changed":
            print(
                f"warning: the corpus is not the text steps 1-{event.step} were trained on (its tokens' sha256 "
                "differs); training goes on with the new text, so this resume is not exact",
                file=sys.stderr,
                flush=True,
            )


def run(args: argparse.Namespace) -> int:
    _contradictions(args)
    from qkv.training.distributed import setup_distributed
    from qkv.training.lock import check_run_dir

    if args.out:
        check_run_dir(Path(args.out))  # a file, or a path below one: said before any work

    distributed = setup_distributed()
    if not distributed.enabled:
        return _run(args, distributed)
    import torch.distributed as dist

    try:
        code = _run(args, distributed)
        # Leave together: a rank that tore its process group down while another still ran (rank 0 writes the
        # checkpoint and the loss curve after training) could abort in gloo's threads at exit.
        dist.barrier()
        return code
    finally:
        dist.destroy_process_group()


def _run(args: argparse.Namespace, distributed: Any) -> int:
    with contextlib.ExitStack() as held:  # the run directory's lock, once it is known, until the command ends
        return _train(args, distributed, held)


def _train(args: argparse.Namespace, distributed: Any, held: contextlib.ExitStack) -> int:
    import torch

    from qkv.model import Transformer, preset
    from qkv.text import default_corpus, encode_corpus, read_corpus, split_train_validation, train_tokenizer
    from qkv.text.tokenizers import tokenizer_from_json
    from qkv.training import CompileFailed, TrainingDiverged, find_checkpoint, load_checkpoint, load_weights, train
    from qkv.training.lock import hold_run
    from qkv.training.loop import check_step_fits
    from qkv.training.precision import resolve_precision

    def say(text: str) -> None:
        if distributed.is_main:
            print(text, file=sys.stderr)

    resume = None
    if args.resume:
        run_dir = Path(args.resume)
        if run_dir.name == "checkpoint":
            run_dir = run_dir.parent
        find_checkpoint(args.resume)  # there is one, before the directory is held
        if distributed.is_main:  # held before reading, so that no other training replaces what is read
            held.enter_context(hold_run(run_dir))
        resume = load_checkpoint(args.resume)
        model_config = resume.model_config
        tokenizer = tokenizer_from_json(resume.tokenizer_json)
        source = _read_source(run_dir)
        corpus = read_corpus(source) if source else default_corpus()
        config = _train_config(args, resume.train_config)
        if config.steps <= resume.progress.step and config.time_limit is None:
            raise UserError(
                f"{args.resume} is already at step {resume.progress.step}; pass --steps above it to train more"
            )
    else:
        corpus = read_corpus(args.corpus) if args.corpus else default_corpus()
        kind: Any = args.tokenizer or DEFAULTS["tokenizer"]
        tokenizer = train_tokenizer(kind, corpus.text, args.vocab)
        overrides: dict[str, Any] = {"vocab_size": tokenizer.vocab_size}
        if args.context:
            overrides["context"] = args.context
        model_config = preset(args.preset or DEFAULTS["preset"], **overrides)
        config = _train_config(args, None)
        run_dir = Path(args.out) if args.out else _default_run_dir(corpus.name)
        if distributed.enabled and not args.out:
            raise UserError("under torchrun, name the run directory with --out (every process must agree on it)")
        if distributed.is_main:
            held.enter_context(hold_run(run_dir))
        if (run_dir / "checkpoint").exists():
            raise UserError(f"{run_dir} already holds a checkpoint; continue it with --resume {run_dir} or pick --out")

    ids = torch.from_numpy(encode_corpus(tokenizer, corpus.text).astype("int64"))
    train_ids, validation_ids = split_train_validation(ids, context=model_config.context)
    torch.manual_seed(config.seed)
    model = Transformer(model_config).to(distributed.device())  # a GPU when there is one
    if resume is not None:
        load_weights(model, resume)
    check_step_fits(model_config, config.batch_size, next(model.parameters()).device, distributed.world_size)
    parameters = sum(p.numel() for p in model.parameters())
    if resume is None:  # said once every check passed, so that a mistake is reported on one line
        say(f"corpus: {corpus.name} ({len(corpus.text):,} characters)")
    say(
        f"model: {model_config.layers} layers, {model_config.heads} heads, width {model_config.width}, "
        f"context {model_config.context}, vocab {model_config.vocab_size} ({parameters / 1e6:.2f}M parameters)"
        + (f"; {distributed.world_size} processes" if distributed.enabled else "")
    )
    precision = resolve_precision(config.precision, next(model.parameters()).device)
    say(
        "precision: bfloat16 products, float32 weights and optimizer (--precision float32 to turn off)"
        if precision == "bfloat16"
        else "precision: float32"
    )
    if config.compile:
        say("torch.compile: the first step compiles the model (cached on disk for later runs)")
    if not args.resume and distributed.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "source.txt").write_text(str(Path(args.corpus).resolve()) if args.corpus else "", encoding="utf-8")
    progress = ProgressLine(config.steps, max(1, config.eval_interval // 5))
    try:
        result = train(
            model,
            model_config=model_config,
            tokenizer_json=tokenizer.to_json(),
            train_ids=train_ids,
            validation_ids=validation_ids,
            config=config,
            run_dir=run_dir,
            resume=resume,
            on_event=progress.show,
            distributed=distributed,
        )
    except (TrainingDiverged, CompileFailed) as error:
        if progress.tty:
            say("")  # end the progress line rewritten in place
        raise UserError(str(error)) from None  # its message names the step, the checkpoint and the fix
    if not distributed.is_main:
        return 0
    from qkv.render.loss_curve import write_loss_curve

    curve = write_loss_curve(
        run_dir / "loss.png",
        result.progress.train_losses,
        result.progress.validation_losses,
        title=f"{run_dir.name}: {model_config.layers} layers, width {model_config.width}",
    )
    if run_dir.parent.name == "runs":  # the default runs/NAME-TIME, or a --out kept under a runs/ folder
        _point_latest(run_dir)
    p = result.progress
    validation = p.validation_losses[-1][1] if p.validation_losses else float("nan")
    reason = {"steps": "reached the step count", "time": "reached the time limit", "interrupt": "interrupted"}
    print(
        f"\ndone ({reason[result.stopped_by]}): step {p.step}, {p.elapsed_seconds:.1f} s, "
        f"{p.tokens_seen:,} tokens, train loss {p.train_losses[-1][1] if p.train_losses else float('nan'):.4f}, "
        f"validation loss {validation:.4f}\ncheckpoint: {result.checkpoint}\nloss curve: {curve}\n"
        f'try: qkv generate {run_dir} --prompt "ROMEO:"',
        file=sys.stderr,
    )
    return 130 if result.stopped_by == "interrupt" else 0


def _read_source(run_dir: Path) -> str | None:
    """The corpus path a run was trained on (``source.txt``), or ``None`` for the embedded default."""
    path = run_dir / "source.txt"
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; it should hold the path of the run's corpus") from None
    if text and not Path(text).exists():
        raise UserError(f"{run_dir} was trained on {text}, which no longer exists; resuming needs the same corpus")
    return text or None
