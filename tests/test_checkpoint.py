"""Safe checkpoint loading (weights_only), atomic writes and sha256."""

import ast
import hashlib
import os
import stat
from pathlib import Path

import pytest
import torch

from lskd.atomic import atomic_path, write_json
from lskd.errors import CheckpointError
from lskd.models import checkpoint
from lskd.models.registry import build_model

SRC = Path(__file__).resolve().parents[1] / "src" / "lskd"


class Payload:
    """Unpickling this object opens (so creates) `target`: arbitrary code execution."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def _state() -> dict:
    gen = torch.Generator().manual_seed(0)
    return {
        "epoch": 3,
        "recipe": {"epochs": 5, "lr": 0.1, "schedule": "cosine", "nesterov": False},
        "model": {"w": torch.randn(4, 3, generator=gen), "n": torch.tensor(7)},
        "history": [{"epoch": 1, "val_top1": 12.5}],
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
    }


def _assert_same(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor)
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "last.pt"
    state = _state()
    checkpoint.save(state, path)
    _assert_same(state, checkpoint.load(path))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_model_file_round_trip(tmp_path):
    model = build_model("mlp128", 10, 1, 28)
    path = tmp_path / "model.pt"
    checkpoint.save_model(model, path, arch="mlp128", num_classes=10, alpha=0.1)
    meta = checkpoint.load_model_file(path)
    assert meta["format"] == checkpoint.MODEL_FORMAT
    assert (meta["arch"], meta["num_classes"], meta["alpha"]) == ("mlp128", 10, 0.1)
    _assert_same(dict(model.state_dict()), meta["state_dict"])
    fresh = build_model("mlp128", 10, 1, 28)
    fresh.load_state_dict(meta["state_dict"])
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_model_file_needs_format_tag(tmp_path):
    path = tmp_path / "foreign.pt"
    checkpoint.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not an lskd model file") as err:
        checkpoint.load_model_file(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="file not found") as err:
        checkpoint.load(tmp_path / "none.pt")
    assert str(tmp_path / "none.pt") in str(err.value)


def test_not_a_dict_is_refused(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="expected a dict") as err:
        checkpoint.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("keep", [0, 10, 1000, 0.5, -1])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "last.pt"
    checkpoint.save(_state(), path)
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)  # one line


@pytest.mark.parametrize(
    "data",
    [
        b"this is not a checkpoint\n" * 20,  # IndexError in the legacy unpickler
        b"Q",  # IndexError
        b"M",  # struct.error
        b"hy\x92 ",  # KeyError
        b"co:\xcf<",  # UnicodeDecodeError
        b"\x89",  # EOFError
        b"\x14",  # UnpicklingError
        b"PK\x03\x04garbage",  # a broken zip
    ],
)
def test_garbage_file(tmp_path, data):
    path = tmp_path / "garbage.pt"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value)


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"epoch": 1, "payload": Payload(target)}, path)
    with pytest.raises(CheckpointError, match="weights_only") as err:
        checkpoint.load(path)
    assert str(path) in str(err.value)
    assert not target.exists()
    with pytest.raises(CheckpointError):
        checkpoint.load_model_file(path)
    assert not target.exists()


def test_malicious_payload_is_live(tmp_path):
    # guards the test above: without weights_only the payload really runs
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"payload": Payload(target)}, path)
    torch.load(path, weights_only=False)
    assert target.exists()


# --- atomic writes ------------------------------------------------------------------


def test_atomic_path_failure_keeps_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(path) as tmp:
        tmp.write_text("half of the new conte")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_failed_torch_save_keeps_old_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save({"epoch": 1}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - a lambda cannot be pickled
        checkpoint.save({"epoch": 2, "bad": lambda: None}, path)
    assert path.read_bytes() == before
    assert checkpoint.load(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_atomic_path_success_replaces(tmp_path):
    path = tmp_path / "deep" / "dir" / "out.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert path.read_text() == '{\n  "a": 2\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]
    # the usual file mode, not mkstemp's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    data = os.urandom(3 * (1 << 20) + 123)  # crosses the 1 MiB chunk boundary
    path.write_bytes(data)
    assert checkpoint.sha256(path) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert checkpoint.sha256(empty) == hashlib.sha256(b"").hexdigest()


# --- only checkpoint.py loads, and always with weights_only=True --------------------


def _torch_load_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "load"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "torch"
    ]


def test_torch_load_only_in_checkpoint_with_weights_only():
    files = sorted(SRC.rglob("*.py"))
    home = SRC / "models" / "checkpoint.py"
    assert home in files
    users = [p for p in files if "torch.load(" in p.read_text()]
    assert users == [home]
    assert [p for p in files if "torch.save(" in p.read_text()] == [home]
    for path in files:
        text = path.read_text()
        assert "weights_only=False" not in text, path
        assert "from torch import load" not in text, path
        assert "torch.serialization.load" not in text, path
    calls = _torch_load_calls(ast.parse(home.read_text()))
    assert len(calls) == home.read_text().count("torch.load(")
    assert calls
    for call in calls:
        kw = {k.arg: k.value for k in call.keywords}
        assert isinstance(kw.get("weights_only"), ast.Constant)
        assert kw["weights_only"].value is True


def test_models_import_nothing_above_them():
    """`lskd.models` is below `lskd.train`: its modules import no train, plan,
    analysis, nmt or cli module."""
    above = ("lskd.train", "lskd.plan", "lskd.analysis", "lskd.nmt", "lskd.cli")
    for path in sorted((SRC / "models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith(above), (path, name)
