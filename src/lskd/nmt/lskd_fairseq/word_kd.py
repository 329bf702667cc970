"""``--criterion lskd_word_kd``: word-level KD from a frozen fairseq teacher.

The teacher (``--teacher-path``, a checkpoint of the same task and dictionary) runs in
eval mode under no_grad on the student's batch, in the same step (online). It is kept
out of the criterion's submodules, so it is neither optimised, nor switched to train
mode, nor saved in the student's checkpoints. The loss is `lskd.nmt.kd.word_kd_loss`.

With ``--kd-topk k`` the loss reads only the teacher's k largest logits per token;
these are kept in memory per batch (`TeacherCache`, keyed by the teacher file and the
batch's exact tensors), so the students of a T-sweep, which share the seed and hence
every batch, run the frozen teacher once per batch instead of once per student. The
cached values are those the teacher computes, so the losses are unchanged.
"""

import hashlib
import math
import os
from dataclasses import dataclass, field

import torch
from fairseq import checkpoint_utils, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from lskd.nmt.kd import teacher_topk, word_kd_loss
from lskd.nmt.safe_load import fairseq_safe_globals


@dataclass
class WordKDConfig(FairseqDataclass):
    teacher_path: str = field(
        default="", metadata={"help": "teacher checkpoint (same task and dictionary)"}
    )
    kd_temperature: float = field(default=1.0, metadata={"help": "KD temperature T"})
    kd_weight: float = field(
        default=0.9, metadata={"help": "weight a of the KD term; 1 - a on the labels"}
    )
    kd_label_smoothing: float = field(
        default=0.1, metadata={"help": "label smoothing of the hard-label term"}
    )
    kd_topk: int = field(
        default=4, metadata={"help": "teacher's top-k words (0 = whole vocabulary)"}
    )
    sentence_avg: bool = II("optimization.sentence_avg")


class TeacherCache:
    """Top-k teacher logits per (teacher file, batch), shared by every criterion of
    this process; at most ``limit`` bytes (later batches are then recomputed)."""

    def __init__(self, limit: int = 1 << 30) -> None:
        self.limit, self.bytes, self.hits, self.misses = limit, 0, 0, 0
        self._store: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def teacher_key(path: str) -> tuple:
        st = os.stat(path)
        return (os.path.realpath(path), st.st_size, st.st_mtime_ns)

    @staticmethod
    def batch_key(net_input: dict) -> bytes:
        digest = hashlib.blake2b(digest_size=20)
        for name in sorted(net_input):
            value = net_input[name]
            if torch.is_tensor(value):
                value = value.detach().cpu().contiguous()
                digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
                digest.update(value.numpy().tobytes())
        return digest.digest()

    def get(self, key: tuple, compute):
        if key in self._store:
            self.hits += 1
            return self._store[key]
        self.misses += 1
        value = compute()
        size = sum(x.numel() * x.element_size() for x in value)
        if self.bytes + size <= self.limit:
            self._store[key] = value
            self.bytes += size
        return value


TEACHER_CACHE = TeacherCache()


@register_criterion("lskd_word_kd", dataclass=WordKDConfig)
class WordKDCriterion(FairseqCriterion):
    def __init__(
        self,
        task,
        teacher_path,
        kd_temperature,
        kd_weight,
        kd_label_smoothing,
        kd_topk,
        sentence_avg,
    ):
        super().__init__(task)
        if not teacher_path:
            raise ValueError("lskd_word_kd: --teacher-path is required")
        with fairseq_safe_globals(teacher_path):
            models, _ = checkpoint_utils.load_model_ensemble([teacher_path], task=task)
        teacher = models[0].eval().requires_grad_(False)
        self._teacher_key = TeacherCache.teacher_key(teacher_path)
        self._teacher = [teacher]  # a list: not a submodule (see module docstring)
        self.T = kd_temperature
        self.kd_weight = kd_weight
        self.label_smoothing = kd_label_smoothing
        self.topk = kd_topk
        self.sentence_avg = sentence_avg

    def teacher_logits(self, sample, like: torch.Tensor):
        """The teacher's logits on the batch or, with top-k, `teacher_topk` of them
        (from `TEACHER_CACHE` when a student of this process saw the batch)."""
        teacher = self._teacher[0]
        if next(teacher.parameters()).device != like.device:
            teacher.to(like.device)

        def compute():
            with torch.no_grad():
                logits = teacher(**sample["net_input"])[0]
            return teacher_topk(logits, self.topk) if self.topk else logits

        if not self.topk:
            return compute()
        key = (
            self._teacher_key,
            self.topk,
            TeacherCache.batch_key(sample["net_input"]),
        )
        return TEACHER_CACHE.get(key, compute)

    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        logits = net_output[0]
        target = model.get_targets(sample, net_output)
        loss, nll, kd = word_kd_loss(
            logits,
            self.teacher_logits(sample, logits),
            target,
            self.T,
            self.kd_weight,
            self.label_smoothing,
            self.topk,
            ignore_index=self.padding_idx,
        )
        nsentences = sample["target"].size(0)
        sample_size = nsentences if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll.data,
            "kd_loss": kd.data,
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        sample_size, ntokens = total("sample_size"), total("ntokens")
        metrics.log_scalar(
            "loss", total("loss") / sample_size / math.log(2), sample_size, round=3
        )
        metrics.log_scalar(
            "nll_loss", total("nll_loss") / ntokens / math.log(2), ntokens, round=3
        )
        metrics.log_scalar(
            "kd_loss", total("kd_loss") / ntokens / math.log(2), ntokens, round=3
        )
        metrics.log_derived(
            "ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg)
        )

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
