"""The Snakemake DAG: dry runs, the DAG on .test/config, one table alone, the report."""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from conftest import planned_jobs, run_snakemake

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"
PAIR = "fmnist_mlp128-mlp128_n50"  # the one table of .test/config (50 images per class)
pytestmark = pytest.mark.slow


def separate_jobs(tmp_path: Path) -> str:
    """A config file that turns the fused T-sweep off (one job per temperature)."""
    path = tmp_path / "separate.yaml"
    path.write_text(yaml.safe_dump({"run": {"fuse_temperatures": False}}))
    return str(path)


@pytest.mark.parametrize("fused", [True, False])
def test_dry_run_default_config_is_fast(tmp_path, snakemake_bin, fused):
    configs = [str(REPO / "config" / "config.yaml")]
    configs += [] if fused else [separate_jobs(tmp_path)]
    start = time.perf_counter()
    result = run_snakemake(tmp_path, "-n", "--configfile", *configs)
    elapsed = time.perf_counter() - start
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    task = config["tasks"]["fmnist"]
    n_alpha, n_T = len(config["run"]["alphas"]), len(config["run"]["temperatures"])
    n_seeds, n_xfer = len(config["run"]["seeds"]), len(task["student"]["transfer"])
    n_teachers = len(task["teacher_archs"]) * n_alpha * n_seeds
    n_sweeps = n_teachers * len(task["student_archs"]) * n_xfer
    jobs = planned_jobs(result)
    assert jobs["train_teacher"] == n_teachers
    if fused:  # the default: one job per (teacher, student arch, seed)
        assert jobs["distill_students"] == n_sweeps and "distill_student" not in jobs
    else:
        assert jobs["distill_student"] == n_sweeps * n_T
        assert "distill_students" not in jobs
    pairs = len(task["teacher_archs"]) * len(task["student_archs"]) * n_xfer
    assert jobs["make_table"] == jobs["delta"] == pairs
    assert elapsed < 10, f"dry run took {elapsed:.1f} s"  # target 5 s; CI machines vary


def test_one_table_builds_only_what_it_needs(tmp_path, snakemake_bin):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    target = f"results/tables/{PAIR}.md"
    jobs = planned_jobs(
        run_snakemake(tmp_path, target, "-n", "--configfile", str(TEST_CONFIG))
    )
    n_runs = len(config["run"]["alphas"]) * len(config["run"]["seeds"])
    assert jobs == {
        "prepare_data": 1,
        "train_teacher": n_runs,
        "distill_students": n_runs,  # every T of one alpha and seed in one fused job
        "make_table": 1,
    }


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        (
            "teacher",
            "epoch",
            3,
            "tasks.fmnist.teacher.epoch: unknown key",
        ),
        ("data", "root", "/nonexistent/fmnist", "tasks.fmnist.data.root: directory "),
    ],
)
def test_bad_config_fails_before_any_job(
    tmp_path, snakemake_bin, section, key, value, message
):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["tasks"]["fmnist"][section][key] = value
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    result = run_snakemake(work, "--cores", "1", "--configfile", str(bad), check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "config error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"lskd: config error: {message}")
    for produced in ("results", "resources", "logs", "benchmarks"):
        assert not (work / produced).exists()


def test_every_run_writes_metrics(demo_run, snakemake_bin):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    metrics = sorted(demo_run.glob("results/fmnist/**/metrics.json"))
    n_alpha, n_T = len(config["run"]["alphas"]), len(config["run"]["temperatures"])
    n_seeds = len(config["run"]["seeds"])
    assert len(metrics) == n_alpha * (1 + n_T) * n_seeds
    for path in metrics:
        m = json.loads(path.read_text())
        assert {"top1", "top5", "last", "best", "chosen_epoch", "wall_s"} <= set(m)
        assert 0 < m["stability"] <= 1  # Shen et al. 2021, Eq. (2), test split
        assert m["one_minus_stability"] == pytest.approx(1 - m["stability"])
        assert {"train_images_per_s", "config", "versions"} <= set(m)
        picked = m["last"] if m["selection"] == "last" else m["best"]
        assert m["top1"] == picked["test_top1"] and m["chosen_epoch"] == picked["epoch"]
        assert not (path.parent / "last.pt").exists()
        run = path.parent.relative_to(demo_run / "results")
        if m["role"] == "teacher":
            log = demo_run / "logs" / run / "train_teacher.log"
        else:  # the fused sweep's log: logs/<teacher>/students_<arch>_s<seed>/
            assert m["fused_temperatures"] == config["run"]["temperatures"]
            sweep = f"students_{m['arch']}_{m['transfer']['size']}_s{m['seed']}"
            log = demo_run / "logs" / run.parent / sweep / "distill_students.log"
        lines = log.read_text().splitlines()
        assert (
            sum(" epoch " in line and "img/s=" in line for line in lines) == m["epochs"]
        )


def test_students_distil_on_one_paired_transfer_set(demo_run):
    """.test/config distils on 50 images per class: recorded, the same images for
    both teachers' students and every T of a seed."""
    students = [
        json.loads(p.read_text())
        for p in demo_run.glob("results/fmnist/*/student_*/metrics.json")
    ]
    assert students
    by_seed: dict[int, set] = {}
    for m in students:
        assert m["transfer"]["size"] == "n50" and m["transfer"]["images"] == 500
        by_seed.setdefault(m["seed"], set()).add(m["transfer"]["indices_sha256"])
    assert all(len(hashes) == 1 for hashes in by_seed.values())


def _runs(demo_run: Path) -> list[dict]:
    return [
        json.loads(p.read_text())
        for p in demo_run.glob("results/fmnist/**/metrics.json")
    ]


def test_table_equals_its_runs(demo_run, snakemake_bin):
    table = pd.read_csv(demo_run / f"results/tables/{PAIR}.csv", index_col=0)
    runs = _runs(demo_run)
    assert len(table) == 1 + len({r["T"] for r in runs if r["role"] == "student"})
    cells: dict[tuple, list[dict]] = {}
    for run in runs:
        row = (
            "Teacher mlp128"
            if run["role"] == "teacher"
            else f"Student mlp128, T={run['T']:g}"
        )
        cells.setdefault((row, f"alpha = {run['alpha']:.1f}"), []).append(run)
    for (row, column), group in cells.items():
        parts = []
        for key in ("top1", "top5"):
            values = [r[key] for r in group]
            if len(values) == 1:
                parts.append(f"{values[0]:.2f}")
            else:
                mean, sd = statistics.mean(values), statistics.stdev(values)
                parts.append(f"{mean:.2f} ± {sd:.2f}")
        expected = " / ".join(parts)
        expected += f" (n={len(group)})" if len(group) > 1 else ""
        assert table.loc[row, column] == expected


def _paired(runs: list[dict], left: tuple, right: tuple) -> tuple[float, float, int]:
    """Mean and 95 % Student-t half-width of left - right top-1, paired by seed."""
    by = {}
    for r in runs:
        by.setdefault((r["role"], r["alpha"], r["T"]), {})[r["seed"]] = r["top1"]
    seeds = sorted(set(by[left]) & set(by[right]))
    diffs = [by[left][s] - by[right][s] for s in seeds]
    n = len(diffs)
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return statistics.mean(diffs), half, n


def test_delta_table_equals_its_runs(demo_run, snakemake_bin):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    delta = pd.read_csv(demo_run / f"results/tables/{PAIR}_delta.csv")
    runs = _runs(demo_run)
    temps = sorted(float(T) for T in config["run"]["temperatures"])
    ls = [a for a in config["run"]["alphas"] if a > 0]
    assert [(r.alpha, r.T) for r in delta.itertuples()] == [
        (a, T) for a in ls for T in temps
    ]
    for row in delta.itertuples():
        left, right = ("student", row.alpha, row.T), ("student", 0.0, row.T)
        mean, half, n = _paired(runs, left, right)
        assert n == row.n == len(config["run"]["seeds"])
        assert row.delta == pytest.approx(mean, abs=1e-9)
        assert row.ci_low == pytest.approx(mean - half, abs=1e-9)
        assert row.ci_high == pytest.approx(mean + half, abs=1e-9)
        one_minus = [
            r["one_minus_stability"]
            for r in runs
            if (r["role"], r["alpha"], r["T"]) == left
        ]
        assert row.reg_one_minus_stability == pytest.approx(statistics.mean(one_minus))
    summary = (demo_run / f"results/tables/{PAIR}_delta_summary.md").read_text()
    first = delta.iloc[0]
    shown = f"{first.delta:+.2f} [{first.ci_low:+.2f}, {first.ci_high:+.2f}]"
    assert f"T = {first['T']:g}: Δ = {shown} (n = {first.n})" in summary
    png = demo_run / f"results/figures/delta_{PAIR}.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_figures_and_report(demo_run, snakemake_bin):
    for name in (f"penultimate_{PAIR}", "penultimate_fmnist_mlp128-teachers"):
        png = demo_run / "results/figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (demo_run / "results/figures" / f"{name}.pdf").stat().st_size > 0
    report = (demo_run / "results/report.html").read_text()
    assert len(report) > 10_000
    for ext in ("md", "tex", "csv", "html"):
        assert (demo_run / f"results/tables/{PAIR}.{ext}").exists()
    assert (
        demo_run / "benchmarks/fmnist/teacher_mlp128_a0_s0/train_teacher.tsv"
    ).exists()
    # The Δ(T) category sorts first: the report's menu orders categories by
    # localeCompare, where digits come before letters, and only it starts with one.
    # The landing page opens with the generated summary.
    categories = json.loads(re.search(r"var categories = (\{.*?\});", report)[1])
    first = "1. LS benefit Δ(T)"
    assert all(c[0].isalpha() for c in categories if c != first)
    assert len(categories[first]["fmnist"]) == 3  # summary, table, figure
    desc = json.loads(re.search(r"var workflow_desc = (\".*?\");\n", report, re.S)[1])
    summary = (demo_run / f"results/tables/{PAIR}_delta_summary.html").read_text()
    assert desc.index('<div class="lskd-summary">') < desc.index("lskd reproduces")
    assert summary.split("\n")[2] in desc  # the summary's first line, verbatim


@pytest.mark.parametrize("fused", [True, False])
def test_paper_dry_run_lists_the_whole_grid(tmp_path, snakemake_bin, fused):
    paper = REPO / "config" / "paper.yaml"
    configs = [str(paper)] + ([] if fused else [separate_jobs(tmp_path)])
    start = time.perf_counter()
    result = run_snakemake(tmp_path, "-n", "--configfile", *configs)
    elapsed = time.perf_counter() - start
    config = yaml.safe_load(paper.read_text())
    jobs = planned_jobs(result)
    n_alpha, n_T = len(config["run"]["alphas"]), len(config["run"]["temperatures"])
    tasks = config["tasks"]
    students = sum(len(t["student_archs"]) for t in tasks.values()) * n_alpha * n_T
    assert jobs["train_teacher"] == 2 * n_alpha  # ImageNet and CUB ResNet-50
    assert students == 48  # 16 + 8 EfficientNet-B0 + 24 CUB
    if fused:
        assert jobs["distill_students"] == students // n_T
    else:
        assert jobs["distill_student"] == students
    assert jobs["make_table"] == 6
    assert jobs["prepare_data"] == 2 and jobs["prepare_subset"] == 1
    assert jobs["import_weights"] == len(config["weights"])
    # one analysis job for ImageNet's teachers, one per student arch (CUB: no figures)
    assert not tasks["cub200"]["penultimate"]["enabled"]
    assert jobs["analyse_teachers"] == 1
    assert jobs["analyse_students"] == len(tasks["imagenet"]["student_archs"])
    assert elapsed < 10, f"dry run took {elapsed:.1f} s"  # target 5 s; CI machines vary


def test_claims_and_diffusion_outputs(demo_run, snakemake_bin):
    from lskd.analysis.claims import CLAIMS, VERDICTS

    claims = pd.read_csv(demo_run / f"results/tables/{PAIR}_claims.csv")
    assert list(claims["claim_id"]) == [c.claim_id for c in CLAIMS]
    assert set(claims["alpha"]) == {0.1}
    assert set(claims["verdict"]) <= set(VERDICTS)
    runs = _runs(demo_run)
    c1 = claims.set_index("claim_id").loc["C1"]  # teacher 0.1 minus 0.0, by seed
    mean, half, n = _paired(runs, ("teacher", 0.1, None), ("teacher", 0.0, None))
    assert c1["margin"] == pytest.approx(mean) and c1["n"] == n
    assert c1["ci_high"] == pytest.approx(mean + half)
    diffusion = pd.read_csv(demo_run / f"results/tables/{PAIR}_diffusion.csv")
    cells = {(r["role"], r["alpha"], r["T"]) for r in runs}
    assert len(diffusion) == len(cells)  # every cell is drawn in the figures
    assert (diffusion["n"] == n).all()
    for path in demo_run.glob("results/fmnist/**/diffusion.json"):
        separation = json.loads(path.read_text())["separation"]
        assert separation > 0
    png = demo_run / f"results/figures/diffusion_{PAIR}.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
