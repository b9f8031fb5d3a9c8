"""The quantification sweep: every (model, checkpoint, image) of a training run.

Layout, inside the run directory::

    RUN_DIR/sweep/manifest.json           settings, images, the units and their state
    RUN_DIR/sweep/images.pt               the analysed images, masks, foreground grids
    RUN_DIR/sweep/<role>/epoch_XXXX.pt    one unit: the grids of all images at one checkpoint

A unit is one checkpoint of one model (teacher, student or baseline) with all analysed
images. Units are written atomically as they finish; a sweep started again skips the units
that exist, so an interrupted sweep loses at most the checkpoints being computed. A unit is
bound to what it measured (:mod:`kdexplain.pipeline.binding`: its role, epoch, the hash of
its checkpoint file and of the images): one that no longer matches the run is recomputed
here and named by :func:`load_sweep`. The analysed layer is the config's
(``model.layer``); a checkpoint trained for another layer is refused. Several
checkpoints of one model are quantified in one batched engine call
(``checkpoints_per_call``). Under ``torchrun`` the units are sharded over the ranks
(round-robin); each rank writes its own units, so a 2-process sweep gives exactly the
files of a single-process one (the noise of an image depends only on the seed and the
image's key, never on the batch).
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdexplain.config import CONCEPT_KEYS, AnalysisConfig, ExperimentConfig, load_config
from kdexplain.data import build_dataset, mask_to_grid, readable_items
from kdexplain.models import load_model, resolve_layer_name
from kdexplain.pipeline.binding import binding_problem, file_sha256, tensor_sha256
from kdexplain.pipeline.shared_roles import layer_bound
from kdexplain.quantification import quantify, resolve_settings
from kdexplain.train import DistContext, list_checkpoints, weight_distances
from kdexplain.train.triplet import shared_teacher_of
from kdexplain.utils import (
    UnreadableFileError,
    atomic_torch_save,
    flush_denormals,
    folder_lock,
    load_torch_file,
    progress,
    read_json,
    remove_stale_temporaries,
    write_json,
)
from kdexplain.vocabulary import ALL_ROLES, CONTROL

log = logging.getLogger("kdexplain.pipeline")

#: What every sweep unit holds.
_UNIT_KEYS = ("entropy", "no_signal", "sigma", "d0", "fingerprint")


@dataclass
class SweepData:
    """A finished sweep of one run, as arrays (the input of :mod:`kdexplain.concepts`).

    Attributes
    ----------
    entropy : dict role -> ndarray (M, N, g, g)
        Entropy grids (nats) per checkpoint and image; NaN where the image had no signal
        at that checkpoint (``d0 == 0``).
    epochs : dict role -> ndarray (M,)
    distance : dict role -> ndarray (M,)
        The normalised weight distance ``d`` (per-step path length) at each checkpoint.
    distance_epoch : dict role -> ndarray (M,)
        The paper's per-epoch form.
    foreground : ndarray (N, g, g) bool
    image_keys : list of str
    images : ndarray (N, 3, H, W)
        The analysed images in [0, 1] (for figures).
    labels : ndarray (N,)
    total_epochs : dict role -> int
        Length of each model's analysed training phase.
    """

    entropy: dict[str, np.ndarray]
    epochs: dict[str, np.ndarray]
    distance: dict[str, np.ndarray]
    distance_epoch: dict[str, np.ndarray]
    foreground: np.ndarray
    image_keys: list[str]
    images: np.ndarray
    labels: np.ndarray
    total_epochs: dict[str, int]

    def to_run_entropies(self, seed: int | None = None):
        """The :class:`kdexplain.concepts.RunEntropies` of this sweep."""
        from kdexplain.concepts import RunEntropies

        return RunEntropies(entropy=self.entropy, epochs=self.epochs, distance=self.distance,
                            foreground=self.foreground, image_keys=self.image_keys,
                            distance_epoch=self.distance_epoch, seed=seed,
                            total_epochs=self.total_epochs)


def run_roles(run_dir: Path, wanted: list[str]) -> list[str]:
    """The analysed roles (of ``wanted``) that this run trained itself.

    A seed's run with a shared teacher has no teacher of its own (the shared teacher is
    quantified once, in its own run); a teacher-only run has only the teacher.
    """
    summary = run_dir / "summary.json"
    if summary.is_file() and read_json(summary).get("teacher_only"):
        return [r for r in wanted if r == "teacher"]
    # the random-teacher control goes with the student (student.control trained it)
    if "student" in wanted and CONTROL not in wanted and (run_dir / CONTROL).is_dir():
        wanted = [*wanted, CONTROL]
    if shared_teacher_of(run_dir) is not None:
        return [r for r in wanted if r != "teacher"]
    return list(wanted)


def unit_path(sweep_dir: Path, role: str, epoch: int) -> Path:
    return sweep_dir / role / f"epoch_{epoch:04d}.pt"


def _fingerprint(analysis: AnalysisConfig, layer: str, seed: int) -> str:
    """The settings that shape the sweep's grids: the concept settings (read by the report
    alone) are left out, so that changing them never makes the sweep refuse to run. The
    preset enters with every resolved setting, so that a kdexplain whose preset means
    something else refuses to add its units to a sweep made by another."""
    settings = analysis.model_dump(mode="json", exclude=set(CONCEPT_KEYS))
    preset, overrides = _estimator(analysis)
    estimator = resolve_settings(preset, **overrides).to_dict()
    blob = json.dumps({"analysis": settings, "estimator": estimator, "layer": layer,
                       "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _estimator(a: AnalysisConfig) -> tuple[str, dict]:
    """The preset and overrides the sweep gives ``quantify`` (and its fingerprint resolves)."""
    return a.preset, {"steps": a.steps, "samples": a.samples, "entropy_weight": a.entropy_weight,
                      "feature_transform": a.feature_transform}


def select_images(n_available: int, n: int, seed: int) -> list[int]:
    """``n`` dataset indices drawn without replacement by a fixed seed, sorted."""
    if n > n_available:
        raise ValueError(f"analysis.n_images = {n}, but the split holds only {n_available} images")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_available, size=n, replace=False))


def _image_source(cfg: ExperimentConfig) -> str:
    """What the analysed images are drawn from (a change redraws them)."""
    a = cfg.analysis
    return json.dumps({"data": cfg.data.model_dump(mode="json"), "split": a.split,
                       "n_images": a.n_images, "grid": a.grid, "mask_rule": a.mask_rule,
                       "seed": cfg.seed}, sort_keys=True)


def _prepare_images(cfg: ExperimentConfig, sweep_dir: Path, rank: int) -> dict:
    path = sweep_dir / "images.pt"
    source = _image_source(cfg)
    if path.is_file():
        try:
            old = load_torch_file(path, what="sweep images file")
            if old.get("source") == source:
                return old
            log.warning("%s %s; drawing the images again", path,
                        "was drawn from other data settings" if "source" in old else
                        "records no data settings (an older kdexplain)")
        except UnreadableFileError as e:
            log.warning("%s; recomputing it", e)
    a = cfg.analysis
    ds = build_dataset(cfg.data.name, split=a.split, root=cfg.data.root,
                       image_size=cfg.data.image_size, **cfg.data.options)
    idx = select_images(len(ds), a.n_images, cfg.seed)
    items = readable_items(ds, idx)  # a corrupt file is left out (warned), never replaced
    if len(items) < len(idx):
        log.warning("%d of the %d selected analysis images could not be read and are left "
                    "out: %s", len(idx) - len(items), len(idx),
                    "; ".join(s.path for s in getattr(ds, "skipped", [])[:5]))
    idx = [int(it["index"]) for it in items]
    masks = torch.stack([it["mask"] for it in items]).bool()
    data = {
        "indices": idx,
        "keys": [str(it["key"]) for it in items],
        "labels": torch.tensor([int(it["label"]) for it in items]),
        "images": torch.stack([it["image"] for it in items]).float(),
        "masks": masks,
        "foreground": mask_to_grid(masks, a.grid, rule=a.mask_rule),
        "source": source,
    }
    if rank == 0:
        atomic_torch_save(data, path)
    return data


def sweep(run_dir: str | Path, *, device: str | None = None, checkpoints_per_call: int = 4,
          show_progress: bool | None = None) -> Path:
    """Quantify every analysed (model, checkpoint) of a run; resumable and shardable.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by :func:`kdexplain.train.train_triplet` (one seed).
    device : {"auto", "cpu", "cuda"}, optional
        Default: the config's device (``auto`` = CUDA when available). Under torchrun with
        CUDA each rank uses ``cuda:LOCAL_RANK``.
    checkpoints_per_call : int
        Checkpoints of one model batched into one engine call.
    show_progress : bool, optional

    Returns
    -------
    Path of the sweep folder.
    """
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    # under torchrun this joins the process group (gloo on CPU, nccl on CUDA)
    ctx = DistContext.setup(device or cfg.device)
    try:
        with folder_lock(run_dir) if ctx.is_main else nullcontext(), flush_denormals():
            return _sweep(run_dir, cfg, ctx, checkpoints_per_call, show_progress)
    finally:
        ctx.close()


def _sweep(run_dir: Path, cfg: ExperimentConfig, ctx: DistContext, checkpoints_per_call: int,
           show_progress: bool | None) -> Path:
    a = cfg.analysis
    rank, world, device = ctx.rank, ctx.world_size, ctx.device
    if checkpoints_per_call < 1:
        raise ValueError(f"checkpoints_per_call must be at least 1, got {checkpoints_per_call}")
    sweep_dir = run_dir / "sweep"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        for p in remove_stale_temporaries(sweep_dir):
            log.info("removed %s, left by an interrupted save", p)

    # which units exist in this run
    units: list[tuple[str, int, Path]] = []
    for role in run_roles(run_dir, a.models):
        ckpts = list_checkpoints(run_dir / role)
        if a.checkpoints != "all":
            wanted = set(a.checkpoints)
            missing = wanted - {e for e, _ in ckpts}
            if missing:
                raise ValueError(f"analysis.checkpoints asks for epochs {sorted(missing)} that "
                                 f"{run_dir / role} does not have; it has {[e for e, _ in ckpts]}")
            ckpts = [(e, p) for e, p in ckpts if e in wanted]
        units += [(role, e, p) for e, p in ckpts]
    if not units:
        raise ValueError(f"no checkpoints to analyse in {run_dir}")

    layer = _analysed_layer(cfg, units[0][2])
    fingerprint = _fingerprint(a, layer, cfg.seed)
    manifest_path = sweep_dir / "manifest.json"
    old = {"fingerprint": fingerprint}
    if manifest_path.is_file():
        try:
            old = read_json(manifest_path)
        except UnreadableFileError as e:  # rewritten below; the units carry their fingerprints
            log.warning("%s -- rewriting it", e)
        if old.get("fingerprint") != fingerprint:
            raise ValueError(_other_settings(sweep_dir, old.get("fingerprint"), fingerprint))
    hashes = {(r, e): file_sha256(p) for r, e, p in units}
    if rank == 0:
        write_json(manifest_path, {
            "fingerprint": fingerprint, "layer": layer, "seed": cfg.seed,
            "analysis": a.model_dump(mode="json"),
            "units": [{"role": r, "epoch": e, "checkpoint": str(p.relative_to(run_dir)),
                       "checkpoint_sha256": hashes[(r, e)]} for r, e, p in units],
        })
    ctx.barrier()
    data = _prepare_images(cfg, sweep_dir, rank)
    if world > 1:
        ctx.barrier()
        data = load_torch_file(sweep_dir / "images.pt", what="sweep images file")
    images_sha = tensor_sha256(data["images"])

    mine = units[rank::world]
    todo = [u for u in mine if not _unit_is_valid(sweep_dir, u[0], u[1], fingerprint,
                                                  hashes[(u[0], u[1])], images_sha)]
    for role, _, path in todo:  # refused before anything is computed
        _check_checkpoint_meta(path, role, layer, cfg)
    groups: list[list[tuple[str, int, Path]]] = []
    for role in dict.fromkeys(u[0] for u in todo):
        of_role = [u for u in todo if u[0] == role]
        groups += [of_role[i:i + checkpoints_per_call]
                   for i in range(0, len(of_role), checkpoints_per_call)]
    bar = progress(total=len(todo), desc=f"sweep rank {rank}" if world > 1 else "sweep",
                   enable=show_progress, unit="ckpt", log_lines=True)
    bar.update(0)
    for group in groups:
        models = [load_model(p) for _, _, p in group]
        preset, overrides = _estimator(a)
        res = quantify(models, data["images"], layer, grid=a.grid, preset=preset, **overrides,
                       seed=cfg.seed, device=device, max_batch=a.max_batch,
                       image_keys=data["keys"])
        for k, (role, epoch, path) in enumerate(group):
            atomic_torch_save({
                "role": role, "epoch": epoch, "checkpoint": str(path.relative_to(run_dir)),
                "layer": res.layer, "fingerprint": fingerprint, "image_keys": data["keys"],
                "checkpoint_sha256": hashes[(role, epoch)], "images_sha256": images_sha,
                "sigma": res.sigma[k].clone(), "entropy": res.entropy[k].clone(),
                "d0": res.d0[k].clone(), "no_signal": res.no_signal[k].clone(),
                "steps_run": res.steps_run[k].clone(),
                "log_sigma_se": res.log_sigma_se[k].clone(),  # each cell's precision
                "final_loss": _final(res.loss_trace[:, k], res.steps_run[k]),
                "settings": res.settings,
            }, unit_path(sweep_dir, role, epoch))
            bar.update(1)
    bar.close()
    ctx.barrier()
    return sweep_dir


def _other_settings(sweep_dir: Path, old: str | None, new: str) -> str:
    return (f"{sweep_dir} holds a sweep made with other analysis settings or estimator (fingerprint "
            f"{old} != {new}); delete that folder or copy the run to analyse it with new settings")


def _analysed_layer(cfg: ExperimentConfig, first_checkpoint: Path) -> str:
    """The module path of the config's ``model.layer`` in the run's architecture."""
    model = load_model(first_checkpoint)
    return resolve_layer_name(model, cfg.model.layer, cfg.model.arch)


def _check_checkpoint_meta(path: Path, role: str, layer: str, cfg: ExperimentConfig) -> None:
    """Refuse a checkpoint whose metadata disagree with the run it lies in.

    A checkpoint trained with another primary layer belongs here only if its training did
    not depend on the layer (teacher, baseline, soft student: one network shared by a
    study's variants, :mod:`kdexplain.pipeline.shared_roles`) and its weight distance at
    this layer was recorded (``model.track_layers``)."""
    meta = load_torch_file(path, what="checkpoint")
    said = meta.get("layer") if isinstance(meta, dict) else None
    if said is not None and said != layer:
        configured = cfg.model.layer
        if layer_bound(cfg, role):
            raise ValueError(f"checkpoint {path} was trained for layer {said!r}, but the run's "
                             f"config analyses model.layer = {configured!r} ({layer}); it does "
                             "not belong to this run: retrain it (delete it and run again) or "
                             "fix config.yaml")
        if f"d_step@{layer}" not in weight_distances(_model_dir(path, role)).columns:
            raise ValueError(f"checkpoint {path} was trained for layer {said!r}, but the run's "
                             f"config analyses model.layer = {configured!r} ({layer}), whose "
                             "weight distance that training did not record: retrain it with "
                             f"model.track_layers including {configured!r}")
    said = meta.get("role") if isinstance(meta, dict) else None
    if said is not None and said != role:
        raise ValueError(f"checkpoint {path} is a {said}'s, but lies in the {role}'s folder; it "
                         "does not belong there: retrain it (delete it and run again)")


def check_sweep_settings(run_dir: str | Path, cfg: ExperimentConfig) -> None:
    """Refuse, before anything is trained or written, a config whose analysis settings
    differ from those of the sweep already in ``run_dir`` (the sweep would refuse it later,
    after ``config.yaml`` had been rewritten)."""
    sweep_dir = Path(run_dir) / "sweep"
    manifest_path = sweep_dir / "manifest.json"
    if not manifest_path.is_file():
        return
    try:
        old = read_json(manifest_path)
    except UnreadableFileError:  # the sweep rewrites a broken manifest
        return
    if not isinstance(old, dict) or "layer" not in old:
        return
    fingerprint = _fingerprint(cfg.analysis, old["layer"], cfg.seed)
    if old.get("fingerprint") != fingerprint:
        raise ValueError(_other_settings(sweep_dir, old.get("fingerprint"), fingerprint))


def _read_unit(sweep_dir: Path, role: str, epoch: int) -> dict:
    """One sweep unit, checked (a one-line error naming the file if it is unusable)."""
    path = unit_path(sweep_dir, role, epoch)
    unit = load_torch_file(path, what="sweep unit")
    missing = [k for k in _UNIT_KEYS if not isinstance(unit, dict) or k not in unit]
    if missing:
        raise UnreadableFileError(f"sweep unit {path} lacks {', '.join(missing)}; delete it and "
                                  "run the sweep again to recompute it", path)
    return unit


def _unit_is_valid(sweep_dir: Path, role: str, epoch: int, fingerprint: str,
                   checkpoint_sha256: str, images_sha256: str) -> bool:
    """Whether a finished, readable unit of these settings, this checkpoint and these
    images exists (else: compute it).

    A unit that is corrupt (a truncated copy, a disk error), made with other settings, or
    bound to another checkpoint or other images is recomputed, with a warning naming it.
    """
    path = unit_path(sweep_dir, role, epoch)
    if not path.is_file():
        return False
    try:
        unit = _read_unit(sweep_dir, role, epoch)
    except UnreadableFileError as e:
        log.warning("%s -- recomputing it", e)
        return False
    if unit.get("fingerprint") != fingerprint:
        log.warning("sweep unit %s was made with other analysis settings; recomputing it", path)
        return False
    problem = binding_problem(unit, role, epoch, checkpoint_sha256, images_sha256)
    if problem:
        log.warning("sweep unit %s does not measure this run's checkpoint: %s; recomputing it",
                    path, problem)
        return False
    return True


def _model_dir(checkpoint: Path, role: str) -> Path:
    """The model folder (``.../<role>``) a checkpoint lies in."""
    return next((p for p in checkpoint.parents if p.name == role), checkpoint.parent)


def _checkpoint_sha(run_dir: Path, entry: dict) -> str:
    """The hash of a unit's checkpoint as it is now (as the manifest recorded it, when the
    checkpoint file has since been deleted)."""
    path = run_dir / entry["checkpoint"]
    if path.is_file():
        return file_sha256(path)
    return entry.get("checkpoint_sha256", f"(checkpoint {path} does not exist)")


def _final(trace: torch.Tensor, steps_run: torch.Tensor) -> torch.Tensor:
    idx = (steps_run - 1).clamp(min=0)
    return trace.gather(0, idx[None])[0].clone()


def load_sweep(run_dir: str | Path) -> SweepData:
    """Read a finished sweep into arrays (see :class:`SweepData`).

    Raises a clear error naming the missing units when the sweep is incomplete.
    """
    run_dir = Path(run_dir)
    sweep_dir = run_dir / "sweep"
    manifest = read_json(sweep_dir / "manifest.json")
    data = load_torch_file(sweep_dir / "images.pt", what="sweep images file")
    missing = [f"{u['role']}@{u['epoch']}" for u in manifest["units"]
               if not unit_path(sweep_dir, u["role"], u["epoch"]).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the sweep in {sweep_dir} is incomplete: {len(missing)} unit(s) missing "
            f"({', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''}); run "
            f"`kdexplain sweep {run_dir}` (or `kdexplain run` again) to finish it")
    entropy, epochs, dist, dist_ep = {}, {}, {}, {}
    roles = [r for r in ALL_ROLES if any(u["role"] == r for u in manifest["units"])]
    entries = {(u["role"], u["epoch"]): u for u in manifest["units"]}
    images_sha, unbound = tensor_sha256(data["images"]), []
    layer = manifest.get("layer")
    for role in roles:
        eps = sorted(u["epoch"] for u in manifest["units"] if u["role"] == role)
        grids = []
        for e in eps:
            try:
                unit = _read_unit(sweep_dir, role, e)
            except UnreadableFileError as err:
                raise UnreadableFileError(f"{err}: run `kdexplain sweep {run_dir}` (or "
                                          "`kdexplain run` again) to recompute it", err.path) from None
            problem = ("it was made with other analysis settings than the sweep's manifest"
                       if unit["fingerprint"] != manifest.get("fingerprint") else
                       binding_problem(unit, role, e, _checkpoint_sha(run_dir, entries[(role, e)]),
                                       images_sha))
            if problem:
                unbound.append(f"{unit_path(sweep_dir, role, e)} ({problem})")
            ent = unit["entropy"].double().numpy().copy()
            ent[unit["no_signal"].numpy()] = np.nan
            grids.append(ent)
        entropy[role] = np.stack(grids)
        if unbound:
            continue
        epochs[role] = np.asarray(eps)
        wd = weight_distances(run_dir / role).set_index("epoch")
        absent = [e for e in eps if e not in wd.index]
        if absent:
            raise ValueError(f"{run_dir / role}/weight_distance.csv has no row for epochs {absent}")
        # a network shared by a study's variants tracked this layer beside its own
        at = f"@{layer}" if f"d_step@{layer}" in wd.columns else ""
        dist[role] = wd.loc[eps, f"d_step{at}"].to_numpy(dtype=float)
        dist_ep[role] = wd.loc[eps, f"d_epoch{at}"].to_numpy(dtype=float)
    if unbound:
        raise ValueError(
            f"{len(unbound)} sweep unit(s) of {run_dir} do not measure this run's checkpoints: "
            f"{unbound[0]}{'; ...' if len(unbound) > 1 else ''}; run `kdexplain sweep {run_dir}` "
            "(or `kdexplain run` again) to recompute them")
    from kdexplain.data import denormalize

    cfg = load_config(run_dir / "config.yaml")
    phase_length = {"teacher": cfg.teacher.epochs, "student": cfg.student.phase1_epochs,
                    "baseline": cfg.baseline.epochs, CONTROL: cfg.student.phase1_epochs}
    return SweepData(
        entropy=entropy, epochs=epochs, distance=dist, distance_epoch=dist_ep,
        foreground=data["foreground"].numpy().astype(bool), image_keys=list(data["keys"]),
        images=torch.stack([denormalize(im) for im in data["images"]]).numpy(),
        labels=data["labels"].numpy(),
        total_epochs={r: int(phase_length[r]) for r in roles},
    )
