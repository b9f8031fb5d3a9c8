"""Distillation losses (docs/method.md sections 1-2).

Symbols: ``z`` student logits, ``v`` teacher logits, ``T`` temperature, ``a`` the weight of
the soft term (``soft_weight``), ``N`` the number of classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softmax_t(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Temperature softmax ``q_i = exp(z_i/T) / sum_j exp(z_j/T)`` over the last dim."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(logits / temperature, dim=-1)


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     temperature: float, *, scale_t2: bool = True) -> torch.Tensor:
    """Hinton's soft-target term: ``T^2 * KL(q_T(teacher) || q_T(student))``, batch mean.

    Parameters
    ----------
    student_logits, teacher_logits : Tensor (B, N)
    temperature : float
        T (> 0).
    scale_t2 : bool
        Multiply by ``T^2`` so the gradient scale does not shrink as ``1/T^2`` (default,
        as in the paper).

    Returns
    -------
    Tensor ()
        KL in nats per example (it differs from the cross-entropy form only by the
        teacher's entropy, a constant, so gradients are the same).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    t = float(temperature)
    log_q_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach() / t, dim=-1)
    kl = F.kl_div(log_q_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * (t * t) if scale_t2 else kl


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor | None, temperature: float,
                      soft_weight: float) -> torch.Tensor:
    """``a * T^2 * KL(q_T(v) || q_T(z)) + (1 - a) * CE(y, q_1(z))``.

    ``temperature`` is T and ``soft_weight`` is a, with no default here: an experiment
    takes them from its config (``student.temperature``, ``student.soft_weight``).
    ``labels=None`` (a transfer set without labels) uses the soft term alone.
    """
    if not 0.0 <= soft_weight <= 1.0:
        raise ValueError(f"soft_weight must lie in [0, 1], got {soft_weight}")
    soft = soft_target_loss(student_logits, teacher_logits, temperature)
    if labels is None or soft_weight == 1.0:
        return soft
    return soft_weight * soft + (1.0 - soft_weight) * F.cross_entropy(student_logits, labels)


def logit_l2_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                  zero_mean: bool = True) -> torch.Tensor:
    """Logit regression (Ba & Caruana): ``mean_b sum_i (z_i - v_i)^2 / (2N)``.

    With ``zero_mean`` both logit vectors are centred per example first, which is the
    high-temperature limit of :func:`soft_target_loss` (gradient ``(z - v)/N``).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    z, v = student_logits, teacher_logits.detach()
    if zero_mean:
        z = z - z.mean(dim=-1, keepdim=True)
        v = v - v.mean(dim=-1, keepdim=True)
    n = z.shape[-1]
    return ((z - v) ** 2).sum(dim=-1).mean() / (2 * n)


def feature_distillation_loss(student_feature: torch.Tensor,
                              teacher_feature: torch.Tensor) -> torch.Tensor:
    """Phase-1 loss of Cheng et al.: MSE between the pre-activation outputs of layer L."""
    if student_feature.shape != teacher_feature.shape:
        raise ValueError(
            f"the distilled layer's output has shape {tuple(student_feature.shape)} in the "
            f"student but {tuple(teacher_feature.shape)} in the teacher; teacher and student "
            "must share the architecture (and the input size)")
    return F.mse_loss(student_feature, teacher_feature.detach())
