"""The sharding tests' worker: train the tiny setup (conftest's) for a few steps, sharded or not, fresh or resumed.

Run in the test's own process for one unsharded process, or under torchrun for several:
``torchrun --nproc_per_node 2 -m tests.training.sharded_worker RUN --steps 5 --shard`` (from the repository root).
Every run plans the same learning-rate schedule (``schedule_steps=10``), so a run stopped at step 5 and resumed to
10 computes what one run of 10 steps computes.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from qkv.model import Transformer, preset
from qkv.text import CharTokenizer, split_train_validation
from qkv.training import TrainConfig, load_checkpoint, load_weights, train
from qkv.training.distributed import Distributed, setup_distributed

from .conftest import small_text

CONFIG = TrainConfig(
    steps=10,
    schedule_steps=10,
    batch_size=4,
    learning_rate=3e-3,
    min_learning_rate=3e-4,
    warmup_steps=2,
    eval_interval=5,
    eval_batches=2,
    seed=7,
    precision="float32",  # in bfloat16 a half batch rounds differently from a whole one
)


def train_tiny(
    run: Path, steps: int, *, resume: bool = False, compile: bool = False, distributed: Distributed = Distributed()
) -> None:
    """Train conftest's tiny model on its text into ``run`` until ``steps`` (continuing ``run`` with ``resume``)."""
    text = small_text()
    tokenizer = CharTokenizer.train(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, validation_ids = split_train_validation(ids, context=16)
    model_config = preset("tiny", vocab_size=tokenizer.vocab_size, context=16, width=32)
    torch.manual_seed(0)
    model = Transformer(model_config)
    checkpoint = load_checkpoint(run) if resume else None
    if checkpoint is not None:
        load_weights(model, checkpoint)
    train(
        model,
        model_config=model_config,
        tokenizer_json=tokenizer.to_json(),
        train_ids=train_ids,
        validation_ids=validation_ids,
        config=replace(CONFIG, steps=steps, compile=compile),
        run_dir=run,
        resume=checkpoint,
        distributed=distributed,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--shard", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    distributed = setup_distributed(shard=args.shard)
    try:
        train_tiny(args.run, args.steps, resume=args.resume, compile=args.compile, distributed=distributed)
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
