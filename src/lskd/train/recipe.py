"""The optimisation recipe of one training job, as validated by the config schema."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lskd.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    """Optimisation recipe of one training job (teacher or student).

    The learning rate follows `schedule` per iteration after `warmup_epochs` of linear
    warm-up; `max_steps` caps the epochs by the run's steps per epoch (`capped`).
    `selection` says which epoch's weights and test accuracy are reported: `last`, or
    `best_val` (the epoch with the best top-1 on the held-out validation split, among
    the validated epochs: every `val_every`-th and the last).
    """

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    step_epochs: int = 30
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    selection: str = "last"
    eval_batch_size: int = 1000
    val_every: int = 1
    processes: int = 1
    max_steps: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "recipe") -> Recipe:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in d.items():
            if key not in fields:
                raise ConfigError(f"{where}.{key}: unknown key")
            want = {"int": int, "float": (int, float), "bool": bool, "str": str}[
                fields[key].type
            ]
            if (
                isinstance(value, bool)
                and fields[key].type != "bool"
                or not isinstance(value, want)
            ):
                raise ConfigError(
                    f"{where}.{key}: expected {fields[key].type}, got {value!r}"
                )
        missing = [
            n
            for n, f in fields.items()
            if n not in d and f.default is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: required key missing")
        recipe = cls(**d)
        if recipe.schedule not in ("cosine", "step"):
            raise ConfigError(
                f"{where}.schedule: expected cosine or step, got {recipe.schedule!r}"
            )
        if recipe.selection not in ("last", "best_val"):
            raise ConfigError(
                f"{where}.selection: expected last or best_val, "
                f"got {recipe.selection!r}"
            )
        for name in (
            "epochs",
            "batch_size",
            "eval_batch_size",
            "step_epochs",
            "val_every",
            "processes",
        ):
            if getattr(recipe, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1")
        if recipe.max_steps < 0:
            raise ConfigError(f"{where}.max_steps: must be >= 0 (0: no cap)")
        return recipe

    def capped(self, steps_per_epoch: int) -> Recipe:
        """The recipe a run with `steps_per_epoch` trains: with `max_steps`, only
        min(epochs, ceil(max_steps / steps_per_epoch)) whole epochs (at least one)."""
        if not self.max_steps:
            return self
        epochs = max(1, -(-self.max_steps // steps_per_epoch))
        return dataclasses.replace(self, epochs=min(self.epochs, epochs))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
