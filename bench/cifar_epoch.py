"""One CIFAR-100 epoch of the literature's pair, through the real commands.

Writes a CIFAR-100 archive in the python layout with random images
(`lskd.data.cifar.write_archive`: `--n-train` / `--n-test`, 50,000 / 10,000 by
default), prepares it as the workflow does (`lskd prepare`, 5,000 held out, or a tenth
of a smaller set), writes a teacher checkpoint in RepDistiller's released layout
(`ckpt_epoch_240.pth`: `{"epoch", "model": state_dict, ...}`, random weights) and
imports it with its sha256 (`lskd import-weights`), then runs `lskd distill` for one
epoch of config/cifar100.yaml's student recipe (batch 64, SGD lr 0.05, pad-4 crop,
flip):
a fused sweep of the `--T` students (default the config's five) or one student.
Reported, from the students' metrics.json: training images per second (images of
the one data stream, each trained on by all K students), the epoch's training seconds
at that rate, the job's wall time (start-up, validation and test evaluation
included), and what the rate implies for config/cifar100.yaml: one epoch of its
45,000 training images and a 240-epoch job, in hours (training only). One CSV row per
run.

  python bench/cifar_epoch.py                             # the GPU check's part
  python bench/cifar_epoch.py --device cpu --n-train 2000 --T 1 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from results_csv import append_rows

EPOCHS = 240  # config/cifar100.yaml (RepDistiller's recipe)
HP = {"epochs": 1, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4}
HP |= {"schedule": "step", "milestones": [150, 180, 210], "eval_batch_size": 500}
AUGMENT = {"pad": 4, "hflip": True}


def lskd(*args: str) -> None:
    code = "import sys; from lskd.cli.main import main; sys.exit(main())"
    subprocess.run([sys.executable, "-c", code, *args], check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--T", type=float, nargs="+", default=[1, 2, 3, 4, 64])
    p.add_argument("--work", type=Path, help="folder (default: a temporary one)")
    p.add_argument("--csv", type=Path, help="append one row here")
    args = p.parse_args()

    from lskd.data.cifar import CIFAR100, write_archive
    from lskd.models import checkpoint
    from lskd.models.registry import build_model

    work = args.work or Path(tempfile.mkdtemp(prefix="lskd-cifar-"))
    start = time.perf_counter()
    write_archive(work / "raw", CIFAR100, args.n_train, args.n_test)
    val = min(5000, args.n_train // 10)
    data = work / "dataset.npz"
    lskd("prepare", "--dataset", "cifar100", "--root", str(work / "raw"),
         "--val-size", str(val), "--out", str(data))  # fmt: skip
    ckpt = work / "ckpt_epoch_240.pth"
    teacher = build_model(args.teacher, 100, 3, 32)
    torch.save({"epoch": 240, "model": teacher.state_dict(), "accuracy": 0.0}, ckpt)
    imported = work / f"{args.teacher}-crd.pt"
    lskd("import-weights", str(ckpt), str(imported), "--arch", args.teacher,
         "--sha256", checkpoint.sha256(ckpt), "--alpha", "0")  # fmt: skip
    setup_s = time.perf_counter() - start
    temps = [f"{t:g}" for t in args.T]
    outs = [work / f"student_T{t}" for t in temps]
    lskd("distill", "--task", "cifar100", "--data", str(data), "--arch", args.student,
         "--seed", "0", "--hp", json.dumps(HP), "--augment", json.dumps(AUGMENT),
         "--teacher", str(imported), "--T", *temps, "--device", args.device,
         "--threads", str(args.threads), "--nondeterministic",
         "--model-out", *[str(o / "model.pt") for o in outs],
         "--metrics-out", *[str(o / "metrics.json") for o in outs])  # fmt: skip
    m = json.loads((outs[0] / "metrics.json").read_text())
    n_train = args.n_train - val
    ips = m["train_images_per_s"]  # images of the data stream (each seen by K students)
    train_s = n_train / ips
    per_epoch_full = 45_000 / ips  # the config's 45,000 training images
    row = {
        "device": torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"cpu x{args.threads}",
        "teacher": args.teacher,
        "student": args.student,
        "students": len(temps),
        "train_images": n_train,
        "train_images_per_s": round(ips, 1),
        "train_s": round(train_s, 2),
        "wall_s": round(m["wall_s"], 2),
        "setup_s": round(setup_s, 1),
        "epoch_s_at_45000": round(per_epoch_full, 1),
        "job_hours_240_epochs": round(per_epoch_full * EPOCHS / 3600, 2),
        "torch": torch.__version__,
    }
    print(json.dumps(row, indent=1))
    if args.csv:
        append_rows(args.csv, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
