"""What only a GPU can check (marker `gpu`: skipped without CUDA; scripts/gpu_check.sh
runs these on a GPU machine, docs/performance.md#the-gpu-check): bf16 autocast with
channels_last against a float64 reference, training jobs end to end on CUDA
(deterministic repeats, the fused sweep bit for bit against separate jobs,
torch.compile, the `lskd` command line on JPEG files), a NCCL process group under
DistributedDataParallel, and DALI's GPU decoder against torchvision's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import make_toy_npz, run_cli
from lskd.models import checkpoint
from lskd.models.registry import build_model
from lskd.train.job import RunSpec, distill_student, distill_students, train_teacher
from lskd.train.recipe import Recipe

pytestmark = pytest.mark.gpu

DEVICE = "cuda"
TEMPS = [1.0, 4.0]


@pytest.fixture(scope="module", autouse=True)
def _cublas_workspace():
    """Deterministic cuBLAS needs its workspace setting before the first handle: set
    it before any test of this module touches the GPU (`seed_everything` would set
    it only at the first training job)."""
    if "CUBLAS_WORKSPACE_CONFIG" in os.environ:
        yield
        return
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    yield
    os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_toy_npz(tmp_path_factory.mktemp("toy") / "dataset.npz", 384, 64)


def spec(data: Path, out: Path, arch: str, **kw) -> RunSpec:
    """One epoch of 6 steps of 64 images on the GPU, validated at its end."""
    recipe = Recipe.from_dict(
        {"epochs": 1, "batch_size": 64, "lr": 0.05, "selection": "best_val"}
    )
    fields = dict(
        task="toy",
        data=data,
        arch=arch,
        seed=1,
        recipe=recipe,
        model_out=out / "model.pt",
        metrics_out=out / "metrics.json",
        augment={"pad": 2, "hflip": True},
        device=DEVICE,
    )
    return RunSpec(**(fields | kw))


def weights(run: RunSpec) -> dict[str, torch.Tensor]:
    return checkpoint.load_model_file(run.model_out)["state_dict"]


def metrics(run: RunSpec) -> dict:
    return json.loads(run.metrics_out.read_text())


def same_run(a: RunSpec, b: RunSpec) -> None:
    """Same weights bit for bit and the same history and metrics, timings apart."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name
    ma, mb = metrics(a), metrics(b)
    for key in ("top1", "top5", "chosen_epoch"):
        assert ma[key] == mb[key], key
    for ha, hb in zip(ma["history"], mb["history"], strict=True):
        ha, hb = ({k: v for k, v in h.items() if k != "images_per_s"} for h in (ha, hb))
        assert ha == hb


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref).norm() / ref.norm())


def test_bf16_channels_last_forward_is_close_to_float64():
    """The CUDA path of every job (bf16 autocast, channels_last weights and inputs)
    computes the same function as a float64 reference, to bf16 accuracy."""
    torch.manual_seed(0)
    model = build_model("resnet18", 10, 3, 64).eval()
    x = torch.randn(16, 3, 64, 64)
    with torch.no_grad():
        ref = model.double()(x.double())
        model = model.float().to(DEVICE).to(memory_format=torch.channels_last)
        xc = x.to(DEVICE).contiguous(memory_format=torch.channels_last)
        fp32 = model(xc)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = model(xc)
    assert bf16.dtype == torch.bfloat16 and torch.isfinite(bf16).all()
    assert relative_error(fp32.cpu(), ref) < 1e-2  # TF32 convolutions at most
    assert relative_error(bf16.cpu(), ref) < 5e-2


def test_deterministic_cuda_training_repeats_bit_for_bit(data, tmp_path):
    """`deterministic: true` on the GPU: a ResNet-18 teacher (bf16, channels_last)
    trained twice gives the same weights, history and metrics."""
    a, b = (spec(data, tmp_path / name, "resnet18") for name in ("a", "b"))
    for run in (a, b):
        train_teacher(run, alpha=0.1)
    assert metrics(a)["device"] == "cuda:0"
    same_run(a, b)


def test_cuda_fused_sweep_equals_separate_jobs(data, tmp_path):
    """The fused sweep writes on the GPU what separate jobs write, bit for bit."""
    teacher = spec(data, tmp_path / "teacher", "resnet18")
    train_teacher(teacher, alpha=0.1)
    path = teacher.model_out

    def students(root: str) -> list[RunSpec]:
        return [spec(data, tmp_path / root / f"T{T:g}", "resnet18") for T in TEMPS]

    separate, fused = students("separate"), students("fused")
    for run, T in zip(separate, TEMPS, strict=True):
        distill_student(run, path, T)
    distill_students(fused, path, TEMPS)
    for got, expected in zip(fused, separate, strict=True):
        same_run(got, expected)
    assert not torch.equal(
        weights(fused[0])["fc.weight"], weights(fused[1])["fc.weight"]
    )


def test_compiled_training_matches_eager(data, tmp_path):
    """`compile: true` on the GPU: the job finishes, its model file holds the bare
    module's weights (no torch.compile prefix) and its first epoch's loss is that of
    the eager job, to kernel rounding."""
    eager = spec(data, tmp_path / "eager", "mlp128")
    compiled = spec(data, tmp_path / "compiled", "mlp128", compile=True)
    for run in (eager, compiled):
        train_teacher(run, alpha=0.0)
    assert weights(compiled).keys() == weights(eager).keys()
    assert metrics(compiled)["config"]["compile"] is True
    loss = [metrics(r)["history"][0]["train_loss"] for r in (eager, compiled)]
    assert loss[1] == pytest.approx(loss[0], rel=0.05)


NCCL_SCRIPT = """
import copy, os, sys
import torch, torch.distributed as dist, torch.nn.functional as F
from lskd.models.registry import build_model

os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
dev = torch.device("cuda", 0)
torch.cuda.set_device(dev)
dist.init_process_group("nccl", rank=0, world_size=1)
t = torch.arange(4.0, device=dev)
dist.all_reduce(t)
assert t.tolist() == [0.0, 1.0, 2.0, 3.0], t
torch.manual_seed(0)
plain = build_model("resnet18", 10, 3, 32).to(dev).to(memory_format=torch.channels_last)
ddp = torch.nn.parallel.DistributedDataParallel(copy.deepcopy(plain), device_ids=[0])
x = torch.randn(8, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (8,), device=dev)
for model in (plain, ddp):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x).float(), y)
    loss.backward()
for a, b in zip(plain.parameters(), ddp.module.parameters(), strict=True):
    torch.testing.assert_close(a.grad, b.grad, rtol=2e-2, atol=1e-4)
dist.destroy_process_group()
print("nccl", torch.cuda.nccl.version())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nccl_process_group_and_ddp_step():
    """NCCL (what `--gpus N` joins on GPUs) starts, all-reduces, and a
    DistributedDataParallel bf16 step gives the plain model's gradients. One GPU
    holds one rank: two ranks need two GPUs."""
    script = textwrap.dedent(NCCL_SCRIPT)
    result = subprocess.run(
        [sys.executable, "-c", script, str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("nccl "), result.stdout


def test_cli_jobs_on_jpeg_files(tmp_path):
    """`lskd prepare`, `lskd train` and a fused `lskd distill` on JPEG files with
    DataLoader workers (pinned memory), as the workflow calls them on a GPU node."""
    from test_folders import TINY, make_imagefolder

    root = make_imagefolder(tmp_path / "images", n_train=8)
    manifest = tmp_path / "dataset.json"
    prepare = ["prepare", "--dataset", "imagefolder", "--root", str(root)]
    prepare += ["--val-per-class", "2", "--out", str(manifest)]
    result = run_cli(*prepare)
    assert result.returncode == 0, result.stderr[-3000:]
    hp = json.dumps({"epochs": 1, "batch_size": 4, "lr": 0.05})
    common = ["--task", "toy", "--data", str(manifest), "--seed", "0", "--hp", hp]
    common += ["--augment", json.dumps(TINY), "--device", DEVICE, "--workers", "2"]
    t = tmp_path / "teacher"
    result = run_cli(
        "train",
        *common,
        *("--arch", "resnet18", "--alpha", "0.1"),
        *("--model-out", str(t / "model.pt"), "--metrics-out", str(t / "metrics.json")),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    s = [tmp_path / f"student_T{T:g}" for T in TEMPS]
    result = run_cli(
        "distill",
        *common,
        *("--arch", "resnet18", "--teacher", str(t / "model.pt")),
        *("--T", *(str(T) for T in TEMPS)),
        *("--model-out", *(str(d / "model.pt") for d in s)),
        *("--metrics-out", *(str(d / "metrics.json") for d in s)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for d in s:
        m = json.loads((d / "metrics.json").read_text())
        assert m["device"] == "cuda:0" and m["fused_temperatures"] == TEMPS
        assert checkpoint.load_model_file(d / "model.pt")["arch"] == "resnet18"


def test_dali_decodes_on_the_gpu(tmp_path):
    """With CUDA, DALI decodes on the GPU ("mixed"): batches arrive on the device
    with the protocol's shapes, and evaluation pixels stay within a few grey levels
    of torchvision's (a GPU JPEG decoder rounds differently from libjpeg)."""
    pytest.importorskip("nvidia.dali", reason="DALI not installed")
    from lskd.data.dali import DaliSource
    from lskd.data.folders import FolderSource, scan_imagefolder
    from lskd.data.transforms import ImageAugment
    from test_folders import TINY, make_imagefolder

    manifest = scan_imagefolder(make_imagefolder(tmp_path), 2, 0)
    dali, folders = DaliSource(manifest, TINY, 2), FolderSource(manifest, TINY)
    assert dali.gpu
    x, y = next(iter(dali.train_batches(4, torch.Generator().manual_seed(0))))
    assert x.is_cuda and x.shape == (4, 3, 16, 16) and y.shape == (4,)
    std = torch.tensor(ImageAugment().std).view(1, 3, 1, 1)
    got = torch.cat([x.cpu() for x, _ in dali.eval_batches("test", 4)])
    want = torch.cat([x for x, _ in folders.eval_batches("test", 4)])
    levels = ((got - want) * std * 255).abs()
    assert levels.mean() < 3, f"mean {levels.mean():.2f}, max {levels.max():.1f} levels"
