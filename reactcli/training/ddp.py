"""torchrun / DistributedDataParallel plumbing: one process per device, rank 0 writes.

``torchrun --nproc_per_node N -m reactcli.cli train-predictor ...`` sets RANK/WORLD_SIZE/LOCAL_RANK;
without them everything runs as a single process with world size 1. NCCL on CUDA, gloo on CPU
(which is how the tests run two processes on a laptop); under NCCL a second, gloo group carries
host-side flags (:func:`all_reduce_flag`), so agreeing on them never waits for the device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from reactcli.runtime import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    flag_group: Any = None  # a gloo group for host flags under NCCL (None: the default group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> DistContext:
    """Join the process group when launched by torchrun, and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if dist.get_backend() != "gloo":
            # host flags (the stop request) travel over the CPU, so agreeing on them never waits
            # for the device's queue
            return DistContext(rank, world, local_rank, device, dist.new_group(backend="gloo"))
    return DistContext(rank, world, local_rank, device)


def all_reduce_mean(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.distributed:
        value = value.clone()
        dist.all_reduce(value)
        value /= ctx.world
    return value


def all_reduce_flag(flag: bool, ctx: DistContext) -> bool:
    """True when ``flag`` is True on any rank (a CPU all-reduce: no device wait); ``flag`` itself
    in a single process."""
    if not ctx.distributed:
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value, group=ctx.flag_group)
    return bool(value.item() > 0)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
