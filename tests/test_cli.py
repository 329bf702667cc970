"""`lskd` command line: help texts and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import run_cli, train_argv
from lskd.cli.main import build_parser, main

COMMANDS = [
    "prepare",
    "subset",
    "import-weights",
    "train",
    "distill",
    "methods",
    "analyse",
    "table",
    "figure",
    "claims",
    "diffusion-table",
    "delta",
    "delta-transfer",
    "curves",
    "power",
    "nmt-prepare",
    "nmt-train",
    "nmt-distill",
    "nmt-score",
    "nmt-table",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lskd {command}")


def test_every_subcommand_is_tested():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_prepare_missing_root(tmp_path):
    out = tmp_path / "d.npz"
    result = run_cli(
        "prepare",
        "--dataset",
        "fashion_mnist",
        "--root",
        str(tmp_path / "x"),
        "--val-size",
        "10",
        "--out",
        str(out),
    )
    line = one_error_line(result)
    assert (
        str(tmp_path / "x") in line and "apt-get install dataset-fashion-mnist" in line
    )
    assert not out.exists()


def test_train_bad_hp_names_key(tmp_path):
    hp = {"epochs": 1, "batch_size": 8, "lr": 0.1, "lrr": 1}
    result = run_cli(*train_argv(tmp_path / "d.npz", tmp_path, hp, task="t"))
    assert "--hp.lrr: unknown key" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_distill_missing_teacher(tmp_path, fmnist_root):
    data = tmp_path / "d.npz"
    assert (
        main(
            [
                "prepare",
                "--dataset",
                "fashion_mnist",
                "--root",
                str(fmnist_root),
                "--val-size",
                "100",
                "--train-size",
                "200",
                "--test-size",
                "100",
                "--out",
                str(data),
            ]
        )
        == 0
    )
    hp = json.dumps({"epochs": 1, "batch_size": 8, "lr": 0.1})
    result = run_cli(
        "distill",
        "--task",
        "t",
        "--data",
        str(data),
        "--arch",
        "mlp128",
        "--teacher",
        str(tmp_path / "nope.pt"),
        "--T",
        "2",
        "--seed",
        "0",
        "--hp",
        hp,
        "--model-out",
        str(tmp_path / "s/m.pt"),
        "--metrics-out",
        str(tmp_path / "s/m.json"),
    )
    assert f"{tmp_path / 'nope.pt'}: file not found" in one_error_line(result)
    assert not (tmp_path / "s").exists()


def test_table_bad_metrics_file(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    out = [str(tmp_path / f"t.{e}") for e in ("csv", "md", "tex")]
    result = run_cli(
        "table", str(bad), "--csv", out[0], "--md", out[1], "--tex", out[2]
    )
    assert str(bad) in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_methods_lists_every_registered_method_with_its_parameters():
    from lskd.objectives import OBJECTIVES, REGULARIZERS

    result = run_cli("methods")
    assert result.returncode == 0, result.stderr
    for registry in (REGULARIZERS, OBJECTIVES):
        for name, method in registry.items():
            assert f"  {name}: {method.title}." in result.stdout
            for param in method.params:
                assert param.describe() in result.stdout


@pytest.mark.parametrize(
    "how, message",
    [
        (["--regularizer", '{"name": "maxsup", "lambda": 1}'], "--regularizer.lambda"),
        (["--regularizer", '{"name": "smooth"}'], "--regularizer.name: unknown"),
    ],
)
def test_train_bad_regularizer_names_key(tmp_path, how, message):
    hp = {"epochs": 1, "batch_size": 8, "lr": 0.1}
    argv = train_argv(tmp_path / "d.npz", tmp_path, hp, task="t")
    i = argv.index("--alpha")
    argv[i : i + 2] = how
    assert message in one_error_line(run_cli(*argv))
    assert list(tmp_path.iterdir()) == []
