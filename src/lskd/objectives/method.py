"""What a training method is: a named loss with declared, typed parameters.

A *regularizer* is how a teacher is trained (`ce`, `ls`, `maxsup`); an *objective* is
how a student is distilled from its frozen teacher at a temperature T (`kd`,
`logit_std_kd`, `dkd`). Each method is one short file in `lskd.objectives` with one
subclass of `Regularizer` or `Objective`, and one line in `lskd.objectives.__init__`
registers it (docs/adding-a-method.md). The class declares:

- `name` (the config's key), `title` (how tables and captions name it) and `slug` (how
  run paths spell it, no underscore);
- `params`: one `Param` each, with type, range and default; a config entry or a CLI
  flag is checked against them (`Choice.parse`), so an unknown or bad parameter stops
  with one line naming it;
- `loss(...)`: the loss of one batch, batch mean, computed in float32 whatever the
  forward pass ran in (bf16 autocast), from the logits alone.

Nothing here imports torch: the workflow's plan and the analysis read the registries at
start-up, and the losses import torch where they run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from lskd.errors import ConfigError
from lskd.spelling import label_text, path_token

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class Param:
    """One parameter of a method: its type (`float`, `int` or `bool`), range, default
    (None: off unless given), the letter its run paths use and the symbol its labels
    use."""

    name: str
    kind: type
    default: Any
    short: str
    symbol: str
    doc: str
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    quiet: bool = False  # labels leave it out at its default (a term switched off)

    def check(self, value: Any, where: str) -> Any:
        """`value` as this parameter's type; a bad one is a ConfigError naming
        `where`."""
        if value is None and self.default is None:
            return None
        ok = (
            isinstance(value, bool)
            if self.kind is bool
            else (isinstance(value, int | float) and not isinstance(value, bool))
        )
        if ok and self.kind is not bool:
            try:  # an int too large for a float, inf and nan are bad values too
                ok = math.isfinite(value)
            except OverflowError:
                ok = False
        if ok and self.kind is int and float(value) != int(value):
            ok = False
        if not ok:
            raise ConfigError(f"{where}: expected {self.kind.__name__}, got {value!r}")
        value = self.kind(value)
        if self.low is not None and value < self.low:
            raise ConfigError(f"{where}: must be >= {self.low:g}, got {value:g}")
        if self.high is not None and value > self.high:
            raise ConfigError(f"{where}: must be <= {self.high:g}, got {value:g}")
        return value

    def describe(self) -> str:
        """One line for `lskd methods` and the docs: type, range, default, meaning."""
        rng = ""
        if self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            rng = f" in [{lo}, {hi}]"
        return (
            f"{self.name} ({self.kind.__name__}{rng}, default {self.default}): "
            f"{self.doc}"
        )


class Method:
    """A registered method; an instance holds checked parameter values (`self.p`)."""

    name: ClassVar[str]
    title: ClassVar[str]
    slug: ClassVar[str] = ""  # path spelling; defaults to `name` without underscores
    params: ClassVar[tuple[Param, ...]] = ()
    role: ClassVar[str]  # "regularizer" or "objective"

    def __init__(self, **values: Any) -> None:
        self.p = values

    @classmethod
    def path_slug(cls) -> str:
        return cls.slug or cls.name.replace("_", "")

    @classmethod
    def check(cls, values: dict[str, Any], where: str) -> None:
        """Rules between parameters (one alone is checked by its `Param`); raise a
        ConfigError naming `where`."""

    @classmethod
    def token(cls, values: dict[str, Any]) -> str:
        """The path spelling: the slug, then `-<letter><value>` per parameter that is
        set (`maxsup-l0.1`)."""
        parts = [cls.path_slug()]
        for p in cls.params:
            value = values[p.name]
            if value is not None:
                number = int(value) if isinstance(value, bool) else value
                parts.append(f"{p.short}{path_token(number)}")
        return "-".join(parts)

    @classmethod
    def label(cls, values: dict[str, Any]) -> str:
        """How tables name it: the title and each set parameter (`MaxSup λ = 0.1`),
        but a quiet one at its default (`DKD α = 1, β = 8, warm-up = 5`: no hard-label
        term)."""
        shown = [
            f"{p.symbol} = {label_text(values[p.name])}"
            for p in cls.params
            if values[p.name] is not None
            and not (p.quiet and values[p.name] == p.default)
        ]
        return " ".join([cls.title, ", ".join(shown)]).strip()


class Regularizer(Method):
    """How a teacher is trained on hard labels."""

    role = "regularizer"

    def loss(self, logits: Tensor, y: Tensor, epoch: int, epochs: int) -> Tensor:
        """Batch-mean loss of the model's `logits` on labels `y` in epoch `epoch`
        (1-based) of `epochs`."""
        raise NotImplementedError


class Objective(Method):
    """How a student is distilled from a frozen teacher at temperature T."""

    role = "objective"

    def loss(
        self,
        student: Tensor,
        teacher: Tensor,
        y: Tensor,
        T: float,
        epoch: int,
        epochs: int,
    ) -> Tensor:
        """Batch-mean loss of the `student` logits against the (detached) `teacher`
        logits of the same batch, labels `y`, at temperature T, in epoch `epoch`
        (1-based) of `epochs`."""
        raise NotImplementedError


class Registry(Mapping[str, type[Method]]):
    """Methods of one role by name (`REGULARIZERS`, `OBJECTIVES`)."""

    def __init__(self, role: str, *methods: type[Method]) -> None:
        self.role, self._methods = role, {}
        for method in methods:
            self.add(method)

    def add(self, method: type[Method]) -> type[Method]:
        """Register `method` (usable as a class decorator); names and slugs are
        unique."""
        if method.role != self.role:
            raise ValueError(f"{method.__name__} is a {method.role}, not a {self.role}")
        for other in self._methods.values():
            if method.path_slug() == other.path_slug():
                raise ValueError(f"{method.name}: slug taken by {other.name}")
        shorts = [p.short for p in method.params]
        if len(set(shorts)) != len(shorts):
            raise ValueError(f"{method.name}: two parameters share a path letter")
        self._methods[method.name] = method
        return method

    def remove(self, name: str) -> None:
        """Unregister `name` (tests that register a method of their own)."""
        del self._methods[name]

    def __getitem__(self, name: str) -> type[Method]:
        return self._methods[name]

    def __iter__(self):
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)
