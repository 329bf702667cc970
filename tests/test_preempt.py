"""Preemption and exact resume: RNG capture, mid-epoch positioning, SIGTERM/SIGUSR1,
for single jobs and fused temperature sweeps."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import lskd.objectives.kd
import lskd.train.job
import lskd.train.loop
from conftest import make_toy_npz, train_argv
from lskd.cli.main import main
from lskd.data.batches import Augment, Batches
from lskd.data.folders import FolderSource, scan_imagefolder
from lskd.identity import Choice
from lskd.models import checkpoint
from lskd.models.registry import MODELS
from lskd.objectives.kd import kd_loss
from lskd.train import preempt, rng
from lskd.train.job import RunSpec, distill_student, distill_students, train_teacher
from lskd.train.preempt import Position
from lskd.train.recipe import Recipe
from lskd.train.resume import EpochProgress, position, saved_position
from lskd.train.steps import teacher_step
from test_folders import TINY, make_imagefolder
from test_fused import dropout_mlp

BATCH = 50
STEPS = 400 // BATCH  # 8 steps per epoch
LS = Choice.from_alpha(0.1)  # the teachers' regularizer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_toy_npz(tmp_path_factory.mktemp("toy") / "toy.npz", 400, 50)


def _spec(data, out, epochs=3) -> RunSpec:
    return RunSpec(
        task="toy",
        data=data,
        arch="mlp128",
        seed=0,
        recipe=Recipe.from_dict({"epochs": epochs, "batch_size": BATCH, "lr": 0.05}),
        model_out=out / "model.pt",
        metrics_out=out / "metrics.json",
        augment={"pad": 2, "hflip": True},
    )


def _strip(metrics: dict) -> dict:
    wall = {"wall_s", "train_seconds", "train_images_per_s"}
    wall |= {"train_images_per_s_per_process", "images_per_s"}
    if isinstance(metrics, dict):
        return {k: _strip(v) for k, v in metrics.items() if k not in wall}
    if isinstance(metrics, list):
        return [_strip(v) for v in metrics]
    return metrics


def _signalling_step(make_step, at: int, signum: int, calls: list):
    """A step function that signals this process during global step `at` (once)."""
    fired: list = []

    def make(*args):
        step = make_step(*args)

        def counted(*batch):
            calls.append(1)
            if len(calls) == at and not fired:
                fired.append(1)
                os.kill(os.getpid(), signum)
            return step(*batch)

        return counted

    return make


# --- building blocks ---------------------------------------------------------------


def test_rng_states_round_trip_through_weights_only(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    state = rng.capture()
    checkpoint.save({"rng": state}, tmp_path / "s.pt")
    expected = (random.random(), np.random.normal(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    rng.restore(checkpoint.load(tmp_path / "s.pt")["rng"])
    got = (random.random(), np.random.normal(), torch.rand(3))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


def _full_and_resumed(batches, gen, k):
    start = gen.get_state()
    full = list(batches)
    after_full = gen.get_state()
    gen.set_state(start)
    resumed = list(position(batches, k))
    assert torch.equal(gen.get_state(), after_full)  # the same draws were taken
    return full[k:], resumed


@pytest.mark.parametrize("k", [0, 3, 8])
def test_array_batches_resume_mid_epoch(k):
    images = np.random.default_rng(0).integers(0, 255, (80, 1, 8, 8), dtype=np.uint8)
    gen = torch.Generator().manual_seed(0)
    batches = Batches(
        images, np.arange(80), 10, (0.5,), (0.5,), gen, Augment(pad=2, hflip=True)
    )
    full, resumed = _full_and_resumed(batches, gen, k)
    assert len(resumed) == len(full) == 8 - k
    for (xa, ya), (xb, yb) in zip(full, resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_folder_batches_resume_mid_epoch(tmp_path):
    manifest = scan_imagefolder(make_imagefolder(tmp_path), 2, 0)
    gen = torch.Generator().manual_seed(0)
    batches = FolderSource(manifest, TINY).train_batches(3, gen)
    full, resumed = _full_and_resumed(batches, gen, 2)
    assert len(full) == len(resumed) == 2
    for (xa, ya), (xb, yb) in zip(full, resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_watch_turns_signals_into_a_flag_and_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with preempt.watch():
        assert preempt.requested() is None
        os.kill(os.getpid(), signal.SIGUSR1)
        assert preempt.requested() == signal.SIGUSR1
    assert signal.getsignal(signal.SIGTERM) is before


# --- a signal during training: checkpoint at the next step, exit 75, same result ----


def _saved_at(state: dict) -> Position:
    """Where a rolling checkpoint stands, as the resumed job logs it."""
    partial = state["partial"] and EpochProgress(**state["partial"])
    return saved_position(state["epoch"], partial)


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    spec = _spec(data, tmp_path_factory.mktemp("straight"))
    return spec, train_teacher(spec, LS)


@pytest.mark.parametrize(
    ("at", "signum", "where"),
    [
        (STEPS + 3, signal.SIGTERM, Position(2, 3)),  # mid-epoch
        (STEPS, signal.SIGUSR1, Position(1, STEPS)),  # last step of epoch 1
        (1, signal.SIGTERM, Position(1, 1)),  # first step
    ],
)
def test_signal_saves_at_next_step_and_resume_is_bit_identical(
    data, tmp_path, monkeypatch, caplog, straight, at, signum, where
):
    _, expected = straight
    spec = _spec(data, tmp_path)
    calls: list = []
    step = _signalling_step(teacher_step, at, signum, calls)
    monkeypatch.setattr(lskd.train.job, "teacher_step", step)
    with pytest.raises(preempt.Preempted) as stop:
        train_teacher(spec, LS)
    assert (stop.value.signum, stop.value.at) == (signum, where)
    assert str(stop.value).endswith(f"checkpoint saved at {where.text}")
    last = tmp_path / "last.pt"
    state = checkpoint.load(last)
    assert _saved_at(state) == where
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no outputs

    calls.clear()
    with caplog.at_level("INFO", logger="lskd"):
        got = train_teacher(spec, LS)  # `at` already passed: no second signal
    assert f"resumed from {last} at {where.text}\n" in caplog.text  # as saved
    assert len(calls) == 3 * STEPS - (at - 1) - 1  # only the steps not done before
    assert _strip(got) == _strip(expected)
    assert not last.exists()


def test_signal_between_epochs_stops_at_the_boundary(data, tmp_path, monkeypatch):
    spec = _spec(data, tmp_path, epochs=2)
    real = lskd.train.loop.evaluate
    count = []

    def evaluate(*args, **kw):  # a SIGTERM during the first validation pass
        count.append(1)
        if len(count) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kw)

    monkeypatch.setattr(lskd.train.loop, "evaluate", evaluate)
    with pytest.raises(preempt.Preempted, match="end of epoch 1") as stop:
        train_teacher(spec, LS)
    assert stop.value.at == Position(2, 0) == Position.end_of(1)
    state = checkpoint.load(tmp_path / "last.pt")
    assert (state["epoch"], state["partial"]) == (1, None)
    assert _saved_at(state) == stop.value.at


def test_signal_during_start_up_stops_after_the_first_step(data, tmp_path, monkeypatch):
    real = lskd.train.job.open_source

    def open_source(*args, **kw):  # SIGTERM while the data is being opened
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kw)

    monkeypatch.setattr(lskd.train.job, "open_source", open_source)
    with pytest.raises(preempt.Preempted, match="epoch 1 step 1") as stop:
        train_teacher(_spec(data, tmp_path), LS)
    assert stop.value.at == Position(1, 1)
    assert checkpoint.load(tmp_path / "last.pt")["partial"]["step"] == 1


def test_student_mid_epoch_signal(data, tmp_path, monkeypatch, straight):
    teacher_spec, _ = straight
    expected = distill_student(
        _spec(data, tmp_path / "a", 2), teacher_spec.model_out, 4
    )
    calls: list = []
    step = _signalling_step(lskd.train.job.student_step, 5, signal.SIGTERM, calls)
    monkeypatch.setattr(lskd.train.job, "student_step", step)
    spec = _spec(data, tmp_path / "b", 2)
    with pytest.raises(preempt.Preempted):
        distill_student(spec, teacher_spec.model_out, 4)
    got = distill_student(spec, teacher_spec.model_out, 4)
    assert _strip(got) == _strip(expected)


def test_cli_exits_75_after_saving(data, tmp_path, monkeypatch):
    calls: list = []
    step = _signalling_step(teacher_step, 2, signal.SIGTERM, calls)
    monkeypatch.setattr(lskd.train.job, "teacher_step", step)
    hp = {"epochs": 1, "batch_size": BATCH, "lr": 0.05}
    argv = train_argv(data, tmp_path, hp, "--device", "cpu")
    assert main(argv) == preempt.REQUEUE_EXIT == 75
    assert checkpoint.load(tmp_path / "last.pt")["partial"]["step"] == 2


def _as_before(state: dict) -> dict:
    """A v3 resume checkpoint in the layout lskd wrote before one format served every
    job: `lskd-resume-v2` (one run: `model`, `history`, `best_state`, scalar running
    sums) or, with several models, `lskd-sweep-resume-v1` (`students`, and the unused
    scalar sums beside the per-student ones)."""
    per_model = ("models", "histories", "best_states", "streams")
    old = {k: v for k, v in state.items() if k not in per_model}
    partial = dict(state["partial"])
    if len(state["models"]) == 1:
        (loss_sum,), (correct,) = partial.pop("loss_sums"), partial.pop("hits")
        old.update(format="lskd-resume-v2", model=state["models"][0])
        old.update(history=state["histories"][0], best_state=state["best_states"][0])
    else:
        loss_sum, correct = 0.0, 0
        old.update(format="lskd-sweep-resume-v1", students=state["models"])
        old.update({k: state[k] for k in per_model[1:]})
    return {**old, "partial": {**partial, "loss_sum": loss_sum, "correct": correct}}


def test_checkpoint_of_the_format_before_resumes(data, tmp_path, monkeypatch, straight):
    """A job stopped mid-epoch by an lskd that wrote the single-run layout resumes,
    after the upgrade, to the uninterrupted run."""
    _, expected = straight
    spec = _spec(data, tmp_path)
    step = _signalling_step(teacher_step, STEPS + 3, signal.SIGTERM, [])
    monkeypatch.setattr(lskd.train.job, "teacher_step", step)
    with pytest.raises(preempt.Preempted):
        train_teacher(spec, LS)
    last = tmp_path / "last.pt"
    checkpoint.save(_as_before(checkpoint.load(last)), last)
    assert _strip(train_teacher(spec, LS)) == _strip(expected)
    assert not last.exists()


# --- a fused temperature sweep: the same path, K students at once -------------------

TEMPS = [1.0, 4.0, 64.0]
K = len(TEMPS)


@pytest.fixture(scope="module")
def sweep(data, straight, tmp_path_factory):
    """The teacher, then the uninterrupted fused sweep and its K separate jobs (a
    student with dropout, so each student's RNG stream matters)."""
    MODELS["mlpdrop"] = dropout_mlp
    teacher = straight[0].model_out
    root = tmp_path_factory.mktemp("sweep")
    fused = _sweep_specs(data, root / "fused")
    distill_students(fused, teacher, TEMPS)
    separate = _sweep_specs(data, root / "separate")
    for spec, T in zip(separate, TEMPS, strict=True):
        distill_student(spec, teacher, T)
    yield teacher, fused, separate
    del MODELS["mlpdrop"]


def _sweep_specs(data, root) -> list[RunSpec]:
    return [
        replace(_spec(data, root / f"student_T{T:g}", epochs=2), arch="mlpdrop")
        for T in TEMPS
    ]


def _same_outputs(got: RunSpec, expected: RunSpec) -> None:
    """Bit-identical weights and metrics (but wall time and `fused_temperatures`)."""
    a = checkpoint.load_model_file(got.model_out)["state_dict"]
    b = checkpoint.load_model_file(expected.model_out)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), got.model_out
    ma, mb = (json.loads(s.metrics_out.read_text()) for s in (got, expected))
    ma.pop("fused_temperatures"), mb.pop("fused_temperatures", None)
    assert _strip(ma) == _strip(mb)


def _signalling_kd(at: int, signum: int, calls: list):
    """kd_loss that signals this process during its call number `at` (once): call
    `step * K + i + 1` is student i's loss in global step `step + 1`."""
    fired: list = []

    def counted(*args, **kwargs):
        calls.append(1)
        if len(calls) == at and not fired:
            fired.append(1)
            os.kill(os.getpid(), signum)
        return kd_loss(*args, **kwargs)

    return counted


@pytest.mark.parametrize(
    ("at", "signum", "where"),
    [
        ((STEPS + 2) * K + 3, signal.SIGTERM, Position(2, 3)),  # last student
        ((STEPS - 1) * K + 1, signal.SIGUSR1, Position(1, STEPS)),  # first student
        (2, signal.SIGTERM, Position(1, 1)),  # first step, second student
    ],
)
def test_sweep_signal_saves_at_next_step_and_resume_is_bit_identical(
    data, tmp_path, monkeypatch, sweep, at, signum, where
):
    """SIGTERM/SIGUSR1 during any student's step of a fused job: the step finishes
    for all K, `last_sweep.pt` is saved there, `Preempted`; the rerun trains only the
    steps left and equals both the uninterrupted fused run and K separate jobs."""
    teacher, fused, separate = sweep
    specs = _sweep_specs(data, tmp_path)
    calls: list = []
    monkeypatch.setattr(
        lskd.objectives.kd, "kd_loss", _signalling_kd(at, signum, calls)
    )
    with pytest.raises(preempt.Preempted) as stop:
        distill_students(specs, teacher, TEMPS)
    assert (stop.value.signum, stop.value.at) == (signum, where)
    last = specs[0].model_out.parent / "last_sweep.pt"
    state = checkpoint.load(last)
    assert _saved_at(state) == where
    assert len(state["streams"]) == K and set(state["rng"]) >= {"python", "numpy"}
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["last_sweep.pt"]

    calls.clear()
    distill_students(specs, teacher, TEMPS)  # `at` already passed: no second signal
    done = state["epoch"] * STEPS + state["partial"]["step"]
    assert len(calls) == K * (2 * STEPS - done)  # only the steps not done before
    assert not last.exists()
    for got, straight_, alone in zip(specs, fused, separate, strict=True):
        _same_outputs(got, straight_)
        _same_outputs(got, alone)


def test_sweep_signal_between_epochs_stops_at_the_boundary(
    data, tmp_path, monkeypatch, sweep
):
    teacher, fused, _ = sweep
    real, count = lskd.train.loop.evaluate, []

    def evaluate(*args, **kw):  # a SIGTERM during the first validation
        count.append(1)
        if len(count) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kw)

    monkeypatch.setattr(lskd.train.loop, "evaluate", evaluate)
    specs = _sweep_specs(data, tmp_path)
    with pytest.raises(preempt.Preempted, match="end of epoch 1") as stop:
        distill_students(specs, teacher, TEMPS)
    assert stop.value.at == Position(2, 0)
    state = checkpoint.load(specs[0].model_out.parent / "last_sweep.pt")
    assert (state["epoch"], state["partial"]) == (1, None)
    distill_students(specs, teacher, TEMPS)
    for got, expected in zip(specs, fused, strict=True):
        _same_outputs(got, expected)


def test_sweep_checkpoint_of_the_format_before_resumes(
    data, tmp_path, monkeypatch, sweep
):
    teacher, fused, _ = sweep
    specs = _sweep_specs(data, tmp_path)
    kd = _signalling_kd((STEPS + 2) * K + 2, signal.SIGTERM, [])
    monkeypatch.setattr(lskd.objectives.kd, "kd_loss", kd)
    with pytest.raises(preempt.Preempted):
        distill_students(specs, teacher, TEMPS)
    last = specs[0].model_out.parent / "last_sweep.pt"
    checkpoint.save(_as_before(checkpoint.load(last)), last)
    distill_students(specs, teacher, TEMPS)
    for got, expected in zip(specs, fused, strict=True):
        _same_outputs(got, expected)


def test_sweep_cli_exits_75_after_saving(data, tmp_path, monkeypatch, sweep):
    teacher = sweep[0]
    monkeypatch.setattr(
        lskd.objectives.kd, "kd_loss", _signalling_kd(4, signal.SIGTERM, [])
    )
    hp = json.dumps({"epochs": 1, "batch_size": BATCH, "lr": 0.05})
    argv = ["distill", "--task", "toy", "--data", str(data), "--arch", "mlp128"]
    argv += ["--seed", "0", "--hp", hp, "--device", "cpu", "--teacher", str(teacher)]
    argv += ["--T", "1", "4", "--model-out"]
    argv += [str(tmp_path / f"T{T}" / "model.pt") for T in (1, 4)]
    argv += ["--metrics-out", *(str(tmp_path / f"T{T}" / "m.json") for T in (1, 4))]
    assert main(argv) == preempt.REQUEUE_EXIT == 75
    assert checkpoint.load(tmp_path / "T1" / "last_sweep.pt")["partial"]["step"] == 2


# --- data-parallel: the ranks agree on the step, rank 0 writes -----------------------


def _ddp_train(data, out, log, fused=False):
    """`lskd train --gpus 2` (or, `fused`, a `distill --gpus 2` sweep at T = 1, 4 with
    outputs in out/T1, out/T4 from the teacher in out/../teacher)."""
    hp = json.dumps({"epochs": 3, "batch_size": 25, "lr": 0.05})
    argv = ["--task", "toy", "--data", str(data), "--arch", "mlp128", "--seed", "0"]
    argv += ["--hp", hp, "--device", "cpu", "--gpus", "2"]
    if fused:
        teacher = out.parent / "teacher" / "model.pt"
        argv = ["distill", *argv, "--teacher", str(teacher), "--T", "1", "4"]
        for flag, name in (("--model-out", "model.pt"), ("--metrics-out", "m.json")):
            argv += [flag, *(str(out / t / name) for t in ("T1", "T4"))]
    else:
        argv = ["train", *argv, "--alpha", "0", "--model-out", str(out / "model.pt")]
        argv += ["--metrics-out", str(out / "metrics.json")]
    code = "import sys; from lskd.cli.main import main; sys.exit(main())"
    return subprocess.Popen([sys.executable, "-c", code, *argv], stderr=log, stdout=log)


@pytest.mark.slow
@pytest.mark.parametrize("fused", [False, True], ids=["train", "fused"])
def test_sigterm_to_a_data_parallel_job(data, tmp_path, fused):
    """SIGTERM to `lskd train --gpus 2` or a fused `lskd distill --gpus 2 --T 1 4`
    (CPU, Gloo): forwarded to torchrun and its workers, which stop at the same step;
    exit 75; the rerun equals a straight run."""
    if fused:
        train_teacher(_spec(data, tmp_path / "teacher", epochs=1), LS)
    runs = ["T1", "T4"] if fused else ["."]
    last_pt = Path(runs[0]) / ("last_sweep.pt" if fused else "last.pt")
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    with open(tmp_path / "straight.log", "wb") as log:
        assert _ddp_train(data, straight, log, fused).wait() == 0
    log_path = tmp_path / "stopped.log"
    with open(log_path, "wb") as log:
        proc = _ddp_train(data, stopped, log, fused)
        deadline = time.monotonic() + 240
        while b"epoch 1/3" not in log_path.read_bytes() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # our child: the relaunching lskd
        assert proc.wait() == 75, log_path.read_text()[-3000:]
    state = checkpoint.load(stopped / last_pt)
    assert state["epoch"] >= 1
    files = [str(p.relative_to(stopped)) for p in stopped.rglob("*") if p.is_file()]
    assert files == [str(last_pt)]
    with open(tmp_path / "again.log", "wb") as log:
        assert _ddp_train(data, stopped, log, fused).wait() == 0
    for run in runs:
        name = "m.json" if fused else "metrics.json"
        got = json.loads((stopped / run / name).read_text())
        expected = json.loads((straight / run / name).read_text())
        assert _strip(got) == _strip(expected)
