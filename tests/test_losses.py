"""Losses of docs/recipes.md#losses against values worked out by hand
(docs/contributing.md#tests)."""

import math

import pytest
import torch
import torch.nn.functional as F

from lskd.objectives.kd import kd_loss
from lskd.objectives.ls import ls_cross_entropy
from lskd.train.accuracy import topk_hits

LN3 = math.log(3.0)


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher logits, batch 8, 10 classes, spread like trained nets."""
    gen = torch.Generator().manual_seed(0)
    s = 4.0 * torch.randn(8, 10, generator=gen)
    t = 4.0 * torch.randn(8, 10, generator=gen)
    return s, t


def _kd_by_hand(s: torch.Tensor, t: torch.Tensor, T: float) -> float:
    """T^2 * mean_n sum_k p_t (log p_t - log p_s), softmax at temperature T, float64."""
    log_p_s = torch.log_softmax(s.double() / T, dim=-1)
    log_p_t = torch.log_softmax(t.double() / T, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()
    return float(kl) * T * T


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


# --- identities ---------------------------------------------------------------------


def test_alpha_zero_is_plain_cross_entropy(logits):
    s, _ = logits
    y = torch.arange(8) % 10
    assert torch.equal(ls_cross_entropy(s, y, 0.0), F.cross_entropy(s, y))


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.5, 0.9])
def test_ls_equals_explicit_formula(logits, alpha):
    # official LabelSmoothing: mean_n [(1 - a)(-log p_y) + a * mean_k(-log p_k)]
    s, _ = logits
    y = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    nll = -torch.log_softmax(s.double(), dim=-1)
    by_hand = ((1 - alpha) * nll[torch.arange(8), y] + alpha * nll.mean(-1)).mean()
    assert ls_cross_entropy(s, y, alpha).item() == pytest.approx(
        float(by_hand), rel=1e-6
    )


@pytest.mark.parametrize("T", [1.0, 2.0, 3.0, 64.0])
def test_identical_logits_give_zero_kd(logits, T):
    s, _ = logits
    assert kd_loss(s, s.clone(), T).item() == pytest.approx(0.0, abs=1e-6)


def test_batch_loss_is_mean_of_sample_losses(logits):
    s, t = logits
    y = torch.arange(8) % 10
    kd_each = [kd_loss(s[i : i + 1], t[i : i + 1], 2.0) for i in range(8)]
    ls_each = [ls_cross_entropy(s[i : i + 1], y[i : i + 1], 0.1) for i in range(8)]
    assert kd_loss(s, t, 2.0).item() == pytest.approx(
        torch.stack(kd_each).mean().item(), rel=1e-6
    )
    assert ls_cross_entropy(s, y, 0.1).item() == pytest.approx(
        torch.stack(ls_each).mean().item(), rel=1e-6
    )


@pytest.mark.parametrize(
    ("T", "rel"), [(1.0, 1e-6), (2.0, 1e-6), (3.0, 1e-5), (64.0, 1e-4)]
)
def test_kd_is_T_squared_times_kl(logits, T, rel):
    # float64 reference, so this is also the float64-agreement check. At T = 64 the
    # float32 KL (~3.5e-3) is a difference of log-probs ~2.3: eps 6e-8 * 2.3 / 3.5e-3
    # ~ 4e-5 relative (docs/contributing.md#losses-in-float32: 1e-5 at T = 64, 1000
    # classes).
    s, t = logits
    assert kd_loss(s, t, T).item() == pytest.approx(_kd_by_hand(s, t, T), rel=rel)


def test_kd_agrees_with_float64_inputs(logits):
    s, t = logits
    loss = kd_loss(s.double(), t.double(), 3.0)
    assert loss.item() == pytest.approx(_kd_by_hand(s, t, 3.0), rel=1e-6)
    assert ls_cross_entropy(s.double(), torch.arange(8), 0.1).item() == pytest.approx(
        ls_cross_entropy(s, torch.arange(8), 0.1).item(), rel=1e-6
    )


def test_kd_at_large_T_is_logit_matching(logits):
    # softmax(z/T) ~ (1 + d/T)/K with d = z - mean(z); KL(p||q) ~ 1/2 sum (p-q)^2/p
    # so T^2 KL -> sum_k (d_t - d_s)^2 / (2K): Hinton's logit matching (K = 10 here)
    s, t = logits
    d = (t - t.mean(-1, keepdim=True)) - (s - s.mean(-1, keepdim=True))
    limit = (d.double() ** 2).sum(-1).mean().item() / (2 * 10)
    assert kd_loss(s, t, 1000.0).item() == pytest.approx(limit, rel=1e-2)


# --- dtypes and gradients -----------------------------------------------------------


def test_bf16_inputs_are_upcast(logits):
    s, t = logits
    s16, t16 = (20 * s).bfloat16(), (20 * t).bfloat16()
    kd = kd_loss(s16, t16, 64.0)
    assert kd.dtype == torch.float32
    # the same bf16-rounded logits in float32 give the same loss
    assert kd.item() == pytest.approx(
        kd_loss(s16.float(), t16.float(), 64.0).item(), rel=1e-6
    )
    y = torch.arange(8) % 10
    ls = ls_cross_entropy(s16, y, 0.1)
    assert ls.dtype == torch.float32
    assert ls.item() == pytest.approx(
        ls_cross_entropy(s16.float(), y, 0.1).item(), rel=1e-6
    )


def test_gradient_reaches_student_only(logits):
    # d/ds [T^2 * mean_n KL(p_t || softmax(s/T))] = T (softmax(s/T) - p_t) / N
    s, t = logits
    s = s.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    T = 3.0
    kd_loss(s, t, T).backward()
    assert t.grad is None
    by_hand = T * (
        torch.softmax(s.detach() / T, -1) - torch.softmax(t.detach() / T, -1)
    )
    torch.testing.assert_close(s.grad, by_hand / 8, rtol=1e-5, atol=1e-7)


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
