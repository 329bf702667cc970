"""NMT end to end on a few hundred sentence pairs: corpus -> BPE -> fairseq-preprocess
-> teacher -> KD student -> generation -> sacreBLEU -> Table 5, in a temporary
directory. Checks computed outputs only (BLEU is recomputed from the written
translations)."""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import pytest

import lskd
from lskd.errors import CheckpointError
from lskd.models import checkpoint

pytest.importorskip("fairseq")
pytestmark = pytest.mark.slow

WORDS = {
    "the": "die",
    "red": "rote",
    "green": "grüne",
    "small": "kleine",
    "big": "große",
    "cat": "Katze",
    "dog": "Hund",
    "file": "Datei",
    "table": "Tabelle",
    "opens": "öffnet",
    "closes": "schließt",
    "saves": "speichert",
    "and": "und",
    "now": "jetzt",
}
MODEL = {
    "layers": 1,
    "embed_dim": 32,
    "ffn_dim": 64,
    "heads": 2,
    "dropout": 0.0,
    "share_all_embeddings": True,
}
RECIPE = {
    "model": MODEL,
    "lr": 0.01,
    "warmup_updates": 10,
    "warmup_init_lr": 1e-7,
    "weight_decay": 0,
    "clip_norm": 0,
    "max_tokens": 512,
    "max_update": 30,
    "max_epoch": 0,
    "patience": 0,
    "validate_interval_updates": 0,
    "selection": "best_val",
}
KD = {"weight": 0.9, "label_smoothing": 0.1, "topk": 4}
GEN = {"beam": 2, "lenpen": 1.0, "max_len_a": 1.2, "max_len_b": 5, "batch_size": 64}


def write_corpus(root: Path, n: int, seed: int, name: str) -> None:
    """Random 3-6 word sentences and their word-by-word German."""
    rng = random.Random(seed)
    en = [" ".join(rng.choices(list(WORDS), k=rng.randint(3, 6))) for _ in range(n)]
    (root / f"{name}.en").write_text("".join(f"{s}\n" for s in en))
    de = [" ".join(WORDS[w] for w in s.split()) for s in en]
    (root / f"{name}.de").write_text("".join(f"{s}\n" for s in de))


def test_prepare_teacher_student_bleu_table(tmp_path):
    from lskd.nmt import bleu, fairseq_run
    from lskd.nmt import pipeline as runs
    from lskd.nmt.table import write_nmt_table

    raw = tmp_path / "raw"
    raw.mkdir()
    write_corpus(raw, 300, 0, "train")
    write_corpus(raw, 40, 1, "test")
    spec = {
        "kind": "files",
        "files": {
            "en_de": {
                "train": str(raw / "train.{lang}"),
                "valid": None,
                "test": [str(raw / "test.{lang}")],
            }
        },
        "valid_every": 10,
        "min_words": 1,
        "lowercase": False,
        "max_train": None,
        "split_seed": 0,
    }
    data = tmp_path / "prepared"
    info = runs.prepare("en_de", spec, 80, data, tmp_path / "splits.json", 1)
    assert info["sizes"]["valid"] == 30 and info["sizes"]["test"] == 40
    assert json.loads((tmp_path / "splits.json").read_text())["sizes"] == info["sizes"]

    teacher = tmp_path / "teacher" / "model.pt"
    meta = {"role": "teacher", "task": "nmt_en_de", "alpha": 0.1, "seed": 0}
    criterion = fairseq_run.teacher_criterion(0.1)
    runs.train_run(data, teacher, MODEL, RECIPE, 0, criterion, meta)
    student = teacher.parent / "student_transformer_T2_s0" / "model.pt"
    meta = {**meta, "role": "student", "teacher": {"arch": "transformer", "alpha": 0.1}}
    runs.distill(
        data, teacher, [2.0], [student], MODEL, RECIPE | {"max_update": 20}, KD, 0, meta
    )

    # fairseq checkpoints load only with their one allow-listed class, weights_only on
    with pytest.raises(CheckpointError, match="refused by weights_only"):
        checkpoint.load(student)
    state = checkpoint.load(student, allow=[argparse.Namespace])
    assert "last_optimizer_state" not in state and "model" in state
    assert not (student.parent / "fairseq").exists()  # rolling checkpoints removed

    outs = [teacher.parent / "metrics.json", student.parent / "metrics.json"]
    metrics = runs.score(data, "en_de", [teacher, student], outs, GEN)
    refs = (data / "raw" / "test.de").read_text().splitlines()
    for run, out in zip(metrics, outs, strict=True):
        hyps = (out.parent / "test.hyp").read_text().splitlines()
        again = bleu.corpus_bleu(hyps, refs)
        assert run["bleu"] == pytest.approx(again["bleu"])
        assert run["sacrebleu_signature"] == again["signature"]
        assert run["train"]["tokens_per_s"] > 0
        assert run["untranslated"] == 0 and len(hyps) == len(refs) == 40
        assert run["versions"]["lskd"] == lskd.__version__  # provenance of the run
        assert run["model_sha256"] == checkpoint.sha256(out.with_name("model.pt"))
    assert metrics[1]["T"] == 2.0 and metrics[1]["train"]["kd"] == KD

    table = write_nmt_table(outs, *(tmp_path / f"t.{e}" for e in ("csv", "md", "tex")))
    assert table.loc["Teacher transformer", "EN→DE alpha = 0.1"] == (
        f"{metrics[0]['bleu']:.2f}"
    )
    assert metrics[0]["sacrebleu_signature"] in (tmp_path / "t.md").read_text()


def test_t64_student_loss_stays_finite_and_its_init_is_not_the_teachers(
    tmp_path, monkeypatch
):
    """Regression tests of issue 25: a T = 64 student's validation losses are finite
    and fall (recorded per validation in train.json), and a student starts from other
    weights than its teacher (same architecture and config seed; its fairseq seed is
    the student stream of lskd.train.job.rng_seed)."""
    import torch
    from fairseq.trainer import Trainer

    from lskd.nmt import fairseq_run
    from lskd.nmt import pipeline as runs
    from lskd.train.job import rng_seed
    from test_kill_resume import prepare_nmt

    init = []
    trainer_init = Trainer.__init__

    def record(self, cfg, task, model, criterion, *args, **kwargs):
        init.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        trainer_init(self, cfg, task, model, criterion, *args, **kwargs)

    monkeypatch.setattr(Trainer, "__init__", record)
    data = prepare_nmt(tmp_path)
    teacher = tmp_path / "teacher" / "model.pt"
    meta = {"role": "teacher", "task": "nmt_en_de", "alpha": 0.1, "seed": 0}
    hp = RECIPE | {"selection": "last"}
    runs.train_run(
        data, teacher, MODEL, hp, 0, fairseq_run.teacher_criterion(0.1), meta
    )
    student = teacher.parent / "student_transformer_T64_s0" / "model.pt"
    meta = {**meta, "role": "student", "teacher": {"arch": "transformer"}}
    hp = hp | {"max_update": 30, "validate_interval_updates": 5}
    runs.distill(data, teacher, [64.0], [student], MODEL, hp, KD, 0, meta)

    assert len(init) == 2 and init[0].keys() == init[1].keys()
    assert not torch.equal(
        init[0]["encoder.embed_tokens.weight"], init[1]["encoder.embed_tokens.weight"]
    )
    train = json.loads((student.parent / "train.json").read_text())
    assert train["fairseq_seed"] == rng_seed("student", 0) != 0
    losses = [h["loss"] for h in train["valid_history"]]
    assert [h["update"] for h in train["valid_history"]][:2] == [5, 10]
    assert len(losses) >= 6 and all(v is not None and math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
