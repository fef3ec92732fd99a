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


def replace_tokens(
    input_ids: Tensor,
    attention_mask: Tensor,
    share: float,
    special_ids: Tensor,
    generator: torch.Generator,
) -> Tensor:
    """A copy of `input_ids` in which each real, non-special token is replaced with probability
    `share` by a token drawn from the same batch's real, non-special tokens, so that the
    replacements follow the task's own word distribution (TinyBERT's augmentation without a
    word-vector table). The teacher then labels the changed input: the student learns the
    teacher's function around each training pair instead of memorising the task's labels."""
    real = attention_mask.bool() & ~torch.isin(input_ids, special_ids.to(input_ids.device))
    pool = input_ids[real]
    draw = torch.rand(input_ids.shape, generator=generator, device=generator.device)
    pick = real & (draw.to(input_ids.device) < share)
    out = input_ids.clone()
    n = int(pick.sum())
    if n and pool.numel():
        which = torch.randint(pool.numel(), (n,), generator=generator, device=generator.device)
        out[pick] = pool[which.to(pool.device)]
    return out


def hidden_distillation(
    student: tuple[Tensor, ...], teacher: tuple[Tensor, ...], mask: Tensor | None = None
) -> Tensor:
    """Mean over layers of the MSE between hidden states (each after its LayerNorm), counting
    only real (unpadded) tokens."""
    losses = []
    for s, t in zip(student, teacher):
        losses.append(_token_mean((s.float() - t.float()).square().mean(-1), mask))
    return torch.stack(losses).mean()


def attention_distillation(
    student: tuple[Tensor, ...], teacher: tuple[Tensor, ...], mask: Tensor | None = None
) -> Tensor:
    """Mean over layers of KL(teacher || student) between the attention distributions
    ([batch, heads, queries, keys], after the softmax), summed over keys and averaged over heads
    and real (unpadded) query tokens: TinyBERT's and MiniLM's attention transfer, so that the
    kept heads and head dimensions learn to attend as the dense heads did."""
    losses = []
    for s, t in zip(student, teacher):
        s, t = s.float(), t.float()
        # padded keys hold probability 0 in both; xlogy makes their terms 0, not 0 * log 0
        kl = (torch.xlogy(t, t) - torch.xlogy(t, s.clamp_min(1e-12))).sum(-1).mean(1)
        losses.append(_token_mean(kl, mask))
    return torch.stack(losses).mean()


def _token_mean(per_token: Tensor, mask: Tensor | None) -> Tensor:
    """The mean of a [batch, tokens] loss over the real (unpadded) tokens."""
    if mask is None:
        return per_token.mean()
    return (per_token * mask).sum() / mask.sum().clamp_min(1)
