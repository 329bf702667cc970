"""Evaluation, and the metrics of a finished run: the one evaluation pass over a split
(for any number of models), the test metrics of the last and best-validation weights
(`summarise`), and those of an imported model (`evaluate_imported`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lskd.train.accuracy import topk_hits
from lskd.train.device import autocast, to_device, unwrap
from lskd.train.distributed import Context, all_sum
from lskd.train.history import validated
from lskd.train.recipe import Recipe
from lskd.train.stability_sums import StabilitySums, stability_keys


@torch.no_grad()
def evaluate(
    models: Sequence[nn.Module], batches: Iterable, ctx: Context
) -> list[dict[str, float]]:
    """Each model's plain cross-entropy, top-1 and top-5 (percent) and Shen et al.'s
    stability (``stability_sums``: Shen et al. 2021, Eq. (2), over every class and
    image) over one pass of a split. The sums stay on the device; each rank evaluates
    its shard and the sums are added over ranks, so the result is exact, and a model's
    is the same whether it is evaluated alone or with others."""
    for model in models:
        model.eval()
    k = len(models)
    sums = torch.zeros(k, 3, dtype=torch.float64, device=ctx.device)  # loss, top-1, 5
    stability = [StabilitySums(ctx.device) for _ in models]
    seen = 0
    for x, y in batches:
        x, y = to_device(x, y, ctx.device)
        for i, model in enumerate(models):
            with autocast(ctx.device):
                logits = model(x)
            ce = F.cross_entropy(logits.float(), y, reduction="sum")
            sums[i, 0] += ce.double()
            sums[i, 1:] += topk_hits(logits, y, (1, 5))
            stability[i].add(logits, y)
        seen += len(y)
    totals = all_sum([*sums.flatten().tolist(), seen], ctx)
    for sums_i in stability:
        sums_i.reduce(ctx)
    seen = totals[-1]
    return [
        {
            "loss": totals[3 * i] / seen,
            "top1": 100.0 * totals[3 * i + 1] / seen,
            "top5": 100.0 * totals[3 * i + 2] / seen,
            "stability": stability[i].value(),
        }
        for i in range(k)
    ]


def _cpu_copy(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def summarise(
    model: nn.Module,
    best_state: dict[str, Tensor],
    history: list[dict[str, Any]],
    test: Iterable,
    recipe: Recipe,
    ctx: Context,
    train_seconds: float,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Test-split metrics of the last and best-validation states of one trained model;
    loads the one `recipe.selection` chooses and returns (metrics, its state_dict)."""
    module = unwrap(model)
    best = max(validated(history), key=lambda h: h["val_top1"])
    last_state = _cpu_copy(module)
    picks = {}
    for name, entry, weights in (
        ("last", history[-1], last_state),
        ("best", best, best_state),
    ):
        module.load_state_dict(weights)
        result = evaluate([model], test, ctx)[0]
        picks[name] = {
            "epoch": entry["epoch"],
            "val_top1": entry["val_top1"],
            "val_top5": entry["val_top5"],
            "val_stability": entry.get("val_stability"),
            "test_top1": result["top1"],
            "test_top5": result["top5"],
            "test_loss": result["loss"],
            "test_stability": result["stability"],
        }
    chosen = "last" if recipe.selection == "last" else "best"
    chosen_state = last_state if chosen == "last" else best_state
    module.load_state_dict(chosen_state)
    images = sum(h["images_per_s"] for h in history) / len(history)
    metrics = {
        "selection": recipe.selection,
        "eval_split": "test",
        "chosen_epoch": picks[chosen]["epoch"],
        "top1": picks[chosen]["test_top1"],
        "top5": picks[chosen]["test_top5"],
        **stability_keys(picks[chosen]["test_stability"]),
        "last": picks["last"],
        "best": picks["best"],
        "epochs": recipe.epochs,
        "train_seconds": train_seconds,
        "train_images_per_s": images,
        "world_size": ctx.world,
        "train_images_per_s_per_process": images / ctx.world,
        "history": history,
    }
    return metrics, chosen_state


def evaluate_imported(
    model: nn.Module, val: Iterable, test: Iterable, ctx: Context
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Metrics of a model that was imported, not trained: epoch 0, selection `imported`,
    in the same layout as `summarise`'s so tables treat it like any other run."""
    v, t = evaluate([model], val, ctx)[0], evaluate([model], test, ctx)[0]
    entry = {
        "epoch": 0,
        "val_top1": v["top1"],
        "val_top5": v["top5"],
        "val_stability": v["stability"],
        "test_top1": t["top1"],
        "test_top5": t["top5"],
        "test_loss": t["loss"],
        "test_stability": t["stability"],
    }
    metrics = {
        "selection": "imported",
        "eval_split": "test",
        "chosen_epoch": 0,
        "top1": t["top1"],
        "top5": t["top5"],
        **stability_keys(t["stability"]),
        "last": entry,
        "best": entry,
        "epochs": 0,
        "train_seconds": 0.0,
        "train_images_per_s": 0.0,
        "world_size": ctx.world,
        "train_images_per_s_per_process": 0.0,
        "history": [],
    }
    return metrics, _cpu_copy(unwrap(model))
