"""Kill at any moment -> the same command again -> the same metrics.json and model.pt.

Each job is started, killed (SIGKILL, sometimes SIGTERM) at seeded random moments and
restarted with the same arguments until it finishes; the result is compared with an
uninterrupted run, bit for bit (CPU, deterministic algorithms), ignoring only the
wall-time fields listed in `lskd.progress.WALL_KEYS`. The fused temperature
sweep (K students in one job, `last_sweep.pt`) is one of the jobs; `nmt-train` and
`nmt-distill` (fairseq, a tiny corpus, dropout on) are the NMT ones.
The Snakemake path (kill the job, rerun the same `snakemake` command) is tested last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import make_toy_npz
from killharness import ForkLauncher, Job, differences, kill_chain, run_baseline
from test_nmt_pipeline import KD, RECIPE, write_corpus

KILLS = {"teacher": 7, "student": 7, "fused": 8}  # 22 kill points in all
SEEDS = {"student": 0, "teacher": 1, "fused": 2}  # of each job's kill moments
FUSED_T = ("1", "4", "64")
HP = {"epochs": 6, "batch_size": 50, "lr": 0.05, "eval_batch_size": 200}
REPO = Path(__file__).resolve().parents[1]


def _common_args(data: Path) -> list[str]:
    return [
        *("--task", "toy", "--data", str(data), "--arch", "mlp128", "--seed", "0"),
        *("--hp", json.dumps(HP), "--augment", '{"pad": 2, "hflip": true}'),
        *("--device", "cpu"),
    ]


def _run_args(data: Path, out: Path) -> list[str]:
    return [
        *_common_args(data),
        *("--model-out", str(out / "model.pt")),
        *("--metrics-out", str(out / "metrics.json")),
    ]


def _sweep_args(data: Path, out: Path, teacher: Path) -> list[str]:
    runs = [out / f"T{T}" for T in FUSED_T]
    return [
        "distill",
        *_common_args(data),
        *("--teacher", str(teacher), "--T", *FUSED_T),
        *("--model-out", *(str(r / "model.pt") for r in runs)),
        *("--metrics-out", *(str(r / "metrics.json") for r in runs)),
    ]


def image_jobs(data: Path, teacher: Path) -> dict[str, Job]:
    """`lskd train`, `lskd distill` and the fused sweep `lskd distill --T 1 4 64` on
    the toy data (the students learn from `teacher`, a finished teacher's model.pt)."""
    return {
        "teacher": Job(
            "teacher", lambda out: ["train", *_run_args(data, out), "--alpha", "0.1"]
        ),
        "student": Job(
            "student",
            lambda out: [
                "distill",
                *_run_args(data, out),
                "--teacher",
                str(teacher),
                "--T",
                "4",
            ],
        ),
        "fused": Job(
            "fused",
            lambda out: _sweep_args(data, out, teacher),
            checkpoint=f"T{FUSED_T[0]}/last_sweep.pt",
            runs=tuple(f"T{T}" for T in FUSED_T),
        ),
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("kills")
    data = make_toy_npz(work / "toy.npz", 2000, 200)
    launcher = ForkLauncher()
    launcher.warm(work / "warm.log")
    teacher = image_jobs(data, Path("unused"))["teacher"]
    teacher_out, teacher_wall = run_baseline(teacher, launcher, work)
    return work, image_jobs(data, teacher_out / "model.pt"), launcher, teacher_wall


# --- NMT: fairseq in-process, resuming from fairseq/checkpoint_last.pt ---------------

NMT_KILLS = {"nmt_teacher": 4, "nmt_student": 4}
NMT_SEEDS = {"nmt_teacher": 3, "nmt_student": 4}
# dropout on, so that a resumed run must also restore the dropout RNG
NMT_HP = {
    **RECIPE,
    "model": {**RECIPE["model"], "dropout": 0.1},
    "max_update": 150,
    "kd": KD,
}


def prepare_nmt(work: Path) -> Path:
    """The test pipeline's toy EN-DE corpus, prepared (BPE, fairseq binaries)."""
    from lskd.nmt import pipeline as runs

    raw = work / "nmt_raw"
    raw.mkdir()
    write_corpus(raw, 300, 0, "train")
    write_corpus(raw, 40, 1, "test")
    files = {"train": str(raw / "train.{lang}"), "valid": None}
    spec = {
        "kind": "files",
        "files": {"en_de": {**files, "test": [str(raw / "test.{lang}")]}},
        "valid_every": 10,
        "min_words": 1,
        "lowercase": False,
        "max_train": None,
        "split_seed": 0,
    }
    runs.prepare("en_de", spec, 80, work / "nmt", work / "nmt_splits.json", 1)
    return work / "nmt"


def nmt_jobs(data: Path, teacher: Path) -> dict[str, Job]:
    """`lskd nmt-train` (alpha 0.1) and `lskd nmt-distill` (T = 2) of `teacher`."""

    def args(out: Path, *extra: str) -> list[str]:
        return [
            *("--task", "demo", "--pair", "en_de", "--data", str(data)),
            *("--alpha", "0.1", "--seed", "0"),
            *("--hp", json.dumps(NMT_HP), *extra),
            *("--model-out", str(out / "model.pt")),
        ]

    last = "fairseq/checkpoint_last.pt"
    return {
        "nmt_teacher": Job(
            "nmt_teacher", lambda out: ["nmt-train", *args(out)], last, kind="fairseq"
        ),
        "nmt_student": Job(
            "nmt_student",
            lambda out: [
                "nmt-distill",
                *args(out, "--teacher", str(teacher), "--T", "2"),
            ],
            last,
            kind="fairseq",
        ),
    }


@pytest.fixture(scope="module")
def nmt_setup(tmp_path_factory):
    pytest.importorskip("fairseq")
    work = tmp_path_factory.mktemp("nmt_kills")
    data = prepare_nmt(work)
    launcher = ForkLauncher(nmt=True)
    launcher.warm(work / "warm.log")
    teacher = nmt_jobs(data, Path("unused"))["nmt_teacher"]
    teacher_out, teacher_wall = run_baseline(teacher, launcher, work)
    return work, nmt_jobs(data, teacher_out / "model.pt"), launcher, teacher_wall


def check_kill_chain(setup, name: str, first: str, kills: int, seed: int) -> None:
    """Kill job `name` `kills` times at seeded moments, rerunning it after each; its
    outputs must equal the uninterrupted baseline's (`first` reuses the setup's)."""
    work, jobs, launcher, teacher_wall = setup
    job = jobs[name]
    if name == first:
        baseline, wall = work / f"{first}-baseline", teacher_wall
    else:
        baseline, wall = run_baseline(job, launcher, work)
    report = kill_chain(job, launcher, work, baseline, wall, kills, seed)
    summary = [(a.signal, a.exit_code, a.resumed_from) for a in report.attempts]
    print(f"{name}: {report.kill_points} kills {summary}; {report.identical}")
    assert report.kill_points == kills
    assert report.different == [] and report.identical
    resumed = [a for a in report.attempts if a.resumed_from]
    assert resumed, "no attempt resumed from a checkpoint: kill times too early"


@pytest.mark.slow  # about 40 s for the two jobs
@pytest.mark.parametrize("name", list(NMT_KILLS))
def test_nmt_killed_anywhere_resumes_to_identical_outputs(nmt_setup, name):
    check_kill_chain(nmt_setup, name, "nmt_teacher", NMT_KILLS[name], NMT_SEEDS[name])


@pytest.mark.slow  # about 65 s for the three jobs
@pytest.mark.parametrize("name", list(KILLS))
def test_killed_anywhere_resumes_to_identical_outputs(setup, name):
    check_kill_chain(setup, name, "teacher", KILLS[name], SEEDS[name])


# --- through Snakemake: kill the running job, rerun the same command ----------------


def _snakemake(work: Path, config: Path, *extra: str) -> subprocess.Popen:
    cmd = ["snakemake", "-s", str(REPO / "workflow" / "Snakefile")]
    cmd += ["--directory", str(work), "--configfile", str(config), "--cores", "1"]
    cmd += ["results/fmnist/teacher_mlp128_a0.1_s0/metrics.json", *extra]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: we may signal all of it
    )


def _lskd_child(parent: int) -> int | None:
    """The pid of a running `lskd train` below `parent` (our snakemake), if any."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"train" in cmd and any(c.endswith(b"lskd") for c in cmd[:2]):
            pid, ppid = int(entry.name), int(stat[1])
            while ppid > 1:  # is it a descendant of `parent`?
                if ppid == parent:
                    return pid
                try:
                    stat_p = (Path("/proc") / str(ppid) / "stat").read_text()
                except OSError:
                    break
                ppid = int(stat_p.rsplit(")", 1)[1].split()[1])
    return None


def _text(path: Path) -> str:
    """The file's text, or "" while it does not exist yet (Snakemake removes a
    rerun job's old log before the job writes its first line)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 240
    while not condition() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert condition(), f"{what} never happened: {proc.communicate()[0][-3000:]}"


@pytest.mark.slow
def test_snakemake_rerun_after_kill_and_sigterm_gives_identical_metrics(
    tmp_path, fmnist_root, snakemake_bin
):
    """SIGKILL the job mid-training; rerun the same command; SIGTERM the whole
    snakemake process group (what SLURM does to a job step) once the job has resumed;
    rerun again: metrics.json and model.pt equal an uninterrupted run's."""
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    config["run"]["alphas"] = [0.1]
    config["tasks"]["fmnist"]["teacher"]["epochs"] = 6
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run = "results/fmnist/teacher_mlp128_a0.1_s0"
    last_pt = killed / run / "last.pt"
    train_log = killed / "logs/fmnist/teacher_mlp128_a0.1_s0/train_teacher.log"

    first = _snakemake(killed, path)
    _wait_for(last_pt.exists, first, "a first epoch")
    pid = _lskd_child(first.pid)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the job, mid-training, after its first epoch
    assert first.wait() != 0, first.communicate()[0][-3000:]

    second = _snakemake(killed, path)  # the same command
    _wait_for(lambda: "resumed from" in _text(train_log), second, "a resume")
    pid = _lskd_child(second.pid)
    os.killpg(second.pid, signal.SIGTERM)  # our own process group (new session)
    out = second.communicate()[0]
    assert second.returncode != 0, out[-3000:]
    while pid is not None and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)  # its shell may die first; the job itself saves, then exits
    assert "exit 75 to be requeued" in train_log.read_text(), train_log.read_text()

    third = _snakemake(killed, path)
    out = third.communicate()[0]
    assert third.returncode == 0, out[-3000:]
    assert "resumed from" in train_log.read_text()

    clean = _snakemake(straight, path)
    assert clean.wait() == 0, clean.communicate()[0][-3000:]
    assert differences(straight / run, killed / run) == []
    assert not last_pt.exists()
