"""argparse helpers shared by the `lskd` subcommand modules: JSON arguments and the
flag groups of the training, penultimate-layer and analysis commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def json_arg(text: str) -> dict:
    """argparse type: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def add_augment(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--augment", type=json_arg, default={}, help=help_text + " (JSON)")


def add_penultimate_flags(p: argparse.ArgumentParser) -> None:
    """The images of the penultimate-layer projection (`extract`, `analyse`)."""
    p.add_argument(
        "--classes",
        type=int,
        nargs=3,
        required=True,
        help="three class ids: two similar, one dissimilar",
    )
    p.add_argument(
        "--train-per-class", type=int, required=True, help="training images/class"
    )
    p.add_argument(
        "--test-per-class", type=int, required=True, help="test images/class"
    )
    add_augment(p, "the task's augmentation (image size and eval resize of files)")


def add_run_flags(p: argparse.ArgumentParser, outputs: str | None = None) -> None:
    """The flags of `train` and `distill`; with `outputs="+"` --model-out and
    --metrics-out take one path per temperature."""
    p.add_argument("--task", required=True, help="task name, recorded in metrics.json")
    p.add_argument("--data", type=Path, required=True, help="prepared dataset (.npz)")
    p.add_argument(
        "--arch", required=True, help="architecture (registry or torchvision name)"
    )
    p.add_argument(
        "--seed", type=int, required=True, help="seed of init, order, augmentation"
    )
    p.add_argument(
        "--hp",
        type=json_arg,
        required=True,
        help="recipe as JSON: epochs, batch_size, lr, momentum, nesterov, "
        "weight_decay, schedule, step_epochs, gamma, warmup_epochs, "
        "selection, val_every, eval_batch_size",
    )
    add_augment(p, 'the task\'s augmentation, e.g. {"pad": 2, "hflip": true}')
    each = " (one per --T)" if outputs else ""
    for flag, name in (("--model-out", "model.pt"), ("--metrics-out", "metrics.json")):
        p.add_argument(
            flag,
            type=Path,
            nargs=outputs,
            required=True,
            help=f"where to write {name}{each}",
        )
    p.add_argument(
        "--device", default="auto", help="auto (CUDA if present), cpu or cuda[:i]"
    )
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument(
        "--gpus",
        type=int,
        default=1,
        help="data-parallel processes (one per GPU; Gloo on CPU); >1 relaunches "
        "through torchrun",
    )
    p.add_argument(
        "--loader",
        choices=["torchvision", "dali"],
        default="torchvision",
        help="image-file loading: torchvision/PIL workers or NVIDIA DALI",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="data-loading worker processes of the job (default: --threads); shared "
        "among data-parallel processes",
    )
    p.add_argument(
        "--init", type=Path, help="lskd model file to start from (lskd import-weights)"
    )
    p.add_argument(
        "--compile", action="store_true", help="wrap the model in torch.compile"
    )
    p.add_argument(
        "--nondeterministic",
        action="store_true",
        help="allow non-deterministic kernels (faster on GPU)",
    )


def add_metrics_arg(p: argparse.ArgumentParser) -> None:
    """The metrics.json files of a table's runs (`table`, `delta`, `delta-transfer`)."""
    p.add_argument(
        "metrics", type=Path, nargs="+", help="metrics.json of teachers and students"
    )
