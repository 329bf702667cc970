"""Every registered method's loss against an independent float64 computation from
the papers' formulas (written here, never calling lskd), its identities (LS and
MaxSup, DKD's Eq. (5), logit standardization's invariance), float32 exactness under
bf16 autocast and gradients; then the registries and `Choice` (parse errors, tokens,
labels, JSON).
Hand-worked values of single examples are in tests/test_losses.py."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from lskd.errors import ConfigError
from lskd.identity import DEFAULT_OBJECTIVE, Choice, objective_token
from lskd.objectives import OBJECTIVES, REGULARIZERS
from lskd.objectives.dkd import dkd_parts
from lskd.objectives.kd import kd_loss
from lskd.objectives.ls import ls_cross_entropy
from lskd.objectives.maxsup import maxsup_weight
from lskd.objectives.method import Objective, Param

EPOCH, EPOCHS = 3, 10  # the epoch (1-based) the loss tests train in

# --- float64 references, from the formulas alone -----------------------------------


def _logp(z: torch.Tensor) -> torch.Tensor:
    return z - torch.logsumexp(z, dim=-1, keepdim=True)


def _ce(z, y):
    return -_logp(z)[torch.arange(len(z)), y].mean()


def _kl_each(t, s, T):
    """T^2 * sum_k p_t (log p_t - log p_s) per sample, softmax at temperature T."""
    lt, ls = _logp(t / T), _logp(s / T)
    return T * T * (lt.exp() * (lt - ls)).sum(-1)


def _z_score(z):
    """(z - mean z) / (1e-7 + std z), unbiased std (Sun et al. 2024, Algorithm 1)."""
    d = z - z.mean(-1, keepdim=True)
    std = ((d**2).sum(-1, keepdim=True) / (z.shape[-1] - 1)).sqrt()
    return d / (1e-7 + std)


def _dkd_each(s, t, y, T):
    """(TCKD, NCKD) per sample (Zhao et al. 2022, Eq. (1)-(4)), from the probabilities:
    binary (p_y, sum of the others) and the non-target classes renormalised."""
    n, k = s.shape
    mask = F.one_hot(y, k).bool()
    p_s, p_t = _logp(s / T).exp(), _logp(t / T).exp()

    def binary(p):
        return torch.stack([p[mask], (p * ~mask).sum(-1)], dim=-1)

    def others(p):
        q = p[~mask].view(n, k - 1)
        return q / q.sum(-1, keepdim=True)

    def kl(a, b):
        return T * T * (a * (a.log() - b.log())).sum(-1)

    return kl(binary(p_t), binary(p_s)), kl(others(p_t), others(p_s))


def ref_regularizer(name, v, z, y, epoch, epochs):
    ce = _ce(z, y)
    if name == "ce":
        return ce
    if name == "ls":  # (1 - a)(-log p_y) + a mean_k(-log p_k)
        nll = -_logp(z)
        a = v["alpha"]
        return ((1 - a) * nll[torch.arange(len(z)), y] + a * nll.mean(-1)).mean()
    if name == "maxsup":
        end = v["lam"] if v["lam_end"] is None else v["lam_end"]
        lam = v["lam"] + (end - v["lam"]) * (epoch - 1) / (epochs - 1)
        return ce + lam * (z.max(-1).values - z.mean(-1)).mean()
    raise KeyError(name)


def ref_objective(name, v, s, t, y, T, epoch):
    ce = _ce(s, y)
    if name == "kd":
        h = v["hard_weight"]
        return (1 - h) * _kl_each(t, s, T).mean() + h * ce
    if name == "logit_std_kd":
        kd = _kl_each(_z_score(t), _z_score(s), T).mean()
        return v["kd_weight"] * kd + v["hard_weight"] * ce
    if name == "dkd":
        tckd, nckd = _dkd_each(s, t, y, T)
        ramp = min(epoch / v["warmup"], 1.0) if v["warmup"] else 1.0
        kd = v["alpha"] * tckd.mean() + v["beta"] * nckd.mean()
        return ramp * kd + v["hard_weight"] * ce
    if name == "teacher_t_kd":  # T on the teacher only, no T^2
        p_t = torch.softmax(t / T, dim=-1)
        kl = (p_t * (torch.log(p_t) - _logp(s))).sum(-1).mean()
        return (1 - v["hard_weight"]) * kl + v["hard_weight"] * ce
    raise KeyError(name)


REG_CASES = [
    "ce",
    {"name": "ls", "alpha": 0.1},
    {"name": "ls", "alpha": 0.9},
    {"name": "maxsup", "lam": 0.1},
    {"name": "maxsup", "lam": 0.1, "lam_end": 0.2},
]
OBJ_CASES = [
    "kd",
    {"name": "kd", "hard_weight": 0.3},
    "logit_std_kd",
    {"name": "logit_std_kd", "kd_weight": 9.0, "hard_weight": 0.1},
    "dkd",
    {"name": "dkd", "alpha": 0.5, "beta": 8.0, "warmup": 2, "hard_weight": 1.0},
    "teacher_t_kd",
    {"name": "teacher_t_kd", "hard_weight": 0.5},
]
SIZES = [(1, 2), (5, 10), (32, 100)]  # (batch, classes)
TEMPERATURES = [1.0, 2.0, 4.0, 64.0]


def rel_tol(name: str, T: float) -> float:
    """How close a float32 loss comes to float64. A KL of nearly equal distributions is
    a difference of log-probs (~log K, float32 error ~1e-7) worth only ~1/T^2 of them:
    fine for KD and DKD on trained-net logits, but standardized logits have unit spread,
    so at T = 64 logit-std KD's KL is ~2e-4 and its float32 value ~2e-4 off (its
    gradient stays within ~1e-5: `test_objective_gradient_reaches_the_student_only`)."""
    return 5e-4 if (name == "logit_std_kd" and T > 4) else 2e-5


def _reg(entry) -> Choice:
    return Choice.parse(entry, "regularizer", "test")


def _obj(entry) -> Choice:
    return Choice.parse(entry, "objective", "test")


def _id(entry) -> str:
    return entry if isinstance(entry, str) else "-".join(map(str, entry.values()))


def make(n: int, k: int, seed: int = 0, scale: float = 5.0):
    """Student and teacher logits spread like trained nets (row offsets included),
    and labels."""
    gen = torch.Generator().manual_seed(seed)
    s = scale * torch.randn(n, k, generator=gen) + torch.randn(n, 1, generator=gen)
    t = 2 * scale * torch.randn(n, k, generator=gen) - 3.0
    y = torch.randint(0, k, (n,), generator=gen)
    return s, t, y


def test_every_registered_method_has_a_reference_here():
    cased = {_reg(e).name for e in REG_CASES} | {_obj(e).name for e in OBJ_CASES}
    assert cased == set(REGULARIZERS) | set(OBJECTIVES)


# --- losses against the references ---------------------------------------------------


@pytest.mark.parametrize("entry", REG_CASES, ids=_id)
@pytest.mark.parametrize(("n", "k"), SIZES)
def test_regularizer_matches_float64_reference(entry, n, k):
    choice = _reg(entry)
    z, _, y = make(n, k)
    loss = choice.build().loss(z, y, EPOCH, EPOCHS)
    ref = ref_regularizer(choice.name, choice.values, z.double(), y, EPOCH, EPOCHS)
    assert loss.dtype == torch.float32
    # a CE near 0 is logsumexp - z_y of logits ~10: float32 leaves ~1e-7 * |z|
    ulp = 1e-6 * z.abs().max().item()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6, abs=ulp)


@pytest.mark.parametrize("entry", OBJ_CASES, ids=_id)
@pytest.mark.parametrize(("n", "k"), SIZES)
@pytest.mark.parametrize("T", TEMPERATURES)
def test_objective_matches_float64_reference(entry, n, k, T):
    choice = _obj(entry)
    s, t, y = make(n, k, seed=k + n)
    loss = choice.build().loss(s, t, y, T, EPOCH, EPOCHS)
    ref = ref_objective(choice.name, choice.values, s.double(), t.double(), y, T, EPOCH)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=rel_tol(choice.name, T))


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.1, 0.5, 0.9])
def test_ls_is_ce_plus_alpha_times_target_logit_gap(alpha):
    # log p_k = z_k - logsumexp z, so mean_k(-log p_k) = -log p_y + z_y - mean_k z_k
    z, _, y = make(16, 10)
    gap = (z.double()[torch.arange(16), y] - z.double().mean(-1)).mean()
    ref = _ce(z.double(), y) + alpha * gap
    assert ls_cross_entropy(z, y, alpha).item() == pytest.approx(ref.item(), rel=1e-6)


def test_ls_alpha_zero_is_the_ce_regularizer():
    z, _, y = make(8, 10)
    ce = _reg("ce").build().loss(z, y, 1, 1)
    assert torch.equal(ls_cross_entropy(z, y, 0.0), ce)
    assert torch.equal(ce, F.cross_entropy(z, y))


@pytest.mark.parametrize("lam", [0.1, 0.5])
def test_maxsup_equals_ls_where_every_argmax_is_the_label(lam):
    z, _, _ = make(32, 10)
    y = z.argmax(-1)
    maxsup = _reg({"name": "maxsup", "lam": lam}).build().loss(z, y, 1, 5)
    ls = _reg({"name": "ls", "alpha": lam}).build().loss(z, y, 1, 5)
    assert maxsup.item() == pytest.approx(ls.item(), rel=1e-6)


def test_maxsup_differs_from_ls_by_lambda_times_max_minus_target():
    z, _, y = make(32, 10)
    assert (z.argmax(-1) != y).any()
    lam = 0.3
    maxsup = _reg({"name": "maxsup", "lam": lam}).build().loss(z, y, 1, 5)
    ls = _reg({"name": "ls", "alpha": lam}).build().loss(z, y, 1, 5)
    zd = z.double()
    diff = lam * (zd.max(-1).values - zd[torch.arange(32), y]).mean()
    assert diff > 0.1
    assert (maxsup - ls).item() == pytest.approx(diff.item(), rel=1e-5)


@pytest.mark.parametrize(
    ("epoch", "epochs", "lam"), [(1, 201, 0.1), (101, 201, 0.15), (201, 201, 0.2)]
)
def test_maxsup_ramp_first_middle_last_epoch(epoch, epochs, lam):
    assert maxsup_weight(0.1, 0.2, epoch, epochs) == pytest.approx(lam)
    z, _, y = make(8, 10)
    choice = _reg({"name": "maxsup", "lam": 0.1, "lam_end": 0.2})
    penalty = choice.build().loss(z, y, epoch, epochs) - F.cross_entropy(z, y)
    gap = (z.double().max(-1).values - z.double().mean(-1)).mean()
    assert penalty.item() == pytest.approx(lam * gap.item(), rel=1e-5)


def test_maxsup_without_ramp_is_constant():
    for epoch, epochs in [(1, 1), (1, 200), (200, 200)]:
        assert maxsup_weight(0.1, None, epoch, epochs) == 0.1
    assert maxsup_weight(0.1, 0.2, 1, 1) == 0.1


@pytest.mark.parametrize("T", TEMPERATURES)
def test_dkd_parts_sum_to_kd_by_eq5_per_sample(T):
    # KD = TCKD + (1 - p^t_y) NCKD holds per sample: check batch size 1, row by row.
    # At T = 64 TCKD, a KL of two near-equal binaries, is ~1e-3 absolute off in float32
    # (13 % of a TCKD of 0.003): small beside KD ~ 20, hence rel 1e-4 there.
    s, t, y = make(6, 10, seed=3)
    for i in range(6):
        si, ti, yi = s[i : i + 1], t[i : i + 1], y[i : i + 1]
        tckd, nckd = dkd_parts(si, ti, yi, T)
        p_y = torch.softmax(ti.double() / T, -1)[0, yi].item()
        kd = kd_loss(si, ti, T).item()
        assert tckd.item() + (1 - p_y) * nckd.item() == pytest.approx(
            kd, rel=1e-4 if T > 4 else 1e-5
        )


def test_dkd_parts_are_batch_means_of_the_per_sample_parts():
    s, t, y = make(16, 10, seed=4)
    tckd, nckd = dkd_parts(s, t, y, 4.0)
    tckd_each, nckd_each = _dkd_each(s.double(), t.double(), y, 4.0)
    assert tckd.item() == pytest.approx(tckd_each.mean().item(), rel=1e-5)
    assert nckd.item() == pytest.approx(nckd_each.mean().item(), rel=1e-5)
    # weighted per sample, Eq. (5) holds for the batch too
    p_y = torch.softmax(t.double() / 4.0, -1)[torch.arange(16), y]
    kd = (tckd_each + (1 - p_y) * nckd_each).mean()
    assert kd_loss(s, t, 4.0).item() == pytest.approx(kd.item(), rel=1e-5)


@pytest.mark.parametrize(
    ("epoch", "warmup", "factor"),
    [(1, 20, 0.05), (10, 20, 0.5), (20, 20, 1.0), (240, 20, 1.0), (1, 0, 1.0)],
)
def test_dkd_warmup_factor(epoch, warmup, factor):
    s, t, y = make(8, 10)
    entry = {"name": "dkd", "alpha": 1.0, "beta": 8.0, "warmup": warmup}
    tckd, nckd = dkd_parts(s, t, y, 4.0)
    full = (tckd + 8.0 * nckd).item()
    loss = _obj(entry).build().loss(s, t, y, 4.0, epoch, 240)
    assert loss.item() == pytest.approx(factor * full, rel=1e-6)
    # the hard-label CE is not warmed up (mdistiller: loss_ce outside the ramp)
    hard = _obj({**entry, "hard_weight": 1.0}).build().loss(s, t, y, 4.0, epoch, 240)
    assert (hard - loss).item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-5)


@pytest.mark.parametrize("T", TEMPERATURES)
def test_logit_standardization_invariant_to_shift_and_scale(T):
    s, t, y = make(8, 10, seed=5)
    gen = torch.Generator().manual_seed(6)
    a, b = torch.rand(8, 1, generator=gen) * 5 + 0.2, torch.rand(8, 1, generator=gen)
    method = _obj("logit_std_kd").build()
    base = method.loss(s, t, y, T, 1, 1).item()
    moved = method.loss(a * s - 7.0, b * t + 30 * b, y, T, 1, 1).item()
    assert moved == pytest.approx(base, rel=rel_tol("logit_std_kd", T))
    # plain KD is not invariant
    assert kd_loss(a * s - 7.0, t, T).item() != pytest.approx(kd_loss(s, t, T).item())


@pytest.mark.parametrize("entry", OBJ_CASES, ids=_id)
def test_objective_is_zero_when_student_is_teacher(entry):
    choice = _obj(entry)
    if choice.values.get("hard_weight"):
        return
    s, _, y = make(8, 10)
    for T in TEMPERATURES:
        # the student that matches the teacher: the same logits, except where only the
        # teacher's are divided by T
        t = s * T if choice.name == "teacher_t_kd" else s.clone()
        loss = choice.build().loss(s, t, y, T, EPOCHS, EPOCHS)
        assert loss.item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("entry", REG_CASES + OBJ_CASES, ids=_id)
def test_batch_loss_is_mean_of_sample_losses(entry):
    s, t, y = make(8, 10, seed=7)
    if entry in REG_CASES:
        method = _reg(entry).build()
        each = [method.loss(s[i : i + 1], y[i : i + 1], 2, 5) for i in range(8)]
        batch = method.loss(s, y, 2, 5)
    else:
        method = _obj(entry).build()
        each = [
            method.loss(s[i : i + 1], t[i : i + 1], y[i : i + 1], 2.0, 2, 5)
            for i in range(8)
        ]
        batch = method.loss(s, t, y, 2.0, 2, 5)
    assert batch.item() == pytest.approx(torch.stack(each).mean().item(), rel=1e-6)


# --- bf16 autocast and gradients -----------------------------------------------------


def _bf16_forward(n: int, k: int, seed: int):
    """Logits of a bf16-autocast linear layer (bf16, spread ~ +-20) and labels."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 32, generator=gen)
    w = 1.5 * torch.randn(k, 32, generator=gen)
    y = torch.randint(0, k, (n,), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = F.linear(x, w)
    assert z.dtype == torch.bfloat16
    return z, y


def assert_grad_close(grad: torch.Tensor, ref: torch.Tensor) -> None:
    """Within 1e-4 of the float64 gradient, relative to its norm (not per element:
    an element ~0 carries float32's absolute error)."""
    err = (grad.double() - ref).norm().item()
    assert err <= 1e-4 * ref.norm().item() + 1e-9, (err, ref.norm().item())


@pytest.mark.parametrize("entry", REG_CASES, ids=_id)
def test_regularizer_float32_exact_under_bf16_autocast(entry):
    choice = _reg(entry)
    z, y = _bf16_forward(16, 100, seed=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = choice.build().loss(z, y, EPOCH, EPOCHS)
    ref = ref_regularizer(choice.name, choice.values, z.double(), y, EPOCH, EPOCHS)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


@pytest.mark.parametrize("entry", OBJ_CASES, ids=_id)
@pytest.mark.parametrize("T", TEMPERATURES)
def test_objective_float32_exact_under_bf16_autocast(entry, T):
    # docs/contributing.md#losses-in-float32: bf16 arithmetic at T = 64 is ~20 % off
    choice = _obj(entry)
    s, y = _bf16_forward(16, 100, seed=9)
    t, _ = _bf16_forward(16, 100, seed=10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = choice.build().loss(s, t, y, T, EPOCH, EPOCHS)
    ref = ref_objective(choice.name, choice.values, s.double(), t.double(), y, T, EPOCH)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=rel_tol(choice.name, T))


@pytest.mark.parametrize("entry", OBJ_CASES, ids=_id)
@pytest.mark.parametrize("T", TEMPERATURES)
def test_objective_gradient_reaches_the_student_only(entry, T):
    choice = _obj(entry)
    s0, t0, y = make(8, 10, seed=11)
    s, t = s0.clone().requires_grad_(True), t0.clone().requires_grad_(True)
    choice.build().loss(s, t, y, T, EPOCH, EPOCHS).backward()
    assert t.grad is None
    # the gradient of the float64 reference (teacher a constant there too)
    s64 = s0.double().requires_grad_(True)
    ref = ref_objective(choice.name, choice.values, s64, t0.double(), y, T, EPOCH)
    ref.backward()
    assert_grad_close(s.grad, s64.grad)


def test_kd_gradient_by_hand():
    # d/ds [T^2 * mean_n KL(p_t || softmax(s/T))] = T (softmax(s/T) - p_t) / N
    s0, t, _ = make(8, 10)
    s, T = s0.clone().requires_grad_(True), 3.0
    kd_loss(s, t, T).backward()
    by_hand = T * (torch.softmax(s0 / T, -1) - torch.softmax(t / T, -1)) / 8
    torch.testing.assert_close(s.grad, by_hand, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("entry", REG_CASES, ids=_id)
def test_regularizer_gradient_matches_reference(entry):
    choice = _reg(entry)
    z0, _, y = make(8, 10, seed=12)
    z = z0.clone().requires_grad_(True)
    choice.build().loss(z, y, EPOCH, EPOCHS).backward()
    z64 = z0.double().requires_grad_(True)
    ref_regularizer(choice.name, choice.values, z64, y, EPOCH, EPOCHS).backward()
    assert_grad_close(z.grad, z64.grad)


# --- parsing: one line naming the key -------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "role", "starts"),
    [
        ("softmax", "regularizer", "cfg.name: unknown regularizer 'softmax'"),
        ("ls", "objective", "cfg.name: unknown objective 'ls'"),
        ({"alpha": 0.1}, "regularizer", "cfg: expected a regularizer name"),
        (3, "objective", "cfg: expected a objective name"),
        ({"name": "ls", "beta": 0.1}, "regularizer", "cfg.beta: unknown parameter"),
        ({"name": "ce", "alpha": 0.1}, "regularizer", "cfg.alpha: unknown parameter"),
        ({"name": "ls", "alpha": 1.0}, "regularizer", "cfg.alpha: must be <= 0.999"),
        ({"name": "ls", "alpha": -0.1}, "regularizer", "cfg.alpha: must be >= 0"),
        ({"name": "ls", "alpha": 0}, "regularizer", "cfg.alpha: must be > 0"),
        ({"name": "ls", "alpha": "0.1"}, "regularizer", "cfg.alpha: expected float"),
        ({"name": "ls", "alpha": True}, "regularizer", "cfg.alpha: expected float"),
        ({"name": "ls", "alpha": math.nan}, "regularizer", "cfg.alpha: expected float"),
        ({"name": "maxsup", "lam": None}, "regularizer", "cfg.lam: expected float"),
        ({"name": "maxsup", "lam": -1}, "regularizer", "cfg.lam: must be >= 0"),
        ({"name": "kd", "hard_weight": 2}, "objective", "cfg.hard_weight: must be <="),
        ({"name": "dkd", "warmup": 2.5}, "objective", "cfg.warmup: expected int"),
        ({"name": "dkd", "warmup": -1}, "objective", "cfg.warmup: must be >= 0"),
        ({"name": "dkd", "warmup": math.inf}, "objective", "cfg.warmup: expected int"),
        ({"name": "dkd", "warmup": math.nan}, "objective", "cfg.warmup: expected int"),
        ({"name": "dkd", "beta": 10**400}, "objective", "cfg.beta: expected float"),
    ],
)
def test_parse_error_is_one_line_naming_the_key(entry, role, starts):
    with pytest.raises(ConfigError) as err:
        Choice.parse(entry, role, "cfg")
    assert str(err.value).startswith(starts), str(err.value)
    assert "\n" not in str(err.value)


def test_parse_fills_defaults_and_converts_types():
    assert _obj({"name": "dkd", "warmup": 5.0}).values == {
        "alpha": 1.0,
        "beta": 8.0,
        "warmup": 5,
        "hard_weight": 0.0,
    }
    assert type(_obj({"name": "dkd", "warmup": 5.0}).values["warmup"]) is int
    assert type(_reg({"name": "maxsup", "lam": 1}).values["lam"]) is float
    assert _reg({"name": "maxsup", "lam_end": None}) == _reg("maxsup")
    assert _obj("kd") == DEFAULT_OBJECTIVE


# --- tokens, labels, alpha, JSON ----------------------------------------------------

ALL_CASES = [("regularizer", e) for e in REG_CASES] + [
    ("objective", e) for e in OBJ_CASES
]


def test_tokens():
    assert _reg("ce").token == "a0"
    assert _reg({"name": "ls", "alpha": 0.1}).token == "a0.1"
    assert _reg("ls").token == "a0.1"  # the default alpha
    assert _reg({"name": "maxsup", "lam": 0.1}).token == "maxsup-l0.1"
    assert _reg({"name": "maxsup", "lam_end": 0.2}).token == "maxsup-l0.1-e0.2"
    assert _obj("kd").token == "" and objective_token(_obj("kd")) == "T"
    assert _obj({"name": "kd", "hard_weight": 0.5}).token == "kd-h0.5"
    dkd = _obj({"name": "dkd", "warmup": 5})
    assert dkd.token == "dkd-a1-b8-w5-h0"
    assert objective_token(dkd) == "dkd-a1-b8-w5-h0-T"
    tokens = [Choice.parse(e, role, "x").token for role, e in ALL_CASES]
    assert all("_" not in tok and " " not in tok for tok in tokens)
    assert len(set(tokens)) == len(tokens)  # different runs, different paths


def test_labels():
    assert _reg("ce").label == "CE"
    assert _reg({"name": "ls", "alpha": 0.1}).label == "LS α = 0.1"
    assert _reg("maxsup").label == "MaxSup λ = 0.1"
    assert _reg({"name": "maxsup", "lam_end": 0.2}).label == "MaxSup λ = 0.1→0.2"
    assert _obj("kd").label == "KD"
    assert _obj({"name": "kd", "hard_weight": 0.5}).label == "KD hard = 0.5"
    assert _obj("dkd").label.startswith("DKD α = 1, β = 8")
    for entry in REG_CASES:
        choice = _reg(entry)
        assert ("LS" in choice.label) == (choice.name == "ls"), choice.label
    labels = [Choice.parse(e, role, "x").label for role, e in ALL_CASES]
    assert len(set(labels)) == len(labels)


def test_from_alpha():
    assert Choice.from_alpha(0) == _reg("ce")
    assert Choice.from_alpha(0.0).alpha == 0.0
    assert Choice.from_alpha(0.1) == _reg({"name": "ls", "alpha": 0.1})
    assert Choice.from_alpha(0.1).alpha == 0.1
    assert _reg("maxsup").alpha is None
    assert Choice.from_alpha(0).is_base and not Choice.from_alpha(0.1).is_base
    with pytest.raises(ConfigError, match=r"^alpha\.alpha: must be <="):
        Choice.from_alpha(1.0)


@pytest.mark.parametrize(("role", "entry"), ALL_CASES, ids=lambda x: _id(x))
def test_json_round_trip(role, entry):
    choice = Choice.parse(entry, role, "x")
    assert Choice.parse(choice.to_dict(), role, "x") == choice
    assert Choice.parse(json.loads(choice.to_json()), role, "x") == choice
    assert hash(Choice.parse(choice.to_dict(), role, "x")) == hash(choice)


# --- a method registered by a test alone ----------------------------------------------


class MyToy(Objective):
    """Squared distance of the logits, times `gain`."""

    name = "toy"
    title = "Toy"
    params = (
        Param("gain", float, 1.0, "g", "g", "weight", low=0.0),
        Param("squash", bool, False, "q", "squash", "tanh the logits first"),
    )

    def loss(self, student, teacher, y, T, epoch, epochs):
        s, t = student.float(), teacher.detach().float()
        if self.p["squash"]:
            s, t = s.tanh(), t.tanh()
        return self.p["gain"] * ((s - t) ** 2).sum(-1).mean()


@pytest.fixture
def toy(request) -> type[MyToy]:
    OBJECTIVES.add(MyToy)
    request.addfinalizer(lambda: OBJECTIVES.remove("toy"))
    return MyToy


def test_toy_objective_parses_and_builds(toy):
    choice = _obj({"name": "toy", "gain": 2, "squash": True})
    assert choice.values == {"gain": 2.0, "squash": True}
    assert choice.token == "toy-g2-q1"
    assert choice.label == "Toy g = 2, squash = on"
    assert Choice.parse(choice.to_dict(), "objective", "x") == choice
    s, t, y = make(4, 3)
    loss = choice.build().loss(s, t, y, 1.0, 1, 1)
    by_hand = 2 * ((s.double().tanh() - t.double().tanh()) ** 2).sum(-1).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    with pytest.raises(ConfigError, match=r"^x\.squash: expected bool"):
        Choice.parse({"name": "toy", "squash": 1}, "objective", "x")
    with pytest.raises(ConfigError, match=r"^x\.T: unknown parameter"):
        Choice.parse({"name": "toy", "T": 1}, "objective", "x")


def test_toy_is_gone_after_its_test():
    assert "toy" not in OBJECTIVES
    with pytest.raises(ConfigError, match="unknown objective 'toy'"):
        _obj("toy")


def test_registry_refuses_clashes(toy):
    class Other(MyToy):
        name = "toy2"
        slug = "toy"

    with pytest.raises(ValueError, match="slug taken"):
        OBJECTIVES.add(Other)
    with pytest.raises(ValueError, match="not a regularizer"):
        REGULARIZERS.add(MyToy)

    class Clash(MyToy):
        name, slug = "toy3", "toythree"
        params = (
            Param("a", float, 1.0, "x", "a", ""),
            Param("b", float, 1.0, "x", "b", ""),
        )

    with pytest.raises(ValueError, match="share a path letter"):
        OBJECTIVES.add(Clash)
    assert "toy" in OBJECTIVES and not {"toy2", "toy3"} & set(OBJECTIVES)
