"""fairseq argument lists (pure, testable) and in-process calls of its entry points.

Each call logs the equivalent ``fairseq-<cmd> ...`` command line first, so a fairseq
user can rerun it by hand (loading checkpoints then needs torch's weights_only
allow-list of lskd.nmt.safe_load: fairseq's own CLI under torch >= 2.6 fails on them).
The calls run inside `fairseq_safe_globals()` instead of a subprocess for that reason.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lskd.atomic import write_json
from lskd.nmt.safe_load import fairseq_safe_globals
from lskd.train import preempt

log = logging.getLogger(__name__)

PLUGIN_DIR = Path(__file__).resolve().parent / "lskd_fairseq"
SOURCE = "en"


def preprocess_args(pair: str, text_dir: Path, dest: Path, threads: int) -> list[str]:
    """``fairseq-preprocess`` of the subword text: one joined dictionary
    (docs/recipes.md#nmt, ``--joined-dictionary``)."""
    src, tgt = pair.split("_")
    return [
        *("--source-lang", src, "--target-lang", tgt),
        *(
            "--trainpref",
            str(text_dir / "train"),
            "--validpref",
            str(text_dir / "valid"),
        ),
        *("--testpref", str(text_dir / "test"), "--destdir", str(dest)),
        *("--joined-dictionary", "--workers", str(threads)),
    ]


def model_args(model: dict[str, Any]) -> list[str]:
    """fairseq's ``transformer`` with the sizes of ``model`` (``nmt.*.model``)."""
    args = ["--arch", "transformer"]
    for side in ("encoder", "decoder"):
        args += [f"--{side}-layers", str(model["layers"])]
        args += [f"--{side}-embed-dim", str(model["embed_dim"])]
        args += [f"--{side}-ffn-embed-dim", str(model["ffn_dim"])]
        args += [f"--{side}-attention-heads", str(model["heads"])]
    args += ["--dropout", str(model["dropout"])]
    return args + (["--share-all-embeddings"] if model["share_all_embeddings"] else [])


def recipe_args(recipe: dict[str, Any]) -> list[str]:
    """Adam + inverse-sqrt schedule with warm-up, batching and stop
    (docs/recipes.md#nmt)."""
    args = [
        *("--optimizer", "adam", "--adam-betas", "(0.9,0.98)"),
        *("--lr", str(recipe["lr"]), "--lr-scheduler", "inverse_sqrt"),
        *("--warmup-updates", str(recipe["warmup_updates"])),
        *("--warmup-init-lr", str(recipe["warmup_init_lr"])),
        *("--weight-decay", str(recipe["weight_decay"])),
        *("--clip-norm", str(recipe["clip_norm"])),
        *("--max-tokens", str(recipe["max_tokens"])),
        *("--max-update", str(recipe["max_update"])),
        *("--max-epoch", str(recipe["max_epoch"])),
        *("--best-checkpoint-metric", "loss"),
    ]
    if recipe["patience"]:
        args += ["--patience", str(recipe["patience"])]
    if recipe["validate_interval_updates"]:
        interval = str(recipe["validate_interval_updates"])
        args += ["--validate-interval-updates", interval]
        args += ["--save-interval-updates", interval, "--keep-interval-updates", "1"]
    return args


def train_args(
    data: Path,
    save_dir: Path,
    model: dict[str, Any],
    recipe: dict[str, Any],
    seed: int,
    criterion: list[str],
    cpu: bool,
) -> list[str]:
    """Full ``fairseq-train`` argument list; ``criterion`` from `teacher_criterion` or
    `student_criterion`."""
    return [
        str(data),
        *model_args(model),
        *recipe_args(recipe),
        *criterion,
        *("--save-dir", str(save_dir), "--no-epoch-checkpoints", "--seed", str(seed)),
        *("--log-format", "simple", "--log-interval", "50", "--no-progress-bar"),
        *("--num-workers", "0"),
        # a new batch iterator each epoch, its batches drawn with seed + epoch: what a
        # run resumed in epoch E rebuilds too (fairseq otherwise keeps epoch 1's
        # batches for the whole run, which a resumed process cannot reproduce)
        "--update-epoch-batch-itr",
        "True",
        *(["--cpu"] if cpu else []),
    ]


def teacher_criterion(alpha: float) -> list[str]:
    """fairseq's label-smoothed CE (alpha = 0: plain CE). fairseq spreads alpha over the
    V − 1 wrong words, the image teachers' target over all V words
    (docs/recipes.md#label-smoothing-cross-entropy): a difference of alpha/V."""
    return [
        *("--criterion", "label_smoothed_cross_entropy"),
        *("--label-smoothing", format(alpha, "g")),
    ]


def student_criterion(teacher: Path, T: float, kd: dict[str, Any]) -> list[str]:
    """Our word-level KD criterion (lskd.nmt.lskd_fairseq,
    docs/recipes.md#nmt-word-level-kd-loss)."""
    return [
        *("--user-dir", str(PLUGIN_DIR), "--criterion", "lskd_word_kd"),
        *("--teacher-path", str(teacher), "--kd-temperature", format(T, "g")),
        *("--kd-weight", str(kd["weight"])),
        *("--kd-label-smoothing", str(kd["label_smoothing"])),
        *("--kd-topk", str(kd["topk"])),
    ]


def generate_args(
    data: Path, model: Path, results: Path, gen: dict[str, Any], cpu: bool
) -> list[str]:
    """``fairseq-generate`` on the test split, subwords decoded by sentencepiece."""
    return [
        str(data),
        *("--path", str(model), "--gen-subset", "test"),
        *("--beam", str(gen["beam"]), "--lenpen", str(gen["lenpen"])),
        *("--max-len-a", str(gen["max_len_a"]), "--max-len-b", str(gen["max_len_b"])),
        *("--batch-size", str(gen["batch_size"]), "--post-process", "sentencepiece"),
        # with the default multiple of 8, fairseq-generate 0.12 silently skipped a
        # final batch of 3 sentences here: every test sentence must be translated
        *("--required-batch-size-multiple", "1"),
        *("--results-path", str(results), "--seed", "0", "--num-workers", "0"),
        *(["--cpu"] if cpu else []),
    ]


def log_command(prog: str, argv: list[str]) -> None:
    log.info("equivalent command: %s %s", prog, shlex.join(argv))


def run_preprocess(argv: list[str]) -> None:
    from fairseq import options
    from fairseq_cli import preprocess

    log_command("fairseq-preprocess", argv)
    preprocess.main(options.get_preprocessing_parser().parse_args(argv))


def run_train(
    argv: list[str],
    *checkpoints: Path,
    finished: Path | None = None,
    history: Path | None = None,
) -> dict[str, float]:
    """fairseq-train in this process; returns wall seconds, updates and tokens/s.

    Within `preempt.watch()` (the CLI's nmt-train / nmt-distill), SIGTERM or SIGUSR1
    stops fairseq after the update in progress, once it has saved
    ``checkpoint_last.pt``, and raises `preempt.Preempted` (see `_fairseq_hooks`).
    ``finished`` (a JSON file) receives these statistics as soon as fairseq has saved
    its final checkpoint: a rerun that finds it must not resume (fairseq would train
    one more update past ``--max-update``). ``history`` (a JSON file) gets one entry
    per validation (`record_validation`)."""
    from fairseq import checkpoint_utils, distributed_utils, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import train

    log_command("fairseq-train", argv)
    _reset_run_state(checkpoint_utils.save_checkpoint, train.should_stop_early)
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    cfg = convert_namespace_to_omegaconf(args)
    start = time.perf_counter()
    hooks = _fairseq_hooks(start, finished, history)
    with fairseq_safe_globals(*checkpoints), hooks:
        distributed_utils.call_main(cfg, train.main)
    return _stats(start)


VALID_KEYS = ("loss", "nll_loss", "kd_loss")


def record_validation(history: Path, stats: dict[str, Any]) -> None:
    """Append fairseq's validation ``stats`` (update, criterion loss, NLL of the
    references and, for students, the KD term; bits per token) to the JSON list in
    ``history``. A loss that is not finite is written as null (a diverged run); an
    entry at an update the file already reaches replaces the later ones (a run
    resumed from an earlier checkpoint validates there again)."""
    update = int(stats["num_updates"])
    entry: dict[str, Any] = {"update": update}
    for key in VALID_KEYS:
        if key in stats:
            value = float(stats[key])
            entry[key] = value if math.isfinite(value) else None
    old = json.loads(history.read_text()) if history.is_file() else []
    write_json(history, [e for e in old if e["update"] < update] + [entry])


def _stats(start: float) -> dict[str, float]:
    from fairseq.logging import metrics

    wall = time.perf_counter() - start
    # fairseq resets its "train" meters each epoch; "default" sees the whole run
    # (and is restored from the checkpoint when a run resumes)
    tokens = metrics.get_meter("default", "wpb")
    train_wall = metrics.get_meter("default", "train_wall")
    seconds = float(train_wall.sum) if train_wall is not None else 0.0
    total = float(tokens.sum) if tokens is not None else 0.0
    return {
        "wall_s": round(wall, 2),
        "train_step_s": round(seconds, 2),
        "train_tokens": int(total),
        "tokens_per_s": round(total / seconds, 1) if seconds else None,
    }


@contextmanager
def _fairseq_hooks(
    start: float, finished: Path | None, history: Path | None = None
) -> Iterator[None]:
    """Patches of fairseq 0.12 for the duration of one in-process run.

    - ``fairseq_cli.train.validate_and_save`` (called by fairseq's loop after every
      update) is wrapped: when it reports the end of training, the statistics go to
      ``finished``; otherwise, if a preemption signal has arrived, the wrapper saves
      the rolling checkpoint at this update with fairseq's own
      ``checkpoint_utils.save_checkpoint`` (model, optimizer, LR schedule, meters and
      the data iterator's position in the epoch) and raises `preempt.Preempted`.
    - ``checkpoint_utils.load_checkpoint`` is wrapped: on a checkpoint saved at the
      end of an epoch, fairseq resets its meters instead of restoring them, and
      elsewhere it restores them into an aggregator nothing logs to; the wrapper
      restores the run-long "default" ones (tokens seen, step time) in place.
    - ``PathManager.copy``, with which fairseq copies a saved checkpoint to its other
      names (``checkpoint_best.pt`` -> ``checkpoint_last.pt``), becomes atomic (a
      temporary file, then a rename): a kill mid-copy must not leave a truncated
      ``checkpoint_last.pt`` to resume from.
    - ``fairseq_cli.train.get_valid_stats`` (called once per validation) is wrapped:
      with ``history``, each validation's losses go there (`record_validation`).
    """
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager
    from fairseq.logging import meters, metrics
    from fairseq_cli import train

    original = train.validate_and_save
    valid_stats = train.get_valid_stats
    load = checkpoint_utils.load_checkpoint
    copy = PathManager.__dict__["copy"]

    def load_checkpoint(cfg, trainer, **kwargs):
        extra_state, epoch_itr = load(cfg, trainer, **kwargs)
        saved = (extra_state or {}).get("metrics", {})
        if "default" in saved:
            # into the aggregator that is logged to: fairseq's metrics.load_state_dict
            # replaces it by a new object that nothing logs to any more
            active = metrics._active_aggregators["default"]
            active.load_state_dict(saved["default"])
            metrics._aggregators["default"] = active
            for meter in active.values():
                if isinstance(meter, meters.TimeMeter):
                    meter.reset()  # as fairseq does: its start time means nothing now
        return extra_state, epoch_itr

    def validate_and_save(cfg, trainer, task, epoch_itr, subsets, end_of_epoch):
        losses, stop = original(cfg, trainer, task, epoch_itr, subsets, end_of_epoch)
        signum = preempt.requested()
        if stop and finished is not None:
            write_json(finished, _stats(start))
        elif signum and not stop:
            checkpoint_utils.save_checkpoint(
                cfg.checkpoint, trainer, epoch_itr, losses[0]
            )
            where = Path(cfg.checkpoint.save_dir) / "checkpoint_last.pt"
            at = preempt.Update(where, trainer.get_num_updates())
            raise preempt.Preempted(signum, at)
        return losses, stop

    def get_valid_stats(cfg, trainer, stats, tracking_best):
        stats = valid_stats(cfg, trainer, stats, tracking_best)
        if history is not None:
            record_validation(history, stats)
        return stats

    def atomic_copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        tmp = f"{dst_path}.tmp"
        shutil.copyfile(src_path, tmp)
        os.replace(tmp, dst_path)
        return True

    train.validate_and_save = validate_and_save
    train.get_valid_stats = get_valid_stats
    checkpoint_utils.load_checkpoint = load_checkpoint
    PathManager.copy = staticmethod(atomic_copy)
    try:
        yield
    finally:
        train.validate_and_save = original
        train.get_valid_stats = valid_stats
        checkpoint_utils.load_checkpoint = load
        PathManager.copy = copy


def _reset_run_state(*functions) -> None:
    """fairseq keeps the best validation loss and the patience count as attributes of
    these functions; a second run in the same process must not inherit them."""
    for function in functions:
        for name in ("best", "num_runs"):
            if hasattr(function, name):
                delattr(function, name)


def run_generate(argv: list[str], model: Path) -> None:
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import generate

    log_command("fairseq-generate", argv)
    args = options.parse_args_and_arch(options.get_generation_parser(), argv)
    with fairseq_safe_globals(model):
        generate.main(convert_namespace_to_omegaconf(args))
