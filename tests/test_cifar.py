"""CIFAR-100 / CIFAR-10 (issue 26): the archives' python layout read by the real reader
from files these tests generate, one-line errors for missing and damaged files, the
literature's CIFAR nets (parameter counts, the published module names and shapes),
released-teacher checkpoints imported through `weights:`, config/cifar100.yaml's plan
and an end-to-end run on generated CIFAR-100 files with resnet8 students."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, make_metrics, planned_jobs, run_cli, run_snakemake
from lskd.data.arrays import load_arrays, prepare_arrays, save_arrays
from lskd.data.cifar import CIFAR10, CIFAR100, write_archive
from lskd.errors import CheckpointError, ConfigError, DataError
from lskd.models import checkpoint
from lskd.models.registry import build_model, classifier
from lskd.models.weights import import_weights

N_TRAIN, N_TEST = 300, 100  # images per generated split


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Path:
    """Both archives, generated under one root (as torchvision's root holds them)."""
    root = tmp_path_factory.mktemp("cifar")
    write_archive(root, CIFAR100, N_TRAIN, N_TEST, seed=1)
    write_archive(root, CIFAR10, N_TRAIN, N_TEST, seed=2)
    return root


# ------------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    "dataset, reader", [("cifar100", CIFAR100), ("cifar10", CIFAR10)]
)
def test_the_archive_layout_reads_into_arrays(archives, tmp_path, dataset, reader):
    arrays = prepare_arrays(dataset, archives, val_size=50, split_seed=3)
    sizes = {s: len(v) for s, v in arrays.labels.items()}
    assert sizes == {"train": N_TRAIN - 50, "val": 50, "test": N_TEST}
    assert arrays.images["train"].shape[1:] == (3, 32, 32)
    assert arrays.images["train"].dtype == np.uint8
    assert arrays.class_names == tuple(f"class_{k}" for k in range(reader.classes))
    assert (arrays.mean, arrays.std) == (reader.MEAN, reader.STD)  # published stats
    # the rows of `data` are 1024 red, then green, then blue values of a 32x32 image
    with open(archives / reader.folder / reader.files["test"][0], "rb") as fh:
        raw = pickle.load(fh)
    first = np.asarray(raw["data"][0]).reshape(3, 32, 32)
    assert np.array_equal(arrays.images["test"][0], first)
    assert arrays.labels["test"][0] == raw[reader.label_key][0]
    # the hold-out is seeded and recorded: same seed, same images; none is trained on
    again = prepare_arrays(dataset, archives / reader.folder, val_size=50, split_seed=3)
    assert np.array_equal(again.held_out, arrays.held_out)
    other = prepare_arrays(dataset, archives, val_size=50, split_seed=4)
    assert not np.array_equal(other.held_out, arrays.held_out)
    save_arrays(arrays, tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz") as npz:
        assert np.array_equal(npz["held_out"], arrays.held_out)
        assert int(npz["split_seed"]) == 3
    loaded = load_arrays(tmp_path / "d.npz")
    assert np.array_equal(loaded.labels["val"], arrays.labels["val"])


def test_expected_counts_are_insisted_on(archives):
    with pytest.raises(DataError, match="train split has 300 images, expected 50000"):
        prepare_arrays("cifar100", archives, 50, 0, expect_train=50000)


def _copy(archives: Path, tmp_path: Path, reader) -> Path:
    root = tmp_path / "copy"
    (root / reader.folder).mkdir(parents=True)
    for f in (archives / reader.folder).iterdir():
        (root / reader.folder / f.name).write_bytes(f.read_bytes())
    return root


class Payload:
    def __reduce__(self):
        return (subprocess.call, (["true"],))


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing train", "cifar-100-python/train: file not found"),
        ("truncated train", "cifar-100-python/train: truncated or not a CIFAR pickle"),
        ("missing meta", "cifar-100-python/meta: file not found"),
        ("foreign pickle", "(UnpicklingError: refused global "),
        ("wrong shape", "'data' is uint8 (4, 100), expected uint8 (N, 3072)"),
    ],
)
def test_a_damaged_archive_file_is_named_in_one_line(
    archives, tmp_path, damage, message
):
    root = _copy(archives, tmp_path, CIFAR100)
    train = root / CIFAR100.folder / "train"
    if damage == "missing train":
        train.unlink()
    elif damage == "truncated train":
        train.write_bytes(train.read_bytes()[:5000])
    elif damage == "missing meta":
        (root / CIFAR100.folder / "meta").unlink()
    elif damage == "foreign pickle":
        train.write_bytes(pickle.dumps({"data": Payload()}, protocol=2))
    else:
        bad = {"data": np.zeros((4, 100), np.uint8), "fine_labels": [0] * 4}
        train.write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError) as err:
        prepare_arrays("cifar100", root, 50, 0)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_prepare_names_the_missing_file_in_one_line(archives, tmp_path):
    root = _copy(archives, tmp_path, CIFAR100)
    (root / CIFAR100.folder / "test").unlink()
    result = run_cli(
        "prepare", "--dataset", "cifar100", "--root", str(root), "--val-size", "50",
        "--out", str(tmp_path / "d.npz"),
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "cifar-100-python/test: file not found" in errors[0]
    assert not (tmp_path / "d.npz").exists()


# ----------------------------------------------------------------- the models

# exact counts (100 classes) and the figures the issue quotes from the literature
# (CRD, Tian et al. 2020, and the papers reusing its nets), which round or truncate
PARAMS = {  # arch: (exact, published in millions)
    "resnet8": (83_892, None),
    "resnet14": (181_108, None),
    "resnet20": (278_324, 0.28),
    "resnet32": (472_756, None),
    "resnet44": (667_188, None),
    "resnet56": (861_620, 0.86),
    "resnet110": (1_736_564, None),
    "resnet8x4": (1_233_540, 1.2),
    "resnet32x4": (7_433_860, 7.4),
    "wrn_16_1": (180_916, None),
    "wrn_16_2": (703_284, 0.7),
    "wrn_40_1": (569_780, None),
    "wrn_40_2": (2_255_156, 2.2),
    "vgg8": (3_965_028, None),
    "vgg13": (9_462_180, None),
    "mobile_half": (812_836, None),
    "shufflev1": (949_258, None),
    "shufflev2": (1_355_528, None),
}


@pytest.mark.parametrize("arch", sorted(PARAMS))
def test_parameter_counts_match_the_published_ones(arch):
    model = build_model(arch, 100, 3, 32)
    exact, published = PARAMS[arch]
    n = sum(p.numel() for p in model.parameters())
    assert n == exact
    if published is not None:  # within one unit of the published figure's last digit
        digits = len(str(published).split(".")[1])
        assert abs(n / 1e6 - published) < 10**-digits, (n, published)
    head = classifier(model)  # the penultimate layer is the input of the last Linear
    features = {}
    head.register_forward_hook(lambda m, i, o: features.update(x=i[0]))
    assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    assert features["x"].shape == (2, head.in_features)


def test_grey_28px_inputs_run():
    for arch in ("resnet8", "wrn_16_1", "vgg8"):
        assert build_model(arch, 10, 1, 28).eval()(torch.zeros(1, 1, 28, 28)).shape == (
            1,
            10,
        )


def _bn(keys: dict, name: str, c: int) -> None:
    for k in ("weight", "bias", "running_mean", "running_var"):
        keys[f"{name}.{k}"] = (c,)
    keys[f"{name}.num_batches_tracked"] = ()


def published_resnet(depth: int, f: tuple[int, ...], classes: int = 100) -> dict:
    """Key -> shape of RepDistiller's `models/resnet.py` ResNet (basic blocks)."""
    keys, n, inplanes = {"conv1.weight": (f[0], 3, 3, 3)}, (depth - 2) // 6, f[0]
    _bn(keys, "bn1", f[0])
    for layer, (planes, stride) in enumerate(zip(f[1:], (1, 2, 2), strict=True), 1):
        for b in range(n):
            p, cin = f"layer{layer}.{b}", inplanes if b == 0 else planes
            keys[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            _bn(keys, f"{p}.bn1", planes)
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            _bn(keys, f"{p}.bn2", planes)
            if b == 0 and (stride != 1 or inplanes != planes):
                keys[f"{p}.downsample.0.weight"] = (planes, inplanes, 1, 1)
                _bn(keys, f"{p}.downsample.1", planes)
        inplanes = planes
    keys["fc.weight"], keys["fc.bias"] = (classes, f[3]), (classes,)
    return keys


def published_wrn(depth: int, widen: int, classes: int = 100) -> dict:
    """Key -> shape of RepDistiller's `models/wrn.py` WideResNet."""
    ch, n = [16, 16 * widen, 32 * widen, 64 * widen], (depth - 4) // 6
    keys = {"conv1.weight": (16, 3, 3, 3)}
    for block in (1, 2, 3):
        for i in range(n):
            p = f"block{block}.layer.{i}"
            cin, cout = ch[block - 1] if i == 0 else ch[block], ch[block]
            _bn(keys, f"{p}.bn1", cin)
            keys[f"{p}.conv1.weight"] = (cout, cin, 3, 3)
            _bn(keys, f"{p}.bn2", cout)
            keys[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            if cin != cout:
                keys[f"{p}.convShortcut.weight"] = (cout, cin, 1, 1)
    _bn(keys, "bn1", ch[3])
    keys["fc.weight"], keys["fc.bias"] = (classes, ch[3]), (classes,)
    return keys


def published_vgg13(classes: int = 100) -> dict:
    """Key -> shape of RepDistiller's `models/vgg.py` vgg13_bn (conv, BN, ReLU per
    layer: conv at index 3j, BN at 3j + 1)."""
    keys, cin = {}, 3
    for block, widths in enumerate(
        [(64, 64), (128, 128), (256, 256), (512, 512), (512, 512)]
    ):
        for j, w in enumerate(widths):
            keys[f"block{block}.{3 * j}.weight"] = (w, cin, 3, 3)
            keys[f"block{block}.{3 * j}.bias"] = (w,)
            _bn(keys, f"block{block}.{3 * j + 1}", w)
            cin = w
    keys["classifier.weight"], keys["classifier.bias"] = (classes, 512), (classes,)
    return keys


PUBLISHED = {
    "resnet32x4": lambda: published_resnet(32, (32, 64, 128, 256)),
    "resnet8x4": lambda: published_resnet(8, (32, 64, 128, 256)),
    "resnet56": lambda: published_resnet(56, (16, 16, 32, 64)),
    "resnet20": lambda: published_resnet(20, (16, 16, 32, 64)),
    "resnet8": lambda: published_resnet(8, (16, 16, 32, 64)),
    "wrn_40_2": lambda: published_wrn(40, 2),
    "wrn_16_2": lambda: published_wrn(16, 2),
    "wrn_40_1": lambda: published_wrn(40, 1),
    "vgg13": published_vgg13,
}


@pytest.mark.parametrize("arch", sorted(PUBLISHED))
def test_module_names_and_shapes_are_the_published_ones(arch):
    ours = {k: tuple(v.shape) for k, v in build_model(arch, 100).state_dict().items()}
    assert ours == PUBLISHED[arch]()


def released_checkpoint(path: Path, arch: str, prefix: str = "", seed: int = 0) -> dict:
    """A teacher checkpoint as RepDistiller's train_teacher.py saves it
    (`ckpt_epoch_240.pth`): epoch, `model` (the state_dict, names and shapes of the
    published definition), accuracy and the optimizer state. Returns the state_dict."""
    gen = torch.Generator().manual_seed(seed)
    state = {
        k: torch.randint(0, 100, shape, generator=gen)
        if k.endswith("num_batches_tracked")
        else torch.rand(shape, generator=gen) + 0.5
        for k, shape in PUBLISHED[arch]().items()
    }
    params = [i for i, k in enumerate(state) if "running" not in k]
    torch.save(
        {
            "epoch": 240,
            "model": {prefix + k: v for k, v in state.items()},
            "accuracy": torch.tensor(79.42),
            "optimizer": {
                "state": {},
                "param_groups": [
                    {
                        "lr": 5e-5,
                        "momentum": 0.9,
                        "weight_decay": 5e-4,
                        "params": params,
                    }
                ],
            },
        },
        path,
    )
    return state


@pytest.mark.parametrize("arch, prefix", [("resnet32x4", ""), ("wrn_40_2", "module.")])
def test_a_released_teacher_imports_with_its_sha256(tmp_path, arch, prefix):
    src = tmp_path / "ckpt_epoch_240.pth"
    state = released_checkpoint(src, arch, prefix)
    digest = checkpoint.sha256(src)
    out = tmp_path / f"{arch}-crd.pt"
    summary = import_weights(src, out, arch, digest, alpha=0.0)
    assert (summary["num_classes"], summary["in_channels"]) == (100, 3)
    assert summary["sha256"] == digest and summary["keys"] == len(state)
    meta = checkpoint.load_model_file(out)
    model = build_model(arch, meta["num_classes"], meta["in_channels"], 32)
    model.load_state_dict(meta["state_dict"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        import_weights(src, tmp_path / "other.pt", arch, "0" * 64)
    with pytest.raises(CheckpointError, match="do not fit arch 'resnet8x4'"):
        import_weights(src, tmp_path / "other.pt", "resnet8x4", digest)
    assert not (tmp_path / "other.pt").exists()


# ------------------------------------------------------------------- the recipe


def test_milestones_decay_the_lr_at_those_epochs():
    from lskd.train.optim import make_optimizer, make_scheduler
    from lskd.train.recipe import Recipe

    hp = {"epochs": 8, "batch_size": 64, "lr": 0.05, "schedule": "step"}
    recipe = Recipe.from_dict({**hp, "milestones": [5, 3]})
    assert recipe.milestones == (3, 5)
    assert recipe.to_dict()["milestones"] == [3, 5]
    assert "milestones" not in Recipe.from_dict(hp).to_dict()  # older records unchanged
    opt = make_optimizer(torch.nn.Linear(2, 2), recipe)
    sched, lrs = make_scheduler(opt, recipe, steps_per_epoch=2), []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    per_epoch = lrs[::2]
    assert per_epoch == pytest.approx([0.05] * 3 + [0.005] * 2 + [0.0005] * 3)
    with pytest.raises(ConfigError, match="milestones: only with schedule: step"):
        Recipe.from_dict({**hp, "schedule": "cosine", "milestones": [3]})


# ---------------------------------------------------------------- reference rows


def test_tables_of_a_published_pair_carry_the_reference_rows(tmp_path):
    from conftest import write_metrics
    from lskd.analysis.tables import write_table

    def runs(classes):
        pair = {"task": "c", "teacher_arch": "resnet32x4", "student_arch": "resnet8x4"}
        chance = {"chance": {"classes": classes, "at_chance": False}}
        out = [make_metrics("teacher", a, **pair, **chance) for a in (0.0, 0.1)]
        return out + [
            make_metrics("student", a, 4.0, **pair, **chance) for a in (0.0, 0.1)
        ]

    files = [tmp_path / f"t.{e}" for e in ("csv", "md", "tex")]
    table = write_table(write_metrics(tmp_path / "c100", runs(100)), *files)
    row = "Reference (RepDistiller README): KD resnet8x4 (0.1 CE + 0.9 KD, T=4)"
    assert table.loc[row].tolist() == ["73.33", "–"]
    assert (
        table.loc["Reference (RepDistiller README): teacher resnet32x4 (CE)", "CE"]
        == "79.42"
    )
    md = files[1].read_text()
    assert "best epoch on the test set" in md and "72.50" in md
    table = write_table(write_metrics(tmp_path / "c10", runs(10)), *files)  # CIFAR-10
    assert not any(str(i).startswith("Reference") for i in table.index)


# ----------------------------------------------------------------- the workflow

CIFAR100_YAML = REPO / "config" / "cifar100.yaml"


@pytest.mark.parametrize("fused", [True, False])
def test_cifar100_config_plans_the_published_pairs(tmp_path, snakemake_bin, fused):
    configs = [str(CIFAR100_YAML)]
    if not fused:
        (tmp_path / "sep.yaml").write_text("run: {fuse_temperatures: false}\n")
        configs.append(str(tmp_path / "sep.yaml"))
    jobs = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", *configs))
    config = yaml.safe_load(CIFAR100_YAML.read_text())
    assert config["run"]["temperatures"] == [1, 2, 3, 4, 64]
    pairs = {
        (t["teacher_archs"][0], t["student_archs"][0]) for t in config["tasks"].values()
    }
    assert pairs == {
        ("resnet32x4", "resnet8x4"),
        ("wrn_40_2", "wrn_16_2"),
        ("resnet56", "resnet20"),
    }
    assert jobs["prepare_data"] == 3
    assert jobs["train_teacher"] == 3 * 2 * 3  # pairs x alphas x seeds
    if fused:
        assert jobs["distill_students"] == 18 and "distill_student" not in jobs
    else:
        assert jobs["distill_student"] == 18 * 5
    assert jobs["make_table"] == jobs["delta"] == 3
    student = config["tasks"]["cifar100x4"]["student"]
    assert (student["lr"], student["batch_size"], student["epochs"]) == (0.05, 64, 240)
    assert student["milestones"] == [150, 180, 210] and student["weight_decay"] == 5e-4


def test_end_to_end_on_generated_cifar100(tmp_path, snakemake_bin):
    """The whole DAG on generated CIFAR-100 files: the alpha = 0 teacher is a released
    checkpoint (RepDistiller layout, imported with its sha256), the alpha = 0.1 one is
    trained; resnet8 students of both in one fused sweep of 2 T each."""
    root = tmp_path / "raw"
    write_archive(root, CIFAR100, 500, 200, seed=5)  # >= 2 of each class kept
    ckpt = tmp_path / "ckpt_epoch_240.pth"
    released_checkpoint(ckpt, "resnet8")
    steps = {"batch_size": 50, "lr": 0.05, "eval_batch_size": 200, "epochs": 1}
    overlay = {
        "run": {
            "tasks": ["cifar"],
            "alphas": [0.0, 0.1],
            "temperatures": [1, 4],
            "seeds": [0],
        },
        "nmt": {"pairs": []},
        "weights": {
            "resnet8-crd": {"path": str(ckpt), "sha256": checkpoint.sha256(ckpt)}
        },
        "tasks": {
            "cifar": {
                "data": {"dataset": "cifar100", "root": str(root), "val_size": 100},
                "augment": {"pad": 4, "hflip": True},
                "teacher_weights": {"0": "crd"},
                "teacher_archs": ["resnet8"],
                "student_archs": ["resnet8"],
                "teacher": {**steps, "schedule": "step", "milestones": [1]},
                "student": {**steps, "selection": "best_val"},
                "penultimate": {
                    "classes": [4, 55, 30],
                    "train_per_class": 2,
                    "test_per_class": 2,
                },
            }
        },
    }
    config = tmp_path / "cifar.yaml"
    config.write_text(yaml.safe_dump(overlay))
    run_snakemake(tmp_path, "--cores", "2", "--configfile", str(config))
    results = tmp_path / "results" / "cifar"
    imported = json.loads(
        (results / "teacher_resnet8_a0_s0" / "metrics.json").read_text()
    )
    assert imported["selection"] == "imported"
    for alpha in ("a0", "a0.1"):
        for T in (1, 4):
            run = (
                results / f"teacher_resnet8_{alpha}_s0" / f"student_resnet8_all_T{T}_s0"
            )
            metrics = json.loads((run / "metrics.json").read_text())
            assert metrics["fused_temperatures"] == [1, 4]
            assert metrics["chance"]["classes"] == 100
            assert (run / "projection.npz").is_file()
    table = (
        tmp_path / "results" / "tables" / "cifar_resnet8-resnet8_all.md"
    ).read_text()
    assert "Student resnet8" in table
    data = np.load(tmp_path / "resources" / "data" / "cifar" / "dataset.npz")
    assert (
        data["images_train"].shape == (400, 3, 32, 32) and len(data["held_out"]) == 100
    )
