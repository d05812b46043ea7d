"""Multi-process training on PyTorch's own distributed engine, as launched by ``torchrun``.

``torchrun --nproc_per_node N -m qkv train FILE`` starts N copies of the same command with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. The global batch (``batch_size``) is drawn identically on every rank from
the same seeded generator and split into equal slices, one per rank: N processes see exactly the batches one
process would, and a resumed run continues exactly. Only rank 0 writes checkpoints and prints.

Two ways to hold the model:

- replicated (the default): each process holds the whole model and its optimizer; DistributedDataParallel
  averages gradients after every backward pass, so the replicas stay equal.
- sharded (``shard=True``, ``qkv train --shard``): FSDP2 (:func:`torch.distributed.fsdp.fully_shard`, applied to
  every block and then to the whole model, :func:`shard_model`) keeps 1/N of every parameter, gradient and
  AdamW moment on each process; a block's parameters are gathered whole just before it runs (forward and
  backward) and dropped after, and gradients are averaged and scattered back into the shards. For a model
  whose weights and optimizer no longer fit one device. Checkpoints stay whole (gathered onto rank 0's CPU:
  :func:`qkv.training.checkpoint.gather_full_state`), so a sharded run resumes sharded or not.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist
from torch import nn

from qkv.errors import InputError

__all__ = ["Distributed", "is_sharded", "setup_distributed", "shard_model", "whole_root"]


@dataclass(frozen=True)
class Distributed:
    """Where this process stands among its peers (``world_size == 1`` and no ``shard``: a plain single process).

    ``shard``: the model is sharded over the processes with FSDP2 rather than replicated (see the module's
    docstring); it needs a process group even for one process (``torchrun --nproc_per_node 1``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    shard: bool = False

    @property
    def enabled(self) -> bool:
        """Whether there is a process group (several processes, or a sharded one)."""
        return self.world_size > 1 or self.shard

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def average(self, value: float) -> float:
        """The mean of ``value`` over all ranks (``value`` itself in a single process)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, shared with every rank (so all stop at the same step)."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([1 if flag else 0])
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())


def setup_distributed(*, shard: bool = False) -> Distributed:
    """Read torchrun's environment and join the process group (gloo on CPU, NCCL on GPU) if there is one.

    ``shard=True`` needs torchrun (its ``WORLD_SIZE``), even for one process: without it, one line says so.
    """
    if shard and "WORLD_SIZE" not in os.environ:
        raise InputError(
            "--shard splits the model over processes that torchrun starts; run it as "
            "`torchrun --nproc-per-node N -m qkv train … --shard`, or drop --shard"
        )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 and not shard:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank, shard=shard)


def shard_model(model: nn.Module, distributed: Distributed) -> None:
    """Shard ``model`` in place over every process (FSDP2): each block its own unit, gathered whole only while it
    runs, then the rest (embeddings, final norm, output layer) as the root unit. Parameters move to
    ``distributed.device()`` as they are sharded, so a model built in CPU memory never sits whole on a GPU.

    Every rank calls it, with the same model. Afterwards the parameters are ``DTensor``s; the optimizer must be
    made from them (after this call)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(distributed.device().type, (distributed.world_size,))
    blocks = getattr(model, "blocks", None)
    for block in blocks if isinstance(blocks, nn.ModuleList) else ():
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def is_sharded(model: nn.Module) -> bool:
    """Whether :func:`shard_model` sharded ``model``."""
    if not dist.is_available():
        return False
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def whole_root(model: nn.Module) -> Iterator[None]:
    """Hold a sharded model's root unit (embeddings, final norm, output layer) whole inside; nothing otherwise.

    For a pass that calls the model other than through ``forward`` (:func:`qkv.trace` calls
    ``hidden_states``): the blocks gather their own parameters as they run, but the root's would stay sharded.
    Every rank enters it, and every rank must then run the same pass (the blocks gather together)."""
    if not is_sharded(model):
        yield
        return
    from torch.distributed.fsdp import FSDPModule

    root = cast(FSDPModule, model)
    root.unshard()
    try:
        yield
    finally:
        root.reshard()
