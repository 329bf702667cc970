"""Every random-number state a training job draws from: seeded, captured, restored,
and split into one stream per model of a fused sweep.

`capture()` returns python `random`, numpy's global RNG, torch's CPU RNG and (when CUDA
is in use) every CUDA device's RNG, in a form that weights_only loading
accepts: numpy's key array becomes a tensor, nothing else needs converting. The data
order has its own `torch.Generator` (`seed_everything` returns it), saved separately by
the rolling checkpoint (`lskd.train.resume`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed python, numpy and torch; return the generator that drives data order.

    `deterministic`: deterministic kernels only; otherwise cuDNN may pick the fastest
    convolution algorithm per shape (its autotuner), which differs from run to run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not deterministic
    return torch.Generator().manual_seed(seed)


def capture() -> dict[str, Any]:
    """The global RNG states of this process (python, numpy, torch CPU and CUDA)."""
    np_state = np.random.get_state(legacy=False)
    cuda = (
        torch.cuda.get_rng_state_all()
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else []
    )
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": cuda,
    }


def restore(state: dict[str, Any]) -> None:
    """Put back what `capture()` returned (CUDA states only if the device count
    matches, so a checkpoint written on a GPU still resumes on the CPU)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npd = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": npd["bit_generator"],
            "state": {"key": npd["key"].numpy().astype(np.uint32), "pos": npd["pos"]},
            "has_gauss": npd["has_gauss"],
            "gauss": npd["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class RNGStreams:
    """One global-RNG stream per model of a fused sweep, all starting from the current
    global state, so that dropout or stochastic depth in model k draws what it draws
    when model k trains alone instead of interleaving with the others.

    `with streams.use(k):` sets the global torch RNG (and the device's CUDA RNG) to
    model k's state and stores it back on exit. With one model the global RNG is its
    stream: `use` changes nothing and `states` is None.
    """

    def __init__(self, k: int, device: torch.device):
        self.device = device if device.type == "cuda" else None
        self.states = [self._get() for _ in range(k)] if k > 1 else None

    def _get(self) -> dict[str, Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    @contextmanager
    def use(self, k: int) -> Iterator[None]:
        if self.states is None:
            yield
            return
        state = self.states[k]
        torch.set_rng_state(state["cpu"])
        if self.device is not None:
            torch.cuda.set_rng_state(state["cuda"], self.device)
        try:
            yield
        finally:
            self.states[k] = self._get()
