"""Fidelity of a model to the teacher (Stanton et al., NeurIPS 2021, "Does knowledge
distillation really work?"), measured on the validation set at the end of training.

- ``agreement``: the share of images whose top-1 class equals the teacher's;
- ``kl_teacher``: the mean over images of KL(p_teacher || p_model) of the predictive
  distributions (softmax at temperature 1), in nats;
- ``ece``: the expected calibration error of the model itself, with 15 equal-width
  confidence bins on [0, 1] (Guo et al., 2017): sum over bins of
  ``|bin| / N * |accuracy(bin) - mean confidence(bin)|``.

Accuracy says how often a network is right; fidelity says how closely the student follows
the teacher, which is what distillation is asked to transfer.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["ECE_BINS", "FIDELITY_COLUMNS", "agreement", "expected_calibration_error",
           "fidelity", "mean_kl", "predict_logits", "read_fidelity"]

#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15
#: The columns :func:`fidelity` returns, in table order.
FIDELITY_COLUMNS = ("agreement", "kl_teacher", "ece")


def agreement(teacher_logits: torch.Tensor, logits: torch.Tensor) -> float:
    """Share of rows whose argmax equals the teacher's; both (N, C)."""
    return float((teacher_logits.argmax(1) == logits.argmax(1)).double().mean())


def mean_kl(teacher_logits: torch.Tensor, logits: torch.Tensor) -> float:
    """Mean over rows of KL(softmax(teacher) || softmax(model)) in nats; both (N, C)."""
    log_p = torch.log_softmax(teacher_logits.double(), 1)
    log_q = torch.log_softmax(logits.double(), 1)
    return float((log_p.exp() * (log_p - log_q)).sum(1).mean())


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor,
                               n_bins: int = ECE_BINS) -> float:
    """ECE of ``logits`` (N, C) against ``labels`` (N,), ``n_bins`` equal-width bins.

    A confidence c falls into bin ``k`` when ``k / n_bins < c <= (k + 1) / n_bins`` (the
    usual right-closed bins; a confidence is > 1 / C > 0, so no bin is missed).
    """
    probs = torch.softmax(logits.double(), 1)
    conf, pred = probs.max(1)
    correct = (pred == labels).double()
    bins = torch.clamp(torch.ceil(conf * n_bins).long() - 1, 0, n_bins - 1)
    total = 0.0
    for k in range(n_bins):
        sel = bins == k
        if sel.any():
            total += float(sel.double().mean() * (correct[sel].mean() - conf[sel].mean()).abs())
    return total


def fidelity(teacher_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
             ) -> dict[str, float]:
    """``agreement``, ``kl_teacher`` and ``ece`` of a model's validation logits (N, C)."""
    if teacher_logits.shape != logits.shape or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits of shape {tuple(teacher_logits.shape)} (teacher), "
                         f"{tuple(logits.shape)} (model) and {tuple(labels.shape)} labels "
                         "do not match")
    return {"agreement": agreement(teacher_logits, logits),
            "kl_teacher": mean_kl(teacher_logits, logits),
            "ece": expected_calibration_error(logits, labels)}


@torch.no_grad()
def predict_logits(model: nn.Module, dataset, device: torch.device | str = "cpu",
                   batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits (N, C) of ``model`` in evaluation mode over ``dataset`` (a
    :class:`~kdexplain.data.PreloadedDataset` or any dataset of dicts with ``image``
    (3, H, W) and ``label``), and the labels (N,)."""
    from kdexplain.data.preloaded import PreloadedDataset

    if isinstance(dataset, PreloadedDataset):
        images, labels = dataset.images, dataset.labels
    else:
        items = [dataset[i] for i in range(len(dataset))]
        images = torch.stack([it["image"] for it in items])
        labels = torch.as_tensor([int(it["label"]) for it in items])
    was_training = model.training
    model.eval()
    try:
        out = [model(images[i:i + batch_size].to(device)).float().cpu()
               for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out), labels.long()


def read_fidelity(model_dir: str | Path) -> dict[str, float] | None:
    """A model's ``fidelity.json`` (written by the training), or None when it has none."""
    from kdexplain.utils import read_json

    path = Path(model_dir) / "fidelity.json"
    if not path.is_file():
        return None
    data = read_json(path)
    return {k: float(data[k]) for k in FIDELITY_COLUMNS if k in data}
