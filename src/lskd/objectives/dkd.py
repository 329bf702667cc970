"""Student objective `dkd`: Decoupled KD (Zhao et al., CVPR 2022, Eq. (7); mdistiller's
`DKD.py`).

The KD loss splits into a target-class part and a non-target part, reweighted:
alpha * TCKD + beta * NCKD, both at temperature T with the T^2 factor. TCKD is the KL
between the binary distributions (p_y, 1 - p_y) of teacher and student; NCKD the KL
between their distributions over the non-target classes alone (softmax of the logits
without the target's). With alpha = beta = 1 and weighting NCKD by the teacher's
1 - p_y this is exactly `kd` (their Eq. (5)). The KD part is scaled by min(epoch /
warmup, 1) (their linear warm-up, epoch 1-based); `hard_weight` adds a hard-label CE
(mdistiller: 1.0; 0 by default here, like `kd`). Their CIFAR-100 setting: alpha 1,
beta 8, T 4, 20 warm-up epochs of 240; ImageNet: beta 0.5, T 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lskd.objectives.kd import ADDED_HARD_WEIGHT, with_hard_labels
from lskd.objectives.method import Objective, Param

if TYPE_CHECKING:
    from torch import Tensor


def dkd_parts(student: Tensor, teacher: Tensor, y: Tensor, T: float):
    """(TCKD, NCKD), each T^2 * KL(teacher || student), batch mean, float32."""
    import torch

    s, t = student.float() / T, teacher.detach().float() / T
    target = torch.zeros_like(s, dtype=torch.bool).scatter_(1, y[:, None], True)

    def binary(z: Tensor) -> Tensor:  # log (p_y, 1 - p_y)
        lse = z.logsumexp(dim=-1, keepdim=True)
        log_py = z.gather(1, y[:, None]) - lse
        log_rest = z.masked_fill(target, -torch.inf).logsumexp(-1, keepdim=True) - lse
        return torch.cat([log_py, log_rest], dim=1)

    def others(z: Tensor) -> Tensor:  # log softmax over the non-target classes
        return z[~target].view(len(z), -1).log_softmax(dim=-1)

    def kl(log_t: Tensor, log_s: Tensor) -> Tensor:
        return (log_t.exp() * (log_t - log_s)).sum(dim=-1).mean() * (T * T)

    return kl(binary(t), binary(s)), kl(others(t), others(s))


class DKD(Objective):
    name = "dkd"
    title = "DKD"
    params = (
        Param("alpha", float, 1.0, "a", "α", "weight of TCKD", low=0.0),
        Param("beta", float, 8.0, "b", "β", "weight of NCKD", low=0.0),
        Param("warmup", int, 20, "w", "warm-up", "epochs of linear KD warm-up", 0),
        ADDED_HARD_WEIGHT,
    )

    def loss(self, student, teacher, y, T, epoch, epochs):
        tckd, nckd = dkd_parts(student, teacher, y, T)
        p = self.p
        ramp = min(epoch / p["warmup"], 1.0) if p["warmup"] else 1.0
        kd = ramp * (p["alpha"] * tckd + p["beta"] * nckd)
        return with_hard_labels(kd, student, y, p["hard_weight"], mixed=False)
