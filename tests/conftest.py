"""Shared fixtures: repository paths, the Debian Fashion-MNIST root, `lskd` and
Snakemake runs, toy datasets and made-up metrics.json files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FMNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA: skipped where torch sees no GPU (torch is imported
    only when such a test was collected)."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: no GPU here (scripts/gpu_check.sh)")
    for item in gpu:
        item.add_marker(skip)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def fmnist_root() -> Path:
    if not FMNIST_ROOT.is_dir():
        pytest.skip(f"{FMNIST_ROOT} missing: apt-get install dataset-fashion-mnist")
    return FMNIST_ROOT


@pytest.fixture
def snakemake_bin() -> str:
    exe = shutil.which("snakemake")
    if exe is None:
        pytest.skip("snakemake not on PATH (run through scripts/test.sh)")
    return exe


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`lskd ARGS` in a fresh interpreter (stderr captured, as a user would see it)."""
    code = "import sys; from lskd.cli.main import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_argv(
    data: Path, out: Path, hp: dict, *extra: str, task: str = "toy"
) -> list[str]:
    """`lskd train` arguments: an mlp128 at alpha 0, seed 0, on `data` with the recipe
    `hp`, writing out/model.pt and out/metrics.json; `extra` flags added."""
    return [
        "train",
        *("--task", task, "--data", str(data), "--arch", "mlp128"),
        *("--alpha", "0", "--seed", "0", "--hp", json.dumps(hp), *extra),
        *("--model-out", str(out / "model.pt")),
        *("--metrics-out", str(out / "metrics.json")),
    ]


OFFICIAL_RESULTS = REPO / "tests" / "data" / "official_readme_results.md"


def official_cells() -> dict[tuple, float]:
    """Every number of the official READMEs' result tables, as copied (with their
    source lines) in tests/data/official_readme_results.md, keyed like the rows of
    lskd/analysis/paper_numbers.csv: (task, teacher_arch, student_arch, role, T or
    None, alpha, metric) -> value, metric top1 / top5 (image tasks) or bleu (NMT)."""
    cells: dict[tuple, float] = {}
    table, alphas = None, None
    for line in OFFICIAL_RESULTS.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## (\w+) (\w+) -> (\w+) ", line)
        if heading:
            table, alphas = heading.groups(), None
            continue
        if table is None or not line.startswith("|"):
            continue
        row = [c.strip() for c in line.strip().strip("|").split("|")]
        if row[1] == r"$\\alpha$ / T":
            alphas = [float(re.search(r"([\d.]+)$", c).group(1)) for c in row[2:]]
            continue
        if not row[0].startswith(("Teacher", "Student")):
            continue
        role = "teacher" if row[0].startswith("Teacher") else "student"
        T = None if role == "teacher" else float(row[1].removeprefix("T = "))
        for alpha, text in zip(alphas, row[2:], strict=True):
            values = [float(v) for v in text.split("/")]
            names = ("bleu",) if table[0].startswith("nmt_") else ("top1", "top5")
            for metric, value in zip(names, values, strict=True):
                cells[(*table, role, T, alpha, metric)] = value
    return cells


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """`snakemake -s workflow/Snakefile --directory WORKDIR ARGS` from the repo root."""
    cmd = ["snakemake", "-s", str(REPO / "workflow" / "Snakefile")]
    cmd += ["--directory", str(workdir), *args]
    result = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stderr[-4000:]}"
        )
    return result


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts per rule from the 'Job stats' table of a dry run ({} when nothing is
    to be done)."""
    lines = result.stdout.splitlines()
    if "Job stats:" not in lines:
        assert "Nothing to be done" in result.stdout, result.stdout[-2000:]
        return {}
    counts = {}
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The whole DAG of .test/config run locally, plus its report (one run per session,
    shared by the workflow, SLURM and browser tests)."""
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake not on PATH (run through scripts/test.sh)")
    work = tmp_path_factory.mktemp("dag")
    config = str(REPO / ".test" / "config" / "config.yaml")
    run_snakemake(work, "--cores", "2", "--configfile", config)
    run_snakemake(work, "--report", "results/report.html", "--configfile", config)
    return work


def make_toy_npz(path: Path, n_train: int = 500, n_eval: int = 50) -> Path:
    """Learnable 28x28 uint8 images (class c has a bright band at rows 2c..2c+2),
    written as a prepared `.npz` dataset."""
    import numpy as np

    from lskd.data.arrays import Arrays, save_arrays
    from lskd.data.fashion_mnist import CLASS_NAMES

    rng = np.random.default_rng(0)
    images, labels = {}, {}
    for split, n in {"train": n_train, "val": n_eval, "test": n_eval}.items():
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 100, (n, 1, 28, 28), dtype=np.uint8)
        for i, c in enumerate(y):
            x[i, 0, 2 * c : 2 * c + 3] = 255
        images[split], labels[split] = x, y.astype(np.int64)
    save_arrays(Arrays(images, labels, CLASS_NAMES, (0.3,), (0.3,)), path)
    return path


@pytest.fixture(scope="module", autouse=True)
def _restore_determinism():
    """seed_everything switches deterministic algorithms on for the whole process: give
    every test module back the setting it started with."""
    import os

    import torch

    flag = torch.are_deterministic_algorithms_enabled()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    yield
    torch.use_deterministic_algorithms(flag)
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def make_metrics(
    role: str,
    alpha: float,
    T: float | None = None,
    seed: int = 0,
    top1: float = 80.0,
    *,
    task: str = "fmnist",
    arch: str | None = None,
    teacher_arch: str = "mlp512",
    student_arch: str = "mlp128",
    **fields,
) -> dict:
    """A made-up metrics.json dict of one run with the keys the analyses read: a
    teacher (``arch`` default ``teacher_arch``) or a student (``student_arch``) of
    the teacher ``{arch: teacher_arch, alpha, seed}``; ``fields`` add or replace keys
    (``stability``, ``transfer``, ``top5``, ``selection``, ...)."""
    student = role == "student"
    metrics = {
        "role": role,
        "task": task,
        "arch": arch or (student_arch if student else teacher_arch),
        "alpha": alpha,
        "T": T,
        "seed": seed,
        "selection": "last",
        "eval_split": "test",
        "top1": top1,
        "top5": 99.0,
        "teacher": {"arch": teacher_arch, "alpha": alpha, "seed": seed}
        if student
        else None,
    }
    return metrics | fields


def write_metrics(root: Path, runs: list[dict]) -> list[Path]:
    """Each metrics.json dict in its own run directory ``root/run<i>/``, in the order
    given (the directory names say nothing of the run)."""
    paths = []
    for i, run in enumerate(runs):
        path = root / f"run{i}" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(run))
        paths.append(path)
    return paths
