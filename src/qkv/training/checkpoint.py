"""Checkpoints: a directory of safetensors and JSON, written aside and then renamed into place.

    RUN/checkpoint/
        model.safetensors      the weights (safetensors: nothing is ever unpickled)
        state.safetensors      optimizer moments and random-number-generator states
        config.json            format, qkv version, model config, training config
        tokenizer.json         everything needed to encode and decode
        progress.json          step, tokens seen, elapsed time, loss history, optimizer step counts

A checkpoint is first written to ``RUN/.checkpoint.tmp-*``; then the old one is moved aside, the new one
renamed into place, and the old one removed. A crash at any moment leaves a complete checkpoint: either
``checkpoint/`` or, between the two renames, ``.checkpoint.old-*``, which :func:`find_checkpoint` recovers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from qkv._version import __version__
from qkv.errors import ConfigError, InputError
from qkv.files import make_ordinary
from qkv.model.config import TransformerConfig
from qkv.text.tokenizers import Tokenizer, TokenizerError, tokenizer_from_json
from qkv.training.config import TrainConfig
from qkv.training.lock import hold_run

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "Progress",
    "SavedModel",
    "find_checkpoint",
    "gather_full_state",
    "is_run",
    "load_checkpoint",
    "load_weights",
    "read_model",
    "save_checkpoint",
]

FORMAT = "qkv-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoint"
FILES = ("model.safetensors", "state.safetensors", "config.json", "tokenizer.json", "progress.json")


class CheckpointError(InputError):
    """A directory is not a usable qkv checkpoint; the message names the file and what is wrong."""


@dataclass
class Progress:
    """Where training stands; saved as ``progress.json``."""

    step: int = 0
    tokens_seen: int = 0
    elapsed_seconds: float = 0.0
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    validation_losses: list[tuple[int, float]] = field(default_factory=list)
    data_sha256: str | None = None  # the training and validation token ids (qkv.training.data.fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "elapsed_seconds": self.elapsed_seconds,
            "train_losses": [list(p) for p in self.train_losses],
            "validation_losses": [list(p) for p in self.validation_losses],
            "data_sha256": self.data_sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Progress:
        fingerprint = data.get("data_sha256")  # absent from checkpoints written before qkv recorded it
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise TypeError(f"data_sha256 must be a string, got {fingerprint!r}")
        return cls(
            step=int(data["step"]),
            tokens_seen=int(data["tokens_seen"]),
            elapsed_seconds=float(data["elapsed_seconds"]),
            train_losses=[(int(s), float(v)) for s, v in data["train_losses"]],
            validation_losses=[(int(s), float(v)) for s, v in data["validation_losses"]],
            data_sha256=fingerprint,
        )


@dataclass
class Checkpoint:
    """What a checkpoint holds once read (tensors stay on the CPU)."""

    path: Path
    model_config: TransformerConfig
    train_config: TrainConfig | None
    tokenizer_json: str
    progress: Progress
    state: dict[str, torch.Tensor]
    optimizer_groups: list[dict[str, Any]]


@dataclass
class SavedModel:
    """What inference needs of a checkpoint (:func:`read_model`): the model's config, its weights as saved
    (a tied output layer is stored once, as the token embedding) and its tokenizer."""

    path: Path
    model_config: TransformerConfig
    tensors: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    progress: Progress


def _optimizer_tensors(state_dict: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Flatten an optimizer's state dict into named tensors (for safetensors) and its groups into JSON data."""
    tensors: dict[str, torch.Tensor] = {}
    for index, state in state_dict["state"].items():
        for name, value in state.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    groups = [{k: v for k, v in group.items()} for group in state_dict["param_groups"]]
    return tensors, groups


def _restore_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Checkpoint, model: nn.Module | None) -> None:
    """Load the saved moments into ``optimizer`` after checking that they were saved for its parameters: the
    same groups of the same sizes, every moment the shape of its parameter (``load_state_dict`` checks only the
    group sizes, and a moment of another shape fails later, inside the first step). The moments of a sharded
    ``model``'s optimizer are whole in the checkpoint; each process keeps its shard of them."""
    groups = checkpoint.optimizer_groups
    ours = [len(group["params"]) for group in optimizer.param_groups]
    saved = [
        len(group["params"]) if isinstance(group, dict) and isinstance(group.get("params"), list) else None
        for group in groups
    ]
    if saved != ours:
        raise CheckpointError(
            f"{checkpoint.path / 'config.json'}: the optimizer was saved with parameter groups of {saved} tensors, "
            f"this model's has {ours}; the optimizer state belongs to another model"
        )
    where = checkpoint.path / "state.safetensors"
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in checkpoint.state.items():
        if not key.startswith("optimizer."):
            continue
        _, index_text, name = [*key.split(".", 2), "", ""][:3]
        if not index_text.isdigit() or not name:
            raise CheckpointError(f"{where}: {key!r} is not an optimizer tensor name; the checkpoint is corrupted")
        index = int(index_text)
        if index >= len(parameters):
            raise CheckpointError(
                f"{where}: optimizer state for parameter {index}, but this model's optimizer has "
                f"{len(parameters)} parameters; the optimizer state belongs to another model"
            )
        if value.dim() and value.shape != parameters[index].shape:
            raise CheckpointError(
                f"{where}: the optimizer's {name} of parameter {index} has shape {tuple(value.shape)}, the parameter "
                f"{tuple(parameters[index].shape)}; the optimizer state belongs to another model"
            )
        state.setdefault(index, {})[name] = value
    try:
        if _sharded(optimizer):
            _load_sharded_optimizer(optimizer, model, {"state": state, "param_groups": groups})
        else:
            optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{where}: the optimizer state cannot be restored ({first})") from None


def _sharded(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` steps a sharded model's parameters (FSDP2's ``DTensor``s)."""
    if not torch.distributed.is_available():
        return False
    from torch.distributed.tensor import DTensor

    return any(isinstance(parameter, DTensor) for group in optimizer.param_groups for parameter in group["params"])


def _parameter_names(model: nn.Module) -> dict[int, str]:
    """Each parameter's name (a tied one's first, as ``model.parameters()`` meets it), by the parameter's id."""
    return {id(parameter): name for name, parameter in model.named_parameters()}


def gather_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A sharded model's whole weights and its optimizer's whole state, in rank 0's CPU memory, as
    ``model.state_dict()`` and ``optimizer.state_dict()`` would give them unsharded (tied weights share one
    tensor; optimizer state by parameter index), for :func:`save_checkpoint`. Other ranks get two empty dicts.

    A collective: every rank calls it, at the same point (:mod:`torch.distributed.checkpoint`'s state-dict
    helpers gather the shards; ``cpu_offload`` moves each whole tensor to rank 0's CPU as it is gathered)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = cast(dict[str, torch.Tensor], get_model_state_dict(model, options=options))
    gathered = cast(dict[str, Any], get_optimizer_state_dict(model, optimizer, options=options))
    if not weights:
        return {}, {}
    names = _parameter_names(model)
    for name, parameter in model.named_parameters(remove_duplicate=False):  # put the ties back
        weights[name] = weights[names[id(parameter)]]
    index = {name: position for position, name in enumerate(_optimizer_names(optimizer, names))}
    state = {index[name]: dict(values) for name, values in gathered["state"].items()}
    groups = [{**group, "params": [index[name] for name in group["params"]]} for group in gathered["param_groups"]]
    return weights, {"state": state, "param_groups": groups}


def _optimizer_names(optimizer: torch.optim.Optimizer, names: Mapping[int, str]) -> list[str]:
    """The names of the optimizer's parameters, in the order of its groups (the order of its state's indices)."""
    return [names[id(parameter)] for group in optimizer.param_groups for parameter in group["params"]]


def _load_sharded_optimizer(
    optimizer: torch.optim.Optimizer, model: nn.Module | None, state_dict: Mapping[str, Any]
) -> None:
    """Load a whole optimizer state (by parameter index, as saved) into a sharded model's optimizer: each
    process keeps its own shard of every moment (every process holds the whole state: nothing is sent)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if model is None:
        raise ConfigError("restoring a sharded optimizer needs its model: pass restore_training_state(model=...)")
    ordered = _optimizer_names(optimizer, _parameter_names(model))
    named = {
        "state": {ordered[index]: values for index, values in state_dict["state"].items()},
        "param_groups": [
            {**group, "params": [ordered[index] for index in group["params"]]} for group in state_dict["param_groups"]
        ],
    }
    set_optimizer_state_dict(model, optimizer, cast(Any, named), options=StateDictOptions(full_state_dict=True))


def _save_weights(weights: Mapping[str, torch.Tensor], path: Path) -> None:
    """Write a state dict as :func:`safetensors.torch.save_model` writes a model's: a tensor held under several
    names (tied weights) once, under the first name in sorted order, the others named in the metadata."""
    names: dict[int, list[str]] = {}
    for name, tensor in weights.items():
        names.setdefault(id(tensor), []).append(name)
    tensors: dict[str, torch.Tensor] = {}
    metadata = {"format": FORMAT}
    for shared in names.values():
        kept, *others = sorted(shared)
        tensors[kept] = weights[kept].detach().contiguous()
        metadata.update(dict.fromkeys(others, kept))
    save_file(tensors, str(path), metadata)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _fsync_dir(path: Path) -> None:
    for item in [*path.iterdir(), path]:
        fd = os.open(item, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    *,
    model: nn.Module | Mapping[str, torch.Tensor],
    model_config: TransformerConfig,
    tokenizer_json: str,
    progress: Progress,
    train_config: TrainConfig | None = None,
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> Path:
    """Write a complete checkpoint into ``run_dir/checkpoint`` atomically; return its path.

    On any failure (a full disk included) the temporary directory is removed and the previous checkpoint
    is left untouched. The run directory is held (:func:`~qkv.training.lock.hold_run`) while it is written: a
    save into a directory another process trains into is refused. ``model`` and ``optimizer`` may be given as
    their state dicts instead (a sharded model's, gathered by :func:`gather_full_state`): the files are the same.
    """
    with hold_run(run_dir) as run:  # re-entrant: a no-op inside train(), which holds it for the whole run
        return _save(run, model, model_config, tokenizer_json, progress, train_config, optimizer, generators)


def _save(
    run: Path,
    model: nn.Module | Mapping[str, torch.Tensor],
    model_config: TransformerConfig,
    tokenizer_json: str,
    progress: Progress,
    train_config: TrainConfig | None,
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None,
    generators: Mapping[str, torch.Generator] | None,
) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=".checkpoint.tmp-", dir=run))
    try:
        if isinstance(model, nn.Module):
            save_model(model, str(staging / "model.safetensors"), metadata={"format": FORMAT})
        else:
            _save_weights(model, staging / "model.safetensors")
        state: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
        for name, generator in (generators or {}).items():
            state[f"rng.{name}"] = generator.get_state()
        groups: list[dict[str, Any]] = []
        if optimizer is not None:
            saved = optimizer if isinstance(optimizer, Mapping) else optimizer.state_dict()
            tensors, groups = _optimizer_tensors(saved)
            state.update(tensors)
        save_file(state, str(staging / "state.safetensors"), metadata={"format": FORMAT})
        _write_json(
            staging / "config.json",
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "qkv_version": __version__,
                "model": model_config.to_dict(),
                "training": train_config.to_dict() if train_config is not None else None,
                "optimizer_groups": groups,
            },
        )
        (staging / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
        _write_json(staging / "progress.json", progress.to_dict())
        for item in [*staging.iterdir(), staging]:  # mkdtemp and safetensors make theirs private (0700, 0600)
            make_ordinary(item)  # a checkpoint follows the umask, as a plain open would
        _fsync_dir(staging)

        target = run / CHECKPOINT_DIR
        old: Path | None = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".checkpoint.old-", dir=run))
            old.rmdir()
            target.rename(old)
        staging.rename(target)
        # The new checkpoint is in place: the one moved aside, and any left by an earlier crash, can go.
        for leftover in [*run.glob(".checkpoint.old-*"), *run.glob(".checkpoint.tmp-*")]:
            shutil.rmtree(leftover, ignore_errors=True)
        return target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint directory for ``path``: a run directory or the checkpoint directory itself."""
    given = Path(path)
    if not given.exists():
        raise CheckpointError(f"{given}: no such checkpoint or run directory")
    if not given.is_dir():
        raise CheckpointError(f"{given}: a checkpoint is a directory (RUN or RUN/checkpoint), not a file")
    if (given / "config.json").exists() and (given / "model.safetensors").exists():
        return given
    if (given / CHECKPOINT_DIR).is_dir():
        return given / CHECKPOINT_DIR
    recovered = sorted(given.glob(".checkpoint.old-*"), key=lambda path: path.stat().st_mtime)
    if recovered:
        return recovered[-1]  # a crash between the two renames of save_checkpoint: the newest survivor
    raise CheckpointError(
        f"{given}: not a qkv checkpoint (no {CHECKPOINT_DIR}/ with config.json and model.safetensors); "
        "pass the directory a `qkv train --out` wrote"
    )


def is_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory :func:`find_checkpoint` takes: a run directory or the checkpoint itself,
    told apart from a Hugging Face model directory by the files only a checkpoint has or by its ``config.json``'s
    ``"format"`` (so that a damaged checkpoint is still reported as one)."""
    given = Path(path)
    if not given.is_dir():
        return False
    if (given / CHECKPOINT_DIR).is_dir() or any(given.glob(".checkpoint.old-*")):
        return True
    if (given / "progress.json").is_file() or (given / "state.safetensors").is_file():
        return True  # a checkpoint directory, even one whose config.json is damaged
    try:
        config = json.loads((given / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; the checkpoint is incomplete") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error}); the checkpoint is corrupted") from None


def _read_tokenizer(path: Path) -> tuple[str, Tokenizer]:
    """The tokenizer's JSON text and the tokenizer it rebuilds (so a damaged one is refused here, by path)."""
    try:
        text = path.read_text(encoding="utf-8")
        return text, tokenizer_from_json(text)
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path}: not UTF-8 text ({error}); the checkpoint is corrupted") from None
    except TokenizerError as error:
        raise CheckpointError(f"{path}: {error}; the checkpoint is corrupted") from None


def _read_configs(
    path: str | os.PathLike[str],
) -> tuple[Path, dict[str, Any], TransformerConfig, TrainConfig | None, Progress]:
    """The checkpoint directory, its ``config.json``, the configs in it and the progress, once every file is
    there and the format is one this qkv reads."""
    directory = find_checkpoint(path)
    missing = [name for name in FILES if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(f"{directory}: missing {', '.join(missing)}; the checkpoint is incomplete")
    config = _read_json(directory / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{directory / 'config.json'}: not a qkv checkpoint config")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{directory}: checkpoint format version {config.get('format_version')!r} (written by qkv "
            f"{config.get('qkv_version')}); this qkv {__version__} reads version {FORMAT_VERSION}"
        )
    try:
        model_config = TransformerConfig.from_dict(config["model"])
        train_config = TrainConfig.from_dict(config["training"]) if config.get("training") else None
        progress = Progress.from_dict(_read_json(directory / "progress.json"))
    except (ConfigError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{directory}: invalid checkpoint contents ({error})") from None
    return directory, config, model_config, train_config, progress


def _safetensors_error(path: Path, error: Exception) -> CheckpointError:
    return CheckpointError(f"{path}: not a readable safetensors file ({error})")


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate every file of a checkpoint (weights are loaded into a model by :func:`load_weights`)."""
    directory, config, model_config, train_config, progress = _read_configs(path)
    try:
        state = load_file(str(directory / "state.safetensors"))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise _safetensors_error(directory / "state.safetensors", error) from None
    tokenizer_json, _ = _read_tokenizer(directory / "tokenizer.json")
    _check_weights_fit(directory / "model.safetensors", model_config)
    return Checkpoint(
        path=directory,
        model_config=model_config,
        train_config=train_config,
        tokenizer_json=tokenizer_json,
        progress=progress,
        state=state,
        optimizer_groups=list(config.get("optimizer_groups") or []),
    )


def read_model(path: str | os.PathLike[str]) -> SavedModel:
    """The model a checkpoint holds, for inference: its config, weights and tokenizer.

    The checkpoint is checked as :func:`load_checkpoint` checks it (a damaged one is refused whatever it is
    used for), but the optimizer state is only checked to be whole, never read: it is twice the model's size.
    """
    directory, _, model_config, _, progress = _read_configs(path)
    try:
        with safe_open(str(directory / "state.safetensors"), framework="pt"):
            pass  # opening reads the header, which must describe exactly the bytes the file holds
    except (SafetensorError, OSError, RuntimeError) as error:
        raise _safetensors_error(directory / "state.safetensors", error) from None
    _, tokenizer = _read_tokenizer(directory / "tokenizer.json")
    _check_weights_fit(directory / "model.safetensors", model_config)
    try:
        tensors = load_file(str(directory / "model.safetensors"))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise _safetensors_error(directory / "model.safetensors", error) from None
    return SavedModel(directory, model_config, tensors, tokenizer, progress)


def _check_weights_fit(path: Path, config: TransformerConfig) -> None:
    """The weights' names and shapes (read from the file's header alone) against the model config, so that a
    damaged or hostile ``config.json`` — 100,000 layers, a width of 10⁹ — is refused before a model is built."""
    try:
        with safe_open(str(path), "pt") as weights:
            held = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    blocks = {int(found.group(1)) for name in held if (found := re.match(r"blocks\.(\d+)\.", name))}
    layers = max(blocks) + 1 if blocks else 0
    if layers != config.layers:
        raise CheckpointError(
            f"{path}: weights do not fit the model config (config.json asks for {config.layers:,} layers, "
            f"the weights hold {layers})"
        )
    expected = config.parameter_shapes()
    if config.lm_head and config.tie_embeddings:  # saved once, as the token embedding
        expected.pop("lm_head.weight")
        held.pop("lm_head.weight", None)
    for name in [*expected, *(name for name in held if name not in expected)]:  # the first in the model's order
        if expected.get(name) != held.get(name):
            wanted, actual = expected.get(name, "no such tensor"), held.get(name, "none")
            raise CheckpointError(
                f"{path}: weights do not fit the model config ({name}: the config needs {wanted}, the weights hold "
                f"{actual})"
            )


def load_weights(model: nn.Module, checkpoint: Checkpoint) -> None:
    """Load ``model.safetensors`` into ``model`` (strict: every tensor must match by name and shape)."""
    path = checkpoint.path / "model.safetensors"
    try:
        device = next(model.parameters()).device
        missing, unexpected = load_model(model, str(path), strict=True, device=str(device))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the model config ({first})") from None
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing}, unexpected {unexpected})")


def restore_training_state(
    checkpoint: Checkpoint,
    optimizer: torch.optim.Optimizer | None,
    generators: Mapping[str, torch.Generator] | None = None,
    *,
    model: nn.Module | None = None,
) -> None:
    """Put back optimizer moments and random-number-generator states, so training continues exactly.

    An optimizer of a sharded model (:func:`~qkv.training.distributed.shard_model`) needs that ``model``; every
    rank calls this then, each keeping its shard of the saved moments."""
    if optimizer is not None:
        _restore_optimizer(optimizer, checkpoint, model)
    where = checkpoint.path / "state.safetensors"
    for name in generators or {}:
        if f"rng.{name}" not in checkpoint.state:
            raise CheckpointError(f"{checkpoint.path}: no saved state for the {name!r} random generator")
    try:
        if "rng.torch" in checkpoint.state:
            torch.set_rng_state(checkpoint.state["rng.torch"])
        for name, generator in (generators or {}).items():
            generator.set_state(checkpoint.state[f"rng.{name}"])
    except (RuntimeError, TypeError) as error:  # a tensor of another size or dtype
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{where}: a saved random-generator state is not one ({first})") from None
