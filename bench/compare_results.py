"""Do two finished workflow runs hold the same results?

    python bench/compare_results.py BEFORE/results AFTER/results

For a refactoring that must not change what lskd computes: every JSON file
(metrics.json, train.json, diffusion.json, ...) is compared without its wall-time fields
(`lskd.progress.WALL_KEYS`; the checkout's own path, which a recorded fairseq command
line holds, counts as equal), every model.pt tensor by tensor (bit for bit), every table
(CSV) byte for byte. Figures and HTML are not compared (they embed dates and renderer
details). Prints one line per difference and a count per kind; exits 1 if anything
differs or a file is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lskd.progress import WALL_KEYS


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in WALL_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _tensors(path: Path) -> dict[str, Any]:
    import argparse as ap

    from lskd.models import checkpoint

    data = checkpoint.load(path, allow=[ap.Namespace])
    weights = data.get("state_dict", data.get("model"))
    return weights if isinstance(weights, dict) else {}


def compare(before: Path, after: Path) -> tuple[list[str], dict[str, int]]:
    """The differences, and how many files of each kind were compared."""
    import torch

    diffs, counts = [], {"json": 0, "model.pt": 0, "csv": 0}
    # a command line recorded in a result names the checkout it ran from; a results/
    # copied elsewhere still names its checkout, so both checkouts count as equal
    roots = sorted({str(p.resolve().parent) for p in (before, after)}, key=len)[::-1]

    def load(path: Path) -> Any:
        text = path.read_text()
        for root in roots:
            text = text.replace(root, "<checkout>")
        return _strip(json.loads(text))

    for a in sorted(before.rglob("*")):
        rel = a.relative_to(before)
        b = after / rel
        kind = a.suffix.lstrip(".") if a.name != "model.pt" else "model.pt"
        if not a.is_file() or kind not in counts:
            continue
        if not b.is_file():
            diffs.append(f"{rel}: missing in {after}")
            continue
        counts[kind] += 1
        if kind == "json":
            x, y = load(a), load(b)
            if isinstance(x, dict) and isinstance(y, dict):
                keys = [k for k in sorted(x.keys() | y.keys()) if x.get(k) != y.get(k)]
                diffs += [f"{rel}[{k!r}]" for k in keys]
            elif x != y:
                diffs.append(str(rel))
        elif kind == "csv":
            if a.read_bytes() != b.read_bytes():
                diffs.append(str(rel))
        else:
            wa, wb = _tensors(a), _tensors(b)
            if wa.keys() != wb.keys():
                diffs.append(f"{rel}: tensor names differ")
            diffs += [
                f"{rel}[{k!r}]" for k in wa if k in wb and not torch.equal(wa[k], wb[k])
            ]
    return diffs, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="results/ of the first run")
    parser.add_argument("after", type=Path, help="results/ of the second run")
    args = parser.parse_args()
    diffs, counts = compare(args.before, args.after)
    for line in diffs:
        print(line)
    compared = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    print(f"compared {compared}: {len(diffs)} differences")
    return 1 if diffs or not sum(counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
