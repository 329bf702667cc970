"""Training jobs longer than their SLURM time limit continue in segments
(lskd.train.segments) on the local cluster (scripts/slurm/up.sh): a teacher and a fused
T-sweep, each given a one-minute limit, run through at least three allocations of one
SLURM job id (`sacct` shows the requeues) and end with the outputs of an uninterrupted
local run, bit for bit.

The profile is tests/test_slurm.py's `site_profile` (profiles/slurm as a user edits it
for this node) with the training rule's runtime set to SLURM's minimum, one minute,
and the warning at one second: slurmctld checks time limits every 30 s and sends the
warning at the first check within 30 s plus the lead of the limit, here 29-59 s into
each allocation, after the job's start-up (two snakemake processes and lskd, ~15 s).
Each job's epochs are sized from this machine's measured speed to about 120 s of
training, so that it needs three allocations however fast the machine is.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

import test_slurm
from conftest import run_snakemake
from killharness import differences
from test_slurm import REPO, TEST_CONFIG, rule_of, run_id, sacct_jobs, site_profile

pytestmark = test_slurm.pytestmark  # slow, slurm; skipped without the SLURM packages
cluster = test_slurm.cluster  # the local cluster, up for this module

TEACHER = "results/fmnist/teacher_mlp128_a0_s0"
SWEEP = [f"{TEACHER}/student_mlp128_all_T{t}_s0" for t in (1, 3)]
LOGS = {
    "train_teacher": "logs/fmnist/teacher_mlp128_a0_s0/train_teacher.log",
    "distill_students": "logs/fmnist/teacher_mlp128_a0_s0/students_mlp128_all_s0/"
    "distill_students.log",
}
# Training per job: more than two one-minute allocations hold (at most ~50 s each after
# the start-up), whatever this machine's speed (`epochs_for` measures it).
TRAIN_S = 120


def config(path: Path, rule: str, epochs: int = 2) -> Path:
    """.test/config with one teacher (and one fused sweep at T = 1, 3) on 50,000
    training images; `epochs` for the job of `rule`."""
    c = yaml.safe_load(TEST_CONFIG.read_text())
    c["run"].update(
        alphas=[0.0], seeds=[0], temperatures=[1, 3], fuse_temperatures=True
    )
    task = c["tasks"]["fmnist"]
    task["data"]["train_size"] = 50000
    task["student"].pop("transfer")  # the whole training split
    task["teacher" if rule == "train_teacher" else "student"]["epochs"] = epochs
    path.write_text(yaml.safe_dump(c))
    return path


def epochs_for(work: Path, rule: str, scratch: Path) -> int:
    """Epochs of the job of `rule` that take about TRAIN_S of training here and now,
    from 3 epochs of the same model and batches (their `train_seconds`)."""
    task = yaml.safe_load(TEST_CONFIG.read_text())["tasks"]["fmnist"]
    role = "teacher" if rule == "train_teacher" else "student"
    hp = {k: task[role][k] for k in ("batch_size", "lr", "eval_batch_size")}
    argv = ["--task", "fmnist", "--arch", "mlp128", "--seed", "0", "--device", "cpu"]
    argv += ["--data", str(work / "resources/data/fmnist/dataset.npz")]
    argv += ["--hp", json.dumps({**hp, "epochs": 3})]
    if rule == "train_teacher":
        argv = ["train", *argv, "--alpha", "0"]
        outs = [scratch]
    else:
        argv = ["distill", *argv, "--teacher", str(work / TEACHER / "model.pt")]
        outs = [scratch / "T1", scratch / "T3"]
        argv += ["--T", "1", "3"]
    argv += ["--model-out", *(str(o / "model.pt") for o in outs)]
    argv += ["--metrics-out", *(str(o / "metrics.json") for o in outs)]
    subprocess.run([sys.executable, "-m", "lskd.cli.main", *argv], check=True)
    seconds = json.loads((outs[0] / "metrics.json").read_text())["train_seconds"]
    return max(10, math.ceil(TRAIN_S / (seconds / 3)))


def segment_profile(dest: Path, rule: str) -> Path:
    profile_dir = site_profile(dest)
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    profile["set-resources"][rule].update(runtime=1, slurm_extra="'--signal=URG@1'")
    (profile_dir / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return profile_dir


def allocations(job: str) -> list[tuple[str, str]]:
    """(state, elapsed) of every allocation of SLURM job `job`, requeues included."""
    out = subprocess.run(
        ["sacct", "-X", "-D", "-j", job, "--parsable2", "--noheader"]
        + ["--format", "State,Elapsed"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [tuple(line.split("|")) for line in out.split()]


def kill_strays(root: Path) -> int:
    """Kill the processes of this test's jobs that outlived their allocation; return how
    many. The local cluster tracks a job's processes by parent (proctrack/linuxproc,
    scripts/slurm/slurm.conf.in): a job-step snakemake whose batch shell died first on
    a requeue is handed to init and never killed (a site's cgroups would kill it)."""
    killed = 0
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == 1 and str(root) in cmd and "snakemake" in cmd:
            os.kill(int(proc.name), signal.SIGKILL)
            killed += 1
    return killed


def snakemake(work: Path, *args: str, nice: bool = False) -> subprocess.Popen:
    cmd = ["nice", "-n", "19"] if nice else []
    cmd += ["snakemake", "-s", str(REPO / "workflow/Snakefile"), "--directory"]
    return subprocess.Popen(
        [*cmd, str(work), *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_jobs_longer_than_their_time_limit_continue_in_segments(cluster, tmp_path):
    targets = {
        "train_teacher": [f"{TEACHER}/metrics.json"],
        "distill_students": [f"{run}/metrics.json" for run in SWEEP],
    }
    # Locally first: the data (and the sweep's teacher); each SLURM run's twin is a
    # copy that finishes locally, uninterrupted.
    runs, epochs = {}, {}
    for rule, before in (
        ("train_teacher", "resources/data/fmnist/dataset.npz"),
        ("distill_students", f"{TEACHER}/metrics.json"),
    ):
        work, cfg = tmp_path / rule, config(tmp_path / f"{rule}.yaml", rule)
        run_snakemake(work, before, "--cores", "1", "--configfile", str(cfg))
        epochs[rule] = epochs_for(work, rule, tmp_path / f"{rule}-speed")
        config(cfg, rule, epochs[rule])
        shutil.copytree(work, tmp_path / f"{rule}-local", symlinks=True)
        runs[rule] = (work, cfg, segment_profile(tmp_path / f"{rule}-profile", rule))

    start = time.perf_counter()
    procs = {
        rule: snakemake(
            work, *targets[rule], "--configfile", str(cfg), "--profile", str(p)
        )
        for rule, (work, cfg, p) in runs.items()
    }
    twins = {  # at the lowest priority: the SLURM runs are the ones measured
        rule: snakemake(
            tmp_path / f"{rule}-local",
            *(*targets[rule], "--configfile", str(cfg), "--cores", "1"),
            nice=True,
        )
        for rule, (_, cfg, _) in runs.items()
    }
    logs, walls = {}, {}
    try:
        for rule, proc in procs.items():
            _, logs[rule] = proc.communicate(timeout=600)
            walls[rule] = time.perf_counter() - start
            assert proc.returncode == 0, logs[rule][-4000:]
        for proc in twins.values():
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-4000:]
    finally:
        for proc in (*procs.values(), *twins.values()):
            if proc.poll() is None:
                proc.kill()
        strays = kill_strays(tmp_path)

    for rule, (work, _, _) in runs.items():
        # SLURM's records: one job id, requeued after every segment but the last.
        (job,) = {
            j["JobIDRaw"]
            for j in sacct_jobs("--name", run_id(logs[rule]))
            if rule_of(j["Comment"]) == rule
        }
        states, elapsed = zip(*allocations(job), strict=True)
        n = len(states)
        assert n >= 3 and states == ("REQUEUED",) * (n - 1) + ("COMPLETED",), states
        # The last segment's log tells the story of the run.
        text = (work / LOGS[rule]).read_text()
        pattern = (
            rf"\[segment {n}\] earlier: segment (\d+): "
            r"SLURM job (\d+) \(restart (\d+)\), .*, requeued\n"
        )
        earlier = re.findall(pattern, text)
        assert earlier == [(str(k), job, str(k - 1)) for k in range(1, n)], text[-3000:]
        assert f"[segment {n}] segment {n}: SLURM job {job} (restart {n - 1})" in text
        assert f"[segment {n}] finished: {n} segment(s), SLURM job(s) {job}\n" in text
        # The outputs of an uninterrupted run; nothing else left in the run folders.
        for run in [TEACHER] if rule == "train_teacher" else SWEEP:
            local = tmp_path / f"{rule}-local" / run
            assert differences(local, work / run) == [], run
            assert sorted(p.name for p in (work / run).iterdir()) == sorted(
                p.name for p in local.iterdir()
            )
        print(
            f"\n{rule} ({epochs[rule]} epochs): SLURM job {job}, {n} segments "
            f"({n - 1} REQUEUED + COMPLETED in sacct), elapsed {', '.join(elapsed)}; "
            f"identical to the local run; {walls[rule]:.0f} s"
        )
    print(f"{strays} stray job-step snakemake process(es) killed")
