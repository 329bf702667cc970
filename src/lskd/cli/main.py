"""`lskd` command line: one subcommand per workflow step; each handler parses and calls
one library function. Expected errors print one line naming the bad key or file and exit
with 2; a training job (a fused `distill --T ...` sweep included) stopped by
SIGTERM/SIGUSR1 saves its rolling checkpoint and exits with 75 (`lskd.train.preempt`).
Heavy imports (torch) happen inside the handlers, so `lskd table` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from lskd.cli.analysis import add_analysis_commands
from lskd.cli.args import add_penultimate_flags, add_run_flags, json_arg
from lskd.cli.nmt import add_nmt_commands
from lskd.data import ARRAY_DATASETS
from lskd.errors import ConfigError, LskdError
from lskd.plan.models import rebuild_hint
from lskd.train import segments
from lskd.train.preempt import REQUEUE_EXIT as REQUEUE
from lskd.train.preempt import Preempted, ignore_signals, requested, watch

log = logging.getLogger("lskd")


def _run_spec(args: argparse.Namespace, i: int | None = None):
    """The RunSpec of the flags; `i` picks the i-th --model-out/--metrics-out (distill
    takes one pair per --T)."""
    import torch

    from lskd.train.job import RunSpec
    from lskd.train.recipe import Recipe

    torch.set_num_threads(args.threads)
    return RunSpec(
        task=args.task,
        data=args.data,
        arch=args.arch,
        seed=args.seed,
        recipe=Recipe.from_dict(args.hp, where="--hp"),
        model_out=args.model_out if i is None else args.model_out[i],
        metrics_out=args.metrics_out if i is None else args.metrics_out[i],
        augment=args.augment,
        device=args.device,
        deterministic=not args.nondeterministic,
        loader=args.loader,
        workers=args.threads if args.workers is None else args.workers,
        init=args.init,
        compile=args.compile,
        pretrained=getattr(args, "pretrained", False),
        transfer=getattr(args, "transfer", None),
    )


def _relaunched(args: argparse.Namespace) -> bool:
    """With --gpus N > 1, rerun this command under torchrun (N processes) and exit."""
    from lskd.train.distributed import relaunch

    code = relaunch(args.gpus, args.argv)
    if code is None:
        return False
    if code == REQUEUE:  # the workers saved their checkpoint on our signal
        signum = requested() or signal.SIGTERM  # the workers may have had it alone
        raise Preempted(signum, None)  # the workers know the step (rank 0 records it)
    if code != 0:
        raise SystemExit(code)
    return True


def cmd_prepare(args: argparse.Namespace) -> None:
    if args.dataset in ARRAY_DATASETS:
        from lskd.data.arrays import prepare_arrays, save_arrays

        if args.val_size is None:
            raise ConfigError(f"prepare: --val-size is required for {args.dataset}")
        arrays = prepare_arrays(
            args.dataset,
            args.root,
            args.val_size,
            args.split_seed,
            args.train_size,
            args.test_size,
            args.expect_train,
            args.expect_test,
        )
        save_arrays(arrays, args.out)
        sizes = {s: len(v) for s, v in arrays.labels.items()}
    else:
        from lskd.data import folders

        scan = (
            folders.scan_cub if args.dataset == "cub200" else folders.scan_imagefolder
        )
        manifest = scan(
            args.root,
            args.val_per_class,
            args.split_seed,
            expect_classes=args.expect_classes,
            expect_train=args.expect_train,
            expect_test=args.expect_test,
        )
        folders.check_readable(manifest, limit=args.check_limit)
        folders.save_manifest(manifest, args.out)
        sizes = {s: len(v) for s, v in manifest.splits.items()}
    log.info("prepared %s from %s: %s", args.dataset, args.root, sizes)


def cmd_subset(args: argparse.Namespace) -> None:
    from lskd.data import folders

    manifest = folders.load_manifest(args.manifest)
    subset = folders.select_subset(
        manifest, args.classes, args.train_per_class, args.test_per_class
    )
    folders.save_manifest(subset, args.out)


def cmd_import_weights(args: argparse.Namespace) -> None:
    from lskd.models.weights import import_weights

    summary = import_weights(
        args.src, args.out, args.arch, args.sha256, args.source, args.alpha
    )
    log.info("imported %s as %s: %s", args.src, args.out, summary)


def _check(flag: str, value: float, ok: bool, rule: str) -> None:
    if not ok or value != value:  # NaN fails every rule
        raise ConfigError(f"{flag}: must be {rule}, got {value}")


def _regularizer(args: argparse.Namespace):
    """The teacher's regularizer: `--regularizer` JSON, or `--alpha` (0: `ce`, else
    `ls`)."""
    from lskd.identity import Choice

    if (args.alpha is None) == (args.regularizer is None):
        raise ConfigError("train: give exactly one of --alpha and --regularizer")
    if args.alpha is not None:
        _check("--alpha", args.alpha, 0 <= args.alpha < 1, "in [0, 1)")
        return Choice.from_alpha(args.alpha)
    return Choice.parse(args.regularizer, "regularizer", "--regularizer")


def cmd_train(args: argparse.Namespace) -> None:
    from lskd.train.job import train_teacher

    regularizer = _regularizer(args)
    if not _relaunched(args):
        train_teacher(_run_spec(args), regularizer)


def cmd_methods(args: argparse.Namespace) -> None:
    from lskd.objectives import OBJECTIVES, REGULARIZERS

    for title, registry in (("regularizers", REGULARIZERS), ("objectives", OBJECTIVES)):
        print(f"{title} ({registry.role} entries of run.{title}):")
        for name, method in registry.items():
            doc = method.__doc__ or sys.modules[method.__module__].__doc__ or ""
            print(f"  {name}: {method.title}. {' '.join(doc.split()).split('. ')[0]}")
            for param in method.params:
                print(f"      {param.describe()}")


def cmd_distill(args: argparse.Namespace) -> None:
    from lskd.identity import Choice
    from lskd.train.job import distill_student, distill_students

    objective = Choice.parse(args.objective, "objective", "--objective")
    for T in args.T:
        _check("--T", T, T > 0, "> 0")
    n = len(args.T)
    if len(args.model_out) != n or len(args.metrics_out) != n:
        raise ConfigError(
            f"--model-out and --metrics-out need one path per --T ({n} temperatures, "
            f"{len(args.model_out)} and {len(args.metrics_out)} paths)"
        )
    if _relaunched(args):
        return
    if n == 1:
        distill_student(_run_spec(args, 0), args.teacher, args.T[0], objective)
    else:
        specs = [_run_spec(args, i) for i in range(n)]
        distill_students(specs, args.teacher, args.T, objective)


def cmd_analyse(args: argparse.Namespace) -> None:
    from lskd.analysis.penultimate import analyse_runs

    analyse_runs(
        args.models,
        args.data,
        args.classes,
        args.train_per_class,
        args.test_per_class,
        args.augment,
    )


def build_parser() -> argparse.ArgumentParser:
    first_sentence = " ".join(__doc__.split()).split(". ")[0] + "."
    parser = argparse.ArgumentParser(prog="lskd", description=first_sentence)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_commands(sub)
    _add_training_commands(sub)
    _add_feature_commands(sub)
    add_analysis_commands(sub)
    add_nmt_commands(sub)
    return parser


def _add_data_commands(sub: Any) -> None:
    """prepare, subset, import-weights: the inputs of training."""
    p = sub.add_parser("prepare", help="check a raw dataset; write its splits")
    p.add_argument(
        "--dataset",
        choices=[*ARRAY_DATASETS, "imagefolder", "cub200"],
        required=True,
        help="fashion_mnist (IDX files), cifar100 / cifar10 (the archives' python "
        "version) -> .npz arrays; imagefolder (train/ and val/ class folders, e.g. "
        "ImageNet) or cub200 (official CUB_200_2011 layout) -> .json manifest",
    )
    p.add_argument("--root", type=Path, required=True, help="directory of the raw data")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the val hold-out")
    p.add_argument("--val-size", type=int, help="arrays: images held out")
    p.add_argument("--train-size", type=int, help="arrays: keep N train images")
    p.add_argument("--test-size", type=int, help="arrays: keep N test images")
    p.add_argument("--val-per-class", type=int, default=10, help="folders: held out")
    for what in ("classes", "train", "test"):
        p.add_argument(f"--expect-{what}", type=int, help=f"expected {what}")
    p.add_argument(
        "--check-limit", type=int, help="folders: decode only the first N per split"
    )
    p.add_argument("--out", type=Path, required=True, help="output .npz or .json")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("subset", help="visualisation subset of a manifest (Alg. 1)")
    p.add_argument("manifest", type=Path, help="manifest from `lskd prepare`")
    p.add_argument("out", type=Path, help="output manifest")
    p.add_argument("--classes", type=int, nargs=3, required=True, help="class ids")
    p.add_argument("--train-per-class", type=int, required=True, help="first N train")
    p.add_argument("--test-per-class", type=int, required=True, help="first N test")
    p.set_defaults(func=cmd_subset)

    p = sub.add_parser("import-weights", help="check and import pretrained weights")
    p.add_argument("src", type=Path, help="local checkpoint (torchvision or official)")
    p.add_argument("out", type=Path, help="output lskd model file")
    p.add_argument("--arch", required=True, help="architecture of the weights")
    p.add_argument("--sha256", help="expected sha256 of SRC; a mismatch is refused")
    p.add_argument("--source", default="local", help="where the weights come from")
    p.add_argument("--alpha", type=float, help="teacher LS factor, if not in the file")
    p.set_defaults(func=cmd_import_weights)


def _add_training_commands(sub: Any) -> None:
    """train (a teacher), distill (one student, or a fused sweep over T)."""
    p = sub.add_parser(
        "train", help="train a teacher with a regularizer (`lskd methods` lists them)"
    )
    add_run_flags(p)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--alpha",
        type=float,
        help="label smoothing in [0, 1): 0 is the regularizer ce, alpha > 0 is ls",
    )
    how.add_argument(
        "--regularizer",
        type=json_arg,
        help='the regularizer and its parameters as JSON, e.g. \'{"name": "maxsup", '
        '"lam": 0.1}\'',
    )
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="do not train: evaluate the --init model (e.g. an imported published "
        "teacher) and write its model.pt and metrics.json",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "distill",
        help="distil a teacher into a student at temperature T (several T: one fused "
        "job, one data stream and teacher forward for all)",
    )
    add_run_flags(p, outputs="+")
    p.add_argument("--teacher", type=Path, required=True, help="teacher model.pt")
    p.add_argument(
        "--T",
        type=float,
        nargs="+",
        required=True,
        help="KD temperature(s) > 0; with K values, K students are trained in one "
        "fused job (same results as K separate jobs)",
    )
    p.add_argument(
        "--transfer",
        default="all",
        help="KD transfer set: all (the whole training split), n<N> (N images per "
        "class) or f<F> (fraction F of each class), drawn with --seed "
        "(default: all)",
    )
    p.add_argument(
        "--objective",
        type=json_arg,
        default={"name": "kd"},
        help='the student objective and its parameters as JSON, e.g. \'{"name": '
        '"dkd", "beta": 8}\' (default: kd, the paper\'s)',
    )
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser(
        "methods", help="list the registered regularizers and objectives"
    )
    p.set_defaults(func=cmd_methods)


def _add_feature_commands(sub: Any) -> None:
    """analyse: penultimate-layer features of finished runs."""
    p = sub.add_parser(
        "analyse",
        help="per-run analysis of many runs in one process: penultimate.npz, "
        "projection.npz and diffusion.json beside each model.pt",
    )
    p.add_argument("models", type=Path, nargs="+", help="model.pt of each run")
    p.add_argument(
        "--data", type=Path, required=True, help="prepared dataset (or subset)"
    )
    add_penultimate_flags(p)
    p.set_defaults(func=cmd_analyse)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if os.environ.get("RANK", "0") != "0":
        logging.getLogger("lskd").setLevel(logging.WARNING)  # rank 0 alone reports
    parser = build_parser()
    own_process = argv is None  # started as `lskd ...`, not called from Python
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = argv
    training = args.command in ("train", "distill", "nmt-train", "nmt-distill")
    fairseq = args.command in ("nmt-train", "nmt-distill")  # image jobs: train.job
    segment = None  # a SLURM job that continues in segments (lskd.train.segments)
    try:
        if training:
            gpus = getattr(args, "gpus", 1)
            segment = segments.begin(args.command, args.model_out, gpus)
        with watch() if fairseq else nullcontext():  # SIGTERM -> checkpoint, 75
            args.func(args)
    except LskdError as err:
        parser.exit(2, f"lskd {args.command}: error: {err}{rebuild_hint(err)}\n")
    except Preempted as stop:
        log.warning("lskd %s: %s; exit %d to be requeued", args.command, stop, REQUEUE)
        return segments.after_stop(segment, stop)
    if segment is not None:
        segment.finished()
    if own_process and training:
        ignore_signals()  # outputs final: a SIGTERM while exiting must not fail us
    return 0


if __name__ == "__main__":
    sys.exit(main())
