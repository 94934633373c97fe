"""DDP plumbing: the process group ``torchrun`` describes, the training device, collective helpers.

With one process (no ``WORLD_SIZE`` above 1) every helper is a no-op and nothing is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from irstd.errors import InputError

__all__ = ["Dist", "all_sum", "any_rank", "barrier", "broadcast", "choose_device", "setup_dist", "teardown_dist", "wants_cuda"]


@dataclass
class Dist:
    """This process's place in the process group (rank 0 of 1 without DDP)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # this call initialised the process group

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates, logs and writes the files."""
        return self.rank == 0


def wants_cuda(device: str) -> bool:
    """Whether ``--device`` (``auto``, ``cpu`` or ``cuda``) trains on CUDA on this machine."""
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def setup_dist(device_kind: str) -> Dist:
    """Join the process group torchrun describes (WORLD_SIZE > 1), gloo on CPU, nccl on CUDA."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if device_kind == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), owned=True)


def teardown_dist(d: Dist) -> None:
    """Leave the process group if :func:`setup_dist` created it."""
    if d.owned and dist.is_initialized():
        dist.destroy_process_group()


def choose_device(device: str, d: Dist) -> torch.device:
    """The training device for ``--device``: under DDP on CUDA, the GPU of the local rank."""
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: CUDA is not available (use --device auto or cpu)")
    if wants_cuda(device):
        index = d.local_rank if d.world > 1 else torch.cuda.current_device()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def broadcast(value: Any, d: Dist) -> Any:
    """Rank 0's ``value`` on every rank."""
    if d.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool, d: Dist, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank."""
    if d.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_sum(values: list[float], d: Dist, device: torch.device) -> torch.Tensor:
    """The sum of ``values`` over every rank (float64)."""
    totals = torch.tensor(values, dtype=torch.float64)
    if d.world > 1:
        totals = totals.to(device)
        dist.all_reduce(totals)
    return totals


def barrier(d: Dist) -> None:
    """Wait for every rank."""
    if d.world > 1:
        dist.barrier()
