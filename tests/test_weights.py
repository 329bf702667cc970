"""Importing foreign checkpoints (official format, torchvision, ours) and fine-tune
inits: exact weights, sha256 and arch checks, nothing written on refusal.
"""

import copy
import functools
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from lskd.errors import CheckpointError
from lskd.models import checkpoint
from lskd.models.registry import build_model
from lskd.models.weights import import_weights, init_model


class Payload:
    """Unpickling this object opens (so creates) `target`: arbitrary code execution."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


class Wrapper(nn.Module):
    """Stands in for DDP: its state_dict keys start with `module.`."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module


@functools.cache
def _built(num_classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
            m.num_batches_tracked.fill_(7)
    return model.eval()


def _resnet18(num_classes: int = 10, seed: int = 0) -> nn.Module:
    """torchvision resnet18 (weights=None) with non-trivial BatchNorm buffers; a fresh
    copy of a cached build (building costs more than copying).
    """
    return copy.deepcopy(_built(num_classes, seed))


def _load(path: Path) -> nn.Module:
    meta = checkpoint.load_model_file(path)
    model = build_model(meta["arch"], meta["num_classes"], meta["in_channels"], 224)
    model.load_state_dict(meta["state_dict"])
    return model.eval()


def _batch() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _plain(tmp_path: Path, model: nn.Module, name: str = "plain.pth") -> Path:
    path = tmp_path / name
    checkpoint.save(model.state_dict(), path)
    return path


def test_official_checkpoint_imports_with_identical_outputs(tmp_path):
    model = _resnet18()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model(_batch()).sum().backward()
    opt.step()  # the optimizer state now holds momentum tensors
    src = tmp_path / "teacher=resnet18-0.1-best.pth.tar"
    checkpoint.save(
        {
            "epoch": 3,
            "arch": "resnet18",
            "state_dict": Wrapper(model).state_dict(),
            "best_acc1": torch.tensor(70.1),
            "optimizer": opt.state_dict(),
            "teacher_alpha": 0.1,
        },
        src,
    )
    out = tmp_path / "weights" / "model.pt"
    summary = import_weights(src, out, "resnet18", checkpoint.sha256(src), "official")
    assert summary["num_classes"] == 10 and summary["in_channels"] == 3
    assert summary["keys"] == len(model.state_dict())
    meta = checkpoint.load_model_file(out)
    assert meta["role"] == "import" and meta["alpha"] == 0.1 and meta["T"] is None
    assert meta["source"] == "official"
    assert meta["source_sha256"] == checkpoint.sha256(src) == summary["sha256"]
    with torch.no_grad():
        assert torch.equal(_load(out)(_batch()), model(_batch()))


@pytest.mark.parametrize("wrap", ["plain", "compiled", "ddp_compiled", "last", "lskd"])
def test_other_layouts_import(tmp_path, wrap):
    model = _resnet18(num_classes=5)
    state = model.state_dict()
    obj = {
        "plain": state,
        "compiled": {f"_orig_mod.{k}": v for k, v in state.items()},
        "ddp_compiled": {f"module._orig_mod.{k}": v for k, v in state.items()},
        "last": {"epoch": 2, "model": state},
        "lskd": None,
    }[wrap]
    src = tmp_path / "src.pt"
    if obj is None:
        checkpoint.save_model(model, src, arch="resnet18", num_classes=5, alpha=0.0)
    else:
        checkpoint.save(obj, src)
    out = tmp_path / "out.pt"
    summary = import_weights(src, out, "resnet18")
    meta = checkpoint.load_model_file(out)
    assert meta["source"] == "src.pt"
    assert meta["alpha"] == (0.0 if wrap == "lskd" else None)
    assert summary["num_classes"] == 5
    for key, value in state.items():
        assert torch.equal(meta["state_dict"][key], value), key


def test_sha256_mismatch_writes_nothing(tmp_path):
    src = _plain(tmp_path, _resnet18())
    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError, match="sha256") as err:
        import_weights(src, out, "resnet18", "0" * 64, "x")
    assert str(src) in str(err.value) and "0" * 64 in str(err.value)
    assert checkpoint.sha256(src) in str(err.value)
    assert not out.exists()


def test_wrong_arch_names_keys_and_writes_nothing(tmp_path):
    src = _plain(tmp_path, _resnet18())
    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError, match="resnet34") as err:
        import_weights(src, out, "resnet34")
    assert str(src) in str(err.value) and "missing layer1.2." in str(err.value)
    state = _resnet18().state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(128, 32, 3, 3)
    checkpoint.save(state, src)
    with pytest.raises(CheckpointError, match="shape mismatch") as err:
        import_weights(src, out, "resnet18")
    assert "layer2.0.conv1.weight (file (128, 32, 3, 3), model (128, 64, 3, 3))" in str(
        err.value
    )
    official = tmp_path / "official.pth.tar"
    checkpoint.save({"arch": "resnet18", "state_dict": state}, official)
    with pytest.raises(CheckpointError, match="arch is 'resnet18', not 'resnet34'"):
        import_weights(official, out, "resnet34")
    assert sorted(tmp_path.iterdir()) == sorted([src, official])


def test_truncated_file_is_refused(tmp_path):
    src = _plain(tmp_path, _resnet18())
    cut = tmp_path / "cut.pth"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        import_weights(cut, out, "resnet18")
    assert not out.exists()


def test_malicious_pickle_is_refused(tmp_path):
    target = tmp_path / "pwned"
    src = tmp_path / "evil.pth.tar"
    state = _resnet18().state_dict()
    torch.save({"arch": "resnet18", "state_dict": state, "x": Payload(target)}, src)
    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError, match="sha256 mismatch"):  # checked first
        import_weights(src, out, "resnet18", "f" * 64)
    with pytest.raises(CheckpointError, match="weights_only"):
        import_weights(src, out, "resnet18")
    assert not target.exists() and not out.exists()


def test_alpha_is_filled_in_or_checked(tmp_path):
    src = tmp_path / "student.pth.tar"
    state = _resnet18().state_dict()
    checkpoint.save({"arch": "resnet18", "state_dict": state, "alpha": 0.1}, src)
    with pytest.raises(CheckpointError, match=r"alpha=0\.1 in the file, but alpha=0"):
        import_weights(src, tmp_path / "out.pt", "resnet18", alpha=0.0)
    assert not (tmp_path / "out.pt").exists()
    out = tmp_path / "plain.pt"
    summary = import_weights(_plain(tmp_path, _resnet18()), out, "resnet18", alpha=0.0)
    assert summary["alpha"] == 0.0 == checkpoint.load_model_file(out)["alpha"]


def test_missing_source_and_non_tensor_entries(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        import_weights(tmp_path / "nope.pth", tmp_path / "out.pt", "resnet18")
    src = tmp_path / "odd.pt"
    checkpoint.save({"state_dict": {"fc.weight": [1.0]}}, src)
    with pytest.raises(CheckpointError, match="'fc.weight' is a list"):
        import_weights(src, tmp_path / "out.pt", "resnet18")
    checkpoint.save({"epoch": 1}, src)
    with pytest.raises(CheckpointError, match="no weights found"):
        import_weights(src, tmp_path / "out.pt", "resnet18")
    assert not (tmp_path / "out.pt").exists()


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[nn.Module, Path]:
    """A 10-class resnet18 and its imported lskd model file (read-only)."""
    tmp_path = tmp_path_factory.mktemp("imported")
    source = _resnet18(num_classes=10)
    path = tmp_path / "import.pt"
    import_weights(_plain(tmp_path, source), path, "resnet18")
    return source, path


def test_init_model_keeps_fresh_classifier_for_other_class_count(imported):
    source, path = imported
    model = _resnet18(num_classes=7, seed=1)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    init_model(model, path, num_classes=7)
    for key, value in model.state_dict().items():
        want = fresh[key] if key.startswith("fc.") else source.state_dict()[key]
        assert torch.equal(value, want), key
    assert not torch.equal(
        fresh["layer4.1.conv2.weight"], source.layer4[1].conv2.weight
    )


def test_init_model_copies_classifier_for_same_class_count(imported):
    source, path = imported
    model = _resnet18(num_classes=10, seed=1)
    init_model(model, path, num_classes=10)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_init_model_refuses_another_backbone(imported):
    _, path = imported
    with pytest.raises(CheckpointError, match="layer1.2.conv1.weight") as err:
        init_model(build_model("resnet34", 7), path, num_classes=7)
    assert str(path) in str(err.value)
    grey = build_model("resnet18", 7, in_channels=1)
    with pytest.raises(CheckpointError, match=r"shape mismatch conv1\.weight"):
        init_model(grey, path, num_classes=7)


def test_init_model_require_head_refuses_other_class_count(imported):
    """A finished model (evaluated, not trained) must already have the data's head."""
    _, path = imported
    with pytest.raises(CheckpointError, match=r"10 classes, the data has 7"):
        init_model(_resnet18(num_classes=7, seed=1), path, 7, require_head=True)
    init_model(_resnet18(num_classes=10, seed=1), path, 10, require_head=True)


@pytest.mark.parametrize(
    ("arch", "channels", "size"),
    [("mlp128", 1, 28), ("mlp128", 3, 28), ("resnet18", 1, 28), ("resnet18", 3, 224)],
)
def test_import_builds_the_model_the_weights_were_trained_at(
    tmp_path, arch, channels, size
):
    """Issue 27: weights of an MLP on 28 px images failed the import, which built
    every model at 224 px ("file (128, 2352), model (128, 150528)")."""
    trained = build_model(arch, 10, channels, size)
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    summary = import_weights(tmp_path / "w.pt", tmp_path / "o.pt", arch)
    assert (summary["num_classes"], summary["in_channels"]) == (10, channels)
    task_model = build_model(arch, 10, channels, size)  # what train_teacher builds
    init_model(task_model, tmp_path / "o.pt", 10, require_head=True)
    for key, value in trained.state_dict().items():
        assert torch.equal(task_model.state_dict()[key], value), key
