"""Every random-number state a training job draws from, captured and restored.

`capture()` returns python `random`, numpy's global RNG, torch's CPU RNG and (when CUDA
is in use) every CUDA device's RNG, in a form that weights_only loading
accepts: numpy's key array becomes a tensor, nothing else needs converting. The data
order has its own `torch.Generator`, saved separately by the engine.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


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
