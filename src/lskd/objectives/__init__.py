"""The training objectives, one file each: label-smoothed cross-entropy for teachers
(`ls`) and the temperature-scaled KD loss for students (`kd`); docs/recipes.md#losses.

Both are pure functions of tensors that upcast the logits to float32 before any softmax,
so they stay exact when the forward pass ran in bf16
(docs/contributing.md#losses-in-float32: bf16 KD at T=64 is 23 % off, float32 1e-5).
"""
