"""Saving quantification results: the grids (``.pt``) and tidy tables (CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kdexplain.quantify.engine import QuantifyResult
from kdexplain.utils.io import atomic_torch_save, atomic_write_text, load_torch_file


def result_tables(result: QuantifyResult, labels: list[int] | None = None,
                  foreground: torch.Tensor | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy tables of a single-model result.

    Returns
    -------
    cells : DataFrame
        One row per (image, cell): ``image`` (position), ``key``, ``row``, ``col``,
        ``sigma``, ``entropy``, ``log_sigma_se`` (NaN where the preset does not estimate it)
        and, when ``foreground`` (B, g, g) is given, ``foreground``.
    images : DataFrame
        One row per image: ``image``, ``key``, ``label``, ``d0``, ``no_signal``,
        ``mean_entropy``, ``steps_run``, ``final_loss``, ``precision`` (the median over
        cells of ``log_sigma_se``).
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
    return cells, images


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
