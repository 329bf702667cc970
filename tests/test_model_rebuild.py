"""Model files of finished runs (issue 27): a run's metrics.json records the sha256 of
its model.pt; a missing or damaged model file is planned again, with what depends on
it, by the default target (lskd.plan.models); the end of a workflow run names the
runs at chance level."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, planned_jobs, run_snakemake
from lskd.plan.config import validate_config
from lskd.plan.grid import Grid
from lskd.plan.models import (
    CACHE,
    end_of_run,
    grid_models,
    is_dry_run,
    set_aside_stale_models,
    sha256,
)

TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"
TEACHER = "results/fmnist/teacher_mlp128_a0.1_s0/model.pt"


def _config() -> dict:
    return validate_config(yaml.safe_load(TEST_CONFIG.read_text()))


def _finished(model: Path, content: bytes, **metrics) -> None:
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(content)
    record = {"model_sha256": sha256(model), **metrics}
    model.with_name("metrics.json").write_text(json.dumps(record))


def test_missing_and_damaged_models_are_named_and_set_aside(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    grid = Grid(_config())
    models = grid_models(grid)
    assert TEACHER in models and len(models) == 6 + 24  # teachers and students
    intact, gone, cut, old = (Path(m) for m in models[:4])
    for model in (intact, gone, cut):
        _finished(model, b"weights " + model.parent.name.encode())
    gone.unlink()
    cut.write_bytes(b"weig")  # truncated
    old.parent.mkdir(parents=True)  # written before lskd recorded the digest
    old.write_bytes(b"x"), old.with_name("metrics.json").write_text("{}")
    assert set_aside_stale_models(grid, dry_run=False) == [
        (str(gone), "missing (its metrics.json is there)"),
        (
            str(cut),
            "damaged: its sha256 is not the one metrics.json records (moved to "
            "model.pt.damaged)",
        ),
    ]
    assert capsys.readouterr().err.splitlines() == [
        f"lskd: {gone}: missing (its metrics.json is there); planned again with what "
        "depends on it",
        f"lskd: {cut}: damaged: its sha256 is not the one metrics.json records (moved "
        "to model.pt.damaged); planned again with what depends on it",
    ]
    assert cut.with_name("model.pt.damaged").read_bytes() == b"weig"
    assert not cut.exists() and intact.is_file()
    assert CACHE.is_file()  # hashed once; then only when size or mtime change


def test_a_dry_run_moves_no_damaged_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    grid = Grid(_config())
    cut = Path(grid_models(grid)[0])
    _finished(cut, b"weights")
    cut.write_bytes(b"weig")
    assert is_dry_run(["--cores", "all", "-n"]) and is_dry_run(["-np"])
    assert not is_dry_run(["--cores", "all"]) and not is_dry_run(["-c1"])
    why = "damaged: its sha256 is not the one metrics.json records"
    assert set_aside_stale_models(grid, dry_run=True) == [(str(cut), why)]
    assert capsys.readouterr().err.splitlines() == [
        f"lskd: {cut}: {why}; a run without -n moves it to model.pt.damaged and "
        "plans it again with what depends on it (this dry run changes nothing)"
    ]
    assert cut.read_bytes() == b"weig"
    assert not cut.with_name("model.pt.damaged").exists()


def test_nmt_models_are_final_targets_too():
    """Table 5's teachers and students are checked as the image runs are."""
    config = validate_config(
        yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    )
    grid = Grid(config)
    nmt = [m for m in grid_models(grid) if "/nmt_" in m]
    pairs, temps = grid.nmt_pairs, grid.temps
    assert len(nmt) == len(pairs) * len(grid.nmt_alphas) * (1 + len(temps))
    assert (
        "results/nmt_libreoffice_en_de/teacher_transformer_a0.1_s0/"
        "student_transformer_T64_s0/model.pt"
    ) in nmt


def test_end_of_run_names_the_runs_at_chance(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = _config()
    models = grid_models(Grid(config))
    for i, model in enumerate(models):
        _finished(Path(tmp_path / model), b"w", chance={"at_chance": i in (1, 7)})
    end_of_run(config)
    chance = [str(Path(models[i]).parent) for i in (1, 7)]
    assert capsys.readouterr().err.splitlines() == [
        "lskd: warning: 2 run(s) at chance level (test top-1 within the margin of "
        "100/K): marked † in the tables, Δ and figures, and the claims resting on "
        f"them are not judged: {', '.join(chance)}"
    ]
    record = json.loads((tmp_path / "results/fmnist/data_source.json").read_text())
    assert record["dataset"] == "fashion_mnist"  # a run exists: its data was read


@pytest.mark.slow
def test_deleted_and_truncated_teacher_are_planned_again(
    demo_run, tmp_path, snakemake_bin
):
    """On a copy of the CI DAG's finished workdir: after `rm` of a teacher's
    model.pt, `snakemake -n` (the default target) plans the teacher again with its
    students and everything downstream; after truncating it, the dry run names the
    damage and a run sets the file aside and rebuilds it, bit-identical."""
    work = tmp_path / "work"
    shutil.copytree(demo_run, work, symlinks=True)
    args = ("-n", "--configfile", str(TEST_CONFIG))
    assert planned_jobs(run_snakemake(work, *args)) == {}
    model = work / TEACHER
    recorded = json.loads(model.with_name("metrics.json").read_text())
    assert recorded["model_sha256"] == sha256(model)
    # the teacher, the fused T-sweeps of its students (kd and dkd), what reads them
    again = {"train_teacher": 1, "distill_students": 2, "analyse_teachers": 1}
    again |= {"make_table": 1, "check_claims": 1, "delta": 1, "all": 1}

    def planned(result) -> dict[str, int]:
        jobs = planned_jobs(result)
        return {rule: jobs.get(rule, 0) for rule in again}

    model.rename(tmp_path / "kept.pt")
    result = run_snakemake(work, *args)
    assert planned(result) == again
    assert f"lskd: {TEACHER}: missing (its metrics.json is there); planned again " in (
        result.stderr
    )
    (tmp_path / "kept.pt").rename(model)
    assert planned_jobs(run_snakemake(work, *args)) == {}
    model.write_bytes(model.read_bytes()[:1000])
    # a dry run names the damage and changes nothing (it plans what reads the teacher,
    # whose file is now newer, but not the teacher itself: the file is still there)
    result = run_snakemake(work, *args)
    assert "train_teacher" not in planned_jobs(result)
    assert (
        f"lskd: {TEACHER}: damaged: its sha256 is not the one metrics.json records; "
        "a run without -n moves it to model.pt.damaged"
    ) in result.stderr
    assert model.stat().st_size == 1000
    # a run sets it aside and trains it again: deterministic on CPU, so the rebuilt
    # teacher has the sha256 its students' runs were made from
    run_args = ("--cores", "2", "--configfile", str(TEST_CONFIG))
    result = run_snakemake(work, *run_args, "--until", "train_teacher")
    assert (
        f"lskd: {TEACHER}: damaged: its sha256 is not the one metrics.json records "
        "(moved to model.pt.damaged); planned again with what depends on it"
    ) in result.stderr
    assert model.with_name("model.pt.damaged").stat().st_size == 1000
    assert sha256(model) == recorded["model_sha256"]
