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
from lskd.analysis.labels import row_label
from lskd.identity import RunId, objective_token
from lskd.plan.config import validate_config
from lskd.plan.grid import Grid

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"
PAIR = "fmnist_mlp128-mlp128_n50"  # the one table of .test/config (50 images per class)
pytestmark = pytest.mark.slow


def grid_of(path: Path) -> Grid:
    """The grid of a config file (its regularizers, objectives, temperatures, seeds)."""
    return Grid(validate_config(yaml.safe_load(path.read_text())))


def identity(run: dict) -> RunId:
    return RunId.from_metrics(run, "metrics.json")


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
    grid = grid_of(TEST_CONFIG)
    target = f"results/tables/{PAIR}.md"
    jobs = planned_jobs(
        run_snakemake(tmp_path, target, "-n", "--configfile", str(TEST_CONFIG))
    )
    n_teachers = len(grid.regs) * len(grid.seeds)
    assert jobs == {
        "prepare_data": 1,
        "train_teacher": n_teachers,
        # every T of one teacher, seed and objective in one fused job
        "distill_students": n_teachers * len(grid.objs),
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
    grid = grid_of(TEST_CONFIG)
    metrics = sorted(demo_run.glob("results/fmnist/**/metrics.json"))
    n_teachers = len(grid.regs) * len(grid.seeds)
    assert len(metrics) == n_teachers * (1 + len(grid.objs) * len(grid.temps))
    assert {identity(json.loads(p.read_text())).regularizer.name for p in metrics} == {
        "ce",
        "ls",
        "maxsup",
    }
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
        else:  # the fused sweep's log: logs/<teacher>/students_<arch>_<obj>_s<seed>/
            assert m["fused_temperatures"] == config["run"]["temperatures"]
            obj = objective_token(identity(m).objective)
            sweep = f"students_{m['arch']}_{m['transfer']['size']}_{obj}_s{m['seed']}"
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
    students = {(identity(r).objective, r["T"]) for r in runs if r["role"] == "student"}
    assert len(table) == 1 + len(students)
    cells: dict[tuple, list[dict]] = {}
    for run in runs:
        who = identity(run)
        row = row_label(who.role, who.arch, who.T, who.objective)
        cells.setdefault((row, who.regularizer.label), []).append(run)
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


def _cell(run: dict) -> tuple:
    """(role, regularizer label, objective label or None, T) of a run."""
    who = identity(run)
    objective = None if who.objective is None else who.objective.label
    return (who.role, who.regularizer.label, objective, who.T)


def _paired(runs: list[dict], left: tuple, right: tuple) -> tuple[float, float, int]:
    """Mean and 95 % Student-t half-width of left - right top-1 (cells `_cell`),
    paired by seed."""
    by = {}
    for r in runs:
        by.setdefault(_cell(r), {})[r["seed"]] = r["top1"]
    seeds = sorted(set(by[left]) & set(by[right]))
    diffs = [by[left][s] - by[right][s] for s in seeds]
    n = len(diffs)
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return statistics.mean(diffs), half, n


def test_delta_table_equals_its_runs(demo_run, snakemake_bin):
    grid = grid_of(TEST_CONFIG)
    delta = pd.read_csv(demo_run / f"results/tables/{PAIR}_delta.csv")
    runs = _runs(demo_run)
    temps = sorted(float(T) for T in grid.temps)
    regs = [c.label for c in grid.regularizers.values() if not c.is_base]
    objs = [c.label for c in grid.objectives.values()]
    base = next(c.label for c in grid.regularizers.values() if c.is_base)
    expected = {(r, o, T) for r in regs for o in objs for T in temps}
    assert [(r.regularizer, r.objective, r.T) for r in delta.itertuples()] != []
    assert {(r.regularizer, r.objective, r.T) for r in delta.itertuples()} == expected
    assert len(delta) == len(expected)
    for row in delta.itertuples():
        left = ("student", row.regularizer, row.objective, row.T)
        right = ("student", base, row.objective, row.T)
        mean, half, n = _paired(runs, left, right)
        assert n == row.n == len(grid.seeds)
        assert row.delta == pytest.approx(mean, abs=1e-9)
        assert row.ci_low == pytest.approx(mean - half, abs=1e-9)
        assert row.ci_high == pytest.approx(mean + half, abs=1e-9)
        one_minus = [r["one_minus_stability"] for r in runs if _cell(r) == left]
        assert row.reg_one_minus_stability == pytest.approx(statistics.mean(one_minus))
    summary = (demo_run / f"results/tables/{PAIR}_delta_summary.md").read_text()
    first = delta.iloc[0]
    shown = f"{first.delta:+.2f} [{first.ci_low:+.2f}, {first.ci_high:+.2f}]"
    assert f"T = {first['T']:g}: Δ = {shown} (n = {first.n})" in summary
    png = demo_run / f"results/figures/delta_{PAIR}.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def delta_rows_of(demo_run: Path) -> pd.DataFrame:
    return pd.read_csv(demo_run / f"results/tables/{PAIR}_delta.csv")


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
    # The landing page opens with the answers (a sentence per method above the Δ
    # figure), the detailed summaries below them.
    categories = json.loads(re.search(r"var categories = (\{.*?\});", report)[1])
    first = "1. Teacher regularizer benefit Δ(T)"
    assert all(c[0].isalpha() for c in categories if c != first)
    assert len(categories[first]["fmnist"]) == 4  # answer, summary, table, figure
    desc = json.loads(re.search(r"var workflow_desc = (\".*?\");\n", report, re.S)[1])
    summary = (demo_run / f"results/tables/{PAIR}_delta_summary.html").read_text()
    answer = (demo_run / f"results/tables/{PAIR}_delta_headline.html").read_text()
    assert desc.index('<div class="lskd-headline">') < desc.index(
        '<div class="lskd-summary">'
    )
    assert desc.index('<div class="lskd-summary">') < desc.index("lskd reproduces")
    assert summary.split("\n")[2] in desc  # the summary's first line, verbatim
    assert answer.count("<li>") == len(delta_rows_of(demo_run)) // len(
        grid_of(TEST_CONFIG).temps
    )  # one sentence per (regularizer, objective)
    assert "data:image/png;base64," in desc  # the Δ figure, embedded


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
    from lskd.analysis.claims import CLAIMS, NOT_JUDGED, VERDICTS

    grid = grid_of(TEST_CONFIG)
    claims = pd.read_csv(demo_run / f"results/tables/{PAIR}_claims.csv")
    blocks = claims.groupby(["regularizer", "objective"], sort=False)
    regs = [c for c in grid.regularizers.values() if not c.is_base]
    assert len(blocks) == len(regs) * len(grid.objs)  # one per (regularizer, objective)
    for _, block in blocks:
        assert list(block["claim_id"]) == [c.claim_id for c in CLAIMS]
    judged = {v for v in claims["verdict"] if not v.startswith(f"{NOT_JUDGED}: ")}
    assert judged <= set(VERDICTS)
    runs = _runs(demo_run)
    base = next(c.label for c in grid.regularizers.values() if c.is_base)
    for reg in regs:  # C1: the regularized teacher minus the ce teacher, by seed
        c1 = claims[(claims["regularizer"] == reg.label) & (claims["claim_id"] == "C1")]
        mean, half, n = _paired(
            runs, ("teacher", reg.label, None, None), ("teacher", base, None, None)
        )
        assert c1["margin"].tolist() == pytest.approx([mean] * len(c1))
        assert c1["ci_high"].tolist() == pytest.approx([mean + half] * len(c1))
        assert c1["n"].tolist() == [n] * len(c1) and len(c1) == len(grid.objs)
    paper = claims[
        claims["regularizer"].str.startswith("LS") & (claims["objective"] == "KD")
    ]
    assert paper["source"].str.startswith("Chandrasegaran").all()  # the paper's own
    maxsup = claims[claims["regularizer"].str.startswith("MaxSup")]
    own = maxsup[maxsup["claim_id"] != "C5"]  # C5 is about the ce teacher's students
    assert own["source"].str.startswith("lskd's generalization").all()
    assert not own["claim"].str.contains(r"\bLS\b", regex=True).any()
    diffusion = pd.read_csv(demo_run / f"results/tables/{PAIR}_diffusion.csv")
    cells = {_cell(r) for r in runs}
    assert len(diffusion) == len(cells)  # every cell is drawn in the figures
    assert (diffusion["n"] == n).all()
    for path in demo_run.glob("results/fmnist/**/diffusion.json"):
        separation = json.loads(path.read_text())["separation"]
        assert separation > 0
    png = demo_run / f"results/figures/diffusion_{PAIR}.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_landing_page_order(tmp_path):
    """workflow/report/workflow.rst rendered as Snakemake's report renders it (Jinja
    with its options, then docutils): the style that keeps the page's top in view,
    then each pair's Δ answer, then Table 5's, then the detailed summaries, then the
    text; the config's method lists as names."""
    from docutils.core import publish_parts
    from jinja2 import Environment

    parts = {
        "fmnist_mlp512-mlp512_n30_delta_headline.html": "ANSWER-IMAGES",
        "table5_libreoffice_headline.html": "ANSWER-TABLE5",
        "fmnist_mlp512-mlp512_n30_delta_summary.html": "SUMMARY",
        "fmnist_mlp512-mlp512_n30_delta.html": "DELTA-TABLE",
    }
    files = []
    for name, text in parts.items():
        (tmp_path / name).write_text(f"<p>{text}</p>", encoding="utf-8")
        files.append(type("Res", (), {"target": f"results/tables/{name}"}))
        files[-1].path = str(tmp_path / name)

    class Snakemake:
        config = validate_config(yaml.safe_load(TEST_CONFIG.read_text()))

    template = (REPO / "workflow" / "report" / "workflow.rst").read_text()
    rst = Environment(trim_blocks=True, lstrip_blocks=True).from_string(template)
    html = publish_parts(
        rst.render(snakemake=Snakemake, files=files[::-1]), writer_name="html"
    )["html_body"]
    order = ["align-items: flex-start", "ANSWER-IMAGES", "ANSWER-TABLE5", "SUMMARY"]
    assert [html.index(k) for k in order] == sorted(html.index(k) for k in order)
    assert html.index("SUMMARY") < html.index("lskd reproduces")
    assert "DELTA-TABLE" not in html  # tables are report items, not on this page
    assert 'with the regularizers\n<tt class="docutils literal">maxsup</tt>' in html
    assert "maxsup" in html and "{'name'" not in html and "[0.0" not in html
