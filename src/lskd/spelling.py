"""How numbers are spelled in run paths and in labels: one place, so that a run's path
and its table label name the value it was trained with."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# Significant digits of a number in paths (`path_token`).
PATH_DIGITS = 6


def path_token(value: float) -> str:
    """How a number is spelled in paths and wildcards: a plain decimal rounded to
    `PATH_DIGITS` significant digits, without exponent or trailing zeros (0 -> `0`,
    0.10 -> `0.1`, 64.0 -> `64`, 1e-05 -> `0.00001`, 1e8 -> `100000000`). The plan
    checks that every configured value is exactly its token."""
    if value == 0:
        return "0"  # also -0.0
    return format(Decimal(format(float(value), f".{PATH_DIGITS}g")), "f")


def label_text(value: Any) -> str:
    """A number in labels and captions as its path spells it (`0.1`, `64`, `0.00001`),
    so a label and its path never disagree; booleans as `on` / `off`."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return path_token(value)
