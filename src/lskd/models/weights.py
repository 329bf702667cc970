"""Import foreign checkpoints as lskd model files; start fine-tuning from them.

`import_weights` turns a torchvision state_dict, an official-code checkpoint
(`{"arch", "state_dict": {"module.…": …}, "best_acc1", …}`,
docs/recipes.md#official-checkpoints), one of our `last.pt` files of one model
(`{"models": [...]}`, or `{"model": …}` as written before) or an lskd model file into an
lskd model file (`checkpoint.MODEL_FORMAT`, role "import"). It
checks the file's sha256 before it unpickles anything (and always through
`checkpoint.load`, so weights_only) and that the weights fit `arch` exactly, before it
writes anything.

`init_model` loads such a file into a freshly built model. Every tensor but the final
classifier must match; the classifier is copied only when the class counts agree, so a
1000-class ImageNet net starts a 200-class CUB run with a fresh head
(docs/recipes.md#cub-teachers, docs/recipes.md#cub-students).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lskd.errors import CheckpointError, ConfigError
from lskd.models import checkpoint
from lskd.models.registry import build_model, classifier

log = logging.getLogger(__name__)

IMAGE_SIZE = 224  # imports are ImageNet-style nets: full-size stem first
SMALL_IMAGE = 32  # then the small-image stem (`build_model` below 64 px)
SHOWN = 5  # offending keys an error message names


def import_weights(
    src: str | Path,
    out: str | Path,
    arch: str,
    expected_sha256: str | None = None,
    source: str = "",
    alpha: float | None = None,
) -> dict[str, Any]:
    """Check `src` and write its weights to `out` as an lskd model file of `arch`.

    `source` (default: the file name) and the sha256 are recorded in `out`. `alpha`
    fills in the teacher's LS factor when the checkpoint does not carry one
    (`teacher_alpha`/`alpha`); if it does, the two must agree. Nothing is written
    unless every check passes. Returns a summary for the log / CLI.
    """
    src, out = Path(src), Path(out)
    digest = _verified_sha256(src, expected_sha256)  # before anything is unpickled
    obj = checkpoint.load(src)
    kind, state = _extract_state(obj, src)
    meta = {} if kind == "state_dict" else obj  # a bare state_dict holds only weights
    if meta.get("arch") is not None and meta["arch"] != arch:
        raise CheckpointError(
            f"{src}: checkpoint arch is {meta['arch']!r}, not {arch!r}"
        )
    alpha = _alpha(meta, alpha, src)
    model, num_classes, in_channels = _build_fitting(state, arch)
    n_keys = len(state)
    _fill_bn_counters(model, state)
    problems = _mismatches(model.state_dict(), state)
    if problems:
        raise CheckpointError(
            f"{src}: weights do not fit arch {arch!r}: {'; '.join(problems)}"
        )
    model.load_state_dict(state, strict=True)
    checkpoint.save_model(
        model,
        out,
        arch=arch,
        num_classes=num_classes,
        in_channels=in_channels,
        role="import",
        alpha=alpha,
        T=None,
        seed=None,
        source=source or src.name,
        source_sha256=digest,
    )
    log.info("imported %s (%s, %d tensors) as %s", src, kind, n_keys, out)
    return {
        "arch": arch,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "alpha": alpha,
        "kind": kind,
        "sha256": digest,
        "keys": n_keys,
    }


def init_model(
    model: nn.Module, path: str | Path, num_classes: int, require_head: bool = False
) -> None:
    """Load the lskd model file `path` into `model` (built, not compiled or wrapped).

    Every tensor except the final classifier (`models.classifier`) must be present
    with the same shape, and nothing else may be in the file. The classifier is
    loaded too when the file's class count equals `num_classes`; otherwise it keeps
    the model's fresh initialisation, unless `require_head` (a finished model that is
    evaluated, not fine-tuned), which makes a class-count mismatch an error.
    """
    path = Path(path)
    meta = checkpoint.load_model_file(path)
    state = meta.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no state_dict in model file")
    head = classifier(model)
    head_name = _module_name(model, head)
    head_keys = {f"{head_name}.{k}" for k in head.state_dict()}
    weight_key = f"{head_name}.weight"
    if head.out_features != num_classes:
        raise ConfigError(
            f"num_classes={num_classes} but the model's classifier {head_name!r} "
            f"has {head.out_features} outputs"
        )
    if weight_key not in state:
        raise CheckpointError(f"{path}: no classifier weights {weight_key!r}")
    found = int(state[weight_key].shape[0])
    copy_head = found == num_classes
    if require_head and not copy_head:
        raise CheckpointError(f"{path}: {found} classes, the data has {num_classes}")
    ignore = set() if copy_head else head_keys
    own = model.state_dict()
    problems = _mismatches(own, state, ignore)
    if problems:
        raise CheckpointError(
            f"{path}: weights of arch {meta.get('arch')!r} do not fit the model: "
            f"{'; '.join(problems)}"
        )
    merged = {**own, **{k: v for k, v in state.items() if k not in ignore}}
    model.load_state_dict(merged, strict=True)
    log.info(
        "initialised from %s (%d tensors; classifier %s)",
        path,
        len(state) - len(ignore & state.keys()),
        "copied" if copy_head else "fresh",
    )


def _verified_sha256(src: Path, expected: str | None) -> str:
    """sha256 of `src`; a mismatch with `expected` (any case) names both hashes."""
    if not src.is_file():
        raise CheckpointError(f"{src}: file not found")
    digest = checkpoint.sha256(src)
    if expected is not None and expected.strip().lower() != digest:
        raise CheckpointError(
            f"{src}: sha256 mismatch: file has {digest}, expected {expected}"
        )
    return digest


def _extract_state(obj: dict[str, Any], src: Path) -> tuple[str, dict[str, Any]]:
    """(kind, state_dict with wrapper prefixes removed) of a loaded checkpoint."""
    if "format" in obj:
        if obj["format"] != checkpoint.MODEL_FORMAT:
            raise CheckpointError(f"{src}: unknown model file format {obj['format']!r}")
        kind, raw = "lskd", obj.get("state_dict")
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        kind, raw = "state_dict", obj
    elif isinstance(obj.get("state_dict"), dict):
        kind, raw = "official", obj["state_dict"]
    elif isinstance(obj.get("models"), list) and len(obj["models"]) == 1:
        kind, raw = "last", obj["models"][0]
    elif isinstance(obj.get("model"), dict):
        kind, raw = "last", obj["model"]
    else:
        raise CheckpointError(
            f"{src}: no weights found (want a state_dict or a dict with 'state_dict' "
            f"or 'model'; keys: {', '.join(map(str, list(obj)[:SHOWN]))})"
        )
    if not isinstance(raw, dict) or not raw:
        raise CheckpointError(f"{src}: empty or malformed state_dict")
    return kind, _strip_wrappers(raw, src)


def _strip_wrappers(raw: dict[Any, Any], src: Path) -> dict[str, torch.Tensor]:
    """Drop DDP's leading `module.` and torch.compile's `_orig_mod.` from every key."""
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{src}: state_dict entry {key!r} is a {type(value).__name__}, "
                "not a tensor"
            )
        parts = [p for p in str(key).split(".") if p != "_orig_mod"]
        while len(parts) > 1 and parts[0] == "module":
            parts.pop(0)
        name = ".".join(parts)
        if name in state:
            raise CheckpointError(f"{src}: two entries become {name!r} without prefix")
        state[name] = value
    return state


def _alpha(obj: dict[str, Any], given: float | None, src: Path) -> float | None:
    """The teacher's LS factor recorded in the checkpoint, checked against `given`."""
    key = next((k for k in ("teacher_alpha", "alpha") if obj.get(k) is not None), None)
    if key is None:
        return given
    value = obj[key]
    try:
        found = float(value.item() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError):
        raise CheckpointError(f"{src}: {key}={value!r} is not a number") from None
    if given is not None and abs(found - given) > 1e-9:
        raise CheckpointError(f"{src}: {key}={found} in the file, but alpha={given}")
    return found


def _build_fitting(
    state: dict[str, torch.Tensor], arch: str
) -> tuple[nn.Module, int, int]:
    """`arch` with the class count, input channels and image size the weights imply:
    channels from the first conv (or, for an MLP, channels x side² of its first
    layer), the image size that gives every tensor its shape (an MLP's side; 224 px,
    else the small-image stem of `build_model`), so weights for any task's images
    import; the training job then checks they fit its task."""
    num_classes, in_channels, sizes = 1000, 3, [IMAGE_SIZE, SMALL_IMAGE]
    with torch.device("meta"):  # names and shapes only: no memory, no init cost
        model = build_model(arch, num_classes, in_channels, IMAGE_SIZE)
    head = state.get(f"{_module_name(model, classifier(model))}.weight")
    if head is not None and head.ndim == 2:
        num_classes = int(head.shape[0])
    conv = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    first = next(n for n, m in model.named_modules() if isinstance(m, nn.Linear))
    stem = state.get(f"{conv if conv is not None else first}.weight")
    if stem is not None and stem.ndim == 4:
        in_channels = int(stem.shape[1])
    elif conv is None and stem is not None and stem.ndim == 2:  # C * side² inputs
        for channels in (1, 3):
            side = math.isqrt(int(stem.shape[1]) // channels)
            if channels * side * side == int(stem.shape[1]):
                in_channels, sizes = channels, [side]
    counters = {k for k in state if k.endswith(".num_batches_tracked")}
    for size in sizes:
        with torch.device("meta"):
            probe = build_model(arch, num_classes, in_channels, size)
        expected = probe.state_dict()
        ignore = counters | {k for k in expected if k.endswith("num_batches_tracked")}
        if not _mismatches(expected, state, ignore):
            break
    model = build_model(arch, num_classes, in_channels, size)
    return model, num_classes, in_channels


def _fill_bn_counters(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Old torchvision files lack `num_batches_tracked`; torch fills these in too."""
    for key, value in model.state_dict().items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = value.clone()


def _mismatches(
    expected: dict[str, torch.Tensor],
    got: dict[str, torch.Tensor],
    ignore: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """Missing / unexpected / wrong-shape keys of `got`, first `SHOWN` of each."""
    missing = [k for k in expected if k not in got and k not in ignore]
    unexpected = [k for k in got if k not in expected and k not in ignore]
    shapes = [
        f"{k} (file {tuple(got[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in got and k not in ignore and got[k].shape != v.shape
    ]
    problems = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape mismatch", shapes),
    ):
        if keys:
            more = f", … {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
            problems.append(f"{label} {', '.join(keys[:SHOWN])}{more}")
    return problems


def _module_name(model: nn.Module, module: nn.Module) -> str:
    """Qualified name of `module` inside `model` (by identity)."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of the model")
