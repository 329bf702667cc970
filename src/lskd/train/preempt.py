"""Graceful preemption: SIGTERM / SIGUSR1 → checkpoint at the next step → exit 75.

SLURM sends SIGTERM when it preempts a job (after `GraceTime` it sends SIGKILL) and,
with `sbatch --signal=<sig>@<seconds>`, a signal of our choice before the time limit:
SIGURG in profiles/slurm, which every other process of a Snakemake job ignores; after
it the job continues in its next allocation (`lskd.train.segments`).
`watch()` turns these signals into a flag instead of death; a job enters it once, at its
start (`lskd.train.job`; the CLI for the in-process fairseq jobs). The training loop
(`lskd.train.loop`) polls the flag after every optimizer step (`stop_agreed`,
all-reduced so every data-parallel rank stops at the same step), saves the job's
rolling checkpoint there and raises `Preempted` with where it saved: a `Position`
(epoch, step) of an image job, an `Update` of fairseq's checkpoint for an NMT job,
structured so that `lskd.train.segments` records it without reading text back. The
CLI turns that into exit code `REQUEUE_EXIT`.

Why 75: it is `EX_TEMPFAIL` of sysexits.h ("temporary failure; the user is invited to
retry"), distinct from 1 (crash) and 2 (bad input). Snakemake treats any non-zero exit
as a failed job and, with `retries:` (profiles/slurm), resubmits it; the new job resumes
from its checkpoint (under the SLURM executor the batch job runs a job-step `snakemake`,
whose own exit status is 1, so Snakemake's `retries` is what requeues there). Run
directly under `sbatch`, `lskd train` exits 75 itself, which a site can requeue
automatically with `RequeueExit=75` in slurm.conf. A job that SLURM requeues after
preemption (`--requeue`, the plugin's `slurm-requeue`) resumes the same way.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUEUE_EXIT = 75  # os.EX_TEMPFAIL
SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGURG)

_received: int | None = None


@dataclass(frozen=True)
class Position:
    """Where an image training job's rolling checkpoint stands: `step` steps of epoch
    `epoch` (1-based) done. Step 0 is the start of `epoch`, which is the end of the
    epoch before (`end_of`). `text` is how log lines and messages state it."""

    epoch: int
    step: int = 0

    @classmethod
    def end_of(cls, epoch: int) -> Position:
        return cls(epoch + 1, 0)

    @property
    def text(self) -> str:
        if self.step:
            return f"epoch {self.epoch} step {self.step}"
        if self.epoch > 1:
            return f"the end of epoch {self.epoch - 1}"
        return f"the start of epoch {self.epoch}"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Update:
    """Where an NMT job (fairseq) stopped: fairseq's `checkpoint` (a student's
    `checkpoint_last.pt`) saved at update `update`."""

    checkpoint: Path
    update: int

    @property
    def text(self) -> str:
        return f"{self.checkpoint} (update {self.update})"

    def __str__(self) -> str:
        return self.text


class Preempted(Exception):
    """Training stopped on a preemption signal after saving its resume checkpoint at
    `at`; None where this process does not know it (a `--gpus N` launcher: its
    workers agreed on a step and saved there)."""

    def __init__(self, signum: int, at: Position | Update | None):
        self.signum, self.at = signum, at
        super().__init__(
            f"{signal.Signals(signum).name} received: checkpoint saved at {self.where}"
        )

    @property
    def where(self) -> str:
        """The position as text, for log lines."""
        return "the step the workers agreed on" if self.at is None else self.at.text


def _flag(signum: int, frame: Any) -> None:
    global _received
    _received = signum  # nothing else: a signal handler must stay trivial


def requested() -> int | None:
    """The signal received since `watch()` started, or None."""
    return _received


@contextmanager
def watch() -> Iterator[None]:
    """Within the block, SIGTERM and SIGUSR1 set the flag instead of killing us.

    Entered once per job, around all of it (blocks do not nest: an inner one would
    forget a signal received before it). It clears the flag and installs the handlers;
    the previous handlers are put back afterwards. Outside the main thread (where
    handlers cannot be set) this is a no-op.
    """
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    previous = {s: signal.signal(s, _flag) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ignore_signals() -> None:
    """From now until the process exits, ignore SIGTERM and SIGUSR1: for a finished
    job, whose outputs are written and whose rolling checkpoint is deleted.

    The interpreter's exit after a training job takes about a second (freeing the
    thousands of modules torch and torchvision load; measured 0.8-1.5 s with and
    without DataLoader workers): a preemption signal arriving then would otherwise
    kill a job that has succeeded, Snakemake would discard its outputs, and with the
    checkpoint gone it would train again from scratch.
    """
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def stop_agreed(ctx: Any) -> int | None:
    """The signal to stop on, agreed by all ranks (max over ranks of this flag)."""
    mine = _received or 0
    if ctx.world > 1:
        import torch
        import torch.distributed as dist

        flag = torch.tensor([mine], dtype=torch.int64, device=ctx.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        mine = int(flag.item())
    return mine or None


@contextmanager
def forwarding(proc: subprocess.Popen) -> Iterator[None]:
    """Pass SIGTERM and SIGUSR1 on to `proc` (a child we started) as SIGTERM, the
    signal torchrun relays to its workers; used while waiting for it."""

    def forward(signum: int, frame: Any) -> None:
        global _received
        _received = signum
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    global _received
    _received = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, forward) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
