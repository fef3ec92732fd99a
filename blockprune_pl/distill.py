"""Knowledge distillation from the dense teacher: pure torch losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def logit_distillation(
    student: Tensor, teacher: Tensor, temperature: float, regression: bool
) -> Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)) (Hinton et al.), batch mean; for a
    regression head (STS-B) the MSE between the two predictions."""
    if regression:
        return F.mse_loss(student.float(), teacher.float())
    t = float(temperature)
    log_p_student = F.log_softmax(student.float() / t, dim=-1)
    p_teacher = F.softmax(teacher.float() / t, dim=-1)
    return t * t * F.kl_div(log_p_student, p_teacher, reduction="batchmean")


def hidden_distillation(
    student: tuple[Tensor, ...], teacher: tuple[Tensor, ...], mask: Tensor | None = None
) -> Tensor:
    """Mean over layers of the MSE between hidden states (each after its LayerNorm), counting
    only real (unpadded) tokens."""
    losses = []
    for s, t in zip(student, teacher):
        diff = (s.float() - t.float()).square().mean(-1)
        if mask is not None:
            diff = (diff * mask).sum() / mask.sum().clamp_min(1)
        else:
            diff = diff.mean()
        losses.append(diff)
    return torch.stack(losses).mean()
