"""Multi-process training on PyTorch's own distributed engine, as launched by ``torchrun``.

``torchrun --nproc_per_node N -m qkv train FILE`` starts N copies of the same command with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each process holds a replica of the model; DistributedDataParallel
averages gradients after every backward pass, so the replicas stay equal. The global batch (``batch_size``)
is drawn identically on every rank from the same seeded generator and split into equal slices, one per rank:
N processes see exactly the batches one process would, and a resumed run continues exactly.
Only rank 0 writes checkpoints and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Distributed", "setup_distributed"]


@dataclass(frozen=True)
class Distributed:
    """Where this process stands among its peers (``world_size == 1``: a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

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


def setup_distributed() -> Distributed:
    """Read torchrun's environment and join the process group (gloo on CPU, NCCL on GPU) if there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank)
