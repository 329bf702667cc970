"""Student objective `teacher_t_kd`: KD with the temperature on the teacher only,
KL(softmax(z_t / T) || softmax(z_s)), batch mean.

The variant the paper's code leaves commented out beside its KD loss, noting that
Müller et al. (2019) scaled only the teacher by T; Zheng & Yang (ICLR 2024, "Knowledge
Distillation Based on Transformed Teacher Matching") study the same target as
transformed teacher matching and show it is KD plus a Rényi-entropy regularizer on the
student. The student's logits are not divided by T, so there is no T^2 factor to
restore its gradient scale; `hard_weight` mixes in a hard-label CE as for `kd`.
"""

from __future__ import annotations

from lskd.objectives.kd import MIXED_HARD_WEIGHT, with_hard_labels
from lskd.objectives.method import Objective


class TeacherTKD(Objective):
    name = "teacher_t_kd"
    title = "KD, T on the teacher only"
    params = (MIXED_HARD_WEIGHT,)

    def loss(self, student, teacher, y, T, epoch, epochs):
        import torch.nn.functional as F

        log_p_s = F.log_softmax(student.float(), dim=-1)
        log_p_t = F.log_softmax(teacher.detach().float() / T, dim=-1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        return with_hard_labels(kl, student, y, self.p["hard_weight"])
