"""SIGTERM to an NMT training job: fairseq stops after the update in progress with
`checkpoint_last.pt` saved there, `Preempted` is raised (the CLI exits 75), and the
same call again resumes to the uninterrupted run's `model.pt`, bit for bit; a T-sweep
stopped in its second student, rerun without its first student's outputs (Snakemake
deletes them), trains only the second."""

from __future__ import annotations

import argparse
import json
import signal

import pytest
import torch

from lskd.models import checkpoint
from lskd.train import preempt
from lskd.train.segments import Mark, mark_of
from test_kill_resume import KD, NMT_HP, prepare_nmt

pytest.importorskip("fairseq")
pytestmark = pytest.mark.slow

STOP_AT = 20  # mid-epoch: 13 updates per epoch on the toy corpus


def test_sigterm_saves_at_the_update_and_resumes_identically(tmp_path, monkeypatch):
    from fairseq.trainer import Trainer

    from lskd.nmt import fairseq_run
    from lskd.nmt import pipeline as runs

    data = prepare_nmt(tmp_path)
    hp = {**NMT_HP, "max_update": 30}
    meta = {"role": "teacher", "task": "nmt_en_de", "alpha": 0.1, "seed": 0}

    def train(out):
        crit = fairseq_run.teacher_criterion(0.1)
        with preempt.watch():
            return runs.train_run(data, out, hp["model"], hp, 0, crit, meta)

    straight = tmp_path / "straight" / "model.pt"
    train(straight)

    step = Trainer.train_step

    def train_step(self, samples, raise_oom=False):
        out = step(self, samples, raise_oom)
        if self.get_num_updates() == STOP_AT:
            signal.raise_signal(signal.SIGTERM)  # caught by watch(): sets the flag
        return out

    monkeypatch.setattr(Trainer, "train_step", train_step)
    stopped = tmp_path / "stopped" / "model.pt"
    with pytest.raises(preempt.Preempted) as stop:
        train(stopped)
    assert stop.value.signum == signal.SIGTERM
    last = stopped.parent / "fairseq" / "checkpoint_last.pt"
    assert stop.value.at == preempt.Update(last, STOP_AT)
    assert mark_of(stop.value, [last]) == Mark(0, STOP_AT, nmt=True)
    state = checkpoint.load(last, allow=[argparse.Namespace])
    assert state["optimizer_history"][-1]["num_updates"] == STOP_AT
    assert state["extra_state"]["train_iterator"]["iterations_in_epoch"] == 7
    assert not stopped.exists()

    monkeypatch.setattr(Trainer, "train_step", step)
    info = train(stopped)  # the same call: resumes at update 20
    assert info["num_updates"] == 30
    a = checkpoint.load(straight, allow=[argparse.Namespace])["model"]
    b = checkpoint.load(stopped, allow=[argparse.Namespace])["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ta = json.loads((straight.parent / "train.json").read_text())
    assert ta["train_tokens"] == info["train_tokens"]
    assert ta["val_loss"] == info["val_loss"]


def test_rerun_sweep_does_not_train_its_finished_students(tmp_path, monkeypatch):
    from fairseq.trainer import Trainer

    from lskd.nmt import fairseq_run
    from lskd.nmt import pipeline as runs

    data = prepare_nmt(tmp_path)
    hp = {**NMT_HP, "max_update": 15}
    crit = fairseq_run.teacher_criterion(0.1)
    teacher = tmp_path / "teacher" / "model.pt"
    meta = {"role": "teacher", "task": "nmt_en_de", "alpha": 0.1, "seed": 0}
    with preempt.watch():
        runs.train_run(data, teacher, hp["model"], hp, 0, crit, meta)
    meta = {**meta, "role": "student", "teacher": {"arch": "transformer"}}

    def sweep(root):
        outs = [root / f"T{t}" / "model.pt" for t in (1, 2)]
        with preempt.watch():
            runs.distill(data, teacher, [1, 2], outs, hp["model"], hp, KD, 0, meta)
        return outs

    straight = sweep(tmp_path / "straight")
    trained, steps = [], []
    run_train, step = fairseq_run.run_train, Trainer.train_step

    def counted_run(argv, *args, **kw):
        trained.append(argv[argv.index("--save-dir") + 1])
        return run_train(argv, *args, **kw)

    def train_step(self, samples, raise_oom=False):
        out = step(self, samples, raise_oom)
        steps.append(1)
        if len(steps) == 15 + 5:  # update 5 of the second student
            signal.raise_signal(signal.SIGTERM)
        return out

    monkeypatch.setattr(fairseq_run, "run_train", counted_run)
    monkeypatch.setattr(Trainer, "train_step", train_step)
    root = tmp_path / "stopped"
    with pytest.raises(preempt.Preempted):
        sweep(root)
    first = root / "T1"
    assert sorted(p.name for p in (first / "fairseq").iterdir()) == [
        "argv.json",
        "checkpoint_best.pt",
        "finished.json",
        "valid_history.json",  # validation losses per update (lskd.nmt.curves)
    ]
    for name in ("model.pt", "train.json"):  # what Snakemake removes before a rerun
        (first / name).unlink()
    trained.clear()
    outs = sweep(root)
    assert trained == [str(root / "T2" / "fairseq")]  # T1 rewritten, not retrained
    for got, expected in zip(outs, straight, strict=True):
        a = checkpoint.load(expected, allow=[argparse.Namespace])["model"]
        b = checkpoint.load(got, allow=[argparse.Namespace])["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not (got.parent / "fairseq").exists()
