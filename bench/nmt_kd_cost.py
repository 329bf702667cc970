"""Cost of online word-level KD over plain CE training; what a top-k dump would keep.

    python bench/nmt_kd_cost.py resources/data/nmt_libreoffice_en_de/prepared \
        results/nmt_libreoffice_en_de/teacher_transformer_a0.1_s0/model.pt \
        [--batches 30] [--k 4]

On the same batches (the first N of the training split, max_tokens as given), one run
prints side by side: seconds per update of a student trained with label-smoothed CE
(the teacher recipe), of the same student trained with KD whose teacher runs online in
the same step, and of the teacher forward alone; their ratio is the cost of online KD
over CE (tokens/s of CE training / tokens/s of KD training). It also prints the share
of softmax(t/T) that the teacher's top-k words carry at T = 1, 2, 3, 64 (what a top-k
dump written once per teacher would keep), the time such a dump would take (one teacher
forward over the training split) and its size at k x (int32 index + fp16 value) per
target token. Runs on CUDA when available, else on CPU with one thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lskd.nmt.kd import topk_mass, word_kd_loss
from lskd.nmt.safe_load import fairseq_safe_globals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="prepared pair (lskd nmt-prepare)")
    parser.add_argument("teacher", type=Path, help="teacher model.pt")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--k", type=int, default=4)
    args = parser.parse_args()

    from fairseq import checkpoint_utils

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(1)
    with fairseq_safe_globals(args.teacher):
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
            [str(args.teacher)], arg_overrides={"data": str(args.data / "bin")}
        )
    teacher = models[0].to(device).eval().requires_grad_(False)
    task.load_dataset("train")
    itr = task.get_batch_iterator(
        task.dataset("train"), max_tokens=args.max_tokens, seed=0
    ).next_epoch_itr(shuffle=False)
    batches = [b for _, b in zip(range(args.batches), itr, strict=False)]
    pad = task.target_dictionary.pad()

    def to(sample):
        return {
            "net_input": {k: v.to(device) for k, v in sample["net_input"].items()},
            "target": sample["target"].to(device),
        }

    batches = [to(b) for b in batches]
    tokens = sum(int((b["target"] != pad).sum()) for b in batches)

    def timed(step) -> float:
        step(batches[0])  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for b in batches:
            step(b)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    student = task.build_model(cfg.model).to(device)
    optim = torch.optim.Adam(student.parameters(), lr=1e-4)

    def train_step(kd: bool):
        def step(b):
            logits = student(**b["net_input"])[0]
            if kd:
                with torch.no_grad():
                    t_logits = teacher(**b["net_input"])[0]
            else:
                t_logits = logits.detach()
            weight = 0.9 if kd else 0.0
            loss = word_kd_loss(
                logits, t_logits, b["target"], 2.0, weight, 0.1, args.k, pad
            )[0]
            optim.zero_grad()
            loss.backward()
            optim.step()

        return step

    def teacher_step(b):
        with torch.no_grad():
            teacher(**b["net_input"])

    ce, kd, fwd = timed(train_step(False)), timed(train_step(True)), timed(teacher_step)
    print(f"device {device}; {len(batches)} batches, {tokens} target tokens")
    print(f"CE student  {tokens / ce:10.0f} tokens/s")
    print(f"KD student  {tokens / kd:10.0f} tokens/s (teacher online)")
    print(f"teacher fwd {tokens / fwd:10.0f} tokens/s")
    print(f"cost of KD over CE (time ratio): {kd / ce:.2f}")
    logits = torch.cat(
        [teacher(**b["net_input"])[0][b["target"] != pad] for b in batches[:5]]
    )
    for T in (1.0, 2.0, 3.0, 64.0):
        mass = topk_mass(logits, T, args.k).item()
        print(f"T={T:g}: top-{args.k} words carry {100 * mass:.1f}% of softmax(t/T)")
    train_tokens = int(task.dataset("train").tgt_sizes.sum())
    print(
        f"top-{args.k} dump: {train_tokens} target tokens, about "
        f"{train_tokens * fwd / tokens:.1f} s of teacher forward, "
        f"{train_tokens * args.k * 6 / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
