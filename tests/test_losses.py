"""Losses against values worked out by hand, the working in a comment
(docs/contributing.md#tests), argument checks and top-k hits. Every method against a
float64 reference, its identities, bf16 and gradients: tests/test_objectives.py."""

import math

import pytest
import torch

from lskd.identity import Choice
from lskd.objectives.kd import kd_loss
from lskd.objectives.ls import ls_cross_entropy
from lskd.train.accuracy import topk_hits

LN2, LN3 = math.log(2.0), math.log(3.0)


def _regularizer(entry):
    return Choice.parse(entry, "regularizer", "test").build()


def _objective(entry):
    return Choice.parse(entry, "objective", "test").build()


# --- hand values --------------------------------------------------------------------


def test_ls_cross_entropy_hand_value():
    # p = softmax([0, ln 3]) = [1/4, 3/4]; K = 2, alpha = 0.1 -> y_LS = [0.05, 0.95]
    # loss = -(0.05 ln 0.25 + 0.95 ln 0.75) = 0.0693147 + 0.2732980 = 0.342613
    loss = ls_cross_entropy(torch.tensor([[0.0, LN3]]), torch.tensor([1]), alpha=0.1)
    assert loss.item() == pytest.approx(0.342613, abs=1e-6)


def test_kd_loss_hand_value_T1():
    # p_t = [1/4, 3/4], p_s = [1/2, 1/2]
    # KL = 0.25 ln(0.25/0.5) + 0.75 ln(0.75/0.5) = 0.25 ln 0.5 + 0.75 ln 1.5 = 0.130812
    loss = kd_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]]), T=1.0)
    assert loss.item() == pytest.approx(0.130812, abs=1e-6)


def test_kd_loss_hand_value_T2():
    # t/2 = [0, ln sqrt 3] -> p_t = [1, sqrt 3] / (1 + sqrt 3) = [0.366025, 0.633975]
    # KL = 0.366025 ln(0.732051) + 0.633975 ln(1.267949) = 0.0363408; T^2 KL = 0.145363
    loss = kd_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]]), T=2.0)
    assert loss.item() == pytest.approx(0.145363, abs=1e-6)


def test_maxsup_and_ls_hand_values_on_a_wrong_prediction():
    # z = [0, ln 3], y = 0: p = [1/4, 3/4], CE = ln 4 = 1.386294; max z - mean z =
    # ln 3 / 2 = 0.549306 and z_y - mean z = -ln 3 / 2.
    # MaxSup lambda = 0.1: 1.386294 + 0.0549306 = 1.441225
    # LS alpha = 0.1: -(0.95 ln 0.25 + 0.05 ln 0.75) = 1.386294 - 0.0549306 = 1.331364
    z, y = torch.tensor([[0.0, LN3]]), torch.tensor([0])
    maxsup = _regularizer({"name": "maxsup", "lam": 0.1}).loss(z, y, 1, 1)
    ls = _regularizer({"name": "ls", "alpha": 0.1}).loss(z, y, 1, 1)
    assert maxsup.item() == pytest.approx(1.441225, abs=1e-6)
    assert ls.item() == pytest.approx(1.331364, abs=1e-6)
    # right prediction (y = 1): max z = z_y, so both are CE - or + the same gap
    # CE = ln(4/3) = 0.287682; + 0.0549306 = 0.342613 (test_ls_cross_entropy_hand_value)
    y = torch.tensor([1])
    maxsup = _regularizer({"name": "maxsup", "lam": 0.1}).loss(z, y, 1, 1)
    assert maxsup.item() == pytest.approx(0.342613, abs=1e-6)


def test_dkd_hand_value_T1():
    # s = [0, 0, 0], t = [ln 2, ln 3, 0], y = 0: p_t = [2, 3, 1] / 6, p_s = 1/3 each
    # TCKD: binaries (1/3, 2/3) equal -> 0
    # NCKD: [3/4, 1/4] vs [1/2, 1/2] (non-target): 0.75 ln 1.5 + 0.25 ln 0.5 = 0.130812
    # DKD (alpha 1, beta 8, no warm-up) = 8 * 0.130812 = 1.046496
    # Eq. (5): KD = 0 + (1 - 1/3) * 0.130812 = 0.087208
    #        = 1/3 ln 1 + 1/2 ln 1.5 + 1/6 ln 0.5
    s, t, y = torch.zeros(1, 3), torch.tensor([[LN2, LN3, 0.0]]), torch.tensor([0])
    dkd = _objective({"name": "dkd", "warmup": 0}).loss(s, t, y, 1.0, 1, 1)
    assert dkd.item() == pytest.approx(1.046496, abs=1e-6)
    assert kd_loss(s, t, 1.0).item() == pytest.approx(0.087208, abs=1e-6)


def test_logit_std_kd_hand_value_T1():
    # K = 2: Z([a, b]) = [-1, 1] / sqrt 2 for any a < b (unbiased std |b - a| / sqrt 2)
    # s = [0, 1] -> [-r, r], t = [1, 0] -> [r, -r] with r = 1 / sqrt 2; p_t = [q, 1 - q]
    # with q = sigmoid(sqrt 2), p_s reversed; KL = (2q - 1) ln(q / (1 - q))
    # = sqrt 2 (sigmoid(sqrt 2) - sigmoid(-sqrt 2)) = 0.861057
    s, t, y = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    loss = _objective("logit_std_kd").loss(s, t, y, 1.0, 1, 1)
    assert loss.item() == pytest.approx(0.861057, abs=1e-6)
    # shifted and scaled logits give the same standardized logits
    loss = _objective("logit_std_kd").loss(5 * s - 3, 0.1 * t + 7, y, 1.0, 1, 1)
    assert loss.item() == pytest.approx(0.861057, abs=1e-6)


def test_kd_hard_weight_hand_value():
    # (1 - 0.25) * 0.130812 + 0.25 * CE(s = [0, 0], y = 0) = 0.098109 + 0.25 ln 2
    # = 0.098109 + 0.173287 = 0.271396
    s, t, y = torch.zeros(1, 2), torch.tensor([[0.0, LN3]]), torch.tensor([0])
    loss = _objective({"name": "kd", "hard_weight": 0.25}).loss(s, t, y, 1.0, 1, 1)
    assert loss.item() == pytest.approx(0.271396, abs=1e-6)


def test_kd_at_large_T_is_logit_matching():
    # softmax(z/T) ~ (1 + d/T)/K with d = z - mean(z); KL(p||q) ~ 1/2 sum (p-q)^2/p
    # so T^2 KL -> sum_k (d_t - d_s)^2 / (2K): Hinton's logit matching (K = 10 here)
    gen = torch.Generator().manual_seed(0)
    s, t = (
        4.0 * torch.randn(8, 10, generator=gen),
        4.0 * torch.randn(8, 10, generator=gen),
    )
    d = (t - t.mean(-1, keepdim=True)) - (s - s.mean(-1, keepdim=True))
    limit = (d.double() ** 2).sum(-1).mean().item() / (2 * 10)
    assert kd_loss(s, t, 1000.0).item() == pytest.approx(limit, rel=1e-2)


# --- argument checks and top-k ------------------------------------------------------


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 1.5])
def test_alpha_outside_unit_interval_raises(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ls_cross_entropy(torch.zeros(1, 2), torch.tensor([0]), alpha)


@pytest.mark.parametrize("T", [0.0, -1.0])
def test_nonpositive_temperature_raises(T):
    with pytest.raises(ValueError, match="T must be > 0"):
        kd_loss(torch.zeros(1, 2), torch.zeros(1, 2), T)


def test_topk_hits_hand_case():
    logits = torch.tensor(
        [
            [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],  # ranking 1 0 ...; label 1 -> top1, top5
            [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # ranking 0..5; label 4 -> top5 only
            [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 5 is ranked 6th -> neither
            [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],  # label 5 -> top1, top5
        ]
    )
    y = torch.tensor([1, 4, 5, 5])
    assert topk_hits(logits, y, (1, 5)).tolist() == [2, 3]
    assert topk_hits(logits, y, (1, 2, 6)).tolist() == [2, 2, 4]
    # more k than classes counts every sample
    three = logits[:, :3]
    assert topk_hits(three, torch.tensor([0, 1, 2, 0]), (1, 5)).tolist() == [1, 4]
