"""Data-parallel training: one code path for 1..N processes (nanoGPT style).

`lskd train|distill --gpus N` with N > 1 relaunches itself through
`torch.distributed.run --standalone --nproc-per-node N`; each worker reads RANK,
LOCAL_RANK and WORLD_SIZE, joins the process group (NCCL on GPUs, Gloo on CPU) and
trains a DistributedDataParallel model on its shard of every batch. Only rank 0 writes
files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lskd.data.interface import Shard
from lskd.train.preempt import REQUEUE_EXIT, forwarding, requested


@dataclass(frozen=True)
class Context:
    """Where this process sits: its rank, the world size and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world)


def relaunch(gpus: int, argv: list[str]) -> int | None:
    """Run this command under torchrun with `gpus` processes, unless already inside.

    SIGTERM/SIGUSR1 reaching this process are passed on to torchrun, which relays
    SIGTERM to the workers: they checkpoint at the same step and exit; we then return
    `REQUEUE_EXIT`.
    """
    if gpus <= 1 or "RANK" in os.environ:
        return None
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={gpus}",
        "-m",
        "lskd.cli.main",
        *argv,
    ]
    with subprocess.Popen(cmd) as proc, forwarding(proc):
        code = proc.wait()
    if code != 0 and requested() is not None:
        return REQUEUE_EXIT  # the workers saved their checkpoint on our signal
    return code


def setup(device: str) -> Context:
    """Join the process group if torchrun started us; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, dev)


def all_sum(values: list[float], ctx: Context) -> list[float]:
    """Sum numbers over all ranks (identity with one process)."""
    if ctx.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.tolist()


def all_sum_tensor(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Sum a tensor over all ranks in place, on its device (identity with one
    process)."""
    if ctx.world > 1:
        dist.all_reduce(t)
    return t


def all_max(value: int, ctx: Context) -> int:
    """The largest ``value`` over all ranks (identity with one process)."""
    if ctx.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def barrier(ctx: Context) -> None:
    if ctx.world > 1:
        dist.barrier()


def teardown(ctx: Context) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
