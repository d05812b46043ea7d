"""TrainConfig is plain data: importable without PyTorch, every field documented, and ``schedule_steps`` pins the
learning-rate schedule when a resume changes ``steps``."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

from qkv.errors import ConfigError
from qkv.training.config import COMPUTE_PRECISIONS, TrainConfig
from qkv.training.schedule import learning_rate


@pytest.mark.parametrize("module", ["qkv.training.config", "qkv.model.config", "qkv.attention.config"])
def test_the_config_modules_import_without_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def test_every_field_has_a_docstring() -> None:
    from qkv.cli.from_config import field_docs

    docs = field_docs(TrainConfig)
    assert [f.name for f in dataclasses.fields(TrainConfig)] == list(docs)
    assert all(docs.values())


def test_compute_precision_is_what_the_precision_module_resolves() -> None:
    import torch

    from qkv.training.precision import resolve_precision

    assert COMPUTE_PRECISIONS == ("auto", "float32", "bfloat16")
    assert {resolve_precision(p, torch.device("cpu")) for p in COMPUTE_PRECISIONS} <= {"float32", "bfloat16"}


def test_a_longer_run_with_the_schedule_pinned_follows_the_shorter_one_then_stays_at_the_floor() -> None:
    short = TrainConfig(steps=40, warmup_steps=5, learning_rate=1e-3, min_learning_rate=1e-4)
    longer = dataclasses.replace(short, steps=90, schedule_steps=40)
    assert [learning_rate(s, longer) for s in range(40)] == [learning_rate(s, short) for s in range(40)]
    assert all(learning_rate(s, longer) == pytest.approx(1e-4, rel=1e-12) for s in range(40, 90))


def test_without_schedule_steps_the_decay_ends_at_steps() -> None:
    config = TrainConfig(steps=30, warmup_steps=0, learning_rate=1e-3, min_learning_rate=0.0)
    assert config.decay_end == 30
    assert learning_rate(15, config) == pytest.approx(1e-3 * (1 + math.cos(math.pi / 2)) / 2)
    assert learning_rate(30, config) == 0.0


@pytest.mark.parametrize("value", [0, -3, 2.5])
def test_schedule_steps_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ConfigError, match=r"TrainConfig\.schedule_steps"):
        TrainConfig(schedule_steps=value)  # type: ignore[arg-type]


def test_an_older_checkpoint_without_schedule_steps_still_reads() -> None:
    data = TrainConfig(steps=7).to_dict()
    del data["schedule_steps"]
    assert TrainConfig.from_dict(data).decay_end == 7
