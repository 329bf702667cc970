"""Catalogue of bad inputs: each is refused by the real CLI entry point
(`lskd.cli.main.main`, or the config validation Snakemake runs first) with exit code 2
and one line `lskd <cmd>: error: ...` that names the offending key or file, without a
traceback and without writing anything.

The NMT cases (`nmt-prepare`, `nmt-train`, `nmt-distill`: corpus files, prepared data
folders, fairseq checkpoints) are at the end of `CASES`.
"""

from __future__ import annotations

import copy
import errno
import gzip
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import update_config

import lskd.atomic
from conftest import REPO, make_toy_npz, run_snakemake
from lskd.cli.main import main
from lskd.errors import ConfigError, OutputError
from lskd.models import checkpoint
from lskd.models.registry import build_model
from lskd.plan.checks import (
    check_config_file,
    check_data_sources,
    check_writable,
    exit_on_error,
)
from lskd.plan.config import validate_config
from lskd.plan.paths import OUTPUT_DIRS
from lskd.train.job import RunSpec, train_teacher
from lskd.train.recipe import Recipe
from test_folders import make_imagefolder

HP = {"epochs": 1, "batch_size": 50, "lr": 0.05}
MARKER = "pwned-by-pickle"


class Payload:
    """Unpickling this would create a file (the malicious checkpoint)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@dataclass
class Case:
    """argv(w) builds the command from the workspace `w`; `expect` must appear in the
    error line; `keep` names files under `w.out` that existed before the call."""

    argv: Callable[[W], list[str]]
    expect: Callable[[W], str]
    keep: tuple[str, ...] = ()
    prepare: Callable[[W, pytest.MonkeyPatch], None] | None = None


@dataclass
class W:
    """A case's workspace: shared inputs (read-only) plus a fresh output directory."""

    data: Path
    teacher: Path
    root: Path
    out: Path
    tmp: Path


def run_args(w: W, data: Path | None = None, hp: dict | None = None) -> list[str]:
    return [
        *("--task", "toy", "--data", str(data or w.data), "--arch", "mlp128"),
        *("--seed", "0", "--hp", json.dumps(hp or HP), "--device", "cpu"),
        *("--model-out", str(w.out / "model.pt")),
        *("--metrics-out", str(w.out / "metrics.json")),
    ]


def train(w: W, *extra: str, **kw) -> list[str]:
    return ["train", *run_args(w, **kw), "--alpha", "0.1", *extra]


def distill(w: W, teacher: Path | None = None, T: str = "4") -> list[str]:
    teacher = teacher or w.teacher
    return ["distill", *run_args(w), "--teacher", str(teacher), "--T", T]


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def prepare_fmnist(w: W, root: Path) -> list[str]:
    return [
        *("prepare", "--dataset", "fashion_mnist", "--root", str(root)),
        *("--val-size", "10", "--out", str(w.out / "data.npz")),
    ]


def prepare_folder(w: W, root: Path, *extra: str) -> list[str]:
    return [
        *("prepare", "--dataset", "imagefolder", "--root", str(root)),
        *("--val-per-class", "1", "--out", str(w.out / "data.json"), *extra),
    ]


def fmnist_with(w: W, name: str, content: bytes) -> Path:
    root = w.tmp / "fmnist"
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        write(root / f, gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 12))
    write(root / name, content)
    return root


def teacher_variant(w: W, name: str, **change) -> Path:
    obj = checkpoint.load(w.teacher)
    obj.update(change)
    checkpoint.save(obj, w.tmp / name)
    return w.tmp / name


def truncated(src: Path, dest: Path) -> Path:
    return write(dest, src.read_bytes()[: src.stat().st_size // 2])


def run_model_truncated(w: W) -> Path:
    """A finished run's model.pt (its metrics.json beside it), truncated."""
    write(w.tmp / "run" / "metrics.json", b"{}")
    return truncated(w.teacher, w.tmp / "run" / "model.pt")


REBUILD = "; rebuild it: snakemake --cores all --forcerun "


def malicious(w: W) -> Path:
    path = w.tmp / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": Payload(str(w.tmp / MARKER))}, fh)
    return path


def enospc_on_fsync(w: W, mp: pytest.MonkeyPatch) -> None:
    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    mp.setattr(lskd.atomic, "_fsync", full)


def corrupt_last_pt(w: W, mp: pytest.MonkeyPatch) -> None:
    write(w.out / "last.pt", b"PK\x03\x04 not really a zip")


def other_arch_last_pt(w: W, mp: pytest.MonkeyPatch) -> None:
    other = build_model("mlp512", 10, 1, 28)
    opt = torch.optim.SGD(other.parameters(), lr=0.1)
    state = {
        "format": "lskd-resume-v2",
        "epoch": 0,
        "recipe": Recipe.from_dict(HP).to_dict(),
        "model": other.state_dict(),
        "optimizer": opt.state_dict(),
    }
    checkpoint.save(state, w.out / "last.pt")


NMT_HP = {
    "model": {
        "layers": 1,
        "embed_dim": 16,
        "ffn_dim": 16,
        "heads": 2,
        "dropout": 0.0,
        "share_all_embeddings": True,
    },
    "lr": 0.01,
    "warmup_updates": 1,
    "warmup_init_lr": 1e-7,
    "weight_decay": 0,
    "clip_norm": 0,
    "max_tokens": 256,
    "max_update": 1,
    "max_epoch": 0,
    "patience": 0,
    "validate_interval_updates": 0,
    "selection": "last",
    "kd": {"weight": 0.9, "label_smoothing": 0.1, "topk": 4},
}


def nmt_prepare(w: W, en: bytes, de: bytes) -> list[str]:
    write(w.tmp / "c" / "train.en", en)
    write(w.tmp / "c" / "train.de", de)
    files = {"train": str(w.tmp / "c" / "train.{lang}"), "valid": None}
    corpus = {
        "kind": "files",
        "files": {"en_de": {**files, "test": [str(w.tmp / "c" / "train.{lang}")]}},
        "valid_every": 2,
        "min_words": 1,
        "lowercase": False,
        "max_train": None,
        "split_seed": 0,
    }
    return [
        *("nmt-prepare", "--pair", "en_de", "--corpus", json.dumps(corpus)),
        *("--vocab-size", "40", "--out", str(w.out / "prepared")),
        *("--splits", str(w.out / "splits.json")),
    ]


def nmt_run(w: W, cmd: str, data: Path, *extra: str) -> list[str]:
    return [
        *(
            cmd,
            "--task",
            "demo",
            "--pair",
            "en_de",
            "--data",
            str(data),
            "--alpha",
            "0.1",
        ),
        *("--seed", "0", "--hp", json.dumps(NMT_HP), *extra),
        *("--model-out", str(w.out / "model.pt")),
    ]


def nmt_distill(w: W, teacher: Path) -> list[str]:
    """`nmt-distill` on a stand-in prepared folder (the teacher is checked first)."""
    data = w.tmp / "prepared"
    write(data / "bin" / "dict.en.txt", b"a 1\n")
    return nmt_run(w, "nmt-distill", data, "--teacher", str(teacher), "--T", "2")


def fairseq_malicious(w: W) -> Path:
    """A torch zip checkpoint whose config needs `io.open` (not allow-listed)."""
    path = w.tmp / "evil_fairseq.pt"
    torch.save({"model": {}, "cfg": Payload(str(w.tmp / MARKER))}, path)
    return path


CASES: dict[str, Case] = {
    # --- recipe, flags -------------------------------------------------------------
    "hp unknown key": Case(
        lambda w: train(w, hp={**HP, "lrate": 1}), lambda w: "--hp.lrate: unknown key"
    ),
    "hp wrong type": Case(
        lambda w: train(w, hp={**HP, "lr": "fast"}),
        lambda w: "--hp.lr: 'fast' is not of type 'number'",
    ),
    "hp epochs 0": Case(
        lambda w: train(w, hp={**HP, "epochs": 0}), lambda w: "--hp.epochs"
    ),
    "hp missing lr": Case(
        lambda w: train(w, hp={"epochs": 1, "batch_size": 8}),
        lambda w: "--hp.lr: required",
    ),
    "hp not JSON": Case(
        lambda w: [*train(w)[:-2], "--hp", "{epochs: 1", "--alpha", "0"],
        lambda w: "argument --hp: not valid JSON",
    ),
    "alpha 1": Case(
        lambda w: [*train(w)[:-1], "1.0"], lambda w: "--alpha: must be in [0, 1)"
    ),
    "alpha negative": Case(lambda w: [*train(w)[:-1], "-0.1"], lambda w: "--alpha"),
    "T zero": Case(lambda w: distill(w, T="0"), lambda w: "--T: must be > 0"),
    "T negative": Case(lambda w: distill(w, T="-2"), lambda w: "--T: must be > 0"),
    "unknown architecture": Case(
        lambda w: [a if a != "mlp128" else "resnet5000" for a in train(w)],
        lambda w: "resnet5000",
    ),
    "augment unknown key": Case(
        lambda w: train(w, "--augment", '{"rotate": 30}'), lambda w: "augment"
    ),
    # --- data ----------------------------------------------------------------------
    "data file missing": Case(
        lambda w: train(w, data=w.tmp / "nope.npz"), lambda w: str(w.tmp / "nope.npz")
    ),
    "data unknown format": Case(
        lambda w: train(w, data=write(w.tmp / "d.txt", b"x")), lambda w: "d.txt"
    ),
    "data npz corrupt": Case(
        lambda w: train(w, data=write(w.tmp / "bad.npz", b"PK\x03\x04garbage")),
        lambda w: str(w.tmp / "bad.npz"),
    ),
    "data npz truncated": Case(
        lambda w: train(w, data=truncated(w.data, w.tmp / "half.npz")),
        lambda w: str(w.tmp / "half.npz"),
    ),
    "raw data directory missing": Case(
        lambda w: prepare_fmnist(w, w.tmp / "absent"), lambda w: str(w.tmp / "absent")
    ),
    "raw data directory empty": Case(
        lambda w: prepare_fmnist(w, (w.tmp / "empty").resolve()),
        lambda w: str(w.tmp / "empty" / "train-images-idx3-ubyte.gz"),
        prepare=lambda w, mp: (w.tmp / "empty").mkdir(),
    ),
    "idx file corrupt": Case(
        lambda w: prepare_fmnist(
            w, fmnist_with(w, "train-images-idx3-ubyte.gz", b"not gzip")
        ),
        lambda w: "train-images-idx3-ubyte.gz: corrupt gzip",
    ),
    "idx file wrong magic": Case(
        lambda w: prepare_fmnist(
            w, fmnist_with(w, "train-images-idx3-ubyte.gz", gzip.compress(b"\x00" * 64))
        ),
        lambda w: "train-images-idx3-ubyte.gz: not an IDX file",
    ),
    "idx file truncated": Case(
        lambda w: prepare_fmnist(
            w,
            fmnist_with(
                w,
                "train-images-idx3-ubyte.gz",
                gzip.compress(
                    b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x00"
                ),
            ),
        ),
        lambda w: "train-images-idx3-ubyte.gz: truncated",
    ),
    "image folder empty": Case(
        lambda w: prepare_folder(w, w.tmp), lambda w: str(w.tmp / "train")
    ),
    "image folder wrong class count": Case(
        lambda w: prepare_folder(w, w.root, "--expect-classes", "1000"),
        lambda w: "1000",
    ),
    "image file truncated": Case(
        lambda w: prepare_folder(w, w.tmp / "imgs"),
        lambda w: "n02_0.JPEG",
        prepare=lambda w, mp: truncate_one_image(w),
    ),
    # --- checkpoints ---------------------------------------------------------------
    "teacher missing": Case(
        lambda w: distill(w, w.tmp / "none.pt"), lambda w: f"{w.tmp / 'none.pt'}: file"
    ),
    "teacher corrupt": Case(
        lambda w: distill(w, write(w.tmp / "junk.pt", b"\x00garbage" * 32)),
        lambda w: f"{w.tmp / 'junk.pt'}: not a PyTorch checkpoint",
    ),
    "teacher empty": Case(
        lambda w: distill(w, write(w.tmp / "empty.pt", b"")),
        lambda w: f"{w.tmp / 'empty.pt'}: not a PyTorch checkpoint (an empty file)",
    ),
    "teacher pickle garbage": Case(
        lambda w: distill(w, write(w.tmp / "pg.pt", b"\x80\x02" + bytes(range(200)))),
        lambda w: f"{w.tmp / 'pg.pt'}: ",
    ),
    "teacher truncated": Case(
        lambda w: distill(w, truncated(w.teacher, w.tmp / "cut.pt")),
        lambda w: f"{w.tmp / 'cut.pt'}: corrupt or truncated",
    ),
    "teacher of a finished run truncated": Case(
        lambda w: distill(w, run_model_truncated(w)),
        lambda w: f"{w.tmp / 'run' / 'model.pt'}: corrupt or truncated checkpoint (",
    ),
    "teacher malicious pickle": Case(
        lambda w: distill(w, malicious(w)), lambda w: "refused by weights_only"
    ),
    "teacher not ours": Case(
        lambda w: distill(w, teacher_variant(w, "plain.pt", format="torchvision")),
        lambda w: "plain.pt: not an lskd model file",
    ),
    "teacher other class count": Case(
        lambda w: distill(w, teacher_variant(w, "k100.pt", num_classes=100)),
        lambda w: "k100.pt: teacher has 100 classes",
    ),
    "teacher of another architecture": Case(
        lambda w: distill(w, teacher_variant(w, "arch.pt", arch="mlp512")),
        lambda w: "arch.pt: weights do not fit arch 'mlp512'",
    ),
    "import sha256 mismatch": Case(
        lambda w: (
            ["import-weights", str(w.teacher), str(w.out / "w.pt")]
            + ["--arch", "mlp128", "--sha256", "0" * 64]
        ),
        lambda w: "sha256",
    ),
    "import checkpoint of another architecture": Case(
        lambda w: (
            ["import-weights", str(w.teacher), str(w.out / "w.pt")]
            + ["--arch", "resnet18"]
        ),
        lambda w: "'mlp128', not 'resnet18'",
    ),
    "init of another architecture": Case(
        lambda w: [
            *(a if a != "mlp128" else "mlp512" for a in train(w)),
            *("--init", str(w.teacher)),
        ],
        lambda w: str(w.teacher),
    ),
    "resume checkpoint corrupt": Case(
        lambda w: train(w),
        lambda w: "last.pt: corrupt or truncated checkpoint",
        keep=("last.pt",),
        prepare=corrupt_last_pt,
    ),
    "resume checkpoint of another architecture": Case(
        lambda w: train(w),
        lambda w: "last.pt: does not fit this model",
        keep=("last.pt",),
        prepare=other_arch_last_pt,
    ),
    "disk full while saving": Case(
        lambda w: train(w),
        lambda w: "last.pt: cannot write (No space left on device)",
        prepare=enospc_on_fsync,
    ),
    # --- NMT -------------------------------------------------------------------------
    "nmt corpus unequal line counts": Case(
        lambda w: nmt_prepare(w, b"a b\nc d\ne f\n", b"x y\nz w\n"),
        lambda w: f"{w.tmp / 'c' / 'train.de'}: 2 sentences but",
    ),
    "nmt corpus file empty": Case(
        lambda w: nmt_prepare(w, b"", b"x y\n"),
        lambda w: f"{w.tmp / 'c' / 'train.en'}: empty file",
    ),
    "nmt corpus file missing": Case(
        lambda w: [
            a.replace("train.{lang}", "absent.{lang}")
            for a in nmt_prepare(w, b"a\n", b"x\n")
        ],
        lambda w: f"{w.tmp / 'c' / 'absent.en'}: file not found",
    ),
    "nmt prepared data folder missing": Case(
        lambda w: nmt_run(w, "nmt-train", w.tmp / "no_prepared"),
        lambda w: f"{w.tmp / 'no_prepared'}: prepared data folder not found",
    ),
    "nmt data folder not prepared": Case(
        lambda w: nmt_run(w, "nmt-train", w.tmp),
        lambda w: f"{w.tmp}: not a prepared NMT folder",
    ),
    "nmt teacher missing": Case(
        lambda w: nmt_distill(w, w.tmp / "none.pt"),
        lambda w: f"{w.tmp / 'none.pt'}: file not found",
    ),
    "nmt teacher needs a global outside the allow-list": Case(
        lambda w: nmt_distill(w, fairseq_malicious(w)),
        lambda w: (
            "evil_fairseq.pt: needs globals outside the fairseq allow-list: ['io.open']"
        ),
    ),
    "nmt teacher malicious legacy pickle": Case(
        lambda w: nmt_distill(w, malicious(w)), lambda w: f"{w.tmp / 'evil.pt'}: "
    ),
    "nmt teacher not a fairseq checkpoint": Case(
        lambda w: nmt_distill(w, w.teacher),
        lambda w: f"{w.teacher}: not a fairseq checkpoint",
    ),
}


def truncate_one_image(w: W) -> None:
    root = make_imagefolder(w.tmp / "imgs")
    image = root / "train" / "n02" / "n02_0.JPEG"
    image.write_bytes(image.read_bytes()[:100])


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    base = tmp_path_factory.mktemp("shared")
    data = make_toy_npz(base / "toy.npz", 200, 50)
    spec = RunSpec(
        task="toy",
        data=data,
        arch="mlp128",
        seed=0,
        recipe=Recipe.from_dict(HP),
        model_out=base / "teacher" / "model.pt",
        metrics_out=base / "teacher" / "metrics.json",
    )
    flag = torch.are_deterministic_algorithms_enabled()
    train_teacher(spec, alpha=0.1)
    torch.use_deterministic_algorithms(flag)
    return data, spec.model_out, make_imagefolder(base / "imagenet")


def test_catalogue_has_at_least_25_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_cleanly(name, shared, tmp_path, capsys, monkeypatch):
    case = CASES[name]
    w = W(*shared, out=tmp_path / "out", tmp=tmp_path / "in")
    w.out.mkdir(), w.tmp.mkdir()
    if case.prepare:
        case.prepare(w, monkeypatch)
    flag = torch.are_deterministic_algorithms_enabled()
    try:
        code = main(case.argv(w))
    except SystemExit as exit_:
        code = exit_.code
    finally:
        torch.use_deterministic_algorithms(flag)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("lskd"), err
    assert "Traceback" not in err
    assert case.expect(w) in lines[0], lines[0]
    if name == "teacher of a finished run truncated":  # the one command, exactly
        model = w.tmp / "run" / "model.pt"
        assert lines[0].endswith(f"{REBUILD}{model}"), lines[0]
    else:
        assert REBUILD not in lines[0], lines[0]
    assert sorted(p.name for p in w.out.iterdir()) == sorted(case.keep)
    assert not (w.tmp / MARKER).exists()


# --- the workflow config (validated by common.smk before any job runs) ---------------

MINE = {"weights": {"mlp512-mine": {"path": "/data/mine.pt"}}}
OTHER = {  # a second task, defined but not in run.tasks
    "data": {"dataset": "fashion_mnist", "root": "/usr/share/datasets/fashion-mnist"},
    "teacher_archs": ["mlp512"],
    "student_archs": ["mlp128"],
    "teacher": HP,
    "student": HP,
}


def fmnist(**keys) -> dict:
    return {"tasks": {"fmnist": keys}}


# name -> (merged into config/config.yaml as --configfile does, the one-line message)
CONFIG_CASES = {
    "unknown key": (
        fmnist(teacher={"epoch": 3}),
        "tasks.fmnist.teacher.epoch: unknown key",
    ),
    "wrong type": (fmnist(teacher={"lr": "fast"}), "tasks.fmnist.teacher.lr"),
    "alpha >= 1": ({"run": {"alphas": [0.0, 1.0]}}, "run.alphas[1]"),
    "T <= 0": ({"run": {"temperatures": [0]}}, "run.temperatures[0]"),
    "no teacher": (
        {"run": {"alphas": [], "regularizers": []}},
        "run.regularizers: no teacher",
    ),
    "unknown regularizer": (
        {"run": {"regularizers": [{"name": "maxsupp"}]}},
        "run.regularizers[0].name: unknown regularizer 'maxsupp'",
    ),
    "unknown objective parameter": (
        {"run": {"objectives": [{"name": "dkd", "gamma": 1}]}},
        "run.objectives[0].gamma: unknown parameter of objective dkd",
    ),
    "objective parameter out of range": (
        {"run": {"objectives": [{"name": "dkd", "warmup": -1}]}},
        "run.objectives[0].warmup: must be >= 0",
    ),
    "empty temperatures": ({"run": {"temperatures": []}}, "run.temperatures"),
    "unknown architecture": (
        fmnist(teacher_archs=["resnet5000"]),
        "tasks.fmnist.teacher_archs[0]: 'resnet5000' is not one of",
    ),
    "empty task list": ({"run": {"tasks": []}}, "run.tasks"),
    "undefined task": (
        {"run": {"tasks": ["nosuch"]}},
        "run.tasks[0]: task 'nosuch' is not defined under tasks",
    ),
    # --- values in paths --------------------------------------------------------------
    "alphas on one path": (
        {"run": {"alphas": [0.1, 0.1000001]}},
        "run.alphas[1]: 0.1000001 and 0.1 both map to path token a0.1",
    ),
    "temperatures on one path": (
        {"run": {"temperatures": [2.5, 2.5000001]}},
        "run.temperatures[1]: 2.5000001 and 2.5 both map to path token T2.5",
    ),
    "alpha with more digits than its path": (
        {"run": {"alphas": [0, 0.1234567]}},
        "run.alphas[1]: 0.1234567 has more than 6 significant digits; paths spell it "
        "a0.123457, so write 0.123457",
    ),
    "figure row not a temperature": (
        fmnist(penultimate={"temperatures": [5]}),
        "tasks.fmnist.penultimate.temperatures[0]: 5 is not in run.temperatures",
    ),
    # --- references between keys -----------------------------------------------------
    "teacher_weights alpha not run": (
        MINE | fmnist(teacher_weights={"0.2": "mine"}),
        "tasks.fmnist.teacher_weights: key '0.2' is not the alpha of a ce or ls "
        "teacher of the run (0, 0.1)",
    ),
    "teacher_weights alpha twice": (
        MINE | fmnist(teacher_weights={"0": "mine", "0.0": "mine"}),
        "tasks.fmnist.teacher_weights: keys '0' and '0.0' are the same alpha 0",
    ),
    "teacher_weights source not in weights": (
        fmnist(teacher_weights={"0.1": "mine"}),
        "tasks.fmnist.teacher_weights: alpha 0.1 -> mine needs weights.mlp512-mine, "
        "which is not in the config's weights",
    ),
    "student_init source not in weights": (
        fmnist(student_init="weights:nosuch"),
        "tasks.fmnist.student_init: weights:nosuch needs weights.mlp512-nosuch, which "
        "is not in the config's weights",
    ),
    "teacher_init source not in weights": (
        fmnist(teacher_init="weights:nosuch"),
        "tasks.fmnist.teacher_init: weights:nosuch needs weights.mlp512-nosuch",
    ),
    "teacher_init task undefined": (
        fmnist(teacher_init="task:imagenet"),
        "tasks.fmnist.teacher_init: task:imagenet: task 'imagenet' is not defined "
        "under tasks",
    ),
    "teacher_init task itself": (
        fmnist(teacher_init="task:fmnist"),
        "tasks.fmnist.teacher_init: task:fmnist: teachers would start from themselves "
        "(fmnist -> fmnist)",
    ),
    "teacher_init cycle": (
        {
            "run": {"tasks": ["fmnist", "other"]},
            "tasks": {
                "fmnist": {"teacher_init": "task:other"},
                "other": {**OTHER, "teacher_init": "task:fmnist"},
            },
        },
        "tasks.fmnist.teacher_init: task:other: teachers would start from themselves "
        "(fmnist -> other -> fmnist)",
    ),
    "teacher_init task without the arch": (
        {
            "tasks": {
                "fmnist": {"teacher_init": "task:other"},
                "other": {**OTHER, "teacher_archs": ["mlp128"]},
            }
        },
        "tasks.fmnist.teacher_init: task:other: task 'other' has no mlp512 teacher "
        "(its teacher_archs: mlp128)",
    ),
    "penultimate class beyond Fashion-MNIST": (
        fmnist(penultimate={"classes": [6, 0, 12]}),
        "tasks.fmnist.penultimate.classes[2]: class 12 is outside 0..9 (fashion_mnist "
        "has 10 classes)",
    ),
    "penultimate class beyond expect_classes": (
        fmnist(data={"dataset": "imagefolder", "expect_classes": 5}),
        "tasks.fmnist.penultimate.classes[0]: class 6 is outside 0..4 "
        "(data.expect_classes says 5 classes)",
    ),
    "eval_resize below image_size": (
        fmnist(augment={"image_size": 224, "eval_resize": 200}),
        "tasks.fmnist.augment.eval_resize: value 200 out of range (below image_size "
        "224: the 224 px centre crop must fit in the resized image)",
    ),
    "nmt.task missing": (
        {"nmt": {"task": None}},
        "nmt.task: required with nmt.pairs: name the NMT study (e.g. libreoffice); its "
        "runs go to results/nmt_<task>_<pair>/",
    ),
    "nmt.task not a path token": (
        {"nmt": {"task": "Libre Office"}},
        "nmt.task: 'Libre Office' does not match '^[a-z0-9]+$'",
    ),
    "crop_scale reversed": (
        fmnist(augment={"crop_scale": [1.0, 0.5]}),
        "tasks.fmnist.augment.crop_scale: value (1.0, 0.5) out of range (expected "
        "min <= max)",
    ),
}


def merged(overlay: dict) -> dict:
    """config/config.yaml with `overlay` merged in (dicts merge, lists are replaced)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, copy.deepcopy(overlay))
    return config


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_bad_config_names_the_key(name):
    overlay, expect = CONFIG_CASES[name]
    with pytest.raises(ConfigError) as err:
        validate_config(merged(overlay))
    assert expect in str(err.value)
    assert str(err.value).startswith(expect.split(":")[0] + ":")
    assert "\n" not in str(err.value)


def test_teacher_weights_keys_are_spelled_as_paths():
    config = merged(MINE | fmnist(teacher_weights={"0.0": "mine", "0.10": "mine"}))
    validate_config(config)
    assert config["tasks"]["fmnist"]["teacher_weights"] == {"0": "mine", "0.1": "mine"}


# Through Snakemake itself: every case stops before any job, with exactly one line and
# no traceback. `files` are written into the working directory first; `run` (not a
# dry run) for the checks Snakemake's onstart makes.
SNAKEMAKE_CASES = {
    "student_init source not in weights": {},
    "teacher_init task undefined": {},
    "alphas on one path": {},
    "penultimate class beyond Fashion-MNIST": {},
    "eval_resize below image_size": {},
    "teacher_weights alpha not run": {},
    "teacher_init task not run, teachers missing": {
        "overlay": {
            "tasks": {"fmnist": {"teacher_init": "task:other"}, "other": OTHER}
        },
        "expect": "tasks.fmnist.teacher_init: task:other: task 'other' is not in "
        "run.tasks, so its teachers must exist already, but "
        "results/other/teacher_mlp512_a0_s0/model.pt does not (add 'other' to "
        "run.tasks to train them)",
    },
    "data root is a file": {
        "overlay": fmnist(data={"root": "/etc/hostname"}),
        "expect": "tasks.fmnist.data.root: /etc/hostname is a file, not a directory",
        "run": True,
    },
    "data root missing": {
        "overlay": fmnist(data={"root": "/nonexistent/fmnist"}),
        "expect": "tasks.fmnist.data.root: directory /nonexistent/fmnist not found",
        "run": True,
    },
    "nmt.task missing": {},
    "run directory holds another data source": {
        "files": {
            "results/fmnist/data_source.json": json.dumps(
                {"dataset": "fashion_mnist", "root": "/srv/other-fmnist"}
            )
        },
        "overlay": {},
        "expect": "tasks.fmnist: results/fmnist holds runs of dataset fashion_mnist, "
        "root /srv/other-fmnist, not of dataset fashion_mnist, root "
        "/usr/share/datasets/fashion-mnist as this config says; give the task its own "
        "name or move results/fmnist away",
    },
    "NMT run directory holds another corpus": {
        "files": {
            "results/nmt_libreoffice_en_de/data_source.json": json.dumps(
                {"corpus": "files", "root": None, "files": {"train": "x.{lang}"}}
            )
        },
        "overlay": {},
        "expect": "nmt.task: results/nmt_libreoffice_en_de holds runs of corpus files, "
        "files {'train': 'x.{lang}'}, not of corpus libreoffice, root "
        "resources/raw/libreoffice as this config says; give the task its own name or "
        "move results/nmt_libreoffice_en_de away",
    },
    "default config file with a tab": {
        "files": {"config/config.yaml": "run:\n\tseeds: [0]\n"},
        "expect": "config/config.yaml: line 2, column 1: not valid YAML: a tab (YAML "
        "indents with spaces)",
    },
    "default config file not a mapping": {
        "files": {"config/config.yaml": "- run\n- tasks\n"},
        "expect": "config/config.yaml: a config file holds a mapping of keys (run:, "
        "tasks:, ...); this one holds a list",
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SNAKEMAKE_CASES))
def test_bad_config_stops_snakemake_before_any_job(name, tmp_path, snakemake_bin):
    case = SNAKEMAKE_CASES[name]
    overlay, expect = CONFIG_CASES.get(name, (None, None))
    overlay, expect = case.get("overlay", overlay), case.get("expect", expect)
    work = tmp_path / "work"
    for rel, text in case.get("files", {}).items():
        write(work / rel, text.encode())
    given = sorted(work.rglob("*"))
    args = ["--cores", "1"] if case.get("run") else ["-n"]
    if overlay is not None:
        (tmp_path / "bad.json").write_text(json.dumps(merged(overlay)))
        args += ["--configfile", str(tmp_path / "bad.json")]
    result = run_snakemake(work, *args, check=False)
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert result.returncode != 0
    assert errors == [f"lskd: config error: {expect}"], output
    assert "Traceback" not in output and "Exception" not in output
    for produced in ("results", "resources", "logs", "benchmarks"):
        found = sorted((work / produced).rglob("*"))
        assert all(path in given for path in found), found


@pytest.mark.slow
def test_configfile_not_a_mapping_is_refused_by_snakemake(tmp_path, snakemake_bin):
    """Snakemake reads --configfile files in its command line, before any lskd code:
    its own refusal (which does not name the file) still comes before any job."""
    bad = write(tmp_path / "list.yaml", b"- run\n- tasks\n")
    work = tmp_path / "work"
    result = run_snakemake(work, "--cores", "1", "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert "Config file must be given as JSON or YAML with keys at top level" in (
        result.stderr
    )
    assert not work.exists() or not any(work.iterdir())


# --- config files, data sources, image folders, bench scripts (issue 27) -------------

CONFIG_FILE_CASES = {
    "tab": ("run:\n\tseeds: [0]\n", "line 2, column 1: not valid YAML: a tab (YAML "
            "indents with spaces)"),
    "unclosed list": ("run: [1, 2\n", "line 2, column 1: not valid YAML: expected ',' "
                      "or ']', but got '<stream end>'"),
    "list at top level": ("- run\n- tasks\n", "a config file holds a mapping of keys "
                          "(run:, tasks:, ...); this one holds a list"),
    "empty": ("", "a config file holds a mapping of keys (run:, tasks:, ...); this one "
              "holds nothing"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CONFIG_FILE_CASES))
def test_config_file_mistakes_name_the_file_and_line(name, tmp_path):
    text, expect = CONFIG_FILE_CASES[name]
    path = write(tmp_path / "my.yaml", text.encode())
    with pytest.raises(ConfigError) as err:
        check_config_file(path)
    assert str(err.value) == f"{path}: {expect}"


def _ran(directory: Path) -> None:
    write(directory / "teacher_mlp512_a0_s0" / "metrics.json", b"{}")


def test_data_source_is_recorded_only_once_a_run_exists(tmp_path, monkeypatch):
    """A first run that failed on its data (no run finished) leaves no record, so the
    corrected config is not refused; once a run exists the record holds the real
    path, and the same folder by another spelling (a symlink) is the same data."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "fmnist-data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    stamp = tmp_path / "results" / "fmnist" / "data_source.json"
    bad = merged(fmnist(data={"root": str(tmp_path / "broken")}))
    check_data_sources(bad, True)  # the run failed: no run, no record
    assert not stamp.exists()
    good = merged(fmnist(data={"root": str(tmp_path / "link" / ".." / "link")}))
    check_data_sources(good)
    _ran(stamp.parent)
    check_data_sources(good, True)
    assert json.loads(stamp.read_text()) == {
        "dataset": "fashion_mnist",
        "root": str(data),
    }
    check_data_sources(merged(fmnist(data={"root": str(data)})))  # same data
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ConfigError) as err:
        check_data_sources(merged(fmnist(data={"root": str(other)})))
    assert str(err.value) == (
        f"tasks.fmnist: results/fmnist holds runs of dataset fashion_mnist, root "
        f"{data}, not of dataset fashion_mnist, root {other} as this config says; "
        "give the task its own name or move results/fmnist away"
    )


def test_hidden_files_and_folders_are_not_classes_or_images(tmp_path, capsys):
    root = make_imagefolder(tmp_path / "imgs")
    for hidden in ("train/.ipynb_checkpoints", "val/.ipynb_checkpoints"):
        write(root / hidden / "x-checkpoint.JPEG", b"not an image")
    write(root / "train" / "n01" / "._n01_0.JPEG", b"macOS metadata")
    write(root / "train" / "n01" / ".cache" / "a.JPEG", b"not an image")
    out = tmp_path / "data.json"
    argv = ["prepare", "--dataset", "imagefolder", "--root", str(root)]
    assert main([*argv, "--val-per-class", "1", "--out", str(out)]) == 0
    manifest = json.loads(out.read_text())
    files = [f for split in manifest["splits"].values() for f, _ in split]
    assert not [f for f in files if "/." in f or f.startswith(".")], files
    assert ".ipynb_checkpoints" not in json.dumps(manifest)


def test_bench_kill_resume_help_needs_no_pytest():
    """After the demo set-up (no pytest) --help works, and a run says in one line
    what to install."""
    hide = "import sys, runpy; sys.modules['pytest'] = None; sys.argv = {argv!r}; "
    hide += "runpy.run_path('bench/kill_resume.py', run_name='__main__')"
    script = str(REPO / "bench" / "kill_resume.py")
    help_ = subprocess.run(
        [sys.executable, "-c", hide.format(argv=[script, "--help"])],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert help_.returncode == 0 and "--kills" in help_.stdout, help_.stderr
    run = subprocess.run(
        [sys.executable, "-c", hide.format(argv=[script, "--kills", "1"])],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "bench/kill_resume.py: needs pytest (the test set-up): bash scripts/setup.sh "
        "--test, or .venv/bin/pip install -c constraints.txt pytest"
    )


def test_output_directories_must_be_writable(tmp_path, monkeypatch):
    """A read-only results/ (or a file in its place) stops a run at its start with
    one line, before any job; a directory not made yet is judged by its parent. The
    tests run as root, which may write anywhere, so the permission is simulated."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    check_writable(OUTPUT_DIRS)  # writable; logs/ etc. not there yet: the parent is
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: Path(p).name != "results" and real_access(p, mode)
    )
    with pytest.raises(OutputError) as err:
        check_writable(OUTPUT_DIRS)
    assert str(err.value) == (
        "results: not writable by this user; the workflow writes results/ (make it "
        "writable, or run in another directory with --directory)"
    )
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").rmdir()
    write(tmp_path / "logs", b"a file where a directory belongs")
    with pytest.raises(OutputError, match=r"^logs: not a directory; the workflow "):
        check_writable(OUTPUT_DIRS)
    with pytest.raises(SystemExit) as stop:  # how the workflow's onstart says it
        exit_on_error(check_writable, OUTPUT_DIRS)
    assert str(stop.value) == "lskd: logs: not a directory; the workflow writes logs/"
