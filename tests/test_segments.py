"""Segments of a SLURM job (lskd.train.segments) without SLURM: positions of real
stops, the progress rule, `scontrol` output, the ledger and the requeue decision, and
`lskd train` itself with a stand-in `scontrol` on PATH."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lskd.train.job
from conftest import make_toy_npz, train_argv
from lskd.cli.main import main
from lskd.models import checkpoint
from lskd.train import preempt, segments
from lskd.train.preempt import Position, Preempted, Update
from lskd.train.segments import Mark, SlurmJob, mark_of, progressed
from lskd.train.steps import teacher_step
from test_preempt import LS, STEPS, _ddp_train, _signalling_step, _spec, _strip

# `scontrol show job -o 3` on the local cluster (scripts/slurm/up.sh) for a job that
# Snakemake's SLURM executor submitted (its --comment names the rule), requeued twice.
SHOW_JOB = (
    "JobId=3 JobName=2b0d2f4c-8d7b UserId=root(0) GroupId=root(0) MCS_label=N/A "
    "Priority=4294901755 Nice=0 Account=root QOS=normal JobState=RUNNING Reason=None "
    "Dependency=(null) Requeue=1 Restarts=2 BatchFlag=1 Reboot=0 ExitCode=0:0 "
    "RunTime=00:00:01 TimeLimit=00:01:00 TimeMin=N/A SubmitTime=2026-12-02T18:00:35 "
    "EligibleTime=2026-12-02T18:00:35 StartTime=2026-12-02T18:00:36 "
    "EndTime=2026-12-02T18:01:36 Deadline=N/A Partition=debug NodeList=localhost "
    "Command=(null) WorkDir=/tmp "
    "Comment=rule_train_teacher_wildcards_fmnist_mlp128_0_0 StdErr=/tmp/3.log "
    "StdIn=/dev/null StdOut=/tmp/3.log Power="
)


@pytest.fixture(autouse=True)
def _plain_log_lines():
    yield
    segments.tag_log_lines(None)  # begin() tags this process's records


def test_scontrol_fields():
    job = SlurmJob.parse("3", SHOW_JOB)
    assert (job.state, job.restarts, job.requeue) == ("RUNNING", 2, True)
    assert (job.time_limit, job.end_time) == ("00:01:00", "2026-12-02T18:01:36")
    assert job.by_snakemake
    assert not SlurmJob.parse(
        "3", SHOW_JOB.replace("Comment=rule_", "Comment=")
    ).by_snakemake


# --- positions of real stops and the progress rule ---------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_toy_npz(tmp_path_factory.mktemp("toy") / "toy.npz", 400, 50)


@pytest.mark.parametrize(
    ("at", "expected"),
    [(STEPS + 3, Mark(2, 3)), (STEPS, Mark(1, STEPS)), (1, Mark(1, 1))],
)
def test_positions_of_real_stops(data, tmp_path, monkeypatch, at, expected):
    step = _signalling_step(teacher_step, at, signal.SIGURG, [])
    monkeypatch.setattr(lskd.train.job, "teacher_step", step)
    with pytest.raises(Preempted) as stop:
        lskd.train.job.train_teacher(_spec(data, tmp_path), LS)
    assert stop.value.signum == signal.SIGURG  # the profile's warning is watched
    assert mark_of(stop.value) == expected
    assert stop.value.where == str(expected)  # the ledger's text is the log's
    partial = checkpoint.load(tmp_path / "last.pt")["partial"]
    assert partial["step"] == expected.minor  # where the checkpoint resumes


def test_positions_of_the_other_stops():
    end = Preempted(signal.SIGURG, Position.end_of(4))
    assert mark_of(end) == Mark(5, 0) and end.where == "the end of epoch 4"
    assert str(Mark(5, 0)) == end.where and str(Mark(1, 0)) == "the start of epoch 1"
    # lskd.nmt.fairseq_run: a student's checkpoint_last.pt at update U
    students = [Path(f"r/T{t}/fairseq/checkpoint_last.pt") for t in (1, 2)]
    nmt = Preempted(signal.SIGURG, Update(Path("r/T2/fairseq/checkpoint_last.pt"), 7))
    assert nmt.where == "r/T2/fairseq/checkpoint_last.pt (update 7)"
    assert mark_of(nmt, students) == Mark(1, 7, nmt=True)
    assert str(Mark(1, 7, nmt=True)) == "student 2 update 7"
    elsewhere = Update(Path("elsewhere/checkpoint_last.pt"), 7)
    assert mark_of(Preempted(signal.SIGURG, elsewhere), students) is None
    agreed = Preempted(signal.SIGURG, None)  # a --gpus N launcher: rank 0 knows
    assert mark_of(agreed) is None and agreed.where == "the step the workers agreed on"


def test_progress_needs_two_steps_or_a_boundary():
    start = Mark(1, 0)
    assert not progressed(start, Mark(1, 1))  # warned before its first step ended
    assert progressed(start, Mark(1, 2))
    assert progressed(Mark(3, 399), Mark(4, 0))  # an epoch boundary
    assert not progressed(Mark(3, 5), Mark(2, 9))  # backwards: refuse
    assert progressed(None, Mark(1, 1)) and progressed(start, None)  # unknown


# --- the ledger and the decision, with a stand-in scontrol ---------------------------


class FakeSlurm:
    """`scontrol` as the runner of lskd.train.segments: `show job` prints SHOW_JOB with
    this state, restart count and comment; every call is kept."""

    def __init__(self, state="RUNNING", restarts=0, comment="rule_train_teacher"):
        self.state, self.restarts, self.comment, self.calls = (
            state,
            restarts,
            comment,
            [],
        )

    def __call__(self, cmd):
        self.calls.append(cmd[1:])
        text = SHOW_JOB.replace("JobState=RUNNING", f"JobState={self.state}")
        text = text.replace("Restarts=2", f"Restarts={self.restarts}")
        text = text.replace(
            "rule_train_teacher_wildcards_fmnist_mlp128_0_0", self.comment
        )
        return subprocess.CompletedProcess(cmd, 0, text if cmd[1] == "show" else "", "")

    @property
    def requeues(self):
        return [c for c in self.calls if c[0] == "requeue"]


def _begin(out, slurm, gpus=1, env=None):
    env = {"SLURM_JOB_ID": "3"} if env is None else env
    return segments.begin("train", out / "model.pt", gpus, env, slurm)


def test_only_snakemake_slurm_jobs_continue_in_segments(tmp_path, caplog):
    assert _begin(tmp_path, FakeSlurm(), env={}) is None  # no SLURM
    assert _begin(tmp_path, FakeSlurm(comment="ci-tests")) is None  # someone's job

    def broken(cmd):
        return subprocess.CompletedProcess(cmd, 1, "", "slurm_load_jobs error")

    assert _begin(tmp_path, broken) is None
    assert "slurm_load_jobs error: this job will not continue" in caplog.text
    assert not (tmp_path / "segments.json").exists()


def test_segments_requeue_until_one_makes_no_progress(tmp_path, caplog):
    caplog.set_level("INFO", logger="lskd")
    slurm = FakeSlurm()
    first = _begin(tmp_path, slurm)
    (tmp_path / "last.pt").write_bytes(b"")  # the checkpoint it saved
    stop = Preempted(signal.SIGURG, Position(3, 5))
    assert segments.after_stop(first, stop) == preempt.REQUEUE_EXIT
    assert slurm.requeues == [["requeue", "3"]]

    slurm.restarts = 1
    second = _begin(tmp_path, slurm)  # the requeued job: resumes where 1 stopped
    assert second.number == 2
    earlier = "earlier: segment 1: SLURM job 3 (restart 0), the start of epoch 1 to "
    assert f"[segment 2] {earlier}" in caplog.text
    assert "[segment 2] segment 2: SLURM job 3 (restart 1)" in caplog.text
    stop = Preempted(signal.SIGURG, Position(3, 6))  # one step: warned too early
    assert segments.after_stop(second, stop) == segments.NO_PROGRESS_EXIT == 2
    assert len(slurm.requeues) == 1
    error = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert error == [
        "[segment 2] lskd train: error: segment 2 made no progress (resumed at epoch "
        "3 step 5, stopped at epoch 3 step 6): SLURM's warning came before its first "
        "step ended; time limit 00:01:00: raise the rule's runtime (profiles/slurm "
        "set-resources) or send the warning later (--signal=URG@<seconds> in "
        "slurm_extra)"
    ]
    ledger = json.loads((tmp_path / "segments.json").read_text())["segments"]
    assert [(e["resumed_at"], e["stopped_at"], e["outcome"]) for e in ledger] == [
        ([1, 0], [3, 5], "requeued"),
        ([3, 5], [3, 6], "refused: no progress"),
    ]
    second.finished()
    assert not (tmp_path / "segments.json").exists()


def test_an_unreadable_ledger_starts_afresh(tmp_path, caplog):
    (tmp_path / "last.pt").write_bytes(b"")  # a checkpoint to resume
    (tmp_path / "segments.json").write_text('{"segments": [')  # cut short
    segment = _begin(tmp_path, FakeSlurm())
    assert segment.number == 1 and "segments.json: unreadable" in caplog.text
    (entry,) = json.loads((tmp_path / "segments.json").read_text())["segments"]
    assert entry["resumed_at"] is None  # where the checkpoint is: unknown here


@pytest.mark.parametrize(
    ("signum", "state", "outcome"),
    [
        (signal.SIGURG, "CANCELLED", "not requeued: CANCELLED, Requeue=1"),
        (signal.SIGURG, "TIMEOUT", "not requeued: TIMEOUT, Requeue=1"),
        (signal.SIGTERM, "RUNNING", "SIGTERM: not requeued by lskd"),  # preemption
    ],
)
def test_no_requeue_unless_warned_while_running(tmp_path, signum, state, outcome):
    slurm = FakeSlurm()
    segment = _begin(tmp_path, slurm)
    slurm.state = state
    code = segments.after_stop(segment, Preempted(signum, Position(2, 9)))
    assert code == preempt.REQUEUE_EXIT and slurm.requeues == []
    (entry,) = json.loads((tmp_path / "segments.json").read_text())["segments"]
    assert entry["outcome"] == outcome


def test_data_parallel_workers_follow_their_launcher(tmp_path):
    slurm, env = FakeSlurm(), {"SLURM_JOB_ID": "3"}
    launcher = _begin(tmp_path, slurm, gpus=2, env=env)
    assert env[segments.SEGMENT_ENV] == "1"  # inherited by torchrun's workers
    worker = {**env, "RANK": "1"}
    assert _begin(tmp_path, slurm, 2, worker).trainer is False
    rank0 = _begin(tmp_path, slurm, 2, {**env, "RANK": "0"})
    assert len(slurm.calls) == 1  # workers never ask SLURM
    segments.after_stop(rank0, Preempted(signal.SIGURG, Position(2, 4)))
    assert slurm.requeues == []  # rank 0 only records where the workers stopped
    stop = Preempted(signal.SIGURG, None)
    assert segments.after_stop(launcher, stop) == preempt.REQUEUE_EXIT
    assert slurm.requeues == [["requeue", "3"]]
    (entry,) = json.loads((tmp_path / "segments.json").read_text())["segments"]
    assert entry["stopped_at"] == [2, 4]


# --- `lskd train` under a stand-in scontrol: requeue, resume, refuse ----------------

FAKE_SCONTROL = """#!{python}
import os, sys
with open(os.environ["FAKE_SCONTROL_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "show":
    print(open(os.environ["FAKE_SCONTROL_JOB"]).read())
"""


@pytest.fixture
def scontrol(tmp_path, monkeypatch):
    """A `scontrol` on PATH that answers `show job` with the text of the file it
    returns and logs every call to `calls.log` beside it; SLURM_JOB_ID=3."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "scontrol"
    exe.write_text(FAKE_SCONTROL.format(python=sys.executable))
    exe.chmod(0o755)
    job = tmp_path / "show_job.txt"
    job.write_text(SHOW_JOB.replace("Restarts=2", "Restarts=0"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SCONTROL_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_SCONTROL_JOB", str(job))
    monkeypatch.setenv("SLURM_JOB_ID", "3")
    return job


def test_lskd_train_requeues_resumes_and_finishes(
    data, tmp_path, monkeypatch, scontrol
):
    hp = {"epochs": 2, "batch_size": 50, "lr": 0.05}
    straight = tmp_path / "straight"
    monkeypatch.delenv("SLURM_JOB_ID")
    assert main(train_argv(data, straight, hp, "--device", "cpu")) == 0
    monkeypatch.setenv("SLURM_JOB_ID", "3")

    out, calls = tmp_path / "run", tmp_path / "calls.log"
    argv = train_argv(data, out, hp, "--device", "cpu")
    step = _signalling_step(teacher_step, STEPS + 2, signal.SIGURG, [])
    with monkeypatch.context() as m:
        m.setattr(lskd.train.job, "teacher_step", step)
        assert main(argv) == 75
    assert calls.read_text().splitlines()[-1] == "requeue 3"
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "segments.json"]

    scontrol.write_text(SHOW_JOB.replace("Restarts=2", "Restarts=1"))
    assert main(argv) == 0  # the next allocation: resumes, finishes
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model.pt"]
    got, expected = (
        json.loads((d / "metrics.json").read_text()) for d in (out, straight)
    )
    assert _strip(got) == _strip(expected)
    assert calls.read_text().count("requeue") == 1


def test_lskd_train_refuses_a_segment_without_progress(
    data, tmp_path, monkeypatch, scontrol, caplog
):
    real = lskd.train.job.open_source

    def open_source(*args, **kw):  # the warning arrives while the job starts up
        os.kill(os.getpid(), signal.SIGURG)
        return real(*args, **kw)

    monkeypatch.setattr(lskd.train.job, "open_source", open_source)
    out = tmp_path / "run"
    hp = {"epochs": 2, "batch_size": 50, "lr": 0.05}
    assert main(train_argv(data, out, hp, "--device", "cpu")) == 2
    assert "requeue" not in (tmp_path / "calls.log").read_text()
    assert "[segment 1] lskd train: error: segment 1 made no progress (resumed at " in (
        caplog.text
    )
    (entry,) = json.loads((out / "segments.json").read_text())["segments"]
    assert (entry["resumed_at"], entry["stopped_at"]) == ([1, 0], [1, 1])


@pytest.mark.slow
def test_data_parallel_job_requeues_once(data, tmp_path, scontrol):
    """SIGURG to `lskd train --gpus 2` (CPU, Gloo): the workers stop at one step, rank
    0 records it, the relaunching process requeues the job once."""
    out, log_path = tmp_path / "run", tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = _ddp_train(data, out, log)
        deadline = time.monotonic() + 240
        while b"epoch 1/3" not in log_path.read_bytes() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGURG)
        assert proc.wait() == 75, log_path.read_text()[-3000:]
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls == ["show job -o 3", "show job -o 3", "requeue 3"]
    (entry,) = json.loads((out / "segments.json").read_text())["segments"]
    stopped = Mark(*entry["stopped_at"])
    assert entry["outcome"] == "requeued" and stopped.major >= 2
    assert checkpoint.load(out / "last.pt")["epoch"] == stopped.major - 1
    text = log_path.read_text()
    assert "[segment 1] segment 1: SLURM job 3 (restart 0)" in text
    assert "[segment 1] epoch 1/3" in text  # rank 0's lines carry the segment too
