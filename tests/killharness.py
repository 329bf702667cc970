"""Kill-and-resume harness: run a training command, kill it at random moments, rerun
the same command until it finishes, and compare its outputs with an uninterrupted run.

A `Job` is any command that writes `metrics.json` (and optionally `model.pt`) into an
output directory (or one folder of it per run) and resumes from a rolling checkpoint
there; `lskd train`, `lskd distill` and the fused sweep `lskd distill --T 1 4 64` are
the image jobs; `lskd nmt-train` and `lskd nmt-distill` (fairseq in-process) are the
NMT jobs: they write `train.json` and a fairseq `model.pt` and resume from fairseq's
`fairseq/checkpoint_last.pt` (`Job.kind = "fairseq"`).

Two launchers start the commands:

- `ExecLauncher` runs `python -m lskd.cli.main ARGS` as a fresh process, exactly as a
  user or Snakemake does (bench/kill_resume.py; each start imports torch again).
- `ForkLauncher` forks each command from a forkserver that has already imported lskd and
  torch (and computed nothing), then calls the same `lskd.cli.main.main(ARGS)`; the
  child is a separate process killed with a real SIGKILL/SIGTERM, but starts in
  milliseconds instead of seconds, which is what lets the test fit 20+ kill points in
  about a minute.

Only processes started here are ever signalled, each by its own pid.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lskd.progress import WALL_KEYS  # excluded from the comparisons


@dataclass(frozen=True)
class Job:
    """A resumable command: `argv(out_dir)` is its `lskd` argument list. It writes
    `metrics.json` and `model.pt` into each of its `runs` (folders of the output
    directory; a fused sweep has one per temperature) and resumes from `checkpoint`
    (a path in the output directory)."""

    name: str
    argv: Callable[[Path], list[str]]
    checkpoint: str = "last.pt"
    runs: tuple[str, ...] = (".",)
    kind: str = "lskd"  # "fairseq": NMT job (train.json, fairseq model.pt)


@dataclass
class Attempt:
    """One start of a job: when it was signalled and how it ended."""

    job: str
    chain: int
    kill_after: float | None
    signal: str | None
    exit_code: int | None = None
    killed: bool = False
    resumed_from: str | None = None
    seconds: float = 0.0


@dataclass
class Report:
    attempts: list[Attempt] = field(default_factory=list)
    identical: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def kill_points(self) -> int:
        return sum(a.killed for a in self.attempts)


def _child(argv: list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from lskd.cli.main import main

    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


class ForkLauncher:
    """Start `lskd.cli.main.main(argv)` in a child of a warm forkserver."""

    def __init__(self, nmt: bool = False) -> None:
        self.ctx = multiprocessing.get_context("forkserver")
        preload = ["lskd.cli.main", "lskd.train.job", "torchvision"]
        # fairseq's import (seconds) moves into the forkserver too for NMT jobs
        preload += ["fairseq_cli.train", "lskd.nmt.pipeline"] if nmt else []
        self.ctx.set_forkserver_preload(preload)

    def warm(self, log: Path) -> None:
        """Start the forkserver (it imports torch once) before anything is timed."""
        self.run(["--help"], log, None, signal.SIGKILL)

    def run(self, argv: list[str], log: Path, kill_after: float | None, sig: int):
        proc = self.ctx.Process(target=_child, args=(argv, str(log)))
        # the child would re-import our __main__ (pytest, a bench script) before
        # running `_child`; a bare stand-in keeps its start-up as short as lskd's own
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            proc.start()
        finally:
            sys.modules["__main__"] = main
        proc.join(kill_after)
        if proc.exitcode is None:
            os.kill(proc.pid, sig)
            proc.join()
        # exit 0: it finished before the signal landed, so it was not killed
        return proc.exitcode, proc.exitcode != 0


class ExecLauncher:
    """Start `python -m lskd.cli.main ARGV` as a new process (what Snakemake runs)."""

    def run(self, argv: list[str], log: Path, kill_after: float | None, sig: int):
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lskd.cli.main", *argv], stdout=fh, stderr=fh
            )
            try:
                return proc.wait(timeout=kill_after), False
            except subprocess.TimeoutExpired:
                proc.send_signal(sig)
                code = proc.wait()
                return code, code != 0


def checkpoint_position(path: Path) -> str | None:
    """'epoch E' or 'epoch E + S steps' of a resume checkpoint, None without one."""
    if not path.exists():
        return None
    from lskd.models import checkpoint

    state = checkpoint.load(path)
    partial = state.get("partial")
    steps = f" + {partial['step']} steps" if partial else ""
    return f"epoch {state['epoch']}{steps}"


def fairseq_position(path: Path) -> str | None:
    """The same for fairseq's checkpoint_last.pt: 'epoch E + S steps (update N)'."""
    if not path.exists():
        return None
    import argparse

    from lskd.models import checkpoint

    state = checkpoint.load(path, allow=[argparse.Namespace])
    itr = state["extra_state"]["train_iterator"]
    updates = state["optimizer_history"][-1]["num_updates"]
    steps = itr.get("iterations_in_epoch", 0)
    within = f" + {steps} steps" if steps else ""
    return f"epoch {itr['epoch']}{within} ({updates} updates)"


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in WALL_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def differences(expected: Path, got: Path, kind: str = "lskd") -> list[str]:
    """What differs between two output directories (wall-time fields ignored;
    model.pt compared tensor by tensor, bit for bit). `kind` "fairseq": an NMT run
    (train.json, fairseq's model.pt with its weights under "model")."""
    diffs = []
    name = "train.json" if kind == "fairseq" else "metrics.json"
    # an NMT run records fairseq's command line, with its own output folder in it
    text = (expected / name).read_text().replace(str(expected), str(got))
    a = _strip(json.loads(text))
    b = _strip(json.loads((got / name).read_text()))
    diffs += [
        f"{name}[{k!r}]" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)
    ]
    if (expected / "model.pt").exists():
        import torch

        wa, wb = _weights(expected / "model.pt", kind), _weights(got / "model.pt", kind)
        if wa.keys() != wb.keys():
            diffs.append("model.pt keys")
        diffs += [
            f"model.pt[{k!r}]" for k in wa if k in wb and not torch.equal(wa[k], wb[k])
        ]
    return diffs


def _weights(path: Path, kind: str) -> dict:
    from lskd.models import checkpoint

    if kind == "fairseq":
        import argparse

        return checkpoint.load(path, allow=[argparse.Namespace])["model"]
    return checkpoint.load_model_file(path)["state_dict"]


def run_baseline(job: Job, launcher, workdir: Path) -> tuple[Path, float]:
    """The uninterrupted run: its output directory and wall time."""
    out = workdir / f"{job.name}-baseline"
    out.mkdir(parents=True)
    start = time.perf_counter()
    code, _ = launcher.run(job.argv(out), out / "log.txt", None, signal.SIGKILL)
    if code != 0:
        log = (out / "log.txt").read_text()[-2000:]
        raise AssertionError(f"{job.name} baseline exited {code}: {log}")
    return out, time.perf_counter() - start


def kill_chain(
    job: Job,
    launcher,
    workdir: Path,
    baseline: Path,
    wall: float,
    kills: int,
    seed: int,
    term_share: float = 0.25,
    spread: tuple[float, float] = (0.05, 0.7),
) -> Report:
    """Kill `job` `kills` times at seeded random moments (a fraction `spread` of the
    baseline's wall time after each start; SIGTERM with probability `term_share`, else
    SIGKILL), rerunning the same command after each kill, until it finishes. A chain
    that finishes before all kills are spent is compared and a new one starts."""
    rnd = random.Random(seed)
    report, chain, left = Report(), 0, kills
    while True:
        out = workdir / f"{job.name}-chain{chain}"
        out.mkdir(parents=True, exist_ok=True)
        kill_after = rnd.uniform(*spread) * wall if left else None
        sig = signal.SIGTERM if rnd.random() < term_share else signal.SIGKILL
        attempt = Attempt(job.name, chain, kill_after, sig.name if left else None)
        position = fairseq_position if job.kind == "fairseq" else checkpoint_position
        attempt.resumed_from = position(out / job.checkpoint)
        start = time.perf_counter()
        attempt.exit_code, attempt.killed = launcher.run(
            job.argv(out), out / "log.txt", kill_after, sig
        )
        attempt.seconds = time.perf_counter() - start
        report.attempts.append(attempt)
        left -= attempt.killed
        _check_exit(attempt, out)
        if attempt.killed:
            continue
        diffs = [
            f"{run}/{d}"
            for run in job.runs
            for d in differences(baseline / run, out / run, job.kind)
        ]
        (report.different if diffs else report.identical).append(f"{out.name}: {diffs}")
        if not left:
            return report
        shutil.rmtree(out)  # finished early: start a fresh chain for the kills left
        chain += 1


def _check_exit(attempt: Attempt, out: Path) -> None:
    ok = {0} if not attempt.killed else {-9, -15, 75, 137, 143}
    if attempt.exit_code not in ok:
        log = (out / "log.txt").read_text()[-2000:]
        raise AssertionError(f"{attempt}: unexpected exit code; log:\n{log}")
