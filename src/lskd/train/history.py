"""A model's epoch history: which epochs validate, one epoch's entry, and the
best-validation weights kept while training (`lskd.train.loop`)."""

from __future__ import annotations

import copy
from typing import Any

from torch import Tensor, nn

from lskd.train.recipe import Recipe
from lskd.train.resume import EpochProgress


def validates(progress: EpochProgress, recipe: Recipe) -> bool:
    """Is the validation split evaluated after this epoch (every `val_every`-th and
    the last)?"""
    return progress.epoch % recipe.val_every == 0 or progress.epoch == recipe.epochs


def format_val(val: dict | None) -> str:
    return "-" if val is None else f"{val['top1']:.2f}"


def epoch_entry(
    progress: EpochProgress, train: dict, val: dict | None
) -> dict[str, Any]:
    """One epoch's line of a run's history (`train`: loss, top1, images_per_s; `val`
    None on an epoch without validation)."""
    return {
        "epoch": progress.epoch,
        "lr": progress.lr,
        "train_loss": train["loss"],
        "train_top1": train["top1"],
        "val_top1": None if val is None else val["top1"],
        "val_top5": None if val is None else val["top5"],
        "val_stability": None if val is None else val["stability"],
        "images_per_s": train["images_per_s"],
    }


def validated(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h for h in history if h["val_top1"] is not None]


def record_epoch(
    history: list[dict[str, Any]],
    best_state: dict[str, Tensor] | None,
    entry: dict[str, Any],
    module: nn.Module,
) -> dict[str, Tensor] | None:
    """Append `entry` to `history`; return the best-validation weights so far (a CPU
    copy of `module`'s if this validated epoch is strictly better than every earlier
    validated one)."""
    earlier = validated(history)
    if entry["val_top1"] is not None and (
        best_state is None or entry["val_top1"] > max(h["val_top1"] for h in earlier)
    ):
        best_state = copy.deepcopy(
            {k: v.detach().cpu() for k, v in module.state_dict().items()}
        )
    history.append(entry)
    return best_state
