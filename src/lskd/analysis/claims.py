"""The paper's claims (PAPER.md §1, §4.7) checked on the user's runs.

Input: the ``metrics.json`` dicts of one table (one task, one teacher arch → one student
arch; teachers and students, any number of seeds). Each claim compares two cells (a
cell = role, alpha, T; its value = the mean top-1 over seeds) and reports the signed
``margin`` in top-1 points that the claim is about (see ``CLAIMS``). Verdicts:

- ``holds`` / ``does not hold``: the margin's sign (``> 0``, or ``<= 0`` for C4);
- ``not enough runs``: a cell the claim needs is missing (margin NaN, n 0);
- ``within noise``: with >= 2 seeds in BOTH compared cells,
  ``|margin| < max(s_a, s_b)``, the larger sample std (ddof 1) of the two cells: the
  margin is smaller than the seed-to-seed spread of a single run, so a reseed could flip
  it. max(s_a, s_b) >= sqrt(s_a²/n_a + s_b²/n_b), the standard error of the difference
  of means (equal at n = 2 with equal stds), so a margin outside is more than one
  standard error from 0. This is a plain "larger than reseeding noise" reading, not a
  significance test: a two-sided 95 % t-test with 1–4 degrees of freedom would ask for
  2.8–12.7 standard errors, which 2–3 seeds almost never give. With one seed on either
  side no noise judgement is made, and the ``note`` says so.

``n`` is the number of seeds of the smaller compared cell.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lskd.analysis.tables import (
    check_consistent,
    format_alpha,
    parse_run,
    read_metrics,
    to_html,
)
from lskd.atomic import atomic_path
from lskd.errors import DataError

log = logging.getLogger(__name__)

BASE_ALPHA = 0.0
LS_ALPHA = 0.1
COLUMNS = ("claim_id", "claim", "quote", "source", "verdict", "margin", "n", "note")
Cells = dict[tuple[str, float, float | None], np.ndarray]


@dataclass(frozen=True)
class Claim:
    """One claim: our operational wording, PAPER.md's words, and where they are."""

    claim_id: str
    claim: str
    quote: str
    source: str
    holds_if_positive: bool = True  # False: holds when margin <= 0


CLAIMS = (
    Claim(
        "C1",
        "LS improves the teacher: top-1 of the alpha = 0.1 teacher minus the "
        "alpha = 0.0 teacher's is > 0",
        "LS teacher improves the teacher itself",
        "PAPER.md §4.7",
    ),
    Claim(
        "C2",
        "at T = 1 the alpha = 0.1 teacher's student beats the alpha = 0.0 teacher's "
        "student (margin: alpha 0.1 minus alpha 0.0 at T = 1)",
        "at T = 1 the LS teacher always beats the non-LS teacher",
        "PAPER.md §4.7; §1 (use an LS-trained teacher with T = 1)",
    ),
    Claim(
        "C3",
        "for alpha = 0.1 the best student is at T = 1 (margin: T = 1 minus the best "
        "T > 1)",
        "In every setting the best α=0.1 student is at T = 1",
        "PAPER.md §4.7",
    ),
    Claim(
        "C4",
        "at the largest T the alpha = 0.1 teacher's student is no better than the "
        "alpha = 0.0 teacher's, the LS benefit is cancelled (margin: alpha 0.1 minus "
        "alpha 0.0; holds if <= 0)",
        "KD at increased T from an LS teacher is ineffective",
        "PAPER.md §1",
        holds_if_positive=False,
    ),
    Claim(
        "C5",
        "without LS increased T helps: for alpha = 0.0 some T > 1 beats T = 1 "
        "(margin: best T > 1 minus T = 1)",
        "Increased T is still often helpful when the teacher was trained WITHOUT LS",
        "PAPER.md §1; §4.7",
    ),
    Claim(
        "C6",
        "for alpha = 0.1 student top-1 falls at every step up in T (margin: the "
        "smallest drop between neighbouring T)",
        "Accuracy falls monotonically with T for the α = 0.1 teacher in every image "
        "setting",
        "PAPER.md §4.7",
    ),
)


@dataclass(frozen=True)
class Comparison:
    """``margin = mean(left) - mean(right)`` (or the claim's own difference)."""

    margin: float
    left: np.ndarray
    right: np.ndarray
    what: str


def _t(T: float) -> str:
    return format(T, "g")


def _parse(metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None) -> Cells:
    """Validate one table's runs; group top-1 by (role, alpha, T)."""
    if not metrics:
        raise DataError("no metrics.json given")
    if sources is None:
        sources = [f"metrics[{i}]" for i in range(len(metrics))]
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    check_consistent(runs)  # one table: same task, archs, split; no run twice
    cells: dict[tuple[str, float, float | None], list[float]] = {}
    for run in runs:
        cells.setdefault((run.role, run.alpha, run.T), []).append(run.top1)
    return {key: np.asarray(values) for key, values in cells.items()}


def _temps(cells: Cells, alpha: float) -> list[float]:
    return sorted(T for role, a, T in cells if role == "student" and a == alpha)


def _pair(cells: Cells, left: tuple, right: tuple, what: str) -> Comparison | str:
    """Compare two cells; a string names the missing one."""
    for key in (left, right):
        if key not in cells:
            role, alpha, T = key
            at = "" if T is None else f" at T = {_t(T)}"
            return f"no {format_alpha(alpha)} {role}{at}"
    margin = float(cells[left].mean() - cells[right].mean())
    return Comparison(margin, cells[left], cells[right], what)


def _c1(cells: Cells, ls: float) -> Comparison | str:
    left, right = ("teacher", ls, None), ("teacher", BASE_ALPHA, None)
    return _pair(cells, left, right, "the two teachers")


def _c2(cells: Cells, ls: float) -> Comparison | str:
    left, right = ("student", ls, 1.0), ("student", BASE_ALPHA, 1.0)
    return _pair(cells, left, right, "the two T = 1 students")


def _best_above_one(cells: Cells, alpha: float) -> float | str:
    """The T > 1 with the highest mean top-1 for ``alpha``."""
    higher = [T for T in _temps(cells, alpha) if T > 1.0]
    if not higher:
        return f"no {format_alpha(alpha)} student at T > 1"
    return max(higher, key=lambda T: cells[("student", alpha, T)].mean())


def _c3(cells: Cells, ls: float) -> Comparison | str:
    best = _best_above_one(cells, ls)
    if isinstance(best, str):
        return best
    what = f"{format_alpha(ls)} at T = 1 and T = {_t(best)}"
    return _pair(cells, ("student", ls, 1.0), ("student", ls, best), what)


def _c4(cells: Cells, ls: float) -> Comparison | str:
    common = set(_temps(cells, ls)) & set(_temps(cells, BASE_ALPHA))
    if not common or max(common) <= 1.0:
        return "no T > 1 with students of both teachers"
    top = max(common)
    what = f"the two T = {_t(top)} students"
    return _pair(cells, ("student", ls, top), ("student", BASE_ALPHA, top), what)


def _c5(cells: Cells, ls: float) -> Comparison | str:
    best = _best_above_one(cells, BASE_ALPHA)
    if isinstance(best, str):
        return best
    what = f"{format_alpha(BASE_ALPHA)} at T = {_t(best)} and T = 1"
    left, right = ("student", BASE_ALPHA, best), ("student", BASE_ALPHA, 1.0)
    return _pair(cells, left, right, what)


def _c6(cells: Cells, ls: float) -> Comparison | str:
    temps = _temps(cells, ls)
    if len(temps) < 2:
        return f"fewer than 2 temperatures for {format_alpha(ls)}"
    drops = [
        _pair(cells, ("student", ls, a), ("student", ls, b), f"T = {_t(a)}, {_t(b)}")
        for a, b in zip(temps, temps[1:], strict=False)
    ]
    worst = min(drops, key=lambda c: c.margin)
    what = f"{format_alpha(ls)} at neighbouring {worst.what}"
    return Comparison(worst.margin, worst.left, worst.right, what)


RULES: dict[str, Callable[[Cells, float], Comparison | str]] = {
    "C1": _c1,
    "C2": _c2,
    "C3": _c3,
    "C4": _c4,
    "C5": _c5,
    "C6": _c6,
}


def _judge(claim: Claim, result: Comparison | str) -> dict[str, Any]:
    """Verdict, margin, n and note of one claim (rules in the module docstring)."""
    row = {c: getattr(claim, c) for c in ("claim_id", "claim", "quote", "source")}
    if isinstance(result, str):
        return row | {
            "verdict": "not enough runs",
            "margin": math.nan,
            "n": 0,
            "note": result,
        }
    margin, left, right = result.margin, result.left, result.right
    holds = margin > 0 if claim.holds_if_positive else margin <= 0
    verdict = "holds" if holds else "does not hold"
    sizes = f"compares {result.what}; seeds {len(left)} vs {len(right)}"
    if min(len(left), len(right)) < 2:
        note = f"{sizes}: 1 seed on a side, no noise judgement"
    else:
        noise = max(float(left.std(ddof=1)), float(right.std(ddof=1)))
        inside = abs(margin) < noise
        verdict = "within noise" if inside else verdict
        sign = "<" if inside else ">="
        note = f"{sizes}: |margin| {sign} larger sample std {noise:.3f}"
    n = min(len(left), len(right))
    return row | {"verdict": verdict, "margin": margin, "n": n, "note": note}


def evaluate_claims(
    runs: Sequence[dict[str, Any]],
    sources: Sequence[str] | None = None,
    ls_alpha: float = LS_ALPHA,
) -> pd.DataFrame:
    """One row per claim of ``CLAIMS`` evaluated on one table's ``metrics.json`` dicts.

    Columns ``COLUMNS``; ``ls_alpha`` is the LS teacher compared with alpha = 0.0 (the
    paper's 0.1; another value is written into the claim texts).
    """
    cells = _parse(runs, sources)
    rows = [_judge(claim, RULES[claim.claim_id](cells, ls_alpha)) for claim in CLAIMS]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if ls_alpha != LS_ALPHA:
        table["claim"] = table["claim"].str.replace(
            format_alpha(LS_ALPHA), format_alpha(ls_alpha), regex=False
        )
    return table


def claims_caption(runs: Sequence[dict[str, Any]]) -> str:
    """One line: which runs, and that the verdicts are computed from them."""
    first = parse_run(runs[0], "metrics[0]")
    student = next((r["arch"] for r in runs if r.get("role") == "student"), None)
    pair = f"teacher {first.teacher_arch}"
    if student:
        pair += f" → student {student}"
    return (
        f"Claims of PAPER.md §1 and §4.7 evaluated on the user's runs ({first.task}, "
        f"{pair}, {len(runs)} runs): verdicts are computed from these runs, not "
        "assumed; margin in top-1 points; 'within noise' means |margin| < the larger "
        "sample std of the two compared cells (needs >= 2 seeds in each)."
    )


def claims_table(
    metrics_paths: Sequence[Path],
    out_csv: Path,
    out_md: Path,
    out_html: Path | None = None,
) -> pd.DataFrame:
    """Evaluate the claims on ``metrics_paths``; write CSV, Markdown (and the HTML the
    report shows) atomically."""
    paths = [Path(p) for p in metrics_paths]
    runs = [read_metrics(p) for p in paths]
    table = evaluate_claims(runs, [str(p) for p in paths])
    shown = table.assign(
        margin=[("–" if math.isnan(m) else f"{m:+.3f}") for m in table["margin"]]
    )
    markdown = shown.to_markdown(index=False, disable_numparse=True)
    texts = {
        Path(out_csv): table.to_csv(index=False),
        Path(out_md): f"{claims_caption(runs)}\n\n{markdown}\n",
    }
    if out_html is not None:
        texts[Path(out_html)] = to_html(
            shown.set_index("claim_id"), claims_caption(runs)
        )
    for dest, text in texts.items():
        with atomic_path(dest) as tmp:
            tmp.write_text(text, encoding="utf-8")
    counts = table["verdict"].value_counts().to_dict()
    log.info("wrote %s and %s: %s", out_csv, out_md, counts)
    return table
