"""Training jobs longer than one SLURM allocation: a chain of segments of one job.

A training job submitted by Snakemake's SLURM executor (profiles/slurm) that does not
fit in its time limit runs as a chain of allocations of the same SLURM job id:

1. SLURM warns the job before its limit: `--signal=URG@<seconds>` (the profile's
   `slurm_extra`) sends SIGURG to every process of the job's step. All but `lskd`
   ignore it, SIGURG's default action: the job-step `snakemake` and the rule's shell
   (SIGUSR1 would kill that `snakemake`, SIGTERM the shell).
2. `lskd.train.preempt` turns it into a checkpoint at the next step and `Preempted`;
   the CLI passes that to `after_stop`.
3. If the segment made progress and SLURM still reports the job RUNNING, `lskd`
   requeues it (`scontrol requeue $SLURM_JOB_ID`) and exits 75: the same job id waits
   for its next allocation (Snakemake keeps following it) and resumes there from the
   rolling checkpoint. SIGTERM and SIGUSR1 (preemption, a cancelled job) save and
   exit 75 as before, without requeueing; crashes fail, and Snakemake's `retries:`
   decides.

A ledger (`segments.json` beside the first `--model-out`, removed once the outputs are
written) records every segment: SLURM job id, restart count, where it resumed and
where it stopped. A segment that stops one step after it resumed was warned before
its first step ended (the loop checks after every step): its allocation, less the
warning, does not cover start-up plus one step, and every later segment would do the
same. It is not requeued; the job fails with one line naming the time limit (exit 2).
Crossing an epoch (or NMT student) counts as progress.

Only a job's own payload continues in segments: a job whose `--comment` is Snakemake's
`rule_<name>...`. `lskd` inside any other allocation (a test suite, an interactive
`srun`) behaves as before. With `--gpus N` the relaunching process owns the ledger and
the decision; rank 0 of the workers records where they stopped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lskd.atomic import write_json
from lskd.identity import ROLLING, ROLLING_SWEEP, SEGMENTS
from lskd.train.preempt import REQUEUE_EXIT, Position, Preempted, Update

log = logging.getLogger("lskd")
LEDGER = SEGMENTS
NO_PROGRESS_EXIT = 2  # like a config error: the time limit must change, not the job
WARNING = signal.SIGURG  # profiles/slurm: --signal=URG@<seconds> before the time limit
SEGMENT_ENV = "LSKD_SEGMENT"  # set by the relaunching process for its workers
Runner = Callable[[list[str]], subprocess.CompletedProcess]


def run_command(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@dataclass(frozen=True)
class Mark:
    """Where a job stands, as the ledger records it ([major, minor] and `nmt`):
    (epoch, finished steps of it) for image jobs, as `preempt.Position`; (student
    index, fairseq update) for NMT jobs."""

    major: int
    minor: int
    nmt: bool = False

    def __str__(self) -> str:
        if self.nmt:
            return f"student {self.major + 1} update {self.minor}"
        return Position(self.major, self.minor).text


def mark_of(stop: Preempted, checkpoints: Sequence[Path] = ()) -> Mark | None:
    """The ledger's mark of where `stop` saved: its `Position`, or its fairseq
    `Update` of one of `checkpoints` (the students' `checkpoint_last.pt`, in student
    order). None where the stopping process does not know (a `--gpus N` launcher;
    rank 0 records it) or for a checkpoint not among `checkpoints`."""
    at = stop.at
    if isinstance(at, Position):
        return Mark(at.epoch, at.step)
    if isinstance(at, Update):
        paths = [Path(c) for c in checkpoints]
        if Path(at.checkpoint) in paths:
            return Mark(paths.index(Path(at.checkpoint)), at.update, nmt=True)
    return None


def progressed(resumed: Mark | None, stopped: Mark | None) -> bool:
    """Whether a segment that resumed at `resumed` and stopped at `stopped` did work of
    its own: at least two steps, or an epoch (student) boundary. Unknown positions
    count as progress (nothing to judge by)."""
    if resumed is None or stopped is None:
        return True
    if stopped.major != resumed.major:
        return stopped.major > resumed.major
    return stopped.minor - resumed.minor >= 2


@dataclass(frozen=True)
class SlurmJob:
    """The fields of `scontrol show job -o <id>` that segments need."""

    job_id: str
    state: str
    restarts: int
    requeue: bool
    comment: str
    time_limit: str
    end_time: str

    @classmethod
    def parse(cls, job_id: str, text: str) -> SlurmJob:
        def field(key: str, default: str = "?") -> str:
            m = re.search(rf"(?:^|\s){key}=(\S*)", text)
            return m[1] if m else default

        restarts = field("Restarts", "0")
        return cls(
            job_id,
            field("JobState"),
            int(restarts) if restarts.isdigit() else 0,
            field("Requeue") == "1",
            field("Comment", ""),
            field("TimeLimit"),
            field("EndTime"),
        )

    @property
    def by_snakemake(self) -> bool:
        """Submitted by Snakemake's SLURM executor, which comments every job with the
        rule it runs: `rule_<name>[_wildcards_<values>]`."""
        return self.comment.startswith("rule_")


def query_job(job_id: str, run: Runner = run_command) -> SlurmJob | str:
    """This SLURM job as `scontrol` reports it, or why it could not be asked."""
    try:
        out = run(["scontrol", "show", "job", "-o", job_id])
    except (OSError, subprocess.SubprocessError) as err:
        return f"scontrol show job {job_id}: {err}"
    if out.returncode != 0:
        return f"scontrol show job {job_id}: {(out.stderr or out.stdout).strip()}"
    return SlurmJob.parse(job_id, out.stdout)


def job_files(command: str, model_outs: Sequence[Path]) -> tuple[list[Path], Mark]:
    """The resume files of a training command (any of them existing means the job
    resumes; lskd.train.job, lskd.nmt.pipeline) and where a fresh job starts."""
    if command.startswith("nmt-"):
        return [Path(o).parent / "fairseq" for o in model_outs], Mark(0, 0, True)
    name = ROLLING if len(model_outs) == 1 else ROLLING_SWEEP
    return [Path(model_outs[0]).parent / name], Mark(1, 0)


def _mark(entry: dict[str, Any], key: str) -> Mark | None:
    """A mark stored in a ledger entry as [major, minor]."""
    value = entry.get(key)
    return None if value is None else Mark(*value, nmt=entry.get("nmt", False))


def _stored(mark: Mark | None) -> list[int] | None:
    return None if mark is None else [mark.major, mark.minor]


def _describe(entry: dict[str, Any]) -> str:
    resumed, stopped = _mark(entry, "resumed_at"), _mark(entry, "stopped_at")
    end = stopped or entry.get("where") or "no stop of its own (crashed or killed)"
    outcome = f", {entry['outcome']}" if "outcome" in entry else ""
    return (
        f"segment {entry['segment']}: SLURM job {entry['job']} (restart "
        f"{entry['restarts']}), {resumed or 'its checkpoint'} to {end}{outcome}"
    )


_PLAIN_RECORDS = logging.getLogRecordFactory()


def tag_log_lines(number: int | None) -> None:
    """Prefix every log line of this process (fairseq's too) with the segment number;
    None: no prefix."""
    if number is None:
        logging.setLogRecordFactory(_PLAIN_RECORDS)
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = _PLAIN_RECORDS(*args, **kwargs)
        record.msg = f"[segment {number}] {record.msg}"
        return record

    logging.setLogRecordFactory(factory)


class Segment:
    """This process's part of a segmented job: `owner` (the job's top process) keeps
    the ledger and decides; `trainer` (the process that trains, rank 0) records where
    training stopped."""

    def __init__(
        self,
        command: str,
        model_outs: Sequence[Path],
        number: int,
        owner: bool,
        trainer: bool,
        job: SlurmJob | None = None,
        run: Runner = run_command,
    ):
        self.command, self.number, self.job, self.run = command, number, job, run
        self.owner, self.trainer = owner, trainer
        self.ledger = Path(model_outs[0]).parent / LEDGER
        self.resume_files, self.start = job_files(command, model_outs)
        self.checkpoints = [p / "checkpoint_last.pt" for p in self.resume_files]

    def entries(self) -> list[dict[str, Any]]:
        """The ledger's segments; none if it is missing or unreadable (it only ever
        informs the decision, it never stops training)."""
        try:
            return json.loads(self.ledger.read_text())["segments"]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s: unreadable (%s): a new ledger starts", self.ledger, err)
            return []

    def _update(self, entries: list[dict[str, Any]], **fields: Any) -> None:
        """Add `fields` to this segment's entry (the last) and write the ledger."""
        if entries and entries[-1]["segment"] == self.number:
            entries[-1].update(fields)
            write_json(self.ledger, {"segments": entries})

    def open(self, job: SlurmJob) -> None:
        """Append this segment to the ledger (a new ledger when nothing resumes) and
        log the earlier segments: the job's log only holds the current one."""
        fresh = not any(p.exists() for p in self.resume_files)
        entries = [] if fresh else self.entries()
        resumed = self.start if fresh else None
        if entries:
            resumed = _mark(entries[-1], "stopped_at")
        self.job, self.number = job, len(entries) + 1
        tag_log_lines(self.number)
        for entry in entries:
            log.info("earlier: %s", _describe(entry))
        entries.append({"segment": self.number, "job": job.job_id})
        self._update(
            entries,
            restarts=job.restarts,
            time_limit=job.time_limit,
            started=time.strftime("%Y-%m-%dT%H:%M:%S"),
            resumed_at=_stored(resumed),
            nmt=self.start.nmt,
        )
        log.info(
            "segment %d: SLURM job %s (restart %d), time limit %s, until %s; %s",
            self.number,
            job.job_id,
            job.restarts,
            job.time_limit,
            job.end_time,
            f"resumes at {resumed or 'its checkpoint'}" if not fresh else "starts",
        )

    def stopped(self, stop: Preempted) -> None:
        """Record where training stopped (the process that trained)."""
        if self.trainer:
            self._update(
                self.entries(),
                stopped=time.strftime("%Y-%m-%dT%H:%M:%S"),
                signal=signal.Signals(stop.signum).name,
                where=stop.where,
                stopped_at=_stored(mark_of(stop, self.checkpoints)),
            )

    def note(self, outcome: str) -> None:
        """Record how this segment ended."""
        self._update(self.entries(), outcome=outcome)

    def next(self) -> int:
        """After SLURM's warning, with the checkpoint saved: requeue the job for the
        next segment, or refuse; the exit code (75, or `NO_PROGRESS_EXIT`)."""
        entries = self.entries()
        entry = entries[-1] if entries else {}
        resumed = _mark(entry, "resumed_at")
        stopped = _mark(entry, "stopped_at")
        limit = self.job.time_limit if self.job else "?"
        if not progressed(resumed, stopped):
            log.error(
                "lskd %s: error: segment %d made no progress (resumed at %s, stopped "
                "at %s): SLURM's warning came before its first step ended; time limit "
                "%s: raise the rule's runtime (profiles/slurm set-resources) or send "
                "the warning later (--signal=URG@<seconds> in slurm_extra)",
                self.command,
                self.number,
                resumed,
                stopped,
                limit,
            )
            self.note("refused: no progress")
            return NO_PROGRESS_EXIT
        job = query_job(self.job.job_id, self.run) if self.job else "no SLURM job"
        if isinstance(job, str):
            return self._not_requeued(job)
        if job.state != "RUNNING" or not job.requeue:
            return self._not_requeued(f"{job.state}, Requeue={int(job.requeue)}")
        # Logged and recorded first: SLURM ends the allocation as soon as it accepts
        # the requeue. Its SIGTERM is ignored meanwhile (by scontrol too): we exit 75.
        log.info(
            "segment %d: stopped at %s; requeueing SLURM job %s for segment %d",
            self.number,
            stopped or entry.get("where"),
            job.job_id,
            self.number + 1,
        )
        self.note("requeued")
        term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            out = self.run(["scontrol", "requeue", job.job_id])
        except (OSError, subprocess.SubprocessError) as err:
            return self._not_requeued(f"scontrol requeue: {err}")
        finally:
            signal.signal(signal.SIGTERM, term)
        if out.returncode != 0:
            return self._not_requeued((out.stderr or out.stdout).strip())
        return REQUEUE_EXIT

    def _not_requeued(self, why: str) -> int:
        log.warning("segment %d: not requeued (%s)", self.number, why)
        self.note(f"not requeued: {why}")
        return REQUEUE_EXIT

    def finished(self) -> None:
        """The job's outputs are written: one summary line, then the ledger goes."""
        if self.owner:
            entries = self.entries()
            jobs = ", ".join(sorted({e["job"] for e in entries}))
            log.info("finished: %d segment(s), SLURM job(s) %s", len(entries), jobs)
            self.ledger.unlink(missing_ok=True)


def begin(
    command: str,
    model_outs: Path | Sequence[Path],
    gpus: int = 1,
    env: MutableMapping[str, str] | None = None,
    run: Runner = run_command,
) -> Segment | None:
    """The segment this training process belongs to, or None when the job does not
    continue in segments (not a Snakemake SLURM job, or no SLURM at all)."""
    env = os.environ if env is None else env
    tag_log_lines(None)
    outs = [model_outs] if isinstance(model_outs, (str, Path)) else list(model_outs)
    if "RANK" in env:  # a worker of `--gpus N`: its launcher decided
        if SEGMENT_ENV not in env:
            return None
        tag_log_lines(int(env[SEGMENT_ENV]))
        trainer = env["RANK"] == "0"
        return Segment(command, outs, int(env[SEGMENT_ENV]), False, trainer, run=run)
    if not env.get("SLURM_JOB_ID"):
        return None
    job = query_job(env["SLURM_JOB_ID"], run)
    if isinstance(job, str):
        log.warning("%s: this job will not continue in segments", job)
        return None
    if not job.by_snakemake:
        return None
    segment = Segment(command, outs, 0, True, gpus <= 1, run=run)
    segment.open(job)
    if gpus > 1:
        env[SEGMENT_ENV] = str(segment.number)  # for the workers torchrun starts
    return segment


def after_stop(segment: Segment | None, stop: Preempted) -> int:
    """The exit code of a training process stopped by a signal (checkpoint saved):
    after SLURM's warning (SIGURG) the segment's owner requeues the job."""
    if segment is None:
        return REQUEUE_EXIT
    segment.stopped(stop)
    if not segment.owner:
        return REQUEUE_EXIT
    if stop.signum != WARNING:
        segment.note(f"{signal.Signals(stop.signum).name}: not requeued by lskd")
        return REQUEUE_EXIT
    return segment.next()
