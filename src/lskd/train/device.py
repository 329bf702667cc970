"""Where the tensors and models of a job live: the device, channels_last on CUDA,
bf16 autocast, and the DistributedDataParallel / torch.compile wrappers.

Checkpoints and outputs are always read from and written to the bare module
(`unwrap`), so they never carry `module.` or `_orig_mod.` prefixes.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor, nn

from lskd.train.distributed import Context


def autocast(device: torch.device):
    """bf16 autocast on CUDA; float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def to_device(x: Tensor, y: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """Move a batch; on CUDA images go channels_last (faster convolutions in bf16)."""
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def on_device(model: nn.Module, ctx: Context) -> nn.Module:
    """`model` on this rank's device, channels_last on CUDA."""
    model = model.to(ctx.device)
    if ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def wrapped(model: nn.Module, ctx: Context, compile: bool) -> nn.Module:
    """`model` (on the device) inside DistributedDataParallel when several processes
    train, and inside torch.compile with `compile`."""
    if ctx.world > 1:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return torch.compile(model) if compile else model


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DistributedDataParallel and/or torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model
