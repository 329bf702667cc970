"""Append benchmark rows to a CSV under bench/results/ (shared by the bench scripts)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def append_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Append `rows` (dicts with the same keys) to `path`, writing the header first when
    the file is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
