"""The KD transfer set: which training images a student is distilled on.

Hinton et al. (2015) distil on a "transfer set" that need not be the teacher's whole
training set, and soft targets carry most of their value when it is small; the paper's
largest label-smoothing effects are in its data-poor setting (CUB-200-2011, about 30
training images per class; Chandrasegaran et al. 2022, Table 2). A student recipe's
`transfer` key lists the sizes to distil on (a grid axis, see config/README.md); each
size has one canonical spelling, its path token:

- ``all``: the whole training split (the default; the paper's recipes);
- an integer ``n`` >= 1: ``n`` images of every class (``n30``), stratified;
- a number ``f`` in (0, 1): that fraction of every class, rounded, at least one image
  (``f0.1``).

The images are drawn from the training split only (validation, test and the
penultimate-layer samples are untouched) with a seed derived from the student's seed
alone, so every alpha and every T of one seed distil on the SAME images (paired
comparisons) and different seeds on different ones. Each class's images are drawn as
the prefix of one permutation of that class, so a smaller set of a seed is a subset of
every larger one (sizes compare on nested sets).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from lskd.errors import ConfigError

ALL = "all"
_TOKEN = re.compile(r"^(all|n[1-9]\d*|f0\.\d*[1-9])$")


def size_token(value: Any, where: str = "transfer") -> str:
    """The path token of one configured transfer size (module docstring); a value
    that has none raises `ConfigError` naming `where`."""
    if value == ALL:
        return ALL
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{where}: {value!r} is not a transfer size (all, images per class >= 1, "
            "or a fraction in (0, 1))"
        )
    if isinstance(value, int) or float(value).is_integer():
        if value < 1:
            raise ConfigError(f"{where}: images per class must be >= 1, got {value}")
        return f"n{int(value)}"
    if not 0 < value < 1:
        raise ConfigError(f"{where}: a fraction must lie in (0, 1), got {value}")
    text = repr(float(value))
    if "e" in text or len(text) > 8:
        raise ConfigError(
            f"{where}: fraction {value} needs at most 6 decimals (it is spelled in "
            "run paths)"
        )
    return f"f{text}"


def size_tokens(values: list[Any], where: str) -> list[str]:
    """Path tokens of a configured list of sizes; two values with one token (e.g. 30
    and 30.0) stop with one line naming both."""
    tokens: dict[str, int] = {}
    for i, value in enumerate(values):
        token = size_token(value, f"{where}[{i}]")
        if token in tokens:
            j = tokens[token]
            raise ConfigError(
                f"{where}[{i}]: {value!r} is the same transfer size as {where}[{j}] "
                f"({values[j]!r}, path token {token})"
            )
        tokens[token] = i
    return list(tokens)


def draw_seed(seed: int) -> int:
    """Seed of a student's transfer draw: sha256 of "transfer:<seed>", 4 bytes (its
    own stream, independent of the training seed's)."""
    digest = hashlib.sha256(f"transfer:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class TransferSet:
    """One transfer size (`token`, as `size_token` spells it) of student seed `seed`."""

    token: str
    seed: int

    def __post_init__(self) -> None:
        if not _TOKEN.match(self.token):
            raise ConfigError(
                f"--transfer: {self.token!r} is not a transfer-size token (all, "
                "n<images per class>, f<fraction>)"
            )

    def indices(self, labels: np.ndarray) -> np.ndarray:
        """Sorted indices into the training split (whose labels are `labels`)."""
        labels = np.asarray(labels)
        if self.token == ALL:
            return np.arange(len(labels))
        rng = np.random.default_rng(draw_seed(self.seed))
        kind, value = self.token[0], float(self.token[1:])
        chosen = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            order = members[rng.permutation(len(members))]
            n = int(value) if kind == "n" else max(1, round(value * len(members)))
            if n > len(members):
                raise ConfigError(
                    f"transfer: {n} images per class, but class {c} has only "
                    f"{len(members)} training images"
                )
            chosen.append(order[:n])
        return np.sort(np.concatenate(chosen))

    def record(self, indices: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """What metrics.json says about the transfer set a student saw."""
        per_class = np.bincount(np.asarray(labels)[indices])
        digest = hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()
        return {
            "size": self.token,
            "images": int(len(indices)),
            "per_class_min": int(per_class[per_class > 0].min()),
            "per_class_max": int(per_class.max()),
            "draw_seed": None if self.token == ALL else draw_seed(self.seed),
            "indices_sha256": digest,
        }
