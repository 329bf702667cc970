"""The benefit Δ(T) of a teacher's regularizer (lskd.analysis.delta) against hand
computations on made-up metrics.json files: paired by seed from the files' contents,
intervals, transfer sets, the paper's reference lines, the generated summary, the
transfer-size interaction, and Δ per student objective for a MaxSup teacher and DKD
students."""

import json
import math
import random
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_metrics, write_metrics
from lskd.analysis.delta import (
    delta_rows,
    headline,
    numbers,
    paper_deltas,
    parse_pair,
    seed_power,
    transfer_interaction,
    write_delta,
    write_transfer_interaction,
)
from lskd.analysis.paper import load_paper_numbers
from lskd.cli.main import main
from lskd.errors import DataError

T975 = {1: 12.7062, 2: 4.3027}  # Student's t_{0.975, df}

# student top-1 per (alpha, T) and seed 0, 1, 2
STUDENTS = {
    (0.0, 1.0): (70.0, 71.0, 69.5),
    (0.1, 1.0): (70.5, 73.0, 70.0),  # Δ per seed: +0.5, +2.0, +0.5
    (0.0, 64.0): (66.0, 67.0, 65.0),
    (0.1, 64.0): (65.0, 65.0, 62.0),  # Δ per seed: -1, -2, -3
}
STABILITY = {0.0: (0.70, 0.72, 0.74), 0.1: (0.80, 0.82, 0.84)}  # S per seed


def _m(role, alpha, T, seed, top1, transfer=None, stability=None):
    """``make_metrics`` with a student's transfer-set record (size, images)."""
    m = make_metrics(role, alpha, T, seed, top1)
    if role == "student" and transfer is not None:
        m["transfer"] = {"size": transfer[0], "images": transfer[1], "seed": 0}
    if stability is not None:
        m["stability"] = stability
    return m


def _runs(transfer=("n30", 300), students=STUDENTS, offset=0.0) -> list[dict]:
    runs = [
        _m("teacher", a, None, s, 85.0 + a, stability=0.6)
        for a in (0.0, 0.1)
        for s in range(3)
    ]
    for (alpha, T), values in students.items():
        for seed, top1 in enumerate(values):
            stab = STABILITY.get(alpha, STABILITY[0.1])[seed] - (
                0.01 * seed if T > 1 else 0.0
            )
            runs.append(
                _m("student", alpha, T, seed, top1 + offset, transfer, stability=stab)
            )
    return runs


def _write(root: Path, runs: list[dict]) -> list[Path]:
    """``write_metrics``, returned in shuffled order."""
    paths = write_metrics(root, runs)
    random.Random(4).shuffle(paths)
    return paths


def _hand(diffs):
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def test_delta_and_interval_by_hand():
    runs = _runs()
    random.Random(1).shuffle(runs)  # identities come from the contents
    rows = {(r.regularizer.alpha, r.T): r for r in delta_rows(parse_pair(runs))}
    assert sorted(rows) == [(0.1, 1.0), (0.1, 64.0)]
    for T, diffs in ((1.0, [0.5, 2.0, 0.5]), (64.0, [-1.0, -2.0, -3.0])):
        est = rows[(0.1, T)].delta
        mean, low, high = _hand(diffs)
        assert est.seeds == (0, 1, 2) and est.values == pytest.approx(diffs)
        assert (est.mean, est.low, est.high) == pytest.approx(
            (mean, low, high), abs=1e-4
        )
    # T = 1: 1.0 ± 4.3027 * 0.8660 / 1.7321 = [-1.151, 3.151]
    assert rows[(0.1, 1.0)].delta.low == pytest.approx(-1.151, abs=1e-3)
    assert rows[(0.1, 1.0)].top1_reg == pytest.approx((70.5 + 73.0 + 70.0) / 3)


def test_unpaired_seed_and_several_alphas():
    students = dict(STUDENTS)
    students[(0.2, 1.0)] = (71.0, 70.0, 72.0)  # Δ per seed: +1, -1, +2.5
    runs = [
        r
        for r in _runs(students=students)
        if not (
            r["seed"] == 2
            and r["alpha"] == 0.0
            and r["role"] == "student"
            and r["T"] == 64.0
        )
    ]
    rows = {(r.regularizer.alpha, r.T): r for r in delta_rows(parse_pair(runs))}
    assert sorted(rows) == [(0.1, 1.0), (0.1, 64.0), (0.2, 1.0), (0.2, 64.0)]
    assert rows[(0.2, 1.0)].delta.mean == pytest.approx(2.5 / 3)
    assert rows[(0.2, 64.0)].delta.n == 0  # no alpha = 0.2 student at T = 64
    short = rows[(0.1, 64.0)].delta  # seed 2 lacks its alpha = 0 student
    assert short.seeds == (0, 1) and short.unpaired == (2,)
    assert short.mean == pytest.approx(-1.5)
    assert short.high == pytest.approx(
        -1.5 + T975[1] * math.sqrt(0.5) / math.sqrt(2), abs=1e-4
    )


def test_transfer_sets_and_bad_inputs():
    pair = parse_pair(_runs())
    assert pair.transfer.size == "n30" and pair.transfer.images == 300
    mixed = _runs() + [_m("student", 0.0, 3.0, 0, 70.0, ("all", 55000))]
    with pytest.raises(DataError, match=r"transfer set 'all' differs from 'n30'"):
        parse_pair(mixed, [f"run{i}.json" for i in range(len(mixed))])
    bad = _runs()
    bad[-1]["transfer"]["images"] = "many"
    with pytest.raises(DataError, match=r"key 'transfer.images' has bad value"):
        parse_pair(bad)
    no_base = [r for r in _runs() if not (r["role"] == "student" and r["alpha"] == 0)]
    with pytest.raises(DataError, match="no student of a CE teacher"):
        delta_rows(parse_pair(no_base))
    assert parse_pair(_runs(transfer=None)).transfer is None


def test_paper_reference_lines_from_the_shipped_numbers():
    refs = {r.label: r for r in paper_deltas()}
    assert sorted(refs) == sorted(
        [
            "paper Table 2, ImageNet R50→R18",
            "paper Table 2, ImageNet R50→R50",
            "paper Table 2, CUB R50→R18",
            "paper Table 2, CUB R50→R50",
            "paper Table 4, CUB R50→MBv2",
        ]
    )
    paper = load_paper_numbers()
    cub = paper[(paper["task"] == "cub200") & (paper["student_arch"] == "resnet18")]
    for T, delta in zip(
        *(refs["paper Table 2, CUB R50→R18"].__dict__[k] for k in ("temps", "deltas")),
        strict=True,
    ):
        at = cub[cub["T"] == T].set_index("alpha")["top1"]
        assert delta == pytest.approx(at[0.1] - at[0.0])
    assert refs["paper Table 2, CUB R50→R18"].deltas[0] == pytest.approx(0.777)


def _side_files(paths: list[Path]) -> list[Path]:
    """diffusion.json beside every student at T = 1 and 64 (separation: 2 - 0.1·seed
    at T = 1 and 1 - 0.1·seed at T = 64 for alpha 0.1; 2 for alpha 0)."""
    out = []
    for path in paths:
        m = json.loads(path.read_text())
        if m["role"] != "student":
            continue
        sep = (
            2.0 if m["alpha"] == 0 else (2.0 if m["T"] == 1 else 1.0) - 0.1 * m["seed"]
        )
        cls = {"n": 9, "spread": 1.0, "major": 0.8, "minor": 0.2, "anisotropy": 4.0}
        d = {
            "classes": {"0": cls, "1": cls},
            "centroid_distance": sep,
            "pooled_std": 1.0,
            "separation": sep,
            "source": str(path.parent / "projection.npz"),
        }
        (path.parent / "diffusion.json").write_text(json.dumps(d))
        out.append(path.parent / "diffusion.json")
    return out[::-1]


def test_write_delta_files_and_summary(tmp_path):
    paths = _write(tmp_path / "runs", _runs())
    diffusion = _side_files(paths)
    out = tmp_path / "out"
    files = {ext: out / f"d.{ext}" for ext in ("csv", "md", "tex", "html", "png")}
    table = write_delta(
        paths,
        *files.values(),
        summary_md=out / "s.md",
        summary_html_path=out / "s.html",
        diffusion_paths=diffusion,
    )
    csv = pd.read_csv(files["csv"], dtype={"seeds": str, "unpaired_seeds": str})
    csv["unpaired_seeds"] = csv["unpaired_seeds"].fillna("")
    pd.testing.assert_frame_equal(csv, table, check_dtype=False)
    t1 = csv[csv["T"] == 1.0].iloc[0]
    mean, low, high = _hand([0.5, 2.0, 0.5])
    assert (t1["delta"], t1["ci_low"], t1["ci_high"]) == pytest.approx(
        (mean, low, high), abs=1e-4
    )
    assert t1["n"] == 3 and t1["seeds"] == "0 1 2"
    # 1 - S of the alpha 0.1 students at T = 1: 0.2, 0.18, 0.16 -> mean 0.18
    assert t1["reg_one_minus_stability"] == pytest.approx(0.18)
    assert t1["base_one_minus_stability"] == pytest.approx(0.28)
    assert t1["reg_separation"] == pytest.approx(1.9)
    assert t1["regularizer"] == "LS α = 0.1" and t1["objective"] == "KD"
    md = files["md"].read_text(encoding="utf-8")
    assert "transfer set n30 (300 images)" in md and "Student-t" in md
    assert f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]" in md
    assert r"\ensuremath{\Delta}" in files["tex"].read_text(encoding="utf-8")
    assert files["png"].read_bytes()[:4] == b"\x89PNG"
    summary = (out / "s.md").read_text(encoding="utf-8")
    assert (
        f"T = 1: Δ = {mean:+.2f} [{low:+.2f}, {high:+.2f}] (n = 3): inconclusive"
        in summary
    )
    m64, l64, h64 = _hand([-1.0, -2.0, -3.0])
    assert f"T = 64: Δ = {m64:+.2f} [{l64:+.2f}, {h64:+.2f}] (n = 3)" in summary
    # separation from T = 1 to T = 64, paired by seed: -1 for every alpha 0.1 seed
    assert (
        "separation: -1.00 [-1.00, -1.00] with the LS α = 0.1 teacher (n = 3)"
        in summary
    )
    assert "C1 " in summary and "transfer set n30 (300 images)" in summary
    assert (
        "LS benefit Δ(T)" in summary and "LS α = 0.1 teacher against the CE" in summary
    )
    page = (out / "s.html").read_text(encoding="utf-8")
    assert page.startswith('<meta charset="utf-8">') and "<html" not in page
    assert "inconclusive" in page


DELTA_FLAGS = (
    "csv",
    "md",
    "tex",
    "html",
    "png",
    "summary-md",
    "summary-html",
    "headline-html",
)


def test_cli_delta(tmp_path, capsys):
    paths = _write(tmp_path / "runs", _runs())
    out = tmp_path / "out"
    files = {flag: out / f"x_{flag}.out" for flag in DELTA_FLAGS}  # any names
    flags = [arg for flag, path in files.items() for arg in (f"--{flag}", str(path))]
    args = ["delta", *map(str, paths), *flags]
    assert main(args) == 0
    assert len(pd.read_csv(files["csv"])) == 2
    assert "T = 64: Δ" in files["summary-md"].read_text(encoding="utf-8")
    assert files["png"].read_bytes()[:4] == b"\x89PNG"
    headline = files["headline-html"].read_text(encoding="utf-8")
    assert headline.count("<li>") == 1  # one sentence: one regularizer, one objective
    assert "data:image/png;base64," in headline
    for bad, message in (
        (args[:-2], "the following arguments are required: --headline-html"),
        ([*args[:2], str(tmp_path / "missing.json"), *args[2:]], "file not found"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(bad)
        assert stop.value.code == 2
        assert message in capsys.readouterr().err
    # delta-transfer: the table's flags, no summary
    transfer = ["delta-transfer", *map(str, paths), *flags[:10]]
    assert main(transfer) == 0
    assert list(pd.read_csv(files["csv"])["transfer"]) == ["n30", "n30"]


def test_transfer_interaction_by_hand(tmp_path):
    small = [r for r in _runs(("n30", 300)) if r["role"] == "student"]
    whole = {  # the whole split: Δ per seed +0.2, +0.4, +0.3 at T = 1; 0, -1, -1 at 64
        (0.0, 1.0): (80.0, 80.0, 80.0),
        (0.1, 1.0): (80.2, 80.4, 80.3),
        (0.0, 64.0): (79.0, 79.0, 79.0),
        (0.1, 64.0): (79.0, 78.0, 78.0),
    }
    runs = _runs(("all", 55000), students=whole) + small
    result = transfer_interaction(runs)
    assert result.reference.size == "all"
    by = {(s.row.regularizer.alpha, s.row.T, s.transfer.size): s for s in result.rows}
    vs = by[(0.1, 1.0, "n30")].vs_ref
    diffs = [0.5 - 0.2, 2.0 - 0.4, 0.5 - 0.3]  # per seed Δ_n30 - Δ_all
    assert vs.values == pytest.approx(diffs)
    assert (vs.mean, vs.low, vs.high) == pytest.approx(_hand(diffs), abs=1e-4)
    assert by[(0.1, 1.0, "all")].vs_ref is None
    assert by[(0.1, 64.0, "n30")].vs_ref.mean == pytest.approx(
        (-1 - 2 - 3 - 0 + 1 + 1) / 3
    )
    out = tmp_path / "out"
    paths = _write(tmp_path / "runs", runs)
    files = [out / f"i.{ext}" for ext in ("csv", "md", "tex", "html", "png")]
    table = write_transfer_interaction(paths, *files)
    assert list(table["transfer"]) == ["n30", "all", "n30", "all"]
    assert table.loc[0, "minus_ref"] == pytest.approx(sum(diffs) / 3)
    assert "Δ − Δ(all)" in files[1].read_text(encoding="utf-8")
    assert files[4].read_bytes()[:4] == b"\x89PNG"
    # the power of each size's Δ(T): the whole split's T = 1 Δ per seed 0.2, 0.4, 0.3
    power = seed_power(table, 0.4).set_index(["transfer", "T"])
    assert power.loc[("all", 1.0), "sd"] == pytest.approx(0.1, abs=1e-9)
    assert power.loc[("n30", 1.0), "sd"] == pytest.approx(math.sqrt(0.75), abs=1e-9)
    # without "all" the largest size is the reference; a student needs its record
    no_all = _runs(("n100", 1000), students=whole) + small
    assert transfer_interaction(no_all).reference.size == "n100"
    del runs[-1]["transfer"]
    with pytest.raises(DataError, match="missing key 'transfer'"):
        transfer_interaction(runs)


# A MaxSup teacher against CE, students distilled with KD and with DKD: top-1 per
# (regularizer, objective, T) and seed 0, 1, 2.
MAXSUP = {"name": "maxsup", "lam": 0.1}
METHODS = {
    ("ce", "kd", 1.0): (70.0, 71.0, 69.0),
    ("maxsup", "kd", 1.0): (71.0, 71.5, 70.5),
    ("ce", "kd", 4.0): (72.0, 72.0, 71.0),
    ("maxsup", "kd", 4.0): (71.0, 71.0, 71.5),
    ("ce", "dkd", 1.0): (60.0, 61.0, 62.0),  # far below KD: a wrong base would show
    ("maxsup", "dkd", 1.0): (63.0, 63.5, 64.5),
    ("ce", "dkd", 4.0): (65.0, 66.0, 64.0),
    ("maxsup", "dkd", 4.0): (64.0, 66.5, 64.0),
}


def _method_run(role, reg, obj, T, seed, top1) -> dict:
    alpha = 0.0 if reg == "ce" else None  # metrics.json keeps alpha None for maxsup
    fields = {"regularizer": {"name": "ce"} if reg == "ce" else MAXSUP}
    if role == "student":
        fields["objective"] = {"name": obj}
    return make_metrics(role, alpha, T, seed, top1, **fields)


def _method_runs() -> list[dict]:
    runs = [
        _method_run("teacher", reg, None, None, s, 85.0 + s)
        for reg in ("ce", "maxsup")
        for s in range(3)
    ]
    for (reg, obj, T), values in METHODS.items():
        runs += [
            _method_run("student", reg, obj, T, s, v) for s, v in enumerate(values)
        ]
    return runs


def test_delta_per_objective_against_the_ce_teacher_of_the_same_objective():
    runs = _method_runs()
    random.Random(2).shuffle(runs)
    rows = delta_rows(parse_pair(runs))
    keys = [(r.regularizer.name, r.objective.name, r.T) for r in rows]
    # the default objective (kd) first, then the others by name; T ascending
    assert keys == [
        (m, o, T) for o in ("kd", "dkd") for m in ("maxsup",) for T in (1, 4)
    ]
    for row in rows:
        obj, T = row.objective.name, row.T
        diffs = [
            a - b
            for a, b in zip(
                METHODS[("maxsup", obj, T)], METHODS[("ce", obj, T)], strict=True
            )
        ]
        mean, low, high = _hand(diffs)
        assert row.delta.values == pytest.approx(diffs)
        assert (row.delta.mean, row.delta.low, row.delta.high) == pytest.approx(
            (mean, low, high), abs=1e-4
        )
        assert row.regularizer.label == "MaxSup λ = 0.1"


def test_write_delta_names_the_methods_and_never_says_ls_for_maxsup(tmp_path):
    paths = _write(tmp_path / "runs", _method_runs())
    out = tmp_path / "out"
    files = {ext: out / f"d.{ext}" for ext in ("csv", "md", "tex", "html", "png")}
    table = write_delta(
        paths,
        *files.values(),
        summary_md=out / "s.md",
        summary_html_path=out / "s.html",
    )
    assert list(table["regularizer"]) == ["MaxSup λ = 0.1"] * 4
    assert table["alpha"].isna().all()
    dkd = table[table["objective"].str.startswith("DKD")]
    assert len(dkd) == 2 and set(dkd["T"]) == {1.0, 4.0}
    at1 = dkd[dkd["T"] == 1.0].iloc[0]
    diffs = [
        a - b
        for a, b in zip(
            METHODS[("maxsup", "dkd", 1.0)], METHODS[("ce", "dkd", 1.0)], strict=True
        )
    ]
    assert at1["delta"] == pytest.approx(sum(diffs) / 3)
    assert at1["top1_base"] == pytest.approx(sum(METHODS[("ce", "dkd", 1.0)]) / 3)
    summary = (out / "s.md").read_text(encoding="utf-8")
    md = files["md"].read_text(encoding="utf-8")
    assert "LS" not in summary and "LS" not in md
    assert "MaxSup λ = 0.1 teacher against the CE teacher, DKD" in summary
    assert "MaxSup λ = 0.1 teacher against the CE teacher, KD students:" in summary
    mean, low, high = _hand(diffs)
    assert f"T = 1: Δ = {mean:+.2f} [{low:+.2f}, {high:+.2f}] (n = 3)" in summary
    assert "Claims for the MaxSup λ = 0.1 teacher, KD students" in summary
    assert "MaxSup λ = 0.1, DKD" in md  # the rows name the objective when several
    assert r"\ensuremath{\lambda}" in files["tex"].read_text(encoding="utf-8")
    # one panel per objective: twice as wide as the one-objective figure
    import matplotlib.image

    wide = matplotlib.image.imread(files["png"]).shape[1]
    kd_only = [r for r in _method_runs() if r.get("objective", {}).get("name") != "dkd"]
    one = _write(tmp_path / "kd", kd_only)
    write_delta(one, *(out / f"k.{e}" for e in ("csv", "md", "tex", "html", "png")))
    narrow = matplotlib.image.imread(out / "k.png").shape[1]
    assert wide > 1.8 * narrow


def test_headline_says_what_the_intervals_say():
    # T = 1: Δ per seed +0.5, +2.0, +0.5 -> 1.0 [-1.151, +3.151]: no clear difference;
    # T = 64: -1, -2, -3 -> -2.0 [-4.48, +0.48]: no clear difference either
    (sentence,) = headline(delta_rows(parse_pair(_runs())))
    mean, low, high = _hand([0.5, 2.0, 0.5])
    shown = f"{mean:+.2f} points, 95 % interval {low:+.2f} to {high:+.2f}"
    assert f"made no clear difference at T = 1 ({shown})" in sentence
    assert sentence.endswith("this run cannot tell whether the paper's advice holds.")
    assert sentence.startswith("Against a CE teacher, the LS α = 0.1 teacher (KD ")
    # every seed +1.0 better at T = 1 (zero-width interval above 0): the advice holds
    better = {k: v for k, v in STUDENTS.items() if k[1] == 64.0}
    better[(0.0, 1.0)] = (70.0, 71.0, 69.5)
    better[(0.1, 1.0)] = (71.0, 72.0, 70.5)
    (sentence,) = headline(delta_rows(parse_pair(_runs(students=better))))
    assert "helped at T = 1 (+1.00 points" in sentence
    assert sentence.endswith("the paper's advice holds on this run.")
    worse = better | {(0.1, 1.0): (69.0, 70.0, 68.5)}  # every seed -1.0
    (sentence,) = headline(delta_rows(parse_pair(_runs(students=worse))))
    assert "hurt at T = 1 (-1.00 points" in sentence
    assert sentence.endswith("the paper's advice fails on this run.")


def test_seed_power_recovers_the_spread_and_the_seeds_a_study_needs():
    # T = 1: per-seed differences +0.5, +2.0, +0.5 (sd 0.866); T = 64: -1, -2, -3 (sd 1)
    power = seed_power(numbers(delta_rows(parse_pair(_runs()))), 0.4).set_index("T")
    assert power.loc[1.0, "sd"] == pytest.approx(math.sqrt(0.75), abs=1e-9)
    assert power.loc[64.0, "sd"] == pytest.approx(1.0, abs=1e-9)
    # sd 1, target 0.4: n = 27 gives 2.0555 / sqrt(27) = 0.3956, n = 26 gives 0.4039
    assert power.loc[64.0, "seeds_needed"] == 27
    assert power.loc[1.0, "n"] == 3
