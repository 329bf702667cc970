"""Training jobs longer than their SLURM time limit continue in segments
(lskd.train.segments) on the local cluster (scripts/slurm/up.sh): a teacher and a fused
T-sweep each run through exactly three allocations of one SLURM job id (`sacct` shows
the requeues) and end with the outputs of an uninterrupted local run, bit for bit.

The profile is tests/test_slurm.py's `site_profile` (profiles/slurm as a user edits it
for this node). SLURM's warning before the time limit (`--signal=URG@<s>`: SIGURG to
the job's step) is sent by the test itself, `scancel --signal=URG`, on events rather
than on the clock: once the job has finished an epoch in its first allocation, and
again in its second. So the number of segments is a count, whatever this machine's
speed or load (issue 27: sized from a speed measured at the start, the job needed
more one-minute allocations than the timeout allowed when the load rose); every wait
is on an event (a checkpoint written, a log line, the job's end) with generous limits.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
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
    "distill_students": "logs/fmnist/teacher_mlp128_a0_s0/students_mlp128_all_T_s0/"
    "distill_students.log",
}
# Epochs per job: the two warnings come after the first epoch end of each of the first
# two allocations, so the third one still has epochs left to train.
EPOCHS = 8
SEGMENTS = 3
CHECKPOINT = {"train_teacher": f"{TEACHER}/last.pt", "distill_students": ""}
CHECKPOINT["distill_students"] = f"{SWEEP[0]}/last_sweep.pt"
WAIT_S = 1800  # generous: every wait ends on an event long before on a busy machine


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


def segment_profile(dest: Path, rule: str) -> Path:
    profile_dir = site_profile(dest)
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    profile["set-resources"][rule].update(runtime=60)  # the test sends the warnings
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


def slurm_job(rule: str) -> str | None:
    """The SLURM job id of `rule`'s job in the queue (its comment `rule_<rule>...`)."""
    out = subprocess.run(
        ["squeue", "--noheader", "--format=%A|%k"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.split():
        job, comment = line.split("|", 1)
        if comment.startswith("rule_") and rule_of(comment) == rule:
            return job
    return None


class Warner:
    """Sends SLURM's time-limit warning (SIGURG to the job's step) to `rule`'s job once
    it has finished an epoch in each of its first SEGMENTS - 1 allocations: the log
    names the segment, then the rolling checkpoint is written after that."""

    def __init__(self, work: Path, rule: str) -> None:
        self.work, self.rule, self.sent, self.seen = work, rule, 0, None

    def poll(self) -> None:
        if self.sent == SEGMENTS - 1:
            return
        log, ckpt = self.work / LOGS[self.rule], self.work / CHECKPOINT[self.rule]
        segment = self.sent + 1
        if self.seen is None:
            line = f"[segment {segment}] segment {segment}: SLURM job"
            if log.is_file() and line in log.read_text(errors="replace"):
                self.seen = time.time_ns()  # this segment has started
            return
        if ckpt.is_file() and ckpt.stat().st_mtime_ns > self.seen:
            job = slurm_job(self.rule)  # an epoch ended in this segment
            assert job is not None, f"{self.rule}: no SLURM job in the queue"
            subprocess.run(["scancel", "--signal=URG", job], check=True)
            self.sent, self.seen = segment, None


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


def snakemake(work: Path, *args: str) -> subprocess.Popen:
    cmd = ["snakemake", "-s", str(REPO / "workflow/Snakefile"), "--directory"]
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
        epochs[rule] = EPOCHS
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
    twins = {  # at normal priority: nothing here is timed, a starved twin would hang
        rule: snakemake(
            tmp_path / f"{rule}-local",
            *(*targets[rule], "--configfile", str(cfg), "--cores", "1"),
        )
        for rule, (_, cfg, _) in runs.items()
    }
    logs, walls = {}, {}
    warners = [Warner(work, rule) for rule, (work, _, _) in runs.items()]
    try:
        deadline = time.monotonic() + WAIT_S
        while any(proc.poll() is None for proc in procs.values()):
            assert time.monotonic() < deadline, "SLURM jobs still running"
            for warner in warners:
                warner.poll()
            time.sleep(0.2)
        for rule, proc in procs.items():
            _, logs[rule] = proc.communicate()
            walls[rule] = time.perf_counter() - start
            assert proc.returncode == 0, logs[rule][-4000:]
        assert [w.sent for w in warners] == [SEGMENTS - 1] * len(warners)
        for proc in twins.values():
            _, err = proc.communicate(timeout=WAIT_S)
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
        assert n == SEGMENTS and states == ("REQUEUED",) * (n - 1) + ("COMPLETED",)
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
