"""Word-level KD loss of the NMT students (docs/recipes.md#nmt-word-level-kd-loss)
against hand-computed values
on a 3-word vocabulary, and the fairseq criterion that wraps it."""

from __future__ import annotations

import math

import pytest
import torch

from lskd.nmt.kd import topk_mass, word_kd_loss

LN2 = math.log(2)
# student logits s = [0, ln 2, 0] -> p = softmax(s) = [1/4, 1/2, 1/4]; target y = 1
S = torch.tensor([[0.0, LN2, 0.0]])
# teacher logits t = [ln 2, 0, 0] -> softmax(t) = [1/2, 1/4, 1/4]
TEACHER = torch.tensor([[LN2, 0.0, 0.0]])
Y = torch.tensor([1])

# KD term -sum_j q_j log p^T_j (before the a*T^2 factor):
# T = 1: q = [1/2, 1/4, 1/4], p = [1/4, 1/2, 1/4]
#   = 1/2 ln 4 + 1/4 ln 2 + 1/4 ln 4 = (1 + 1/4 + 1/2) ln 2 = 1.75 ln 2
KD_T1 = 1.75 * LN2
# T = 2: t/2 = [ln2/2, 0, 0] -> q = [sqrt2, 1, 1] / (2 + sqrt2)
#        s/2 = [0, ln2/2, 0] -> p^T = [1, sqrt2, 1] / (2 + sqrt2)
#   -sum q log p^T = ln(2 + sqrt2) - q_1 (ln 2)/2 = ln(2 + sqrt2) - ln2/(2 (2 + sqrt2))
KD_T2 = math.log(2 + math.sqrt(2)) - LN2 / (2 * (2 + math.sqrt(2)))
# hard-label term with eps = 0.1: (1 - eps)(-ln p_y) + eps * mean_v(-ln p_v)
#   -ln p_y = ln 2; mean_v(-ln p_v) = (ln 4 + ln 2 + ln 4) / 3 = 5 ln2 / 3
LABEL = 0.9 * LN2 + 0.1 * 5 * LN2 / 3


@pytest.mark.parametrize(("T", "kd"), [(1.0, KD_T1), (2.0, KD_T2)])
def test_pure_kd_term_is_T_squared_times_cross_entropy(T, kd):
    loss, nll, kd_sum = word_kd_loss(
        S, TEACHER, Y, T, kd_weight=1.0, label_smoothing=0.1
    )
    assert kd_sum.item() == pytest.approx(kd, abs=1e-6)
    assert loss.item() == pytest.approx(T * T * kd, abs=1e-5)
    assert nll.item() == pytest.approx(LN2, abs=1e-6)


@pytest.mark.parametrize(("T", "kd"), [(1.0, KD_T1), (2.0, KD_T2)])
def test_mixed_loss_with_label_term(T, kd):
    # a = 0.9 (RayeRen's default): 0.9 * T^2 * kd + 0.1 * label
    loss, _, _ = word_kd_loss(S, TEACHER, Y, T, kd_weight=0.9, label_smoothing=0.1)
    assert loss.item() == pytest.approx(0.9 * T * T * kd + 0.1 * LABEL, abs=1e-5)


def test_label_term_alone():
    loss, _, _ = word_kd_loss(S, TEACHER, Y, 2.0, kd_weight=0.0, label_smoothing=0.1)
    assert loss.item() == pytest.approx(LABEL, abs=1e-6)
    loss, _, _ = word_kd_loss(S, TEACHER, Y, 2.0, kd_weight=0.0, label_smoothing=0.0)
    assert loss.item() == pytest.approx(LN2, abs=1e-6)  # plain CE


def test_topk_renormalises_the_teacher_on_its_k_words():
    # t = [ln 3, ln 2, 0]: top-2 logits ln3, ln2 -> q = [3/5, 2/5] on words 0, 1
    # with p = [1/4, 1/2, 1/4]: 3/5 ln 4 + 2/5 ln 2 = (6/5 + 2/5) ln 2 = 1.6 ln 2
    t = torch.tensor([[math.log(3), LN2, 0.0]])
    _, _, kd = word_kd_loss(S, t, Y, 1.0, 1.0, 0.0, topk=2)
    assert kd.item() == pytest.approx(1.6 * LN2, abs=1e-6)
    # the whole vocabulary: q = [3/6, 2/6, 1/6] -> 1/2 ln4 + 1/3 ln2 + 1/6 ln4 = 5/3 ln2
    _, _, kd = word_kd_loss(S, t, Y, 1.0, 1.0, 0.0, topk=0)
    assert kd.item() == pytest.approx(5 / 3 * LN2, abs=1e-6)
    # top-2 of softmax(t) carries 5/6 of the mass
    assert topk_mass(t, 1.0, 2).item() == pytest.approx(5 / 6, abs=1e-6)


def test_padding_counts_nothing_and_logits_upcast():
    pad = 2
    s = torch.cat([S, torch.tensor([[5.0, -3.0, 1.0]])]).to(torch.bfloat16)
    t = torch.cat([TEACHER, torch.tensor([[0.0, 9.0, 0.0]])])
    y = torch.tensor([1, pad])
    loss, _, kd = word_kd_loss(s, t, y, 1.0, 1.0, 0.0, ignore_index=pad)
    assert loss.dtype == torch.float32
    assert kd.item() == pytest.approx(KD_T1, abs=2e-2)  # bf16 rounding of ln 2


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="T must be > 0"):
        word_kd_loss(S, TEACHER, Y, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="kd_weight"):
        word_kd_loss(S, TEACHER, Y, 1.0, 1.5, 0.0)


class _FixedModel(torch.nn.Module):
    """Stands for a fairseq model: returns fixed logits [1, tokens, V]."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.unused = torch.nn.Parameter(torch.zeros(1))  # has a device, as models do

    def forward(self, **net_input):
        return (self.logits, {})

    def get_targets(self, sample, net_output):
        return sample["target"]


def test_fairseq_criterion_matches_hand_values():
    pytest.importorskip("fairseq")
    from lskd.nmt.lskd_fairseq.word_kd import WordKDCriterion

    pad = 1  # fairseq's pad index; the second token is padding
    student = torch.cat([S, torch.tensor([[3.0, 0.0, -2.0]])]).unsqueeze(0)
    teacher = torch.cat([TEACHER, torch.zeros(1, 3)]).unsqueeze(0)
    criterion = WordKDCriterion.__new__(WordKDCriterion)
    torch.nn.Module.__init__(criterion)
    criterion.padding_idx = pad
    criterion._teacher = [_FixedModel(teacher).eval()]
    criterion.T, criterion.kd_weight, criterion.label_smoothing = 2.0, 0.9, 0.1
    criterion.topk, criterion.sentence_avg = 0, False
    # index 1 is fairseq's pad, so the real token's target is word 0
    sample = {"net_input": {}, "target": torch.tensor([[0, pad]]), "ntokens": 1}
    loss, sample_size, logs = criterion.forward(_FixedModel(student), sample)
    # target y = 0: -ln p_0 = ln 4; label = 0.9 ln4 + 0.1 * 5 ln2 / 3
    label = 0.9 * 2 * LN2 + 0.1 * 5 * LN2 / 3
    assert loss.item() == pytest.approx(0.9 * 4 * KD_T2 + 0.1 * label, abs=1e-5)
    assert sample_size == 1 and logs["ntokens"] == 1
    assert logs["kd_loss"].item() == pytest.approx(KD_T2, abs=1e-6)


class _CountingModel(_FixedModel):
    calls = 0

    def forward(self, **net_input):
        _CountingModel.calls += 1
        return super().forward(**net_input)


def _criterion(teacher, T, topk, key=("teacher.pt", 1, 1)):
    from lskd.nmt.lskd_fairseq.word_kd import WordKDCriterion

    criterion = WordKDCriterion.__new__(WordKDCriterion)
    torch.nn.Module.__init__(criterion)
    criterion.padding_idx, criterion._teacher_key = 1, key
    criterion._teacher = [teacher.eval()]
    criterion.T, criterion.kd_weight, criterion.label_smoothing = T, 0.9, 0.1
    criterion.topk, criterion.sentence_avg = topk, False
    return criterion


def test_sweep_runs_the_teacher_once_per_batch_with_unchanged_losses(monkeypatch):
    pytest.importorskip("fairseq")
    from lskd.nmt.lskd_fairseq import word_kd

    monkeypatch.setattr(word_kd, "TEACHER_CACHE", word_kd.TeacherCache())
    g = torch.Generator().manual_seed(0)
    student = _FixedModel(torch.randn(1, 5, 7, generator=g))
    teacher = _CountingModel(torch.randn(1, 5, 7, generator=g))
    batch = {"src_tokens": torch.tensor([[4, 5, 6]]), "src_lengths": torch.tensor([3])}
    sample = {
        "net_input": batch,
        "target": torch.tensor([[0, 2, 3, 1, 1]]),
        "ntokens": 3,
    }
    other = {**sample, "net_input": {**batch, "src_tokens": torch.tensor([[4, 5, 7]])}}
    _CountingModel.calls = 0
    for T in (1.0, 2.0, 64.0):  # one student per T, as nmt-distill runs them
        loss, _, logs = _criterion(teacher, T, topk=2).forward(student, sample)
        expected, _, kd = word_kd_loss(
            student.logits, teacher.logits, sample["target"], T, 0.9, 0.1, 2, 1
        )
        assert loss.item() == expected.item() and logs["kd_loss"].item() == kd.item()
    assert _CountingModel.calls == 1  # the later students reuse the cached top-k
    _criterion(teacher, 1.0, topk=2).forward(student, other)  # another batch
    _criterion(teacher, 1.0, topk=3).forward(student, sample)  # another k
    _criterion(teacher, 1.0, topk=2, key=("other.pt", 1, 1)).forward(student, sample)
    _criterion(teacher, 1.0, topk=0).forward(student, sample)  # whole vocabulary
    assert _CountingModel.calls == 5
    assert word_kd.TEACHER_CACHE.hits == 2 and word_kd.TEACHER_CACHE.misses == 4


def test_teacher_cache_stops_storing_at_its_limit():
    pytest.importorskip("fairseq")
    from lskd.nmt.lskd_fairseq.word_kd import TeacherCache

    cache = TeacherCache(limit=100)
    pair = (torch.zeros(4), torch.zeros(4, dtype=torch.int64))  # 16 + 32 bytes
    for key in ("a", "b", "c", "a", "b", "c"):
        cache.get(key, lambda: pair)
    assert cache.bytes == 96 and cache.misses == 4 and cache.hits == 2
