"""Record what kdexplain's analysis needs from any PyTorch training loop.

A :class:`Recorder` is told the model, its architecture, the analysed layer and the epochs
to keep; the loop calls :meth:`Recorder.start` before its first step, :meth:`Recorder.step`
after every optimiser step and :meth:`Recorder.end_epoch` after every epoch. It writes one
model folder of kdexplain's run layout (``docs/training.md``)::

    OUT/checkpoints/epoch_XXXX.pt   kept epochs: state dict + kdexplain's checkpoint metadata
    OUT/trajectory.csv              per optimiser step: weight_step_norm, path_length
    OUT/weight_distance.csv         per kept epoch: d_step (per step), d_epoch (per epoch)
    OUT/metrics.csv                 per epoch: the losses and accuracies the loop reports
    OUT/recorder.json               arch, layer, role, seed, kept epochs

The distances are computed by the same code as kdexplain's trainer
(:class:`kdexplain.train.trajectory.WeightTrajectory`; docs/method.md section 4), so a loop
that takes the same steps gives the same numbers. A step adds no device synchronisation:
the step norms stay on the device until the epoch ends.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdexplain.models import build_model, resolve_layer_name
from kdexplain.train.checkpoints import checkpoint_path
from kdexplain.train.records import ModelRecords
from kdexplain.train.trajectory import WeightTrajectory
from kdexplain.utils import atomic_write_bytes, write_json
from kdexplain.vocabulary import ROLES

__all__ = ["ANALYSED_PHASE", "Recorder", "check_state_dict"]

#: The analysed phase's name per role, as kdexplain's trainer names it.
ANALYSED_PHASE = {"teacher": "finetune", "student": "phase1", "baseline": "train"}


def check_state_dict(state: dict[str, torch.Tensor], reference: nn.Module, what: str) -> None:
    """Raise a one-line ``ValueError`` unless ``state`` has exactly the keys and shapes of
    ``reference.state_dict()`` (prefixes ``module.``/``_orig_mod.`` already removed)."""
    ref = reference.state_dict()
    arch = getattr(reference, "kdexplain_arch", "the architecture")
    missing = [k for k in ref if k not in state]
    unexpected = [k for k in state if k not in ref]
    if missing or unexpected:
        raise ValueError(f"{what} does not fit {arch}: missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in ref.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise ValueError(f"{what} does not fit {arch}: shapes " + "; ".join(wrong[:3]))


class Recorder:
    """Checkpoints, weight path length and accuracies of one model trained by any loop.

    Parameters
    ----------
    out_dir : str or Path
        The model folder to write (e.g. ``my_runs/student``); created if absent.
    model : nn.Module
        The model being trained (not a DDP wrapper: pass ``ddp.module``).
    arch : str
        Its kdexplain architecture (``kdnet`` or a torchvision classifier name): stored in
        the checkpoints so kdexplain can rebuild the model; checked against ``model``.
    layer : str
        The analysed layer: a module path or the paper's alias (``conv``, ``fc1``, ...).
    keep : iterable of int
        Epochs whose checkpoints are kept; 0 (before training) is always kept. Include the
        last epoch (kdexplain's trainer always keeps it): an assembled run takes the length
        of the training from the last kept epoch.
    num_classes : int
        The head size.
    role : {"teacher", "student", "baseline"}
    model_kwargs : dict, optional
        ``build_model`` options (kdnet's ``width``, ``hidden``, ``dropout``).
    track_layers : list of str, optional
        Further layers whose path length is recorded (``path_length@<layer>`` columns).
    seed : int, optional
        The seed of the run the model belongs to (stored as metadata).
    """

    def __init__(self, out_dir: str | Path, model: nn.Module, *, arch: str, layer: str,
                 keep: Iterable[int], num_classes: int, role: str,
                 model_kwargs: dict[str, Any] | None = None,
                 track_layers: list[str] | None = None, seed: int | None = None) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {list(ROLES)}, got {role!r}")
        self.model_kwargs = dict(model_kwargs or {})
        reference = build_model(arch, int(num_classes), **self.model_kwargs)
        check_state_dict(model.state_dict(), reference, f"the {role}'s model")
        self.dir = Path(out_dir)
        self.model, self.arch, self.role = model, arch, role
        self.num_classes, self.seed = int(num_classes), seed
        self.layer = resolve_layer_name(model, layer, arch)
        extra = [resolve_layer_name(model, t, arch) for t in (track_layers or [])]
        self.track_layers = [t for t in extra if t != self.layer]
        self.keep = sorted({int(e) for e in keep} | {0})
        if self.keep[0] < 0:
            raise ValueError(f"kept epochs must be >= 0, got {self.keep}")
        self.phase = ANALYSED_PHASE[role]
        self.traj = WeightTrajectory(model, [self.layer] + self.track_layers)
        self.records = ModelRecords(self.dir, [self.phase])
        self.epoch, self.global_step = -1, 0
        self.dist_rows: list[dict] = []
        self._t0 = time.perf_counter()

    # -- the three calls of a training loop ---------------------------------------------------
    def start(self, **metrics: float | None) -> None:
        """Record epoch 0 (the weights before any step); ``metrics`` as in :meth:`end_epoch`.

        Refuses a folder that already holds a recording (resume with :meth:`load_state_dict`
        instead, or choose a new folder): its checkpoints would mix with this run's.
        """
        old = sorted((self.dir / "checkpoints").glob("epoch_*.pt"))
        if old:
            raise FileExistsError(f"{self.dir} already holds a recording ({len(old)} "
                                  "checkpoints); choose a new folder, delete it, or resume "
                                  "with Recorder.load_state_dict(state)")
        self.records.reset()
        self.traj.start()
        self.epoch, self.global_step = 0, 0
        self.dist_rows = [self.traj.distance_row(0, 0)]
        self._write_epoch(metrics, [self.traj.initial_row()])

    def step(self) -> None:
        """Call after every optimiser step: adds ``||W_s - W_{s-1}||`` (stays on the device)."""
        self.traj.step()

    def end_epoch(self, epoch: int | None = None, *, train_loss: float | None = None,
                  train_acc: float | None = None, val_loss: float | None = None,
                  val_acc: float | None = None, lr: float | None = None) -> None:
        """Close an epoch: append the records; write the checkpoint if the epoch is kept.

        Parameters
        ----------
        epoch : int, optional
            The epoch just finished (1-based); default: the previous one plus 1.
        train_loss, train_acc, val_loss, val_acc, lr : float, optional
            Whatever the loop measured (accuracies in [0, 1]); left empty otherwise.
        """
        if self.epoch < 0:
            raise RuntimeError("Recorder.start() must be called before the first step")
        epoch = self.epoch + 1 if epoch is None else int(epoch)
        if epoch != self.epoch + 1:
            raise ValueError(f"end_epoch({epoch}) after epoch {self.epoch}: epochs must follow "
                             "one another (resume with load_state_dict)")
        first_step = self.global_step + 1
        rows = self.traj.end_epoch(epoch, first_step)
        self.global_step += len(rows)
        self.epoch = epoch
        if epoch in self.keep:
            self.dist_rows.append(self.traj.distance_row(epoch, self.global_step))
        self._write_epoch({"train_loss": train_loss, "train_acc": train_acc,
                           "val_loss": val_loss, "val_acc": val_acc, "lr": lr}, rows)

    # -- resume --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain data to store in the loop's own checkpoint (at an epoch end)."""
        return {"epoch": self.epoch, "global_step": self.global_step,
                "trajectory": self.traj.state_dict(), "weight_distance": list(self.dist_rows),
                "layer": self.layer, "role": self.role}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after a resume: the model must hold the weights of ``state``'s epoch end.

        Records written after that epoch (by the interrupted run) are dropped, so the files
        of a resumed run equal those of an uninterrupted one.
        """
        if state.get("layer") != self.layer or state.get("role") != self.role:
            raise ValueError(f"the recorder state is of {state.get('role')} layer "
                             f"{state.get('layer')!r}, this recorder records {self.role} layer "
                             f"{self.layer!r}")
        self.traj.load_state_dict(state["trajectory"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.dist_rows = [dict(r) for r in state["weight_distance"]]
        self.records.truncate(self.phase, self.epoch, self.global_step, self.phase)
        self.records.write_distances(self.traj.fieldnames()[1], self.dist_rows)

    # -- writing -------------------------------------------------------------------------------
    def _write_epoch(self, metrics: dict[str, Any], traj_rows: list[dict]) -> None:
        traj_fields, dist_fields = self.traj.fieldnames()
        self.records.add_trajectory(traj_fields, traj_rows)
        now = time.perf_counter()
        row = {"epoch": self.epoch, "phase": self.phase, "seconds": now - self._t0, **metrics}
        self._t0 = now
        self.records.add_metrics(row)
        if self.epoch not in self.keep:
            return
        self.records.write_distances(dist_fields, self.dist_rows)
        ckpt = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": None, "scheduler": None, "scaler": None,  # the loop owns these
            "epoch": self.epoch, "global_step": self.global_step, "phase": self.phase,
            "phases": [self.phase], "arch": self.arch, "num_classes": self.num_classes,
            "model_kwargs": self.model_kwargs, "layer": self.layer, "role": self.role,
            "trajectory": self.traj.state_dict(), "weight_distance": list(self.dist_rows),
            "metrics": row, "seed": self.seed, "world_size": 1, "recorded_by": "Recorder",
        }
        buf = io.BytesIO()
        torch.save(ckpt, buf)
        atomic_write_bytes(checkpoint_path(self.dir, self.epoch), buf.getvalue())
        write_json(self.dir / "recorder.json", {
            "arch": self.arch, "num_classes": self.num_classes, "model_kwargs": self.model_kwargs,
            "layer": self.layer, "track_layers": self.track_layers, "role": self.role,
            "phase": self.phase, "seed": self.seed, "keep": self.keep,
            "distance_forms": ["step", "epoch"]})
