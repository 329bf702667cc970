"""Loading fairseq checkpoints under torch's `weights_only` rules
(docs/contributing.md#safe-loading).

fairseq 0.12 stores its configuration with the model; the checkpoints it writes for us
need exactly one class beyond tensors and builtins: `argparse.Namespace`
(``torch.serialization.get_unsafe_globals_in_checkpoint`` lists it). fairseq's own loads
(resume, ``--path``, our KD criterion's teacher) run inside ``fairseq_safe_globals()``,
which allows that class for the duration of the block only; weights_only stays on, and
a checkpoint that asks for anything else is refused with its name.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from lskd.errors import CheckpointError

ALLOWED = {"argparse.Namespace": argparse.Namespace}


def check_globals(path: str | Path) -> list[str]:
    """Classes ``path`` needs beyond weights_only's defaults; refuse unknown ones."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (RuntimeError, ValueError, OSError) as err:
        raise CheckpointError(f"{path}: not a torch checkpoint ({err})") from None
    unknown = sorted(set(names) - set(ALLOWED))
    if unknown:
        raise CheckpointError(
            f"{path}: needs globals outside the fairseq allow-list: {unknown}"
        )
    return names


@contextmanager
def fairseq_safe_globals(*paths: str | Path) -> Iterator[None]:
    """Allow-list fairseq's config class for torch.load inside the block; ``paths``
    are checked first (only the allow-listed classes may appear in them)."""
    for path in paths:
        check_globals(path)
    # blocks nest (the KD criterion loads its teacher inside fairseq-train's block);
    # torch's context manager removes its classes on exit even when an outer block
    # allowed them too, so an inner block adds only what is not allowed yet
    allowed = torch.serialization.get_safe_globals()
    missing = [cls for cls in ALLOWED.values() if cls not in allowed]
    with torch.serialization.safe_globals(missing):
        yield
