"""The optimisation recipe of one training job: the schema's `recipe`, filled in."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lskd.errors import ConfigError
from lskd.schema import validated


@dataclass(frozen=True)
class Recipe:
    """Optimisation recipe of one training job (teacher or student).

    The learning rate follows `schedule` per iteration after `warmup_epochs` of linear
    warm-up (`step`: every `step_epochs` epochs, or at the epochs of `milestones`
    when given); `max_steps` caps the epochs by the run's steps per epoch (`capped`).
    `selection` says which epoch's weights and test accuracy are reported: `last`, or
    `best_val` (the epoch with the best top-1 on the held-out validation split, among
    the validated epochs: every `val_every`-th and the last).
    """

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: str
    step_epochs: int
    gamma: float
    warmup_epochs: float
    selection: str
    eval_batch_size: int
    val_every: int
    processes: int
    max_steps: int
    milestones: tuple[int, ...] = ()  # empty: not set (no schema default)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "recipe") -> Recipe:
        """The recipe `d` (keys and defaults of the schema's `recipe`), checked; a bad
        or unknown key raises `ConfigError` naming `where.<key>`."""
        values = validated("recipe", d, where)
        ints = [f.name for f in dataclasses.fields(cls) if f.type == "int"]
        values = {**values, **{k: int(values[k]) for k in ints}}  # 2.0 is an int
        if "milestones" in values:
            if values["schedule"] != "step":
                raise ConfigError(
                    f"{where}.milestones: only with schedule: step, not "
                    f"{values['schedule']}"
                )
            values["milestones"] = tuple(sorted(int(m) for m in values["milestones"]))
        return cls(**values)

    def capped(self, steps_per_epoch: int) -> Recipe:
        """The recipe a run with `steps_per_epoch` trains: with `max_steps`, only
        min(epochs, ceil(max_steps / steps_per_epoch)) whole epochs (at least one)."""
        if not self.max_steps:
            return self
        epochs = max(1, -(-self.max_steps // steps_per_epoch))
        return dataclasses.replace(self, epochs=min(self.epochs, epochs))

    def to_dict(self) -> dict[str, Any]:
        """The recipe as the schema spells it; `milestones` only when set, so the
        records and resume checkpoints of recipes without it are unchanged."""
        d = dataclasses.asdict(self)
        if self.milestones:
            d["milestones"] = list(self.milestones)
        else:
            del d["milestones"]
        return d
