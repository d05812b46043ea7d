"""``qkv train [FILE|DIR] …`` — train a small language model on any text, or resume one.

The training flags are :class:`~qkv.training.config.TrainConfig`'s fields and ``--context`` is
:class:`~qkv.model.config.TransformerConfig`'s: their types, defaults and help come from the configs
(:mod:`qkv.cli.from_config`), and an invalid value is reported by its flag. ``--preset`` takes the causal
presets and families of :mod:`qkv.model.config`: an encoder (BERT) predicts no next token, so it is refused.

``--resume RUN`` continues a run exactly: its weights, optimizer, batches and learning-rate schedule. A flag given
with it replaces the run's value and is reported; ``--steps`` moves the end of the run but not the schedule, so
the steps the run had planned are the same and any beyond them train at the schedule's floor.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from qkv.cli.errors import UserError
from qkv.cli.from_config import Flag, add_config_flags, config_values
from qkv.cli.output import columns, wrap
from qkv.training.compiling import AUTO_COMPILE_STEPS, inductor_cache_dir, resolve_compile

DEFAULT_PRESET = "small"
DEFAULT_TOKENIZER = "char"
BPE_NOTICE_CHARACTERS = 2_000_000  # a corpus from which training a BPE tokenizer (and encoding) takes a second


def causal_presets() -> dict[str, Any]:
    """The presets and families ``qkv train`` trains: those that predict the next token (not BERT)."""
    from qkv.model.config import FAMILIES, PRESETS

    return {name: c for name, c in {**PRESETS, **FAMILIES}.items() if c.causal and c.lm_head}


WATCH_DEFAULT = "\0article"  # --watch without TEXT: qkv.training.watch.DEFAULT_TEXT (imported with torch, later)


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


# TrainConfig's fields that are flags; the rest (AdamW's betas, decay, clipping …) keep their defaults.
TRAIN_FLAGS = (
    Flag("steps", metavar="N"),
    Flag(
        "time_limit",
        flag="--time",
        type=parse_duration,
        metavar="DURATION",
        help="stop after this wall time, e.g. 90s, 10m or 1h30m, or at --steps, whichever comes first",
    ),
    Flag("batch_size", metavar="N"),
    Flag("learning_rate", flag="--lr", metavar="LR"),
    Flag("warmup_steps", flag="--warmup", metavar="N"),
    Flag("eval_interval", metavar="N"),
    Flag("seed", metavar="N", type=parse_seed),
    Flag("precision"),
    Flag("compile", default=f"on for runs of {AUTO_COMPILE_STEPS:,} steps or more, where it can compile"),
)
MODEL_FLAGS = (Flag("context", metavar="T", default="the preset's"),)


def register(subparsers: Any) -> None:
    from qkv.model.config import PRESETS, TransformerConfig
    from qkv.training.config import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="train a language model on a text file or folder (default: Shakespeare's plays)",
        description="Train a small GPT-style language model on a UTF-8 text file or a folder of .txt files "
        "(without FILE, on Shakespeare's plays), or continue a run with --resume. Each run is a directory "
        "(default runs/NAME-TIME) holding its checkpoint, loss curve and the corpus's path.",
        epilog="--resume RUN continues the run exactly; a training flag given with it replaces the run's value "
        "(and says so). --steps moves the end, not the learning-rate schedule: steps past the run's own end "
        "train at the schedule's floor.",
    )
    parser.add_argument("corpus", nargs="?", metavar="FILE|DIR", help="a UTF-8 .txt file or a folder of them")
    model = parser.add_argument_group("model")
    sizes = [name for name in causal_presets() if name in PRESETS]
    families = [name for name in causal_presets() if name not in PRESETS]
    model.add_argument(
        "--preset",
        metavar="NAME",
        help=f"the model's shape: {', '.join(sizes)}; or a family at its template size: {', '.join(families)} "
        f"(default: {DEFAULT_PRESET})",
    )
    names = add_config_flags(model, TransformerConfig, MODEL_FLAGS)
    tokens = parser.add_argument_group("tokenizer")
    tokens.add_argument(
        "--tokenizer",
        choices=("char", "bpe"),
        help=f"char: one token per character; bpe: byte-level BPE (default: {DEFAULT_TOKENIZER})",
    )
    tokens.add_argument("--vocab", type=_positive_int, metavar="N", help="BPE vocabulary size (default: 2048)")
    training = parser.add_argument_group("training")
    names |= add_config_flags(training, TrainConfig, TRAIN_FLAGS)
    run_options = parser.add_argument_group("run")
    run_options.add_argument(
        "--out", metavar="DIR", help="run directory (default runs/NAME-TIME; runs/latest points to it)"
    )
    run_options.add_argument(
        "--watch",
        nargs="?",
        const=WATCH_DEFAULT,
        metavar="TEXT",
        help="store TEXT's attention (every head) at the start and at each validation, beside the checkpoint, for "
        "qkv serve's Training view (default TEXT: the article's sentence); a resumed run keeps watching its text",
    )
    run_options.add_argument("--resume", metavar="RUN", help="continue the run in this directory")
    run_options.add_argument(
        "--shard",
        action="store_true",
        help="under torchrun, shard the model, its gradients and optimizer over the processes (FSDP2) instead of "
        "a whole copy in each: for a model too big for one device; checkpoints stay whole",
    )
    parser.set_defaults(handler=run, flag_names=names)


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
    if args.corpus is None and args.watch not in (None, WATCH_DEFAULT) and Path(args.watch).is_file():
        raise UserError(f"--watch took {args.watch!r} as the text to watch; put FILE before --watch, or --watch=TEXT")
    if args.vocab is not None and (args.tokenizer or DEFAULT_TOKENIZER) != "bpe":
        raise UserError("--vocab sets the BPE vocabulary size; add --tokenizer bpe or drop --vocab")


def _model_config(args: argparse.Namespace) -> Any:
    """The preset with ``--context`` applied (its vocabulary is set once the tokenizer is trained)."""
    from qkv.model.config import FAMILIES, preset

    name = args.preset or DEFAULT_PRESET
    choices = causal_presets()
    if name not in choices:
        listed = ", ".join(choices)
        if name in FAMILIES:
            raise UserError(
                f"--preset {name} is an encoder: it reads text both ways and predicts no next token, so it cannot "
                f"generate; qkv train trains language models: {listed}"
            )
        raise UserError(f"unknown --preset {name!r}; choose one of {listed}")
    return preset(name, **({"context": args.context} if args.context is not None else {}))


def _train_config(args: argparse.Namespace, base: Any) -> Any:
    """The flags given, over ``base`` (a resumed run's config) or over TrainConfig's defaults.

    On a resume the learning-rate schedule stays the run's (``schedule_steps``), whatever ``--steps`` says.
    """
    from qkv.training.config import TrainConfig

    given = config_values(args, TRAIN_FLAGS)
    if args.watch is not None:
        if args.watch == WATCH_DEFAULT:
            from qkv.training.watch import DEFAULT_TEXT

            given["watch"] = DEFAULT_TEXT
        else:
            given["watch"] = args.watch
    data = (base or TrainConfig()).to_dict()
    data.update(given)
    if "learning_rate" in given:
        data["min_learning_rate"] = min(data["min_learning_rate"], given["learning_rate"] / 10)
    if base is not None:
        data["schedule_steps"] = base.decay_end
    return TrainConfig.from_dict(data)


def _resume_notes(base: Any, config: Any, step: int, args: argparse.Namespace) -> list[str]:
    """What resuming at ``step`` keeps and what the flags change, in the flags' words."""
    notes = []
    end = config.decay_end
    if config.steps > base.steps and config.steps > end:
        floor_from = max(step, end) + 1
        notes.append(
            f"training on to step {config.steps}: the learning-rate schedule still ends at step {end}, so steps "
            f"{floor_from}–{config.steps} train at its floor, {config.min_learning_rate:.1e}"
        )
    elif config.steps < base.steps:
        notes.append(f"stopping at step {config.steps}, before the learning-rate schedule ends at step {end}")
    given = set(config_values(args, TRAIN_FLAGS)) - {"steps", "time_limit"}  # these only move where it stops
    changed = [
        f"{flag.name} {getattr(base, flag.field)} → {getattr(config, flag.field)}"
        for flag in TRAIN_FLAGS
        if flag.field in given and getattr(config, flag.field) != getattr(base, flag.field)
    ]
    if changed:
        notes.append(f"changed from the run: {', '.join(changed)}; from here it computes differently")
    return notes


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


def _duration(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h02m``: short enough for the progress line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressLine:
    """One line on stderr, rewritten in place on a terminal, printed every ``every`` steps otherwise.

    The line fits the terminal (a line that wrapped could not be rewritten in place)."""

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
                f"step {event.step:>5}/{self.total}  loss {event.loss:6.3f}  lr {event.learning_rate:.1e}  "
                f"{event.tokens_per_second / 1000:5.1f}k tok/s  eta {_duration(remaining)}"
            )[: columns() - 1]
            print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)
        elif event.kind == "validation":
            end = "\n" if self.tty else ""
            print(f"{end}step {event.step:>5}  validation loss {event.loss:.4f}", file=sys.stderr, flush=True)
        elif event.kind == "data_changed":
            print(
                f"warning: the corpus is not the text steps 1-{event.step} were trained on (its tokens' sha256 "
                "differs); training goes on with the new text, so this resume is not exact",
                file=sys.stderr,
                flush=True,
            )


def run(args: argparse.Namespace) -> int:
    _contradictions(args)
    if not args.resume:  # every flag checked before any work: a mistake costs nothing
        _model_config(args)
        _train_config(args, None)
    from qkv.training.distributed import setup_distributed
    from qkv.training.lock import check_run_dir

    if args.out:
        check_run_dir(Path(args.out))  # a file, or a path below one: said before any work

    distributed = setup_distributed(shard=args.shard)
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
    import dataclasses

    import torch

    from qkv.model import Transformer
    from qkv.text import default_corpus, encode_corpus, read_corpus, split_train_validation, train_tokenizer
    from qkv.text.tokenizers import tokenizer_from_json
    from qkv.training import CompileFailed, TrainingDiverged, find_checkpoint, load_checkpoint, load_weights, train
    from qkv.training.lock import hold_run
    from qkv.training.loop import check_step_fits
    from qkv.training.precision import resolve_precision

    def say(text: str) -> None:
        if distributed.is_main:
            print(wrap(text), file=sys.stderr)

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
        base = resume.train_config  # None in a checkpoint saved without one (qkv.training.save_checkpoint)
        config = _train_config(args, base)
        step = resume.progress.step
        if config.steps <= step and config.time_limit is None:
            raise UserError(f"{args.resume} is already at step {step}; pass --steps above it to train more")
        say(f"resuming {run_dir} at step {step}" + (f" of {base.steps}" if base is not None else ""))
        for note in _resume_notes(base, config, step, args) if base is not None else []:
            say(note)
    else:
        corpus = read_corpus(args.corpus) if args.corpus else default_corpus()
        kind: Any = args.tokenizer or DEFAULT_TOKENIZER
        if kind == "bpe" and len(corpus.text) >= BPE_NOTICE_CHARACTERS:  # seconds of silence otherwise
            say(f"training a BPE tokenizer on {len(corpus.text):,} characters…")
        tokenizer = train_tokenizer(kind, corpus.text, args.vocab)
        model_config = dataclasses.replace(_model_config(args), vocab_size=tokenizer.vocab_size)
        config = _train_config(args, None)
        run_dir = Path(args.out) if args.out else _default_run_dir(corpus.name)
        if distributed.enabled and not args.out:
            raise UserError("under torchrun, name the run directory with --out (every process must agree on it)")
        if distributed.is_main:
            held.enter_context(hold_run(run_dir))
        if (run_dir / "checkpoint").exists():
            raise UserError(f"{run_dir} already holds a checkpoint; continue it with --resume {run_dir} or pick --out")

    if config.watch is not None:  # refused before the run folder is made, as any other mistake
        from qkv.training.watch import check_watch_text

        check_watch_text(config.watch, tokenizer, model_config.context)
    # the ids as encoded, uint16 (int32 past 65,536 tokens): a quarter of int64's memory; each batch is made int64
    # as it is drawn (qkv.training.data.get_batch)
    ids = torch.from_numpy(encode_corpus(tokenizer, corpus.text))
    name, characters, skipped = corpus.name, len(corpus.text), corpus.skipped
    del corpus  # training needs the ids only
    train_ids, validation_ids = split_train_validation(ids, context=model_config.context)
    torch.manual_seed(config.seed)
    # a GPU when there is one; a model to shard stays in CPU memory until each shard moves there (training.loop)
    model = Transformer(model_config).to("cpu" if distributed.shard else distributed.device())
    if resume is not None:
        load_weights(model, resume)
    check_step_fits(
        model_config, config.batch_size, distributed.device(), distributed.world_size, sharded=distributed.shard
    )
    parameters = sum(p.numel() for p in model.parameters())
    if resume is None:  # said once every check passed, so that a mistake is reported on one line
        name = name if len(name) <= 48 else name[:47] + "…"  # a name does not wrap
        say(f"corpus: {name} ({characters:,} characters)")
        if skipped:
            say(_skipped(skipped, Path(args.corpus)))
        if args.vocab is not None and tokenizer.vocab_size < args.vocab:
            say(
                f"vocab: {tokenizer.vocab_size:,} tokens, fewer than --vocab {args.vocab:,}: BPE ran out of pairs "
                "to merge in this corpus (more text fills more)"
            )
    say(
        f"model: {model_config.layers} layers, {model_config.heads} heads, width {model_config.width}, "
        f"context {model_config.context}, vocab {model_config.vocab_size} ({parameters / 1e6:.2f}M parameters)"
        + (f"; {distributed.world_size} processes" if distributed.enabled else "")
        + (", sharded (FSDP2)" if distributed.shard else "")
    )
    precision = resolve_precision(config.precision, distributed.device())
    say(
        "precision: bfloat16 products, float32 weights and optimizer (--precision float32 to turn off)"
        if precision == "bfloat16"
        else "precision: float32"
    )
    if config.watch is not None:
        say(f"watch: {config.watch!r} at the start and every {config.eval_interval} steps, in {run_dir / 'watch'}")
    steps_left = config.steps - (resume.progress.step if resume is not None else 0)
    if resolve_compile(config.compile, steps_left, distributed.device().type):
        cache = os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache_dir()))  # the user's wins
        auto = f" (runs of {AUTO_COMPILE_STEPS:,} steps or more; --no-compile to turn off)"
        auto = auto if config.compile is None else ""
        say(f"torch.compile{auto}: the first step compiles the model, tens of seconds until {cache} holds its graphs")
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
    prompt = prompt_from(tokenizer.decode(validation_ids[:PROMPT_SOURCE_TOKENS].tolist()))
    del model, ids, train_ids, validation_ids, resume  # what training held, freed before drawing the curve
    _give_back_freed_memory()
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
    train_loss = p.train_losses[-1][1] if p.train_losses else float("nan")
    validation = p.validation_losses[-1][1] if p.validation_losses else float("nan")
    reason = {"steps": "reached the step count", "time": "reached the time limit", "interrupt": "interrupted"}
    print(file=sys.stderr)
    say(f"done ({reason[result.stopped_by]}): step {p.step} in {p.elapsed_seconds:.1f} s, {p.tokens_seen:,} tokens")
    say(f"loss: train {train_loss:.4f}, validation {validation:.4f}")
    hint = f"try: qkv generate {shlex.quote(str(run_dir))}" + (f" --prompt {shlex.quote(prompt)}" if prompt else "")
    for line in (f"checkpoint: {result.checkpoint}", f"loss curve: {curve}", hint):
        print(line, file=sys.stderr)  # not folded: a path or a command is copied whole
    return 130 if result.stopped_by == "interrupt" else 0


def _give_back_freed_memory() -> None:
    """Hand the pages that the C heap holds free back to the system (glibc's ``malloc_trim``; elsewhere nothing),
    so that what comes after training (the loss curve's plotting library) does not raise the process's peak."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


PROMPT_SOURCE_TOKENS = 2000  # the start of the validation text, where the closing hint's prompt comes from


def prompt_from(text: str, longest: int = 16) -> str:
    """A prompt from the user's own text: the start of its first whole line, a few words of at most ``longest``
    characters (the first line of ``text`` may be cut, so it is skipped when there is another)."""
    lines = text.split("\n")
    for line in lines[1:] or lines:
        words = line.split()
        if not words:
            continue
        prompt = words[0][:longest]
        for word in words[1:]:
            if len(prompt) + 1 + len(word) > longest:
                break
            prompt += " " + word
        return prompt
    return ""


def _skipped(files: tuple[Path, ...], folder: Path) -> str:
    """One line naming the files of a folder corpus that were not read."""
    shown = ", ".join(str(f.relative_to(folder)) for f in files[:3]) + (", …" if len(files) > 3 else "")
    count = f"{len(files)} file{'s' * (len(files) != 1)}"
    return f"skipped {count} of the folder (qkv reads its non-empty .txt files that are not hidden): {shown}"


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
