"""Saving quantification results: the grids (``.pt``) and tidy tables (CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kdexplain.concepts.metrics import (
    DEFAULT_CONCEPT_THRESHOLD,
    background_entropy,
    concept_cells,
    count_concepts,
    region_means,
)
from kdexplain.quantification.engine import QuantifyResult
from kdexplain.utils.io import atomic_torch_save, atomic_write_text, load_torch_file


def result_tables(result: QuantifyResult, labels: list[int] | None = None,
                  foreground: torch.Tensor | None = None,
                  concept_threshold: float = DEFAULT_CONCEPT_THRESHOLD,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy tables of a single-model result.

    Parameters
    ----------
    result : QuantifyResult
        Of one model: grids (B, g, g).
    labels : list of int, optional
    foreground : bool Tensor (B, g, g), optional
        Object cells: adds the concept summary of :func:`concept_summary`.
    concept_threshold : float
        ``b`` of the concept rule (docs/method.md section 4).

    Returns
    -------
    cells : DataFrame
        One row per (image, cell): ``image`` (position), ``key``, ``row``, ``col``,
        ``sigma``, ``entropy``, ``log_sigma_se`` (NaN where the preset does not estimate it)
        and, when ``foreground`` (B, g, g) is given, ``foreground``.
    images : DataFrame
        One row per image: ``image``, ``key``, ``label``, ``d0``, ``no_signal``,
        ``mean_entropy``, ``steps_run``, ``final_loss``, ``precision`` (the median over
        cells of ``log_sigma_se``) and, with ``foreground``, ``fg_entropy``, ``bg_entropy``,
        ``n_fg``, ``n_bg``.
    """
    if result.sigma.ndim != 3:
        raise ValueError("result_tables takes the result of a single model (B, g, g)")
    B, g, _ = result.sigma.shape
    se = (result.log_sigma_se if result.log_sigma_se is not None
          else torch.full_like(result.sigma, float("nan")))
    rows, cols = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
    cells = pd.DataFrame({
        "image": np.repeat(np.arange(B), g * g),
        "key": np.repeat(np.asarray(result.image_keys, dtype=object), g * g),
        "row": np.tile(rows.ravel(), B),
        "col": np.tile(cols.ravel(), B),
        "sigma": result.sigma.reshape(-1).numpy(),
        "entropy": result.entropy.reshape(-1).numpy(),
        "log_sigma_se": se.reshape(-1).numpy(),
    })
    if foreground is not None:
        cells["foreground"] = foreground.reshape(-1).bool().numpy()
    last = []
    for b in range(B):
        n = int(result.steps_run[b])
        last.append(float(result.loss_trace[n - 1, b]) if n > 0 else float("nan"))
    images = pd.DataFrame({
        "image": np.arange(B),
        "key": result.image_keys,
        "label": labels if labels is not None else [None] * B,
        "d0": result.d0.numpy(),
        "no_signal": result.no_signal.numpy(),
        "mean_entropy": result.entropy.flatten(1).mean(1).numpy(),
        "steps_run": result.steps_run.numpy(),
        "final_loss": last,
        "precision": se.flatten(1).nanmedian(1).values.numpy(),
    })
    if foreground is not None:
        summary = concept_summary(result.entropy, foreground, concept_threshold,
                                  result.no_signal)
        images = images.assign(**summary)
    return cells, images


def concept_summary(entropy: torch.Tensor, foreground: torch.Tensor,
                    threshold: float = DEFAULT_CONCEPT_THRESHOLD,
                    no_signal: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Per image: mean foreground and background entropy, and the concept counts at ``b``.

    The baseline ``H_bar`` is pooled over the images given (the original rule,
    docs/method.md section 4): the mean of each image's mean background entropy, images
    without signal left out.

    Parameters
    ----------
    entropy : Tensor (B, g, g)
    foreground : bool Tensor (B, g, g)
    threshold : float
        ``b``: a cell is a concept when ``H_bar - H_i > b``.
    no_signal : bool Tensor (B,), optional
        Images whose grid carries no signal: NaN entropies and no concepts.

    Returns
    -------
    dict of arrays (B,)
        ``fg_entropy``, ``bg_entropy`` (NaN for a region without cells), ``n_fg``, ``n_bg``.
    """
    h = entropy.double().numpy().copy()
    if no_signal is not None:
        h[no_signal.numpy()] = np.nan
    fg = foreground.bool().numpy()
    fg_mean, bg_mean = region_means(h[None], fg)
    h_bar = background_entropy(h[None], fg, "pooled")
    n_fg, n_bg = count_concepts(concept_cells(h[None], h_bar, threshold), fg)
    return {"fg_entropy": fg_mean[0], "bg_entropy": bg_mean[0], "n_fg": n_fg[0],
            "n_bg": n_bg[0]}


def save_result(result: QuantifyResult, path: str | Path, **extra) -> Path:
    """Save a result (all tensors and settings, plus ``extra`` fields) atomically."""
    payload = {k: v for k, v in result.__dict__.items()}
    payload.update(extra)
    return atomic_torch_save(payload, path)


def load_result(path: str | Path) -> QuantifyResult:
    """Load a result saved by :func:`save_result` (extra fields are dropped)."""
    obj = load_torch_file(path, what="quantification result")
    if not isinstance(obj, dict) or "sigma" not in obj:
        raise ValueError(f"{path} is not a quantification result saved by kdexplain "
                         "(no 'sigma'); expected the quantify.pt of `kdexplain quantify`")
    fields = QuantifyResult.__dataclass_fields__
    return QuantifyResult(**{k: v for k, v in obj.items() if k in fields})


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """A DataFrame to CSV, atomically."""
    return atomic_write_text(path, df.to_csv(index=False))
