"""Shared fixtures: repository paths and the Debian Fashion-MNIST root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FMNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")


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
    code = "import sys; from lskd.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def paper_md() -> Path:
    """PAPER.md: $LSKD_PAPER_MD, the repo root, or the shared folder beside it."""
    candidates = [REPO / "PAPER.md", REPO.parent / "shared" / "PAPER.md"]
    if os.environ.get("LSKD_PAPER_MD"):
        candidates.insert(0, Path(os.environ["LSKD_PAPER_MD"]))
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip("PAPER.md not found (set LSKD_PAPER_MD)")


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
