"""`lskd nmt-*` subcommands (Table 5, docs/recipes.md#nmt): each parses and calls one
function of lskd.nmt. fairseq runs in this process (see lskd.nmt.safe_load for why)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lskd.cli.args import json_arg
from lskd.errors import ConfigError
from lskd.schema import validated


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def cmd_prepare(args: argparse.Namespace) -> None:
    from lskd.nmt.pipeline import prepare

    _threads(args.threads)
    prepare(
        args.pair, args.corpus, args.vocab_size, args.out, args.splits, args.threads
    )


def _meta(args: argparse.Namespace, role: str) -> dict:
    return {
        "role": role,
        "task": f"nmt_{args.pair}",
        "nmt_task": args.task,
        "alpha": args.alpha,
    }


def cmd_train(args: argparse.Namespace) -> None:
    from lskd.nmt.fairseq_run import teacher_criterion
    from lskd.nmt.pipeline import train_run

    _threads(args.threads)
    meta = {**_meta(args, "teacher"), "seed": args.seed}
    criterion = teacher_criterion(args.alpha)
    hp = validated("nmt_recipe", args.hp, "--hp")
    del hp["kd"]  # the students' KD mixing: not part of a teacher's recipe
    train_run(args.data, args.model_out, hp["model"], hp, args.seed, criterion, meta)


def cmd_distill(args: argparse.Namespace) -> None:
    from lskd.nmt.pipeline import distill

    _threads(args.threads)
    if len(args.T) != len(args.model_out):
        raise ConfigError(
            f"--T has {len(args.T)} values, --model-out {len(args.model_out)}"
        )
    teacher = {"arch": "transformer", "alpha": args.alpha, "seed": args.seed}
    meta = {**_meta(args, "student"), "seed": args.seed, "teacher": teacher}
    hp = validated("nmt_recipe", args.hp, "--hp")
    distill(
        args.data,
        args.teacher,
        args.T,
        args.model_out,
        hp["model"],
        hp,
        hp["kd"],
        args.seed,
        meta,
    )


def cmd_score(args: argparse.Namespace) -> None:
    from lskd.nmt.pipeline import score

    _threads(args.threads)
    gen = validated("nmt_generate", args.gen, "--gen")  # missing keys: the defaults
    score(args.data, args.pair, args.models, args.out, gen)


def cmd_table(args: argparse.Namespace) -> None:
    from lskd.nmt.table import write_nmt_table

    write_nmt_table(
        args.metrics,
        args.csv,
        args.md,
        args.tex,
        args.html,
        args.paper,
        args.headline_html,
    )
    if args.curves:
        from lskd.nmt.curves import plot_nmt_curves

        for run in plot_nmt_curves(args.metrics, args.curves):
            print(f"diverged: {run}")


def _common(p: argparse.ArgumentParser, data: bool = True) -> None:
    p.add_argument("--pair", required=True, help="language pair, e.g. en_de")
    if data:
        p.add_argument(
            "--data", type=Path, required=True, help="prepared pair (nmt-prepare --out)"
        )
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")


def _run_flags(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument(
        "--task",
        required=True,
        help="the NMT study's name (config nmt.task), recorded in train.json",
    )
    p.add_argument("--alpha", type=float, required=True, help="teacher's LS factor")
    p.add_argument("--seed", type=int, required=True, help="fairseq seed")
    p.add_argument(
        "--hp",
        type=json_arg,
        required=True,
        help="recipe as JSON (config nmt.teacher / nmt.student): model sizes, lr, "
        "warmup, max_tokens, max_update, ..., and kd for students",
    )


def add_nmt_commands(sub) -> None:
    """Register the `nmt-*` subcommands on the `lskd` subparsers."""
    p = sub.add_parser(
        "nmt-prepare", help="corpus splits, joint BPE, fairseq-preprocess"
    )
    _common(p, data=False)
    p.add_argument(
        "--corpus", type=json_arg, required=True, help="config nmt.corpus as JSON"
    )
    p.add_argument("--vocab-size", type=int, required=True, help="joint BPE vocabulary")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--splits", type=Path, required=True, help="output splits.json")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("nmt-train", help="train a Transformer teacher (LS alpha)")
    _run_flags(p)
    p.add_argument("--model-out", type=Path, required=True, help="output model.pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("nmt-distill", help="distil a teacher into students at each T")
    _run_flags(p)
    p.add_argument("--teacher", type=Path, required=True, help="teacher model.pt")
    p.add_argument("--T", type=float, nargs="+", required=True, help="temperatures")
    p.add_argument(
        "--model-out", type=Path, nargs="+", required=True, help="model.pt per T"
    )
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("nmt-score", help="translate the test split; sacrebleu BLEU")
    _common(p)
    p.add_argument("--models", type=Path, nargs="+", required=True, help="model.pt")
    p.add_argument(
        "--out", type=Path, nargs="+", required=True, help="metrics.json per model"
    )
    p.add_argument(
        "--gen",
        type=json_arg,
        required=True,
        help="config nmt.generate as JSON (missing keys take the schema's defaults)",
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("nmt-table", help="Table 5: BLEU of teachers and students")
    p.add_argument("metrics", type=Path, nargs="+", help="metrics.json of NMT runs")
    for ext in ("csv", "md", "tex", "html"):
        p.add_argument(f"--{ext}", type=Path, required=ext != "html", help=f"{ext} out")
    p.add_argument(
        "--paper",
        action="store_true",
        help="add the paper's BLEU and ours - paper per cell (paper-scale corpora)",
    )
    p.add_argument(
        "--headline-html",
        type=Path,
        help="one sentence per pair and alpha > 0 (the report's opening answer)",
    )
    p.add_argument(
        "--curves",
        type=Path,
        help="also draw the runs' validation loss per update (PNG; lskd.nmt.curves)",
    )
    p.set_defaults(func=cmd_table)
