"""The training methods, one file each, registered by name: teacher regularizers
(`REGULARIZERS`) and student KD objectives (`OBJECTIVES`). A config entry or a CLI flag
chooses one by name with its parameters (`lskd.identity.Choice`); adding a method is its
file, its line below and its tests (docs/adding-a-method.md).

Every loss upcasts the logits to float32 before any softmax, so it stays exact when the
forward pass ran in bf16 (docs/contributing.md#losses-in-float32: bf16 KD at T=64 is
23 % off, float32 1e-5).
"""

from lskd.objectives.ce import CrossEntropy
from lskd.objectives.dkd import DKD
from lskd.objectives.kd import KD
from lskd.objectives.logit_std_kd import LogitStdKD
from lskd.objectives.ls import LabelSmoothing
from lskd.objectives.maxsup import MaxSup
from lskd.objectives.method import Registry
from lskd.objectives.teacher_t_kd import TeacherTKD

REGULARIZERS = Registry("regularizer", CrossEntropy, LabelSmoothing, MaxSup)
OBJECTIVES = Registry("objective", KD, LogitStdKD, DKD, TeacherTKD)
