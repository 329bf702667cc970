"""The paper's claims judged by paired seed intervals, on hand-made metrics.json dicts
and on the paper's own numbers."""

import math
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_metrics, official_cells, write_metrics
from lskd.analysis.claims import CLAIMS, claims_table, evaluate_claims
from lskd.analysis.paper import load_paper_numbers
from lskd.errors import DataError

REPO = Path(__file__).resolve().parents[1]
IDS = [c.claim_id for c in CLAIMS]


NOISE = (-0.1, 0.0, 0.1)  # per-seed noise of the LS (alpha > 0) cells only
SHIFT = (0.0, 5.0, -3.0)  # per-seed shift of every cell: cancels in paired differences
# Paired LS-vs-base differences then have sd 0.1 over 3 seeds: half-width
# t_{0.975, 2} * 0.1 / sqrt(3) = 4.3027 * 0.1 / 1.7321 = 0.2484; LS-vs-LS and
# base-vs-base differences have zero spread (interval [m, m]).
HALF = 4.3027 * 0.1 / 3**0.5


def _table(teachers: dict, students: dict, seeds=(0, 1, 2)) -> list[dict]:
    """``teachers``: alpha -> top1; ``students``: alpha -> [top1 at T = 1, 2, 3, 64];
    seed s adds ``SHIFT[s]`` to every cell and ``NOISE[s]`` to the alpha > 0 ones."""
    runs = []
    for s in seeds:

        def value(alpha, v, s=s):
            return v + SHIFT[s] + (NOISE[s] if alpha > 0 else 0.0)

        runs += [
            make_metrics("teacher", a, None, s, value(a, v))
            for a, v in teachers.items()
        ]
        for alpha, values in students.items():
            for T, v in zip((1.0, 2.0, 3.0, 64.0), values, strict=True):
                if v is not None:
                    runs.append(make_metrics("student", alpha, T, s, value(alpha, v)))
    return runs


def _by_id(table: pd.DataFrame, alpha: float | None = None) -> dict[str, pd.Series]:
    if alpha is not None:
        table = table[table["alpha"] == alpha]
    assert list(table["claim_id"]) == IDS
    return {row["claim_id"]: row for _, row in table.iterrows()}


MIXED = ("C1", "C2", "C4")  # LS cell against a base cell: interval margin ± HALF


def _check(row, margin, verdict):
    assert row["verdict"] == verdict, row
    assert row["margin"] == pytest.approx(margin)
    half = HALF if row["claim_id"] in MIXED else 0.0
    assert row["ci_low"] == pytest.approx(margin - half, abs=1e-4)
    assert row["ci_high"] == pytest.approx(margin + half, abs=1e-4)
    assert row["n"] == 3


@pytest.mark.parametrize("ls", [0.1, 0.2])
def test_every_claim_holds_with_margins(ls):
    # ls = 0.2: run.alphas = [0, 0.2], the LS teacher is 0.2; no claim lacks runs.
    runs = _table(
        {0.0: 80.0, ls: 81.0},
        {0.0: [70.0, 71.0, 69.0, 60.0], ls: [72.0, 68.0, 66.0, 58.0]},
    )
    table = evaluate_claims(runs)
    assert set(table["alpha"]) == {ls}
    rows = _by_id(table)
    expected = {
        "C1": 81.0 - 80.0,  # LS teacher minus plain teacher
        "C2": 72.0 - 70.0,  # alpha ls vs 0.0 at T = 1
        "C3": 72.0 - 68.0,  # T = 1 minus the best T > 1 (T = 2)
        "C4": 58.0 - 60.0,  # alpha ls minus 0.0 at T = 64: <= 0 holds
        "C5": 71.0 - 70.0,  # alpha 0.0: best T > 1 (T = 2) minus T = 1
        "C6": 68.0 - 66.0,  # smallest drop: 72->68 (4), 68->66 (2), 66->58 (8)
    }
    for claim_id, margin in expected.items():
        _check(rows[claim_id], margin, "holds")
        assert "paired by seed over 3 seed(s)" in rows[claim_id]["note"]
    assert "T = 2, 3" in rows["C6"]["note"]
    assert f"LS α = {ls} teacher" in rows["C1"]["claim"]
    other = 0.2 if ls == 0.1 else 0.1
    assert f"α = {other}" not in " ".join(r["claim"] for r in rows.values())
    # LS teachers and KD students: the paper's claims, worded and sourced as its own
    for row in rows.values():
        assert row["source"].startswith("Chandrasegaran et al. 2022")
        assert "generalization" not in row["claim"]
        assert row["regularizer"] == f"LS α = {ls}" and row["objective"] == "KD"


def test_every_claim_fails():
    runs = _table(
        {0.0: 80.0, 0.1: 79.0},
        {0.0: [70.0, 69.0, 68.0, 60.0], 0.1: [69.0, 70.0, 71.0, 72.0]},
    )
    rows = _by_id(evaluate_claims(runs))
    expected = {
        "C1": 79.0 - 80.0,
        "C2": 69.0 - 70.0,
        "C3": 69.0 - 72.0,  # best T > 1 is T = 64
        "C4": 72.0 - 60.0,  # LS student better at T = 64: not cancelled
        "C5": 69.0 - 70.0,  # best T > 1 is T = 2
        "C6": 69.0 - 70.0,  # every step rises by 1
    }
    for claim_id, margin in expected.items():
        _check(rows[claim_id], margin, "does not hold")


def test_not_enough_runs():
    runs = _table({0.0: 80.0}, {0.1: [None, 70.0, None, None]})
    rows = _by_id(evaluate_claims(runs))
    notes = {
        "C1": "no LS α = 0.1 teacher",
        "C2": "no KD student of the LS α = 0.1 teacher at T = 1",
        "C3": "no KD student of the LS α = 0.1 teacher at T = 1",
        "C4": "no T > 1 with students of both teachers",
        "C5": "no KD student of the CE teacher at T > 1",
        "C6": "fewer than 2 temperatures for the LS α = 0.1 teacher's students",
    }
    for claim_id, note in notes.items():
        row = rows[claim_id]
        assert row["verdict"] == "not enough runs"
        assert math.isnan(row["margin"]) and row["n"] == 0
        assert row["note"] == note


def test_one_seed_gives_no_interval():
    runs = _table(
        {0.0: 80.0, 0.1: 81.0},
        {0.0: [70.0, 71.0, 69.0, 60.0], 0.1: [72.0, 68.0, 66.0, 58.0]},
        seeds=(0,),
    )
    rows = _by_id(evaluate_claims(runs))
    for row in rows.values():
        assert row["verdict"] == "not enough runs" and row["n"] == 1
        assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
        assert "one seed gives no interval" in row["note"]
    assert rows["C1"]["margin"] == pytest.approx(81.0 + NOISE[0] - 80.0)
    assert "the margin alone would say: holds" in rows["C4"]["note"]


def test_inconclusive_when_the_interval_contains_zero():
    # teachers: per-seed differences +1.0, -0.5, +0.8 -> mean 0.4333,
    # sd = sqrt((0.5667^2 + 0.9333^2 + 0.3667^2) / 2) = 0.8145,
    # half-width 4.3027 * 0.8145 / sqrt(3) = 2.0233 -> [-1.59, 2.46]: contains 0.
    runs = []
    for seed, ls in enumerate((81.0, 79.5, 80.8)):
        runs += [
            make_metrics("teacher", 0.0, None, seed, 80.0),
            make_metrics("teacher", 0.1, None, seed, ls),
        ]
    row = _by_id(evaluate_claims(runs))["C1"]
    diffs = [1.0, -0.5, 0.8]
    mean = sum(diffs) / 3
    sd = (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5
    half = 4.3027 * sd / 3**0.5
    assert (mean, sd, half) == pytest.approx((0.4333, 0.8145, 2.0233), abs=1e-4)
    assert row["verdict"] == "inconclusive"
    assert row["margin"] == pytest.approx(mean)
    assert row["ci_low"] == pytest.approx(mean - half, abs=1e-4)
    assert row["ci_high"] == pytest.approx(mean + half, abs=1e-4)
    assert "the 95 % interval contains 0" in row["note"]


def _at_64(diffs: list[float]) -> list[dict]:
    """Students at T = 1 and 64 whose alpha 0.1 minus 0.0 differences are ``diffs``
    (per seed) at both temperatures."""
    runs = []
    for seed, d in enumerate(diffs):
        for T in (1.0, 64.0):
            base = 70.0 + seed
            runs += [
                make_metrics("student", 0.0, T, seed, base),
                make_metrics("student", 0.1, T, seed, base + d),
            ]
    return runs


def test_c4_at_a_margin_of_exactly_zero():
    # Identical differences 0, 0, 0: the interval is [0, 0], every value <= 0, so C4
    # ("no better than", holds if <= 0) holds and C2 ("beats", > 0) does not.
    rows = _by_id(evaluate_claims(_at_64([0.0, 0.0, 0.0])))
    for claim_id, verdict in (("C4", "holds"), ("C2", "does not hold")):
        row = rows[claim_id]
        assert (row["margin"], row["ci_low"], row["ci_high"]) == (0.0, 0.0, 0.0)
        assert row["verdict"] == verdict
    # Differences -1, 0, +1: margin 0, sd 1, interval +-4.3027/sqrt(3) = +-2.4841:
    # values on both sides of the boundary -> inconclusive for both.
    rows = _by_id(evaluate_claims(_at_64([-1.0, 0.0, 1.0])))
    for claim_id in ("C2", "C4"):
        row = rows[claim_id]
        assert row["margin"] == pytest.approx(0.0, abs=1e-12)
        assert row["ci_high"] == pytest.approx(4.3027 / 3**0.5, abs=1e-4)
        assert row["verdict"] == "inconclusive"


def test_three_alphas_give_one_block_each():
    runs = _table(
        {0.0: 80.0, 0.1: 81.0, 0.2: 79.0},
        {
            0.0: [70.0, 71.0, 69.0, 60.0],
            0.1: [72.0, 68.0, 66.0, 58.0],
            0.2: [69.0, 70.0, 71.0, 72.0],
        },
    )
    table = evaluate_claims(runs)
    assert list(table["alpha"]) == [0.1] * 6 + [0.2] * 6
    first, second = _by_id(table, 0.1), _by_id(table, 0.2)
    _check(first["C1"], 1.0, "holds")
    _check(first["C4"], 58.0 - 60.0, "holds")
    _check(second["C1"], 79.0 - 80.0, "does not hold")
    _check(second["C2"], 69.0 - 70.0, "does not hold")
    _check(second["C4"], 72.0 - 60.0, "does not hold")
    _check(second["C3"], 69.0 - 72.0, "does not hold")
    # C5 is about the alpha = 0 students only: the same in both blocks
    assert first["C5"]["margin"] == second["C5"]["margin"] == pytest.approx(1.0)
    assert "LS α = 0.2" in second["C2"]["claim"]


def test_no_alpha_above_zero():
    runs = _table({0.0: 80.0}, {0.0: [70.0, 71.0, None, None]})
    table = evaluate_claims(runs)
    assert len(table) == len(IDS) and table["alpha"].isna().all()
    assert table["regularizer"].isna().all()
    assert set(table["verdict"]) == {"not enough runs"}


def test_bad_run_sets_raise():
    runs = _table({0.0: 80.0, 0.1: 81.0}, {0.1: [72.0, 68.0, None, None]})
    with pytest.raises(DataError, match="no metrics.json"):
        evaluate_claims([])
    with pytest.raises(DataError, match="duplicate"):
        evaluate_claims([*runs, runs[-1]])
    other = make_metrics("student", 0.1, 3.0, 0, 70.0, arch="mlp512")
    with pytest.raises(DataError, match="student arch"):
        evaluate_claims([*runs, other])


def test_claims_table_files(tmp_path):
    runs = _table(
        {0.0: 80.0, 0.1: 81.0},
        {0.0: [70.0, 71.0, 69.0, 60.0], 0.1: [72.0, 68.0, 66.0, 58.0]},
    )
    paths = write_metrics(tmp_path / "runs", runs)
    out = tmp_path / "out"
    table = claims_table(paths, out / "claims.csv", out / "claims.md", out / "c.html")
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "claims.csv"), table, check_dtype=False
    )
    caption, blank, *rest = (out / "claims.md").read_text(encoding="utf-8").splitlines()
    assert "evaluated on the user's runs" in caption
    assert "computed from these runs, not assumed" in caption
    assert "Student-t interval" in caption and "inconclusive" in caption
    assert "fmnist, teacher mlp512 → student mlp128, 30 runs" in caption
    c1 = f"[{1 - HALF:+.3f}, {1 + HALF:+.3f}]"
    assert blank == "" and any("+1.000" in line and c1 in line for line in rest)
    assert "Student-t interval" in (out / "c.html").read_text(encoding="utf-8")


def _official_margins(section: str) -> list[float]:
    """Top-1 of the alpha = 0.1 minus the alpha = 0.0 student at T = 1, 2, 3, 64 in
    the official README table of one paper_numbers.csv section."""
    paper = load_paper_numbers()
    row = paper[paper["section"] == section].iloc[0]
    cells = official_cells()
    table = (row.task, row.teacher_arch, row.student_arch, "student")
    return [
        cells[(*table, T, 0.1, "top1")] - cells[(*table, T, 0.0, "top1")]
        for T in (1.0, 2.0, 3.0, 64.0)
    ]


def _paper_runs(section: str) -> list[dict]:
    """The paper's cells as two seeds: seed 1 is seed 0 plus 0.001 on the LS cells,
    so paired differences have a tiny spread (half-width 12.7062 * 0.000707 / 1.414
    = 0.0064 points) and the verdicts are the signs of the paper's margins."""
    paper = load_paper_numbers()
    runs = []
    for row in paper[paper["section"] == section].itertuples(index=False):
        T = None if row.role == "teacher" else row.T
        archs = {"teacher_arch": row.teacher_arch, "student_arch": row.student_arch}
        for seed in (0, 1):
            top1 = row.top1 + (0.001 * seed if row.alpha > 0 else 0.0)
            runs.append(
                make_metrics(row.role, row.alpha, T, seed, top1, task=row.task, **archs)
            )
    return runs


def test_claims_on_the_papers_own_numbers():
    # The paper's Tables 2 and 4: LS improves the teacher (C1), the LS student wins at
    # T = 1 (C2), its best T is 1 (C3) and it falls monotonically (C6) in every image
    # setting; "T = 2 beats T = 1" without LS only for CUB ResNet-18 and MobileNetV2
    # (C5); at T = 64 the LS student is worse except ImageNet R50->R50 (+0.288, C4).
    settings = {
        "4.1": ("ImageNet R50→R18", "holds", "does not hold"),
        "4.2": ("ImageNet R50→R50", "does not hold", "does not hold"),
        "4.3": ("CUB R50→R18", "holds", "holds"),
        "4.4": ("CUB R50→R50", "holds", "does not hold"),
        "4.5": ("CUB R50→MBv2", "holds", "holds"),
    }
    for section, (setting, c4, c5) in settings.items():
        rows = _by_id(evaluate_claims(_paper_runs(section)))
        verdicts = {k: rows[k]["verdict"] for k in IDS}
        expected = dict.fromkeys(IDS, "holds") | {"C4": c4, "C5": c5}
        assert verdicts == expected, setting
        # mean of the two seeds' differences: the paper's margin + 0.0005
        margins = _official_margins(section)
        for claim_id, i in (("C2", 0), ("C4", 3)):
            margin = rows[claim_id]["margin"]
            assert margin == pytest.approx(margins[i] + 0.0005, abs=1e-9)


# Teachers CE, LS α = 0.1 and MaxSup λ = 0.1; students distilled with KD and with DKD.
REGULARIZERS = {
    "ce": {"name": "ce"},
    "ls": {"name": "ls", "alpha": 0.1},
    "maxsup": {"name": "maxsup", "lam": 0.1},
}
TEACHER_TOP1 = {"ce": 80.0, "ls": 81.0, "maxsup": 80.5}
STUDENT_TOP1 = {  # (regularizer, objective) -> top-1 at T = 1, 4
    ("ce", "kd"): (70.0, 71.0),
    ("ls", "kd"): (72.0, 69.0),
    ("maxsup", "kd"): (71.0, 70.0),
    ("ce", "dkd"): (60.0, 63.0),
    ("ls", "dkd"): (61.0, 62.0),
    ("maxsup", "dkd"): (64.0, 61.0),
}


def _methods() -> list[dict]:
    runs = []
    for s in range(3):

        def value(reg, v, s=s):
            return v + SHIFT[s] + (0.0 if reg == "ce" else NOISE[s])

        for reg, top1 in TEACHER_TOP1.items():
            alpha = REGULARIZERS[reg].get("alpha", 0.0 if reg == "ce" else None)
            runs.append(
                make_metrics(
                    "teacher",
                    alpha,
                    None,
                    s,
                    value(reg, top1),
                    regularizer=REGULARIZERS[reg],
                )
            )
        for (reg, obj), values in STUDENT_TOP1.items():
            alpha = REGULARIZERS[reg].get("alpha", 0.0 if reg == "ce" else None)
            for T, top1 in zip((1.0, 4.0), values, strict=True):
                runs.append(
                    make_metrics(
                        "student",
                        alpha,
                        T,
                        s,
                        value(reg, top1),
                        regularizer=REGULARIZERS[reg],
                        objective={"name": obj},
                    )
                )
    return runs


def test_other_regularizers_and_objectives_are_generalizations():
    table = evaluate_claims(_methods())
    pairs = zip(table["regularizer"], table["objective"], strict=True)
    blocks = list(dict.fromkeys(pairs))
    dkd = next(o for _, o in blocks if o.startswith("DKD"))
    assert blocks == [
        ("LS α = 0.1", "KD"),
        ("MaxSup λ = 0.1", "KD"),
        ("LS α = 0.1", dkd),
        ("MaxSup λ = 0.1", dkd),
    ]
    by = {
        (reg, obj, row["claim_id"]): row
        for reg, obj, (_, row) in zip(
            table["regularizer"], table["objective"], table.iterrows(), strict=True
        )
    }
    paper = "Chandrasegaran et al. 2022"
    for cid in IDS:  # LS + KD: the paper's claims
        assert by[("LS α = 0.1", "KD", cid)]["source"].startswith(paper)
    # C1 is about teachers: the paper's for LS whatever the students
    assert by[("LS α = 0.1", dkd, "C1")]["claim"].startswith("LS improves the teacher")
    # C5 is about the CE teacher's students: the paper's for KD whatever the teacher
    assert by[("MaxSup λ = 0.1", "KD", "C5")]["source"].startswith(paper)
    wording = {
        ("MaxSup λ = 0.1", "KD", "C1"): "MaxSup λ = 0.1 teachers: ",
        ("MaxSup λ = 0.1", "KD", "C2"): "MaxSup λ = 0.1 teachers: ",
        ("LS α = 0.1", dkd, "C2"): f"{dkd} students: ",
        ("LS α = 0.1", dkd, "C5"): f"{dkd} students: ",
        ("MaxSup λ = 0.1", dkd, "C4"): f"MaxSup λ = 0.1 teachers and {dkd} students: ",
    }
    for (reg, obj, cid), to in wording.items():
        row = by[(reg, obj, cid)]
        assert row["claim"].startswith(f"generalization of {cid} to {to}"), row
        assert row["source"].startswith(f"lskd's generalization of {cid} ")
        assert "not a claim of the paper" in row["source"]
    for (reg, _, cid), row in by.items():
        if reg.startswith("MaxSup") and cid != "C5":
            assert "LS" not in row["claim"], row["claim"]
    # margins from the runs: C2 of MaxSup + DKD compares the two DKD students at T = 1
    c2 = by[("MaxSup λ = 0.1", dkd, "C2")]
    expected = STUDENT_TOP1[("maxsup", "dkd")][0] - STUDENT_TOP1[("ce", "dkd")][0]
    _check(c2, expected, "holds")
    c4 = by[("MaxSup λ = 0.1", dkd, "C4")]  # at T = 4: 61 - 63 <= 0, benefit gone
    expected = STUDENT_TOP1[("maxsup", "dkd")][1] - STUDENT_TOP1[("ce", "dkd")][1]
    _check(c4, expected, "holds")
    c1 = by[("MaxSup λ = 0.1", "KD", "C1")]
    _check(c1, TEACHER_TOP1["maxsup"] - TEACHER_TOP1["ce"], "holds")
    c5 = by[("LS α = 0.1", dkd, "C5")]  # the CE teacher's DKD students: T = 4 - T = 1
    base = STUDENT_TOP1[("ce", "dkd")]
    _check(c5, base[1] - base[0], "holds")
    assert table["alpha"].tolist()[:6] == [0.1] * 6
    assert table[table["regularizer"].str.startswith("MaxSup")]["alpha"].isna().all()
