"""Shared fixtures: repository paths and the Debian Fashion-MNIST root."""

from __future__ import annotations

import shutil
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
