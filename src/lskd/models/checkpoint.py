"""The only module that calls torch.save / torch.load: every torch file lskd writes or
reads (model files, resume checkpoints, imported and fairseq checkpoints) goes through
it. It sits in `lskd.models` so that every layer above may use it (`lskd.train`'s
resume checkpoint, `lskd.models.weights`, `lskd.nmt`, `lskd.analysis`).

Every load uses `weights_only=True`: a checkpoint that carries arbitrary pickled objects
is refused instead of executed. Saves are atomic. Model files (`model.pt`) are dicts
tagged with `format` so a file that is not ours is recognised before its weights are
used.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lskd.atomic import atomic_path
from lskd.errors import CheckpointError

MODEL_FORMAT = "lskd-model-v1"


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save(obj: dict[str, Any], path: str | Path) -> None:
    """torch.save `obj` atomically (temporary name, then rename).

    The bytes are serialised in memory and written by Python, so a full disk raises
    `OutputError` ("No space left on device") instead of torch's opaque writer error.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buffer.getbuffer())


def load(path: str | Path, allow: Sequence[type] = ()) -> dict[str, Any]:
    """torch.load with `weights_only=True` on CPU; one-line errors name the file.

    `allow` adds classes to the weights_only allow-list for this call only (fairseq
    checkpoints hold an `argparse.Namespace`: see lskd.nmt.safe_load).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # zip (torch.save) or pickle
        what = "an empty file" if not head else "neither a zip archive nor a pickle"
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({what})")
    try:
        with torch.serialization.safe_globals(list(allow)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused by weights_only loading ({_reason(err)}); a checkpoint "
            "may hold only tensors and plain Python values"
        ) from None
    # garbage bytes reach the legacy (non-zip) unpickler, which fails in many ways
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        IndexError,
        KeyError,
        ValueError,
        struct.error,
    ) as err:
        first = (
            str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        )
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint ({first})"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(obj).__name__}")
    return obj


def _reason(err: pickle.UnpicklingError) -> str:
    """The specific part of torch's long weights_only message (e.g. "Unsupported
    global: GLOBAL builtins.open")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.endswith("WeightsUnpickler error:") and i + 1 < len(lines):
            return lines[i + 1]
    return lines[0] if lines else type(err).__name__


def save_model(model: torch.nn.Module, path: str | Path, **meta: Any) -> None:
    """Save a bare state_dict of `model` with its build metadata (`arch`, `num_classes`,
    ...).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save({"format": MODEL_FORMAT, **meta, "state_dict": state}, path)


def load_model_file(path: str | Path) -> dict[str, Any]:
    """Load a file written by `save_model`, refusing files that are not ours."""
    obj = load(path)
    if obj.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"{path}: not an lskd model file (no format={MODEL_FORMAT!r})"
        )
    return obj
