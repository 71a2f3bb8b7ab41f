"""Distillation and supervised losses.

    L = L_sup + L_KD,   L_KD = sum_i lambda_i * T^2 * KL(p_i^teacher || p_i^student)

with p^x = softmax(logits^x / T) per distilled head i (verdict, score bins, ...). The T^2 factor
keeps gradient magnitudes comparable across temperatures (Hinton, Vinyals & Dean 2015).
Teacher soft labels may be given as probabilities (what an LLM teacher exports) or logits.
Sequence-level distillation (Kim & Rush 2016) is not a loss here: the student's feedback generator
is trained on teacher generations (see ``ml.train``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


def kd_kl(
    student_logits: Tensor,  # [B, K]
    teacher: Tensor,  # [B, K] logits, or probabilities when teacher_is_probs
    temperature: float = 2.0,
    *,
    teacher_is_probs: bool = False,
    mask: Tensor | None = None,  # [B] bool: rows that have a teacher label
) -> Tensor:
    """T^2 * KL(p_teacher^T || p_student^T), averaged over the (masked) rows."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    t_logits = torch.log(teacher.clamp_min(1e-12)) if teacher_is_probs else teacher
    log_p_t = F.log_softmax(t_logits / temperature, dim=-1)  # [B, K]
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)  # [B, K]
    per_row = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)  # [B]
    if mask is not None:
        mask = mask.to(per_row.dtype)
        per_row = per_row * mask
        denom = mask.sum().clamp_min(1.0)
    else:
        denom = torch.tensor(float(per_row.numel()), dtype=per_row.dtype)
    return temperature**2 * per_row.sum() / denom


def distillation_loss(
    student_logits: Mapping[str, Tensor],
    teacher: Mapping[str, Tensor],
    lambdas: Mapping[str, float],
    temperature: float = 2.0,
    *,
    teacher_is_probs: bool = False,
    masks: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """sum_i lambda_i * kd_kl(student_i, teacher_i) over heads with a teacher and lambda_i != 0."""
    total = None
    for head, lam in lambdas.items():
        if lam == 0 or head not in teacher:
            continue
        term = lam * kd_kl(
            student_logits[head],
            teacher[head],
            temperature,
            teacher_is_probs=teacher_is_probs,
            mask=None if masks is None else masks.get(head),
        )
        total = term if total is None else total + term
    if total is None:
        some = next(iter(student_logits.values()))
        return some.new_zeros(())
    return total


def two_hot(values: Tensor, n_bins: int) -> Tensor:
    """Soft one-hot of values in [0, 1] over n_bins equally spaced bins. [B] -> [B, n_bins]."""
    pos = values.clamp(0, 1) * (n_bins - 1)  # [B]
    lo = pos.floor().long().clamp(max=n_bins - 1)
    hi = (lo + 1).clamp(max=n_bins - 1)
    w_hi = pos - lo.to(pos.dtype)
    out = torch.zeros(values.shape[0], n_bins, dtype=values.dtype, device=values.device)
    out.scatter_add_(1, lo[:, None], (1 - w_hi)[:, None])
    out.scatter_add_(1, hi[:, None], w_hi[:, None])
    return out


def soft_cross_entropy(logits: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """-sum target * log_softmax(logits), mean over rows; logits at -inf positions are skipped."""
    log_p = F.log_softmax(logits, dim=-1)
    per_row = -(target * torch.where(target > 0, log_p, torch.zeros_like(log_p))).sum(-1)
    if mask is None:
        return per_row.mean()
    mask = mask.to(per_row.dtype)
    return (per_row * mask).sum() / mask.sum().clamp_min(1.0)
