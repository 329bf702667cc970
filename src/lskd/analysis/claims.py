"""The paper's claims (Chandrasegaran et al. 2022) checked on the user's runs, and
lskd's generalizations of them to other teacher regularizers and student objectives,
judged by paired seed differences and their 95 % intervals.

Input: the ``metrics.json`` dicts of one table (one task, one teacher arch → one
student arch; teachers and students, any number of seeds). Every regularizer r other
than `ce` among the runs is compared with the `ce` teacher, for every student
objective o its students were distilled with: one block of the claims ``CLAIMS`` per
(r, o) (columns ``regularizer``, ``objective``; ``alpha`` for `ls`). For r = `ls` and
o = `kd` a claim keeps the paper's wording and source; for any other pair the same
check is stated as lskd's generalization of it ("generalization of C2 to MaxSup λ =
0.1 teachers and DKD students"), never attributed to the paper. C1 concerns the
teachers only (the paper's for every `ls` teacher), C5 the `ce` teacher's students of
the block's objective (the paper's for `kd`).

Each claim compares two cells (a cell = ``RunId.method_key``: role, regularizer,
objective, T). Its ``margin`` (top-1 points) is the mean over seeds of the per-seed
difference ``left_s - right_s``, paired by seed (the run's ``seed``; teachers by their
own seed), with the 95 % Student-t interval of those differences ``[ci_low,
ci_high]`` (``lskd.analysis.stats.paired``); ``n`` is the number of paired seeds.
Where a claim picks a temperature ("the best T > 1", "the smallest drop"), it picks by
the mean over seeds and then pairs the two cells by seed.

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
from lskd.analysis.labels import (
    objective_order,
    regularizer_order,
    students_text,
    t_text,
    teacher_text,
)
from lskd.analysis.records import (
    BASE,
    check_consistent,
    parse_run,
    read_metrics,
)
from lskd.analysis.stats import PAIRED_TEXT, Cells, Estimate, paired, seed_cells
from lskd.atomic import atomic_path
from lskd.errors import DataError
from lskd.identity import DEFAULT_OBJECTIVE, Choice

log = logging.getLogger(__name__)

COLUMNS = (
    "regularizer",
    "alpha",
    "objective",
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
# Instead of a verdict when a compared cell holds a run at chance level
# (`Run.at_chance`): "not judged: <the cell> at chance".
NOT_JUDGED = "not judged"
PAPER = "Chandrasegaran et al. 2022"
PAPER_REGULARIZER = "ls"  # the paper's claims are about LS teachers and KD students


@dataclass(frozen=True)
class Comparison:
    """The claim's paired estimate of ``left - right`` and what was compared."""

    estimate: Estimate
    what: str
    cells: tuple[tuple, ...] = ()  # the (role, regularizer, objective, T) compared


Check = Callable[[Cells, Choice, Choice], "Comparison | str"]


def _cell(role: str, reg: Choice, obj: Choice, T: float | None = None) -> tuple:
    return (role, reg, obj if role == "student" else None, T)


def _temps(cells: Cells, reg: Choice, obj: Choice) -> list[float]:
    return sorted(k[3] for k in cells if k[:3] == ("student", reg, obj))


def _mean(cells: Cells, key: tuple) -> float:
    values = cells[key].values()
    return sum(values) / len(values)


def _missing(key: tuple) -> str:
    role, reg, obj, T = key
    if role == "teacher":
        return f"no {teacher_text(reg)}"
    return f"no {obj.label} student of the {teacher_text(reg)} at T = {t_text(T)}"


def _who(key: tuple) -> str:
    """A cell in words: `the ls α = 0.1 teacher`, `the kd students of the ce teacher
    at T = 4`."""
    role, reg, obj, T = key
    if role == "teacher":
        return f"the {teacher_text(reg)}"
    return f"the {obj.label} students of the {teacher_text(reg)} at T = {t_text(T)}"


def _pair(cells: Cells, left: tuple, right: tuple, what: str) -> Comparison | str:
    """Compare two cells by seed; a string names the missing one."""
    for key in (left, right):
        if key not in cells:
            return _missing(key)
    return Comparison(paired(cells[left], cells[right]), what, (left, right))


def _teachers(cells: Cells, reg: Choice, obj: Choice) -> Comparison | str:
    left, right = _cell("teacher", reg, obj), _cell("teacher", BASE, obj)
    return _pair(cells, left, right, "the two teachers")


def _at_one(cells: Cells, reg: Choice, obj: Choice) -> Comparison | str:
    left, right = _cell("student", reg, obj, 1.0), _cell("student", BASE, obj, 1.0)
    return _pair(cells, left, right, "the two T = 1 students")


def _best_above_one(cells: Cells, reg: Choice, obj: Choice) -> float | str:
    """The T > 1 with the highest mean top-1 of the (reg, obj) students."""
    higher = [T for T in _temps(cells, reg, obj) if T > 1.0]
    if not higher:
        return f"no {obj.label} student of the {teacher_text(reg)} at T > 1"
    return max(higher, key=lambda T: _mean(cells, _cell("student", reg, obj, T)))


def _best_is_one(cells: Cells, reg: Choice, obj: Choice) -> Comparison | str:
    best = _best_above_one(cells, reg, obj)
    if isinstance(best, str):
        return best
    what = f"the {teacher_text(reg)}'s students at T = 1 and T = {t_text(best)}"
    left, right = _cell("student", reg, obj, 1.0), _cell("student", reg, obj, best)
    return _pair(cells, left, right, what)


def _at_largest(cells: Cells, reg: Choice, obj: Choice) -> Comparison | str:
    common = set(_temps(cells, reg, obj)) & set(_temps(cells, BASE, obj))
    if not common or max(common) <= 1.0:
        return "no T > 1 with students of both teachers"
    top = max(common)
    what = f"the two T = {t_text(top)} students"
    left, right = _cell("student", reg, obj, top), _cell("student", BASE, obj, top)
    return _pair(cells, left, right, what)


def _base_gains(cells: Cells, reg: Choice, obj: Choice) -> Comparison | str:
    best = _best_above_one(cells, BASE, obj)
    if isinstance(best, str):
        return best
    what = f"the {teacher_text(BASE)}'s students at T = {t_text(best)} and T = 1"
    left, right = _cell("student", BASE, obj, best), _cell("student", BASE, obj, 1.0)
    return _pair(cells, left, right, what)


def _falls(cells: Cells, reg: Choice, obj: Choice) -> Comparison | str:
    temps = _temps(cells, reg, obj)
    if len(temps) < 2:
        return f"fewer than 2 temperatures for the {teacher_text(reg)}'s students"
    steps = list(zip(temps, temps[1:], strict=False))

    def drop(step: tuple[float, float]) -> float:
        a, b = (_mean(cells, _cell("student", reg, obj, T)) for T in step)
        return a - b

    a, b = min(steps, key=drop)
    what = f"the {teacher_text(reg)}'s students at neighbouring T = {t_text(a)}, "
    what += t_text(b)
    left, right = _cell("student", reg, obj, a), _cell("student", reg, obj, b)
    return _pair(cells, left, right, what)


@dataclass(frozen=True)
class Claim:
    """One claim: the paper's statement in our operational wording (``text``), its
    wording as lskd's generalization to other teachers or students (``general``),
    where the paper makes it, the check that computes its margin, and what it is
    about: ``teacher`` (the regularizer's teachers: the paper's for every `ls`),
    ``base`` (the `ce` teacher's students: the paper's for `kd`) or ``pair``.
    Placeholders: ``{reg}`` the regularizer's label, ``{base}`` `ce`'s,
    ``{student}`` `student` or `<objective> student`."""

    claim_id: str
    text: str
    general: str
    source: str
    check: Check
    about: str = "pair"
    holds_if_positive: bool = True  # False: holds when margin <= 0

    def is_papers(self, reg: Choice, obj: Choice) -> bool:
        """Whether the paper makes this claim for (reg, obj)."""
        ls, kd = reg.name == PAPER_REGULARIZER, obj == DEFAULT_OBJECTIVE
        return {"teacher": ls, "base": kd}.get(self.about, ls and kd)

    def wording(self, reg: Choice, obj: Choice) -> tuple[str, str]:
        """(claim, source) for the block (reg, obj)."""
        student = "student" if obj == DEFAULT_OBJECTIVE else f"{obj.label} student"
        values = {"reg": reg.label, "base": BASE.label, "student": student}
        if self.is_papers(reg, obj):
            return self.text.format(**values), self.source
        to = []
        if self.about != "base" and reg.name != PAPER_REGULARIZER:
            to.append(f"{teacher_text(reg)}s")
        if self.about != "teacher" and obj != DEFAULT_OBJECTIVE:
            to.append(students_text(obj))
        prefix = f"generalization of {self.claim_id} to {' and '.join(to)}: "
        source = (
            f"lskd's generalization of {self.claim_id} ({self.source}); not a claim "
            "of the paper"
        )
        return prefix + self.general.format(**values), source


CLAIMS = (
    Claim(
        "C1",
        "LS improves the teacher: top-1 of the {reg} teacher minus the {base} "
        "teacher's is > 0",
        "the regularizer improves the teacher: top-1 of the {reg} teacher minus the "
        "{base} teacher's is > 0",
        f"{PAPER}, Tables 2 and 4 (teacher rows)",
        _teachers,
        about="teacher",
    ),
    Claim(
        "C2",
        "at T = 1 the {reg} teacher's {student} beats the {base} teacher's {student} "
        "(margin: {reg} minus {base} at T = 1)",
        "at T = 1 the {reg} teacher's {student} beats the {base} teacher's {student} "
        "(margin: {reg} minus {base} at T = 1)",
        f"{PAPER}, Tables 2 and 4; its advice: an LS teacher with T = 1",
        _at_one,
    ),
    Claim(
        "C3",
        "for the {reg} teacher the best {student} is at T = 1 (margin: T = 1 minus "
        "the best T > 1)",
        "for the {reg} teacher the best {student} is at T = 1 (margin: T = 1 minus "
        "the best T > 1)",
        f"{PAPER}, Tables 2 and 4",
        _best_is_one,
    ),
    Claim(
        "C4",
        "at the largest T the {reg} teacher's {student} is no better than the {base} "
        "teacher's, the LS benefit is cancelled (margin: {reg} minus {base}; holds "
        "if <= 0)",
        "at the largest T the {reg} teacher's {student} is no better than the {base} "
        "teacher's, the regularizer's benefit is gone (margin: {reg} minus {base}; "
        "holds if <= 0)",
        f"{PAPER}, abstract (systematic diffusion makes KD at an increased T from an "
        "LS teacher ineffective)",
        _at_largest,
        holds_if_positive=False,
    ),
    Claim(
        "C5",
        "without LS increased T helps: for the {base} teacher some T > 1 beats T = 1 "
        "(margin: best T > 1 minus T = 1)",
        "with a {base} teacher increased T helps: for its {student}s some T > 1 beats "
        "T = 1 (margin: best T > 1 minus T = 1)",
        f"{PAPER}, abstract and Tables 2 and 4 (teachers without LS)",
        _base_gains,
        about="base",
    ),
    Claim(
        "C6",
        "for the {reg} teacher {student} top-1 falls at every step up in T (margin: "
        "the smallest drop between neighbouring T)",
        "for the {reg} teacher {student} top-1 falls at every step up in T (margin: "
        "the smallest drop between neighbouring T)",
        f"{PAPER}, Tables 2 and 4",
        _falls,
    ),
)


def _parse(metrics: Sequence[dict[str, Any]], sources: Sequence[str] | None) -> list:
    """Validate one table's runs (same task, archs, split; no run twice)."""
    if not metrics:
        raise DataError("no metrics.json given")
    if sources is None:
        sources = [f"metrics[{i}]" for i in range(len(metrics))]
    runs = [parse_run(m, s) for m, s in zip(metrics, sources, strict=True)]
    check_consistent(runs)
    return runs


def blocks(runs: Sequence) -> list[tuple[Choice, Choice]]:
    """(regularizer, objective) of every block: each regularizer other than `ce`
    with each objective its students were distilled with (the default `kd` for a
    regularizer with teachers only), objective then regularizer ascending."""
    regs = {r.regularizer for r in runs if r.regularizer != BASE}
    pairs = {
        (r.regularizer, r.objective)
        for r in runs
        if r.role == "student" and r.regularizer != BASE
    }
    objectives = {r.objective for r in runs if r.role == "student"}
    for reg in regs:
        if not any(p[0] == reg for p in pairs):
            pairs |= {(reg, o) for o in objectives or {DEFAULT_OBJECTIVE}}
    return sorted(pairs, key=lambda p: (objective_order(p[1]), regularizer_order(p[0])))


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


def _judge(
    claim: Claim,
    reg: Choice | None,
    obj: Choice,
    result: Comparison | str,
    at_chance: frozenset = frozenset(),
) -> dict[str, Any]:
    """Verdict, margin, interval, n and note of one claim; a comparison of a cell in
    `at_chance` (cells with a run at chance level) is not judged."""
    if reg is None:
        text, source = (
            claim.text.format(reg="regularized", base=BASE.label, student="student"),
            claim.source,
        )
    else:
        text, source = claim.wording(reg, obj)
    row = {
        "regularizer": math.nan if reg is None else reg.label,
        "alpha": math.nan if reg is None or reg.alpha is None else reg.alpha,
        "objective": obj.label,
        "claim_id": claim.claim_id,
        "claim": text,
        "source": source,
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
    chance = [_who(key) for key in result.cells if key in at_chance]
    if chance:
        says = f"{NOT_JUDGED}: {' and '.join(chance)} at chance"
        note += "; † a run at chance level has not learned, so the margin says nothing"
    return row | {
        "verdict": says,
        "margin": est.mean,
        "ci_low": est.low,
        "ci_high": est.high,
        "n": est.n,
        "note": note,
    }


def evaluate_claims(
    runs: Sequence[dict[str, Any]], sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """One block of ``CLAIMS`` rows per (regularizer other than `ce`, objective) in
    ``runs`` (``blocks``), columns ``COLUMNS``. Without a teacher other than `ce`
    there is nothing to compare: one block with regularizer NaN, every claim "not
    enough runs"."""
    parsed = _parse(runs, sources)
    cells = seed_cells(parsed)
    at_chance = frozenset(r.key for r in parsed if r.at_chance)
    rows = []
    pairs = blocks(parsed)
    for reg, obj in pairs:
        rows += [
            _judge(c, reg, obj, c.check(cells, reg, obj), at_chance) for c in CLAIMS
        ]
    if not pairs:
        none = f"no teacher other than {teacher_text(BASE)}"
        rows = [_judge(c, None, DEFAULT_OBJECTIVE, none) for c in CLAIMS]
    return pd.DataFrame(rows, columns=list(COLUMNS))


VERDICT_TEXT = (
    f"margin in top-1 points, {PAIRED_TEXT}; "
    "holds / does not hold when the whole 95 % interval lies on one side of the "
    "claim's boundary (margin > 0, or <= 0 for C4), inconclusive when it contains 0 "
    "(other than as its upper end), not enough runs without a needed cell or with "
    "fewer than 2 paired seeds, not judged when a compared cell has a run at chance "
    "level (†)"
)


def claims_caption(runs: Sequence[dict[str, Any]]) -> str:
    """One line: which runs, and how the verdicts are computed from them."""
    parsed = _parse(runs, None)
    first = parsed[0]
    student = next((r.arch for r in parsed if r.role == "student"), None)
    pair = f"teacher {first.teacher_arch}"
    if student:
        pair += f" → student {student}"
    pairs = blocks(parsed)
    regs = sorted({reg for reg, _ in pairs}, key=regularizer_order)
    teachers = ", ".join(r.label for r in regs) or "none"
    objectives = sorted({obj for _, obj in pairs}, key=objective_order)
    students = ", ".join(o.label for o in objectives) or "none"
    return (
        f"Claims of {PAPER} evaluated on the user's runs ({first.task}, {pair}, "
        f"{len(runs)} runs; teachers {teachers}, each against the "
        f"{teacher_text(BASE)}; students {students}): verdicts are computed from "
        "these runs, not assumed. The paper's claims are about LS teachers and KD "
        "students; for other regularizers or objectives the same checks are lskd's "
        f"generalizations (so worded, with their source). {VERDICT_TEXT}."
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
        teacher=table["regularizer"].fillna("–"),
        students=table["objective"],
        margin=[("–" if math.isnan(m) else f"{m:+.3f}") for m in table["margin"]],
        interval=[_interval_cell(r) for _, r in table.iterrows()],
    )
    order = ["teacher", "students", "claim_id", "claim", "verdict", "margin"]
    order += ["interval", "n"]
    shown = shown[[*order, "note", "source"]]
    markdown = shown.to_markdown(index=False, disable_numparse=True)
    caption = claims_caption(runs)
    texts = {
        Path(out_csv): table.to_csv(index=False),
        Path(out_md): f"{caption}\n\n{markdown}\n",
    }
    if out_html is not None:
        index = ["teacher", "students", "claim_id"]
        texts[Path(out_html)] = to_html(shown.set_index(index), caption)
    for dest, text in texts.items():
        with atomic_path(dest) as tmp:
            tmp.write_text(text, encoding="utf-8")
    counts = table["verdict"].value_counts().to_dict()
    log.info("wrote %s and %s: %s", out_csv, out_md, counts)
    return table
