"""The weight trajectory of the analysed layer (docs/method.md section 4, hypothesis 2).

Two forms of the normalised distance travelled by a layer's weight ``W`` are recorded:

- per optimiser step (the path length): ``d(t) = sum_{s<=t} ||W_s - W_{s-1}||_F / ||W_0||_F``;
- per epoch (the paper's formula): ``d_epoch(k) = sum_{j<=k} ||w_j - w_{j-1}||_F / ||w_0||_F``
  with ``w_j`` the weight at the end of epoch ``j``.

``W_0`` is the weight at epoch 0 of the tracked phase (the student's and baseline's initial
weights; the teacher's weights at the start of fine-tuning). The per-step norms stay on the
device during an epoch and are read once at its end, so tracking adds no synchronisation
to the training step.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd
import torch
from torch import nn

__all__ = ["WeightTrajectory", "path_length", "weight_distances"]


def path_length(weights: list[torch.Tensor]) -> list[float]:
    """The normalised path length ``d(t)`` of a sequence of weights ``W_0, W_1, ...``.

    Parameters
    ----------
    weights : list of Tensor
        The weight after each step, ``weights[0]`` = ``W_0``; any shape, all equal.

    Returns
    -------
    list of float
        ``d(t)`` for ``t = 0 .. len(weights) - 1`` (``d(0) = 0``).
    """
    w0 = float(torch.linalg.vector_norm(weights[0].double()))
    if w0 == 0:
        raise ValueError("the initial weight has norm 0: the path length is undefined")
    out, total = [0.0], 0.0
    for prev, cur in zip(weights[:-1], weights[1:], strict=True):
        total += float(torch.linalg.vector_norm(cur.double() - prev.double()))
        out.append(total / w0)
    return out


class WeightTrajectory:
    """Track the path length of the weights of some layers during one training phase.

    Parameters
    ----------
    model : nn.Module
        The model being trained (not a DDP wrapper).
    layers : list of str
        Resolved module paths; each module must own a ``weight`` parameter. The first one
        is the analysed layer, written to the contract columns ``weight_step_norm`` and
        ``path_length``; the others get ``weight_step_norm@<path>`` and ``path_length@<path>``.

    Notes
    -----
    Call :meth:`start` at epoch 0 (or :meth:`load_state_dict` when resuming), :meth:`step`
    after every optimiser step, :meth:`end_epoch` after every epoch.
    """

    def __init__(self, model: nn.Module, layers: list[str]) -> None:
        self.layers = list(layers)
        self.weights: list[torch.Tensor] = []
        for name in self.layers:
            w = getattr(model.get_submodule(name), "weight", None)
            if not isinstance(w, torch.Tensor):
                with_weight = [n for n, m in model.named_modules()
                               if n and isinstance(getattr(m, "weight", None), torch.Tensor)]
                raise ValueError(
                    f"layer {name!r} ({type(model.get_submodule(name)).__name__}) has no weight "
                    "to track; choose a layer with a weight: " + ", ".join(with_weight[:40]))
            self.weights.append(w)
        self.w0_norm = [math.nan] * len(self.layers)
        self.total = [0.0] * len(self.layers)        # sum of step norms (unnormalised)
        self.epoch_total = [0.0] * len(self.layers)  # sum of per-epoch norms (unnormalised)
        self._prev: list[torch.Tensor] = []
        self._prev_epoch: list[torch.Tensor] = []
        self._pending: list[torch.Tensor] = []       # (n_layers,) per step, on device

    # -- lifecycle -------------------------------------------------------------------------
    @torch.no_grad()
    def _snapshot(self) -> None:
        self._prev = [w.detach().clone() for w in self.weights]
        self._prev_epoch = [w.detach().clone() for w in self.weights]
        self._pending = []

    @torch.no_grad()
    def start(self) -> None:
        """Take ``W_0`` from the current weights (epoch 0 of the phase)."""
        self.w0_norm = [float(torch.linalg.vector_norm(w.detach().double())) for w in self.weights]
        for name, n in zip(self.layers, self.w0_norm, strict=True):
            if n == 0:
                raise ValueError(f"the weight of layer {name!r} is all zero at epoch 0: its "
                                 "normalised path length is undefined")
        self.total = [0.0] * len(self.layers)
        self.epoch_total = [0.0] * len(self.layers)
        self._snapshot()

    @torch.no_grad()
    def step(self) -> None:
        """Record ``||W_s - W_{s-1}||_F`` after an optimiser step (no device sync)."""
        norms = []
        for w, prev in zip(self.weights, self._prev, strict=True):
            norms.append(torch.linalg.vector_norm((w.detach() - prev).float()))
            prev.copy_(w.detach())
        self._pending.append(torch.stack(norms))

    @torch.no_grad()
    def end_epoch(self, epoch: int, first_step: int) -> list[dict[str, float]]:
        """Close an epoch: the per-step rows for ``trajectory.csv``.

        Parameters
        ----------
        epoch : int
            The epoch just finished (1-based).
        first_step : int
            The global step number of the epoch's first optimiser step.
        """
        rows = []
        if self._pending:
            per_step = torch.stack(self._pending).double().cpu().tolist()  # (steps, n_layers)
        else:
            per_step = []
        for i, norms in enumerate(per_step):
            row: dict[str, float] = {"step": first_step + i, "epoch": epoch}
            for j, n in enumerate(norms):
                self.total[j] += n
                row.update(self._columns(j, n, self.total[j] / self.w0_norm[j]))
            rows.append(row)
        self._pending = []
        for j, (w, prev) in enumerate(zip(self.weights, self._prev_epoch, strict=True)):
            self.epoch_total[j] += float(torch.linalg.vector_norm((w.detach() - prev).double()))
            prev.copy_(w.detach())
        return rows

    def initial_row(self) -> dict[str, float]:
        """The step-0 row (``d(0) = 0``)."""
        row: dict[str, float] = {"step": 0, "epoch": 0}
        for j in range(len(self.layers)):
            row.update(self._columns(j, 0.0, 0.0))
        return row

    def _columns(self, j: int, step_norm: float, d: float) -> dict[str, float]:
        suffix = "" if j == 0 else f"@{self.layers[j]}"
        return {f"weight_step_norm{suffix}": step_norm, f"path_length{suffix}": d}

    def distance_row(self, epoch: int, global_step: int) -> dict[str, float]:
        """The row of ``weight_distance.csv`` for a checkpoint taken now."""
        row: dict[str, float] = {"epoch": epoch, "global_step": global_step}
        for j in range(len(self.layers)):
            suffix = "" if j == 0 else f"@{self.layers[j]}"
            row[f"d_step{suffix}"] = self.total[j] / self.w0_norm[j]
            row[f"d_epoch{suffix}"] = self.epoch_total[j] / self.w0_norm[j]
        return row

    def fieldnames(self) -> tuple[list[str], list[str]]:
        """Column names of ``trajectory.csv`` and ``weight_distance.csv``."""
        traj = ["step", "epoch"]
        dist = ["epoch", "global_step"]
        for j in range(len(self.layers)):
            suffix = "" if j == 0 else f"@{self.layers[j]}"
            traj += [f"weight_step_norm{suffix}", f"path_length{suffix}"]
            dist += [f"d_step{suffix}", f"d_epoch{suffix}"]
        return traj, dist

    # -- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What a checkpoint must hold to continue the trajectory exactly (at an epoch end)."""
        if self._pending:
            raise RuntimeError("state_dict() inside an epoch: call end_epoch() first")
        return {"layers": list(self.layers), "w0_norm": list(self.w0_norm),
                "total": list(self.total), "epoch_total": list(self.epoch_total)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint; the current weights are those of its epoch end."""
        if list(state["layers"]) != self.layers:
            raise ValueError(f"the checkpoint tracked layers {state['layers']}, this run "
                             f"tracks {self.layers}")
        self.w0_norm = list(state["w0_norm"])
        self.total = list(state["total"])
        self.epoch_total = list(state["epoch_total"])
        self._snapshot()


def weight_distances(model_dir: str | Path) -> pd.DataFrame:
    """The weight distances at each kept checkpoint of one model of a run.

    Parameters
    ----------
    model_dir : str or Path
        ``RUN_DIR/teacher``, ``RUN_DIR/student`` or ``RUN_DIR/baseline``.

    Returns
    -------
    pandas.DataFrame
        One row per checkpoint epoch (sorted), columns ``epoch``, ``global_step``, ``d_step``
        (the path length ``d(t)`` at the checkpoint, per-step form) and ``d_epoch`` (the
        paper's per-epoch form), plus ``d_step@<layer>``/``d_epoch@<layer>`` for further
        tracked layers.
    """
    path = Path(model_dir) / "weight_distance.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {model_dir} is not a model folder of a training run "
            "(expected RUN_DIR/teacher, RUN_DIR/student or RUN_DIR/baseline written by "
            "`kdexplain train-triplet`), or its training has not reached epoch 0 yet")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["epoch", "global_step", "d_step", "d_epoch"])
    df = df.astype({c: float for c in df.columns})
    df = df.astype({"epoch": int, "global_step": int})
    return df.sort_values("epoch").reset_index(drop=True)
