"""Build a kdexplain run folder from networks trained elsewhere.

:func:`assemble_run` writes the layout of ``kdexplain train-triplet`` (``docs/training.md``)
from files a user already has, so that ``kdexplain sweep`` and ``kdexplain report`` read it
as they read a run kdexplain trained:

- the teacher: a weights file (a state dict or a kdexplain checkpoint; analysed as one
  checkpoint, epoch 0) or a :class:`~kdexplain.record.Recorder` folder;
- the student and the baseline: each a Recorder folder (both distance forms, as kdexplain's
  trainer records them) or a series of per-epoch state dicts, one for every epoch 0..E (then
  only the per-epoch form ``d_epoch`` exists, docs/method.md section 4: the config's
  ``analysis.distance`` is set to ``epoch`` and the report says so).

Everything is read and checked before anything is written: one architecture for T, S and B
(every state dict's keys and shapes), the layer's existence, the epochs (whole numbers, in
increasing order, from 0 without gaps for state dicts), an empty output folder.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdexplain.config import ExperimentConfig, dump_config, load_config, parse_config
from kdexplain.models import build_model, load_state_dict, resolve_layer_name
from kdexplain.record.recorder import ANALYSED_PHASE, check_state_dict
from kdexplain.train.checkpoints import checkpoint_path, list_checkpoints
from kdexplain.train.trajectory import path_length
from kdexplain.utils import atomic_write_bytes, atomic_write_text, load_torch_file, write_json

__all__ = ["ASSEMBLED_FILE", "assemble_run", "epoch_of_file"]

#: The file of an assembled run that says where its models came from.
ASSEMBLED_FILE = "assembled.json"

_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def epoch_of_file(path: str | Path) -> int:
    """The epoch a state-dict file belongs to: the last number in its name
    (``student_epoch_007.pt`` -> 7)."""
    m = _NUMBER.search(Path(path).stem)
    if m is None:
        raise ValueError(f"cannot tell the epoch of {path}: its name holds no number (name the "
                         "files e.g. epoch_0.pt, epoch_1.pt, ... or pass the epochs)")
    return int(m.group(1))


@dataclass
class _Model:
    """One model's checked input: the states to write and the distance rows."""

    role: str
    kind: str                                   # "recorder", "state_dicts" or "file"
    states: dict[int, dict[str, torch.Tensor]]  # kept epoch -> state dict
    distances: list[dict[str, float]]
    last_epoch: int
    folder: Path | None = None                  # the recorder's folder
    sources: list[str] = field(default_factory=list)


def _reference(arch: str, num_classes: int, model_kwargs: dict) -> torch.nn.Module:
    return build_model(arch, num_classes, **model_kwargs)


def _from_recorder(role: str, folder: Path, arch: str, layer: str, reference) -> _Model:
    """A Recorder's folder, checked against the architecture and the layer."""
    if not (folder / "weight_distance.csv").is_file():
        raise ValueError(f"{role}: {folder} is not a Recorder folder (no weight_distance.csv)")
    states: dict[int, dict] = {}
    for epoch, path in list_checkpoints(folder):
        ckpt = load_torch_file(path, what=f"{role} checkpoint")
        if not isinstance(ckpt, dict) or "model" not in ckpt:
            raise ValueError(f"{role}: {path} is not a checkpoint written by the Recorder")
        if ckpt.get("role") != role:
            raise ValueError(f"{role}: {path} was recorded as the {ckpt.get('role')} "
                             f"(Recorder role={ckpt.get('role')!r}); give the {role}'s folder")
        if ckpt.get("arch") != arch or ckpt.get("layer") != layer:
            raise ValueError(f"{role}: {path} records arch {ckpt.get('arch')!r} layer "
                             f"{ckpt.get('layer')!r}; this run is arch {arch!r} layer {layer!r}")
        check_state_dict(ckpt["model"], reference, f"{role} {path.name}")
        states[epoch] = ckpt["model"]
    with (folder / "weight_distance.csv").open(newline="") as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    have = {int(r["epoch"]) for r in rows}
    if not states or 0 not in states:
        raise ValueError(f"{role}: {folder} has no epoch-0 checkpoint (Recorder.start() "
                         "records it)")
    if set(states) - have:
        raise ValueError(f"{role}: {folder}/weight_distance.csv has no row for epochs "
                         f"{sorted(set(states) - have)}")
    return _Model(role, "recorder", states, rows, max(states), folder=folder,
                  sources=[folder.name])


def _from_state_dicts(role: str, files: Sequence[Path], epochs: Sequence[int] | None,
                      layer: str, reference) -> _Model:
    """Per-epoch state dicts, one per epoch 0..E: the per-epoch distance only."""
    eps = [int(e) for e in epochs] if epochs is not None else [epoch_of_file(f) for f in files]
    if len(eps) != len(files):
        raise ValueError(f"{role}: {len(files)} files but {len(eps)} epochs")
    if any(b <= a for a, b in zip(eps, eps[1:], strict=False)):
        raise ValueError(f"{role}: the epochs of the state dicts must increase in the order "
                         f"given, got {eps}")
    if eps != list(range(len(eps))):
        missing = sorted(set(range(max(eps) + 1)) - set(eps))
        raise ValueError(f"{role}: the per-epoch distance needs a state dict for every epoch "
                         f"from 0; got epochs {eps} (missing {missing[:8]})")
    states = {}
    for e, f in zip(eps, files, strict=True):
        state = load_state_dict(f)
        check_state_dict(state, reference, f"{role} {Path(f).name}")
        states[e] = state
    key = f"{layer}.weight"
    d = path_length([states[e][key] for e in eps])
    rows = [{"epoch": e, "global_step": -1, "d_step": float("nan"), "d_epoch": v}
            for e, v in zip(eps, d, strict=True)]
    return _Model(role, "state_dicts", states, rows, eps[-1],
                  sources=[Path(f).name for f in files])


def _read_model(role: str, source: Any, epochs: Sequence[int] | None, arch: str, layer: str,
                reference) -> _Model:
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return _from_recorder(role, Path(source), arch, layer, reference)
    if role == "teacher" and isinstance(source, (str, Path)):
        state = load_state_dict(source)
        check_state_dict(state, reference, f"teacher {Path(source).name}")
        return _Model(role, "file", {0: state}, [{"epoch": 0, "global_step": 0, "d_step": 0.0,
                                                  "d_epoch": 0.0}], 0,
                      sources=[Path(source).name])
    if isinstance(source, (str, Path)):
        raise ValueError(f"{role}: {source} is neither a Recorder folder nor a list of "
                         "per-epoch state-dict files")
    files = [Path(f) for f in source]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{role}: {f} does not exist")
    return _from_state_dicts(role, files, epochs, layer, reference)


def _config(base: ExperimentConfig, models: dict[str, _Model], arch: str, layer: str,
            model_kwargs: dict, seed: int, name: str | None) -> ExperimentConfig:
    raw = base.model_dump(mode="json")
    raw.update(seed=int(seed), seeds=None, name=name or raw["name"])
    raw["model"].update(arch=arch, layer=layer, kwargs=model_kwargs, track_layers=[])
    raw["teacher"].update(pretrained=None, pretrain_epochs=0, epochs=models["teacher"].last_epoch)
    raw["student"]["phase1_epochs"] = models["student"].last_epoch
    raw["student"]["phase2_epochs"] = 0
    raw["baseline"]["epochs"] = models["baseline"].last_epoch
    raw["checkpoints"] = sorted(set().union(*(m.states for m in models.values())))
    if any(m.kind == "state_dicts" for m in models.values()):
        raw["analysis"]["distance"] = "epoch"  # the per-step form was not recorded
    return parse_config(raw, "the assembled run's config")


def assemble_run(out: str | Path, *, teacher: str | Path, student: Any, baseline: Any,
                 num_classes: int, arch: str | None = None, layer: str | None = None,
                 seed: int | None = None, model_kwargs: dict[str, Any] | None = None,
                 config: str | Path | ExperimentConfig | None = None,
                 overrides: Sequence[str] = (), name: str | None = None,
                 student_epochs: Sequence[int] | None = None,
                 baseline_epochs: Sequence[int] | None = None) -> Path:
    """Write a kdexplain run folder from a teacher file and the student's and baseline's
    recordings or per-epoch state dicts.

    Parameters
    ----------
    out : str or Path
        The run folder to create (absent or empty).
    teacher : str or Path
        A weights file (state dict or kdexplain checkpoint) or a Recorder folder.
    student, baseline : str, Path or list of paths
        A Recorder folder, or the state-dict files of epochs 0, 1, ..., E.
    num_classes : int
        The head size of all three.
    arch, layer : str, optional
        The one architecture of T, S and B (``kdnet`` or a torchvision classifier) and the
        analysed layer (module path or alias); default: the config's ``model`` section.
    seed : int, optional
        The seed S and B belong to (the sweep draws its images and noise from it); default:
        the config's.
    model_kwargs : dict, optional
        kdnet's ``width``, ``hidden``, ``dropout``; default: the config's ``model.kwargs``.
    config : path or ExperimentConfig, optional
        The data set and analysis settings (``data``, ``analysis`` sections); default: the
        built-in defaults. ``overrides``: ``key=value`` on top.
    student_epochs, baseline_epochs : list of int, optional
        The epochs of the state-dict files; default: the last number in each file name.

    Returns
    -------
    Path of the run folder.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; choose a new run folder")
    if config is None or isinstance(config, ExperimentConfig):
        base = load_config_from(config or parse_config({}, "the defaults"), overrides)
    else:
        base = load_config(config, list(overrides))
    arch = arch or base.model.arch
    layer = layer or base.model.layer
    seed = base.seed if seed is None else int(seed)
    model_kwargs = dict(base.model.kwargs if model_kwargs is None else model_kwargs)
    reference = _reference(arch, int(num_classes), model_kwargs)
    layer = resolve_layer_name(reference, layer, arch)
    if not isinstance(getattr(reference.get_submodule(layer), "weight", None), torch.Tensor):
        raise ValueError(f"layer {layer!r} of {arch} has no weight: its distance is undefined")
    epochs = {"student": student_epochs, "baseline": baseline_epochs, "teacher": None}
    models = {role: _read_model(role, src, epochs[role], arch, layer, reference)
              for role, src in (("teacher", teacher), ("student", student),
                                ("baseline", baseline))}
    cfg = _config(base, models, arch, layer, model_kwargs, seed, name)
    # everything is checked: now write
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(cfg))
    for m in models.values():
        _write_model(out / m.role, m, cfg, arch, layer, int(num_classes), model_kwargs)
    write_json(out / ASSEMBLED_FILE, {
        "seed": int(seed), "arch": arch, "layer": layer,
        "models": {m.role: {"from": m.kind, "files": m.sources,
                            "distance_forms": ["epoch"] if m.kind == "state_dicts"
                            else ["step", "epoch"]} for m in models.values()}})
    return out


def load_config_from(config: ExperimentConfig, overrides: Sequence[str]) -> ExperimentConfig:
    """``config`` with ``key=value`` overrides applied (validated)."""
    from kdexplain.config import apply_overrides

    return parse_config(apply_overrides(config.model_dump(mode="json"), list(overrides)),
                        "the config with overrides")


def _write_model(folder: Path, m: _Model, cfg: ExperimentConfig, arch: str, layer: str,
                 num_classes: int, model_kwargs: dict) -> None:
    if m.folder is not None:  # the recorder's records as they are
        for name in ("trajectory.csv", "metrics.csv", "weight_distance.csv", "recorder.json"):
            if (m.folder / name).is_file():
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(m.folder / name, folder / name)
    else:
        fields = ["epoch", "global_step", "d_step", "d_epoch"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fields, lineterminator="\n")
        w.writeheader()
        w.writerows({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()}
                    for r in m.distances)
        atomic_write_text(folder / "weight_distance.csv", buf.getvalue())
    rows = {int(r["epoch"]): r for r in m.distances}
    for epoch, state in sorted(m.states.items()):
        ckpt = {"model": state, "optimizer": None, "scheduler": None, "scaler": None,
                "epoch": epoch, "global_step": int(rows[epoch]["global_step"]),
                "phase": ANALYSED_PHASE[m.role], "phases": [ANALYSED_PHASE[m.role]],
                "arch": arch, "num_classes": num_classes, "model_kwargs": model_kwargs,
                "layer": layer, "role": m.role, "seed": cfg.seed, "world_size": 1,
                "recorded_by": f"assemble ({m.kind})"}
        buf = io.BytesIO()
        torch.save(ckpt, buf)
        atomic_write_bytes(checkpoint_path(folder, epoch), buf.getvalue())
