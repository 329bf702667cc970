"""The paper's claims (Chandrasegaran et al. 2022) checked on the user's runs, judged by
paired seed differences and their 95 % intervals.

Input: the ``metrics.json`` dicts of one table (one task, one teacher arch → one
student arch; teachers and students, any number of seeds). The LS teacher is every
alpha > 0 in the runs, each compared with alpha = 0: one block of the claims
``CLAIMS`` per alpha > 0 (column ``alpha``).

Each claim compares two cells (a cell = role, alpha, T). Its ``margin`` (top-1 points)
is the mean over seeds of the per-seed difference ``left_s - right_s``, paired by seed
(the run's ``seed``; teachers by their own seed), with the 95 % Student-t interval of
those differences ``[ci_low, ci_high]`` (``lskd.analysis.stats.paired``); ``n`` is
the number of paired seeds. Where a claim picks a temperature ("the best T > 1", "the
smallest drop"), it picks by the mean over seeds and then pairs the two cells by seed.

A claim is a statement about the sign of its margin: ``margin > 0`` (or ``margin <= 0``
for C4, "no better than"). Verdicts:

- ``holds`` / ``does not hold``: the whole interval lies on one side of that boundary:
  ``ci_low > 0`` decides ``margin > 0``, ``ci_high <= 0`` decides ``margin <= 0``. An
  interval that ends exactly at 0 from below, e.g. ``[-0.4, 0]`` or the zero-width
  ``[0, 0]`` of identical seed differences, decides ``margin <= 0`` (C4 holds, the
  others do not);
- ``inconclusive``: the interval has values on both sides (``ci_low <= 0 < ci_high``:
  it contains 0, other than as its upper end);
- ``not enough runs``: a cell the claim needs is missing, or fewer than 2 paired seeds
  (no interval; the note says what the margin's sign alone would say).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lskd.analysis.formats import to_html
from lskd.analysis.records import (
    check_consistent,
    format_alpha,
    parse_run,
    read_metrics,
)
from lskd.analysis.stats import PAIRED_TEXT, Cells, Estimate, paired, seed_cells
from lskd.atomic import atomic_path
from lskd.errors import DataError

log = logging.getLogger(__name__)

BASE_ALPHA = 0.0
COLUMNS = (
    "alpha",
    "claim_id",
    "claim",
    "source",
    "verdict",
    "margin",
    "ci_low",
    "ci_high",
    "n",
    "note",
)
VERDICTS = ("holds", "does not hold", "inconclusive", "not enough runs")
PAPER = "Chandrasegaran et al. 2022"


@dataclass(frozen=True)
class Claim:
    """One claim: our operational wording (``{ls}`` = the LS teacher's alpha) and
    where the paper makes it."""

    claim_id: str
    claim: str
    source: str
    holds_if_positive: bool = True  # False: holds when margin <= 0


CLAIMS = (
    Claim(
        "C1",
        "LS improves the teacher: top-1 of the {ls} teacher minus the alpha = 0 "
        "teacher's is > 0",
        f"{PAPER}, Tables 2 and 4 (teacher rows)",
    ),
    Claim(
        "C2",
        "at T = 1 the {ls} teacher's student beats the alpha = 0 teacher's student "
        "(margin: {ls} minus alpha = 0 at T = 1)",
        f"{PAPER}, Tables 2 and 4; its advice: an LS teacher with T = 1",
    ),
    Claim(
        "C3",
        "for {ls} the best student is at T = 1 (margin: T = 1 minus the best T > 1)",
        f"{PAPER}, Tables 2 and 4",
    ),
    Claim(
        "C4",
        "at the largest T the {ls} teacher's student is no better than the alpha = 0 "
        "teacher's, the LS benefit is cancelled (margin: {ls} minus alpha = 0; holds "
        "if <= 0)",
        f"{PAPER}, abstract (systematic diffusion makes KD at an increased T from an "
        "LS teacher ineffective)",
        holds_if_positive=False,
    ),
    Claim(
        "C5",
        "without LS increased T helps: for alpha = 0 some T > 1 beats T = 1 "
        "(margin: best T > 1 minus T = 1)",
        f"{PAPER}, abstract and Tables 2 and 4 (teachers without LS)",
    ),
    Claim(
        "C6",
        "for {ls} student top-1 falls at every step up in T (margin: the smallest "
        "drop between neighbouring T)",
        f"{PAPER}, Tables 2 and 4",
    ),
)


@dataclass(frozen=True)
class Comparison:
    """The claim's paired estimate of ``left - right`` and what was compared."""

    estimate: Estimate
    what: str


def _t(T: float) -> str:
    return format(T, "g")


def _parse(metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None) -> Cells:
    """Validate one table's runs; top-1 by (role, alpha, T) and seed."""
    if not metrics:
        raise DataError("no metrics.json given")
    if sources is None:
        sources = [f"metrics[{i}]" for i in range(len(metrics))]
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    check_consistent(runs)  # one table: same task, archs, split; no run twice
    return seed_cells(runs)


def _temps(cells: Cells, alpha: float) -> list[float]:
    return sorted(T for role, a, T in cells if role == "student" and a == alpha)


def _mean(cells: Cells, key: tuple) -> float:
    values = cells[key].values()
    return sum(values) / len(values)


def _pair(cells: Cells, left: tuple, right: tuple, what: str) -> Comparison | str:
    """Compare two cells by seed; a string names the missing one."""
    for key in (left, right):
        if key not in cells:
            role, alpha, T = key
            at = "" if T is None else f" at T = {_t(T)}"
            return f"no {format_alpha(alpha)} {role}{at}"
    return Comparison(paired(cells[left], cells[right]), what)


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
    return max(higher, key=lambda T: _mean(cells, ("student", alpha, T)))


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
    steps = list(zip(temps, temps[1:], strict=False))
    a, b = min(
        steps,
        key=lambda s: (
            _mean(cells, ("student", ls, s[0])) - _mean(cells, ("student", ls, s[1]))
        ),
    )
    what = f"{format_alpha(ls)} at neighbouring T = {_t(a)}, {_t(b)}"
    return _pair(cells, ("student", ls, a), ("student", ls, b), what)


RULES: dict[str, Callable[[Cells, float], Comparison | str]] = {
    "C1": _c1,
    "C2": _c2,
    "C3": _c3,
    "C4": _c4,
    "C5": _c5,
    "C6": _c6,
}


def verdict(est: Estimate, holds_if_positive: bool = True) -> str:
    """``holds`` / ``does not hold`` / ``inconclusive`` / ``not enough runs`` of a
    claim about the sign of ``est`` (module docstring)."""
    if not est.has_interval:
        return "not enough runs"
    if est.low > 0.0:
        positive = True
    elif est.high <= 0.0:
        positive = False
    else:
        return "inconclusive"
    return "holds" if positive == holds_if_positive else "does not hold"


def _judge(claim: Claim, ls: float, result: Comparison | str) -> dict[str, Any]:
    """Verdict, margin, interval, n and note of one claim."""
    row = {
        "alpha": ls,
        "claim_id": claim.claim_id,
        "claim": claim.claim.format(ls=format_alpha(ls)),
        "source": claim.source,
    }
    if isinstance(result, str):
        nan = math.nan
        return row | {
            "verdict": "not enough runs",
            "margin": nan,
            "ci_low": nan,
            "ci_high": nan,
            "n": 0,
            "note": result,
        }
    est = result.estimate
    note = f"compares {result.what}, paired by seed over {est.n} seed(s)"
    if est.unpaired:
        note += f" (seeds on one side only, left out: {list(est.unpaired)})"
    says = verdict(est, claim.holds_if_positive)
    if est.n == 1:
        sign = est.mean > 0 if claim.holds_if_positive else est.mean <= 0
        alone = "holds" if sign else "does not hold"
        note += f"; one seed gives no interval (the margin alone would say: {alone})"
    elif says == "inconclusive":
        note += "; the 95 % interval contains 0"
    return row | {
        "verdict": says,
        "margin": est.mean,
        "ci_low": est.low,
        "ci_high": est.high,
        "n": est.n,
        "note": note,
    }


def ls_alphas(metrics: Sequence[dict[str, Any]]) -> list[float]:
    """Every alpha > 0 among the runs, ascending."""
    return sorted({float(m["alpha"]) for m in metrics if float(m["alpha"]) > 0})


def evaluate_claims(
    runs: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """One block of ``CLAIMS`` rows per alpha > 0 in ``runs`` (each compared with
    alpha = 0), columns ``COLUMNS``. Without any alpha > 0 there is nothing to compare:
    one block with alpha NaN, every claim "not enough runs"."""
    cells = _parse(runs, sources)
    rows = []
    alphas = ls_alphas(runs)
    for ls in alphas:
        rows += [_judge(c, ls, RULES[c.claim_id](cells, ls)) for c in CLAIMS]
    if not alphas:
        rows = [_judge(c, math.nan, "no alpha > 0 teacher") for c in CLAIMS]
        for row, claim in zip(rows, CLAIMS, strict=True):
            row["claim"] = claim.claim.format(ls="alpha > 0")
    return pd.DataFrame(rows, columns=list(COLUMNS))


VERDICT_TEXT = (
    f"margin in top-1 points, {PAIRED_TEXT}; "
    "holds / does not hold when the whole 95 % interval lies on one side of the "
    "claim's boundary (margin > 0, or <= 0 for C4), inconclusive when it contains 0 "
    "(other than as its upper end), not enough runs without a needed cell or with "
    "fewer than 2 paired seeds"
)


def claims_caption(runs: Sequence[dict[str, Any]]) -> str:
    """One line: which runs, and how the verdicts are computed from them."""
    first = parse_run(runs[0], "metrics[0]")
    student = next((r["arch"] for r in runs if r.get("role") == "student"), None)
    pair = f"teacher {first.teacher_arch}"
    if student:
        pair += f" → student {student}"
    alphas = ", ".join(format(a, "g") for a in ls_alphas(runs)) or "none"
    return (
        f"Claims of {PAPER} evaluated on the user's runs ({first.task}, {pair}, "
        f"{len(runs)} runs; LS teachers alpha = {alphas}, each against alpha = 0): "
        f"verdicts are computed from these runs, not assumed. {VERDICT_TEXT}."
    )


def _interval_cell(row: pd.Series) -> str:
    if math.isnan(row["ci_low"]):
        return "–"
    return f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


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
        alpha=[("–" if math.isnan(a) else format(a, "g")) for a in table["alpha"]],
        margin=[("–" if math.isnan(m) else f"{m:+.3f}") for m in table["margin"]],
        interval=[_interval_cell(r) for _, r in table.iterrows()],
    )
    order = ["alpha", "claim_id", "claim", "verdict", "margin", "interval", "n"]
    shown = shown[[*order, "note", "source"]]
    markdown = shown.to_markdown(index=False, disable_numparse=True)
    caption = claims_caption(runs)
    texts = {
        Path(out_csv): table.to_csv(index=False),
        Path(out_md): f"{caption}\n\n{markdown}\n",
    }
    if out_html is not None:
        texts[Path(out_html)] = to_html(shown.set_index(["alpha", "claim_id"]), caption)
    for dest, text in texts.items():
        with atomic_path(dest) as tmp:
            tmp.write_text(text, encoding="utf-8")
    counts = table["verdict"].value_counts().to_dict()
    log.info("wrote %s and %s: %s", out_csv, out_md, counts)
    return table
