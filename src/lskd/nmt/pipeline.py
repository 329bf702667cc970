"""The NMT jobs: prepare a pair, train a teacher, distil students at several T, score.

Run layout (as the image runs; ``<task>`` is config ``nmt.task``, the study's name):
``results/nmt_<task>_<pair>/teacher_transformer_a<α>_s<seed>/`` holds ``model.pt`` (the
selected fairseq checkpoint without optimizer state),
``train.json`` (recipe, fairseq command, wall time, tokens/s) and, after scoring,
``metrics.json`` and ``test.hyp`` (detokenised translations); students sit one level
deeper in ``student_transformer_T<T>_s<seed>/``. fairseq's rolling checkpoints live in
``fairseq/`` inside the run while it trains (an interrupted job resumes from them) and
are removed once ``model.pt`` is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lskd.atomic import write_json
from lskd.errors import CheckpointError, DataError
from lskd.models import checkpoint
from lskd.nmt import ARCH, bleu, bpe, corpus, fairseq_run, safe_load

log = logging.getLogger(__name__)


def versions() -> dict[str, str]:
    """lskd's and its stack's versions, in every train.json and metrics.json."""
    import fairseq
    import sacrebleu

    from lskd.train.job import versions as stack

    return {
        **stack(),
        "fairseq": fairseq.__version__,
        "sacrebleu": sacrebleu.__version__,
    }


def prepare(
    pair: str,
    spec: dict[str, Any],
    vocab_size: int,
    out: Path,
    splits: Path,
    threads: int,
) -> dict[str, Any]:
    """Corpus splits -> joint BPE -> ``fairseq-preprocess``; ``out`` gets ``raw/``,
    ``spm.model``, ``sub/`` and ``bin/``; ``splits`` (JSON) the sizes."""
    src, tgt = pair.split("_")
    info = corpus.prepare_corpus(spec, pair, out / "raw")
    raw = [out / "raw" / f"train.{lang}" for lang in (src, tgt)]
    model = bpe.train_bpe(raw, out / "spm", vocab_size, seed=spec["split_seed"])
    info["subwords"] = {
        f"{split}.{lang}": bpe.encode_file(
            model, out / "raw" / f"{split}.{lang}", out / "sub" / f"{split}.{lang}"
        )
        for split in corpus.SPLITS
        for lang in (src, tgt)
    }
    fairseq_run.run_preprocess(
        fairseq_run.preprocess_args(pair, out / "sub", out / "bin", threads)
    )
    info["bpe"] = {"library": "sentencepiece", "model_type": "bpe", "vocab": vocab_size}
    info["dictionary_size"] = sum(1 for _ in open(out / "bin" / f"dict.{src}.txt"))
    write_json(splits, info)
    return info


def _cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def check_prepared(data: Path) -> None:
    """``data`` must be an `nmt-prepare --out` folder (fairseq binaries in ``bin/``)."""
    if not data.is_dir():
        raise DataError(f"{data}: prepared data folder not found (run nmt-prepare)")
    if not any((data / "bin").glob("dict.*.txt")):
        raise DataError(f"{data}: not a prepared NMT folder (no bin/dict.*.txt)")


def check_teacher(path: Path) -> None:
    """A fairseq checkpoint of ours: only allow-listed classes (a pickle asking for
    anything else is refused unread) and fairseq's model and config entries."""
    safe_load.check_globals(path)
    state = checkpoint.load(path, allow=[argparse.Namespace])
    if "model" not in state or not ({"cfg", "args"} & state.keys()):
        raise CheckpointError(
            f"{path}: not a fairseq checkpoint (no 'model' and 'cfg' entries)"
        )


def train_run(
    data: Path,
    model_out: Path,
    model: dict[str, Any],
    recipe: dict[str, Any],
    seed: int,
    criterion: list[str],
    meta: dict[str, Any],
    teacher: Path | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """One fairseq-train run; writes ``model.pt`` and ``train.json`` beside it.

    `keep`: leave ``fairseq/`` with what a rerun needs to rewrite both without
    training (``argv.json``, ``finished.json`` and the chosen checkpoint): Snakemake
    deletes a job's outputs before it runs it again (a rerun, or the next segment of a
    SLURM job), and `distill` must not train its finished students again."""
    check_prepared(data)
    save_dir = model_out.parent / "fairseq"
    argv = fairseq_run.train_args(
        data / "bin", save_dir, model, recipe, seed, criterion, _cpu()
    )
    stamp = save_dir / "argv.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != argv:
        log.info("%s: arguments changed, starting afresh", save_dir)
        shutil.rmtree(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    write_json(stamp, argv)
    finished = save_dir / "finished.json"
    history = save_dir / "valid_history.json"
    if finished.is_file():  # killed after fairseq's final save: nothing left to train
        stats = json.loads(finished.read_text())
    else:
        ckpts = [teacher] if teacher else []
        stats = fairseq_run.run_train(argv, *ckpts, finished=finished, history=history)
    name = (
        "checkpoint_best.pt"
        if recipe["selection"] == "best_val"
        else "checkpoint_last.pt"
    )
    state = checkpoint.load(save_dir / name, allow=[argparse.Namespace])
    state.pop("last_optimizer_state", None)
    extra = state.get("extra_state") or {}
    checkpoint.save(state, model_out)
    info = {
        **meta,
        "arch": ARCH,
        "model": model,
        "recipe": recipe,
        "selection": recipe["selection"],
        "checkpoint": name,
        "fairseq_seed": seed,
        "num_updates": int(state["optimizer_history"][-1]["num_updates"]),
        "val_loss": extra.get("val_loss"),
        # per validation: update, loss, nll_loss (and kd_loss for students), bits/token
        "valid_history": json.loads(history.read_text()) if history.is_file() else [],
        **stats,
        "fairseq_train": ["fairseq-train", *argv],
        "versions": versions(),
    }
    write_json(model_out.parent / "train.json", info)
    if keep:  # what a rerun needs to rewrite both without training
        kept = {stamp, finished, history, save_dir / name}
        for leftover in set(save_dir.iterdir()) - kept:
            leftover.unlink()
    else:
        shutil.rmtree(save_dir)
    log.info("wrote %s (%s updates)", model_out, info["num_updates"])
    return info


def distill(
    data: Path,
    teacher: Path,
    temps: Sequence[float],
    model_outs: Sequence[Path],
    model: dict[str, Any],
    recipe: dict[str, Any],
    kd: dict[str, Any],
    seed: int,
    meta: dict[str, Any],
) -> None:
    """The T-sweep of one teacher in one process (fairseq and the data load once).

    fairseq's seed (initial weights, batch order) is `lskd.train.job.rng_seed` of
    ("student", seed), as for image students: a student never starts from its
    teacher's initial weights (same architecture, same config seed). The students of a
    sweep share it, hence every batch (`TEACHER_CACHE`)."""
    from lskd.train.job import rng_seed

    if len(temps) != len(model_outs):
        raise DataError(f"{len(temps)} temperatures for {len(model_outs)} outputs")
    check_prepared(data)
    check_teacher(teacher)  # before anything is written
    for T, out in zip(temps, model_outs, strict=True):
        criterion = fairseq_run.student_criterion(teacher, T, kd)
        info = {
            **meta,
            "T": T,
            "kd": kd,
            "teacher": {**meta["teacher"], "path": str(teacher)},
        }
        fseed = rng_seed("student", seed)
        train_run(data, out, model, recipe, fseed, criterion, info, teacher, keep=True)
    for out in model_outs:  # every student is written: nothing left to resume
        shutil.rmtree(out.parent / "fairseq")
    from lskd.nmt.lskd_fairseq.word_kd import TEACHER_CACHE as cache

    log.info(
        "teacher top-k cache: %d batches computed, %d reused (%.1f MB)",
        cache.misses,
        cache.hits,
        cache.bytes / 2**20,
    )


def score(
    data: Path,
    pair: str,
    models: Sequence[Path],
    metrics_outs: Sequence[Path],
    gen: dict,
) -> list[dict[str, Any]]:
    """Translate the test split with each model and score it with sacrebleu; each
    ``metrics.json`` holds the BLEU, its signature and the run's ``train.json``."""
    if len(models) != len(metrics_outs):
        raise DataError(f"{len(models)} models for {len(metrics_outs)} metrics files")
    check_prepared(data)
    refs_path = data / "raw" / f"test.{pair.split('_')[1]}"
    refs = refs_path.read_text(encoding="utf-8").splitlines()
    out = []
    for model, dest in zip(models, metrics_outs, strict=True):
        results = model.parent / "generate"
        argv = fairseq_run.generate_args(data / "bin", model, results, gen, _cpu())
        fairseq_run.run_generate(argv, model)
        hyps, missing = bleu.read_hypotheses(results / "generate-test.txt", len(refs))
        corpus.write_lines(model.parent / "test.hyp", hyps)
        shutil.rmtree(results)
        train = json.loads((model.parent / "train.json").read_text())
        score = bleu.corpus_bleu(hyps, refs)
        metrics = {
            key: train.get(key)
            for key in (
                "role",
                "task",
                "nmt_task",
                "arch",
                "alpha",
                "T",
                "seed",
                "teacher",
                "versions",
            )
        }
        metrics.update(
            eval_split="test",
            selection="last" if train["selection"] == "last" else "best_val",
            bleu=score["bleu"],
            sacrebleu_signature=score["signature"],
            bleu_detail=score,
            test_sentences=len(refs),
            untranslated=missing,
            generate=gen,
            fairseq_generate=["fairseq-generate", *argv],
            train=train,
            model_sha256=checkpoint.sha256(model),  # lskd.plan.models checks it
        )
        write_json(dest, metrics)
        log.info("%s: BLEU %.2f (%s)", model, score["bleu"], score["signature"])
        out.append(metrics)
    return out
