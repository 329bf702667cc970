"""No partial outputs: every writer in src goes through `atomic_path`, and a crash or a
full disk in the middle of a real writer leaves the old file (or none), never a
truncated one, and no temporary file."""

from __future__ import annotations

import ast
import errno
import os
from pathlib import Path

import pytest
import torch

import lskd.atomic
from conftest import write_metrics
from lskd.analysis.tables import write_table
from lskd.atomic import write_json
from lskd.errors import OutputError
from lskd.models import checkpoint
from test_tables import _runs

SRC = Path(__file__).resolve().parents[1] / "src" / "lskd"
WRITERS = {"write_text", "write_bytes", "savefig", "to_csv", "savez", "save"}
TEMP_NAMES = {"tmp", "fh", "handle"}  # what `with atomic_path(p) as tmp` binds


def _target(call: ast.Call) -> ast.AST | None:
    """The path or handle a writer call writes to (None: returns a string)."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    if name in {"write_text", "write_bytes"}:
        return call.func.value
    if name == "save":  # torch.save(obj, f)
        return call.args[1] if len(call.args) > 1 else None
    return call.args[0] if call.args else None


def test_every_writer_in_src_writes_a_temporary_file():
    unsafe = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "atomic.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in WRITERS:
                target = _target(node)
                if func.attr == "save" and not (
                    isinstance(func.value, ast.Name) and func.value.id == "torch"
                ):
                    continue  # not torch.save
                if target is None or (
                    isinstance(target, ast.Name) and target.id in TEMP_NAMES
                ):
                    continue
                if isinstance(target, ast.Name) and target.id == "buffer":
                    continue  # checkpoint.save serialises to memory first
                unsafe.append(f"{path.name}:{node.lineno} {func.attr}")
            if isinstance(func, ast.Name) and func.id == "open" and len(node.args) > 1:
                mode = node.args[1]
                if isinstance(mode, ast.Constant) and set("wax") & set(mode.value):
                    target = node.args[0]
                    if not (isinstance(target, ast.Name) and target.id in TEMP_NAMES):
                        unsafe.append(f"{path.name}:{node.lineno} open")
    assert unsafe == []


def _only(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_killed_json_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"top1": 1.0})
    real = Path.write_text

    def half_then_killed(self, text, *a, **kw):
        real(self, text[: len(text) // 2])
        raise KeyboardInterrupt  # stands in for the kill arriving mid-write

    monkeypatch.setattr(Path, "write_text", half_then_killed)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"top1": 2.0, "history": list(range(100))})
    monkeypatch.undo()
    assert path.read_text() == '{\n  "top1": 1.0\n}\n'
    assert _only(tmp_path) == ["metrics.json"]


def test_killed_table_write_keeps_old_tables(tmp_path, monkeypatch):
    paths = write_metrics(tmp_path, _runs())
    out = [tmp_path / "tables" / f"t.{e}" for e in ("csv", "md", "tex")]
    write_table(paths, *out)
    before = {p.name: p.read_bytes() for p in out}

    def killed_before_rename(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(lskd.atomic.os, "replace", killed_before_rename)
    with pytest.raises(KeyboardInterrupt):
        write_table(paths, *out)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out} == before
    assert _only(out[0].parent) == ["t.csv", "t.md", "t.tex"]


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_full_while_saving_a_checkpoint(tmp_path, monkeypatch, where):
    path = tmp_path / "last.pt"
    checkpoint.save({"epoch": 1, "w": torch.zeros(3)}, path)
    before = path.read_bytes()

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "fsync":
        monkeypatch.setattr(lskd.atomic, "_fsync", full)
    else:  # the file object's write: checkpoint.save writes the bytes itself
        monkeypatch.setattr(checkpoint, "open", _opener(full), raising=False)
    with pytest.raises(OutputError) as err:
        checkpoint.save({"epoch": 2, "w": torch.ones(3)}, path)
    assert str(err.value) == f"{path}: cannot write (No space left on device)"
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _only(tmp_path) == ["last.pt"]


def _opener(fail):
    class Full:
        def __init__(self, path, mode):
            self.fh = open(path, mode)  # noqa: SIM115 - closed in __exit__

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(bytes(data)[:10])  # some bytes land, then the disk is full
            fail()

    return Full
