"""scripts/gpu_check.sh, the prepared GPU check (docs/performance.md#the-gpu-check),
without a GPU: its dry run parses every part, runs each in its tiny CPU or skip mode,
writes the CSV files and the summary and exits 0; its real run stops at once, exit 1,
when torch sees no GPU."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
PARTS = ["env", "data", "tests", "kd", "compile", "fused", "cifar", "pipeline"]


def gpu_check(out: Path, *args: str, timeout: float = 600):
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("bash and coreutils' timeout needed")
    env = os.environ | {"PYTHON": sys.executable}
    env.pop("OUT", None)
    return subprocess.run(
        ["bash", str(SCRIPT), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd="/",
    )


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_script_parses_and_has_help():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    result = subprocess.run(
        ["bash", str(SCRIPT), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--dry-run" in result.stdout
    result = subprocess.run(
        ["bash", str(SCRIPT), "--no-such-flag"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "unknown argument" in result.stderr


@pytest.mark.slow
def test_dry_run_writes_every_csv_and_a_clean_summary(tmp_path):
    result = gpu_check(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = {r["part"]: r for r in rows(tmp_path / "summary.csv")}
    for part in PARTS:
        assert summary[part]["status"] == "ok", summary[part]
    assert summary["nmt_kd_cost"]["status"] == "skipped"
    assert {r["status"] for r in summary.values()} <= {"ok", "skipped"}
    # each part printed the command it runs on the GPU
    assert result.stdout.count("   on the GPU: ") == len(PARTS)
    assert "bench/fused_sweep.py --device cuda" in result.stdout
    env = {r["key"]: r["value"] for r in rows(tmp_path / "env.csv")}
    assert env["torch"] == torch.__version__
    tests = rows(tmp_path / "tests.csv")
    assert tests and all(t["test"].startswith("tests.test_gpu::") for t in tests)
    expected = "skipped" if not torch.cuda.is_available() else "passed"
    assert {t["outcome"] for t in tests} <= {expected, "skipped"}
    kd = rows(tmp_path / "kd_throughput.csv")
    assert any(r["loader"] == "torchvision" and float(r["real"]) > 0 for r in kd)
    assert any(r["loader"] == "-" and float(r["compiled"]) > 0 for r in kd)
    (fused,) = rows(tmp_path / "fused_sweep.csv")
    assert float(fused["fused_over_separate"]) > 0
    assert "teacher_compiled=" in fused["teacher_variants_s"]
    pipeline = rows(tmp_path / "pipeline.csv")
    assert pipeline and float(pipeline[0]["train_img_s"]) > 0
    (cifar,) = rows(tmp_path / "cifar_epoch.csv")
    assert float(cifar["train_images_per_s"]) > 0 and cifar["students"] == "2"
    log = (tmp_path / "gpu_check.log").read_text()
    assert "gpu_check: all parts ok" in log
    # what comes back from the device machine: at most 8 files, no folders
    assert len(list(tmp_path.iterdir())) <= 8
    assert all(p.is_file() for p in tmp_path.iterdir())


def test_real_run_without_a_gpu_stops_after_env(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the real run would run")
    result = gpu_check(tmp_path, "--only", "tests", timeout=300)
    assert result.returncode == 1, result.stdout[-3000:]
    summary = {r["part"]: r for r in rows(tmp_path / "summary.csv")}
    assert summary["env"]["status"] == "failed"
    assert "torch sees no GPU" in summary["env"]["note"]
    assert summary["tests"]["status"] == "skipped"
    assert "kd" not in summary  # not asked for
