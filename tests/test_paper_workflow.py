"""config/paper.yaml's DAG on generated data: a tiny ImageNet-style folder of real
JPEGs (loaded by DALI in its CPU mode) and a tiny CUB-layout folder, with the recipes
shrunk to one epoch at 64 px by an override config. Same rules and code as at paper
scale."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
CLASSES = ["n001", "n002", "n003"]


def _jpeg(path: Path, label: int, i: int) -> None:
    rng = np.random.default_rng(100 * label + i)
    pixels = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8)
    pixels[..., label] += 180  # class = dominant colour channel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)


def make_imagefolder(root: Path) -> None:
    for label, wnid in enumerate(CLASSES):
        for i in range(8):
            _jpeg(root / "train" / wnid / f"{wnid}_{i}.JPEG", label, i)
        for i in range(4):
            _jpeg(root / "val" / wnid / f"val_{i}.JPEG", label, 50 + i)


def make_cub(root: Path) -> None:
    images, split, labels, classes = [], [], [], []
    n = 0
    for label in range(3):
        folder = f"{label + 1:03d}.Bird_{label}"
        classes.append(f"{label + 1} {folder}")
        for i in range(12):
            n += 1
            rel = f"{folder}/Bird_{label}_{i}.jpg"
            _jpeg(root / "images" / rel, label, i)
            images.append(f"{n} {rel}")
            split.append(f"{n} {int(i < 8)}")
            labels.append(f"{n} {label + 1}")
    for name, lines in (
        ("images", images),
        ("train_test_split", split),
        ("image_class_labels", labels),
        ("classes", classes),
    ):
        (root / f"{name}.txt").write_text("\n".join(lines) + "\n")


def tiny_task(root: Path, augment: dict) -> dict:
    """Override of one paper task: generated data, 1 epoch, ResNet-18 teacher."""
    recipe = {"epochs": 1, "batch_size": 4, "processes": 1, "eval_batch_size": 8}
    return {
        "data": {
            "root": str(root),
            "val_per_class": 2,
            "expect_classes": 3,
            "expect_train": 24,
            "expect_test": 12,
        },
        "augment": augment,
        "teacher_archs": ["resnet18"],
        "student_archs": ["resnet18", "mobilenet_v2"],
        "teacher": recipe,
        "student": recipe,
    }


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    pytest.importorskip("nvidia.dali", reason="DALI (lskd[dali]) not installed")
    base = tmp_path_factory.mktemp("paper")
    make_imagefolder(base / "imagenet")
    make_cub(base / "cub")
    weights = {}
    for arch in ("resnet18", "mobilenet_v2"):
        path = base / f"{arch}-ref.pth"
        torch.save(torchvision.models.get_model(arch, weights=None).state_dict(), path)
        weights[f"{arch}-torchvision"] = {"path": str(path)}
    official = torchvision.models.resnet18(weights=None, num_classes=3).state_dict()
    # A published teacher in the official code's format
    # (docs/recipes.md#official-checkpoints).
    torch.save(
        {
            "epoch": 89,
            "arch": "resnet18",
            "best_acc1": torch.tensor(1.0),
            "state_dict": {f"module.{k}": v for k, v in official.items()},
        },
        base / "teacher=resnet18-0.0-best.pth.tar",
    )
    weights["resnet18-official"] = {
        "path": str(base / "teacher=resnet18-0.0-best.pth.tar")
    }
    tiny = {"image_size": 64, "eval_resize": 72}  # >= 64 px: the pretrained stems fit
    override = {
        "run": {"tasks": ["imagenet", "cub200"], "temperatures": [1, 3]},
        "weights": weights,
        "tasks": {
            "imagenet": {
                **tiny_task(base / "imagenet", tiny),
                "teacher_weights": {"0": "official"},  # skip training this teacher
                "penultimate": {
                    "classes": [0, 1, 2],
                    "train_per_class": 4,
                    "test_per_class": 2,
                    "temperatures": [1, 3],
                },
            },
            "cub200": tiny_task(base / "cub", tiny),
        },
        "nmt": {"pairs": []},  # NMT end to end: tests/test_nmt_pipeline.py
    }
    (base / "override.yaml").write_text(yaml.safe_dump(override))
    work = base / "work"
    cmd = [
        "snakemake",
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(work),
        "--cores",
        "2",
        "--configfile",
        str(REPO / "config/paper.yaml"),
        str(base / "override.yaml"),
    ]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    return work


def test_every_paper_run_finished(paper_run, snakemake_bin):
    runs = [
        json.loads(p.read_text()) for p in paper_run.glob("results/**/metrics.json")
    ]
    teachers = [r for r in runs if r["role"] == "teacher"]
    students = [r for r in runs if r["role"] == "student"]
    assert len(teachers) == 2 * 2 and len(students) == 2 * 2 * 2 * 2
    for run in runs:
        loader = "dali" if run["task"] == "imagenet" else "torchvision"
        assert run["config"]["loader"] == loader
        if run["selection"] != "imported":  # the published teacher is not trained
            assert run["history"][0]["images_per_s"] > 0


def test_inits_chain_as_the_paper(paper_run, snakemake_bin):
    for alpha in ("0", "0.1"):
        cub = json.loads(
            (
                paper_run / f"results/cub200/teacher_resnet18_a{alpha}_s0/metrics.json"
            ).read_text()
        )
        assert cub["config"]["init"] == (
            f"results/imagenet/teacher_resnet18_a{alpha}_s0/model.pt"
        )
        student = json.loads(
            (
                paper_run / f"results/cub200/teacher_resnet18_a{alpha}_s0/"
                "student_mobilenet_v2_all_T3_s0/metrics.json"
            ).read_text()
        )
        assert (
            student["config"]["init"] == "resources/weights/mobilenet_v2-torchvision.pt"
        )
    manifest = json.loads(
        (paper_run / "resources/data/cub200/dataset.json").read_text()
    )
    assert {k: len(v) for k, v in manifest["splits"].items()} == {
        "train": 24 - 3 * 2,
        "val": 3 * 2,
        "test": 12,
    }


def test_paper_tables_and_figures(paper_run, snakemake_bin):
    for task in ("imagenet", "cub200"):
        for student in ("resnet18", "mobilenet_v2"):
            table = pd.read_csv(
                paper_run / f"results/tables/{task}_resnet18-{student}_all.csv",
                index_col=0,
            )
            assert list(table.index) == [
                "Teacher resnet18",
                f"Student {student}, T=1",
                f"Student {student}, T=3",
            ]
    figures = sorted(p.name for p in (paper_run / "results/figures").glob("pen*.png"))
    diffusion = sorted(
        p.name for p in (paper_run / "results/figures").glob("diff*.png")
    )
    assert diffusion == [
        "diffusion_imagenet_resnet18-mobilenet_v2_all.png",
        "diffusion_imagenet_resnet18-resnet18_all.png",
    ]
    assert figures == [
        "penultimate_imagenet_resnet18-mobilenet_v2_all.png",
        "penultimate_imagenet_resnet18-resnet18_all.png",
        "penultimate_imagenet_resnet18-teachers.png",
    ]


def test_published_teacher_is_imported_not_trained(paper_run, snakemake_bin):
    imported = json.loads(
        (paper_run / "results/imagenet/teacher_resnet18_a0_s0/metrics.json").read_text()
    )
    trained = json.loads(
        (
            paper_run / "results/imagenet/teacher_resnet18_a0.1_s0/metrics.json"
        ).read_text()
    )
    assert (imported["selection"], imported["epochs"], imported["history"]) == (
        "imported",
        0,
        [],
    )
    assert imported["config"]["init"] == "resources/weights/resnet18-official.pt"
    assert trained["selection"] == "best_val" and trained["epochs"] == 1
    caption = (
        paper_run / "results/tables/imagenet_resnet18-resnet18_all.md"
    ).read_text()
    assert "imported checkpoint" in caption.splitlines()[0]
