"""No secrets, no surprises: nothing calls home, nothing kills what it did not start,
no absolute path of somebody's machine in the repository. (Safe loading, i.e. every
`torch.load` with weights_only=True, is checked in test_checkpoint.py.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("src/", "workflow/", "scripts/", "bench/", "profiles/", "config/")


def tracked() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / line for line in out.splitlines() if (REPO / line).is_file()]


def texts(prefixes: tuple[str, ...] = ("",)) -> dict[str, str]:
    found = {}
    for path in tracked():
        rel = str(path.relative_to(REPO))
        if rel.startswith(prefixes) and path.suffix not in {".png", ".pdf", ".gz"}:
            try:
                found[rel] = path.read_text()
            except UnicodeDecodeError:
                continue
    return found


# user, cluster and mount locations; /usr/share/datasets (a Debian package) and the
# /data/... placeholders of config/paper.yaml ("point this at your copy") are fine
MACHINE_PATH = re.compile(
    r"(?<![\w.~-])(/(home|Users|work|scratch|root|mnt|gpfs|lustre|nfs)/[\w.-]+"
    r"|[A-Z]:\\\\Users)"
)


def test_no_absolute_machine_paths_in_tracked_files():
    hits = [
        f"{rel}:{n}: {line.strip()}"
        for rel, text in texts().items()
        for n, line in enumerate(text.splitlines(), 1)
        if MACHINE_PATH.search(line) and rel != "tests/test_safety.py"
    ]
    assert hits == []


TELEMETRY = re.compile(
    r"\b(import wandb|from wandb|wandb\.init|import mlflow|import requests|"
    r"urllib\.request|http\.client|torch\.hub|load_state_dict_from_url|"
    r"download=True|socket\.connect)"
)


def test_nothing_calls_home():
    hits = [
        f"{rel}:{n}"
        for rel, text in texts(SHIPPED).items()
        for n, line in enumerate(text.splitlines(), 1)
        if TELEMETRY.search(line)
    ]
    assert hits == []


# scripts/slurm/down.sh stops the test cluster's daemons it started (PID files of ours,
# checked against /proc/<pid>/comm) and cancels jobs in that cluster only.
OWN_PROCESSES = {"scripts/slurm/down.sh"}
KILLING = re.compile(r"\b(os\.kill|os\.killpg|pkill|killall|kill -9|scancel)\b")


def test_nothing_kills_processes_it_did_not_start():
    """The only signal sent by shipped code goes to the torchrun child that
    `distributed.relaunch` started (`proc.send_signal` in preempt.forwarding)."""
    hits = [
        f"{rel}:{n}: {line.strip()}"
        for rel, text in texts(SHIPPED).items()
        if rel not in OWN_PROCESSES
        for n, line in enumerate(text.splitlines(), 1)
        if KILLING.search(line) and not line.lstrip().startswith("#")
    ]
    assert hits == []
    senders = [rel for rel, t in texts(("src/",)).items() if "send_signal(" in t]
    assert senders == ["src/lskd/train/preempt.py"]
