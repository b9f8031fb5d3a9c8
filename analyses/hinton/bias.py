"""The test-time bias of the missing-class analysis, and the rules that choose it.

A student distilled on a transfer set without some classes learns too low a bias for them
(Hinton et al., section 3). The edit is ``z_c <- z_c + b`` for the edited classes c, at
test time. :func:`bias_sweep` gives the errors over a grid of ``b`` (the test-set optimum
is what the paper reports); :func:`prior_matching_bias` and :func:`agreement_bias` choose
``b`` from unlabelled held-out images and the teacher alone, never from the test set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["agreement_bias", "apply_bias", "bias_sweep", "class_mass", "prior_matching_bias"]

def apply_bias(logits: torch.Tensor, classes: Sequence[int], bias: float) -> torch.Tensor:
    """``logits`` with ``bias`` added to the columns ``classes``. ``(N, C)`` -> ``(N, C)``."""
    out = logits.clone()
    out[:, list(classes)] += bias
    return out


def bias_sweep(logits: torch.Tensor, labels: torch.Tensor, classes: Sequence[int],
               biases: torch.Tensor) -> dict[str, np.ndarray]:
    """Errors as a function of the bias added to ``classes``.

    Parameters
    ----------
    logits : Tensor (N, C)
    labels : Tensor (N,)
    classes : sequence of int
        The edited classes (e.g. ``[3]`` or ``[7, 8]``).
    biases : Tensor (K,)

    Returns
    -------
    dict
        ``"errors"`` (K,): errors over all N examples; ``"class_errors"`` (K,): errors
        among the examples whose label is one of ``classes``; ``"class_total"``: how
        many such examples there are.
    """
    cls = torch.tensor(list(classes))
    onehot = torch.zeros(logits.shape[1], dtype=logits.dtype)
    onehot[cls] = 1.0
    biases = biases.to(logits.dtype)
    wrong = torch.cat([  # (K, N); chunks of 16 biases bound the (k, N, C) temporary
        (logits[None] + biases[i:i + 16, None, None] * onehot).argmax(dim=2) != labels[None]
        for i in range(0, len(biases), 16)])
    in_cls = torch.isin(labels, cls)
    return {"errors": wrong.sum(1).numpy(), "class_errors": wrong[:, in_cls].sum(1).numpy(),
            "class_total": int(in_cls.sum())}


def class_mass(logits: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Mean over rows of the softmax probability of ``classes`` (summed). ``(N, C)`` -> ()."""
    return torch.softmax(logits.double(), dim=1)[:, list(classes)].sum(1).mean()


def prior_matching_bias(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                        classes: Sequence[int], lo: float = -30.0, hi: float = 30.0,
                        iters: int = 60) -> float:
    """Bias ``b`` on ``classes`` so the student's mean probability of them equals the teacher's.

    Solves ``mean_x sum_{c in classes} softmax(z(x) + b e_classes)_c = mean_x sum_c
    softmax(v(x))_c`` by bisection (the left side increases with ``b``). No labels used.

    Parameters
    ----------
    student_logits, teacher_logits : Tensor (N, C)
        Logits of the same N unlabelled images.
    classes : sequence of int
    lo, hi : float
        Search interval; the result is clipped to it.
    iters : int

    Returns
    -------
    float
    """
    target = float(class_mass(teacher_logits, classes))
    z = student_logits.double()

    def f(b: float) -> float:
        return float(class_mass(apply_bias(z, classes, b), classes)) - target

    if f(lo) >= 0:
        return lo
    if f(hi) <= 0:
        return hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def agreement_bias(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   classes: Sequence[int], biases: torch.Tensor) -> float:
    """The bias of ``biases`` (K,) maximising arg-max agreement with the teacher.

    Ties (a plateau of equal agreement) resolve to the median of the tied grid values.
    """
    target = teacher_logits.argmax(dim=1)
    sweep = bias_sweep(student_logits, target, classes, biases)
    agree = -sweep["errors"]
    best = np.flatnonzero(agree == agree.max())
    return float(biases[best[len(best) // 2]])
