"""The validation, step by step: train, measure accuracy, quantify, count concepts, compare.

:func:`run_validation` runs everything and returns a :class:`ValidationResults`; the steps
are callable on their own:

- :func:`train_networks`: per seed, one network with the background untied (``neutral``,
  ``spurious_background = 0``) and one with it tied (``spurious``, ``p`` high), through
  :func:`kdexplain.train.train_triplet` (baseline role only). Resumes finished runs.
- :func:`accuracy_table`: each final network's accuracy on tied test images and on neutral
  ones (all, ``unrelated`` and ``conflicting`` backgrounds).
- :func:`quantify_runs`: :func:`kdexplain.quantify` of the quantified checkpoints on the two
  analysed image sets, one engine call per (seed, layer); results are cached per network
  weights, so the shared initialisation (epoch 0 of both conditions) is computed once.
- :func:`per_image_table` and :func:`analyses.spurious.metrics.compare_conditions`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analyses.spurious.config import (
    CONDITIONS,
    SpuriousConfig,
    condition_name,
    experiment_config,
)
from analyses.spurious.images import ImageSet, analysed_sets, load_test_split
from analyses.spurious.metrics import compare_conditions, image_metrics, within_run_tests
from kdexplain.config import ConfigError, flatten_config, key_under, read_yaml
from kdexplain.models import load_model, resolve_layer_name
from kdexplain.quantification import quantify
from kdexplain.train import list_checkpoints, train_triplet
from kdexplain.utils import atomic_torch_save, load_torch_file, read_json

__all__ = ["ValidationResults", "accuracy_table", "config_differences", "log", "per_image_table",
           "quantify_runs", "run_validation", "train_networks", "weights_digest"]

SET_ORDER = ("tied", "neutral")


def log(msg: str) -> None:
    """One line of progress on stderr."""
    print(f"[spurious] {msg}", file=sys.stderr, flush=True)


class _DropTeacherNotice(logging.Filter):
    """Hide the triplet's notice that the (zero-epoch, unused) teacher has no weights."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("teacher: no pretrained weights")


@contextmanager
def _quiet_teacher() -> Iterator[None]:
    logger = logging.getLogger("kdexplain.train")
    flt = _DropTeacherNotice()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


# --------------------------------------------------------------------------- training

#: Config keys that may differ between a finished run and the current settings.
_FREE_KEYS = ("name", "out_dir", "device", "analysis")


def config_differences(stored: dict, current: dict) -> tuple[list[str], list[str]]:
    """How a finished run's config differs from the config it would get now.

    Parameters
    ----------
    stored, current : dict
        Nested config mappings (the run's ``config.yaml``; ``ExperimentConfig.model_dump``).

    Returns
    -------
    changed : list of str
        ``"key: old -> new"`` for keys present in both that differ (ignoring ``name``,
        ``out_dir``, ``device`` and ``analysis``): the run does not fit these settings.
    unknown : list of str
        Keys present in only one of them (a field added to or removed from kdexplain's
        config since the run was trained): reported, not fatal.
    """
    a, b = flatten_config(stored), flatten_config(current)
    changed = [f"{k}: {a[k]!r} -> {b[k]!r}" for k in sorted(set(a) & set(b))
               if a[k] != b[k] and not key_under(k, _FREE_KEYS)]
    unknown = sorted(k for k in set(a) ^ set(b) if not key_under(k, _FREE_KEYS))
    return changed, unknown


def train_networks(cfg: SpuriousConfig, work_dir: str | Path,
                   reused: list[str] | None = None) -> dict[tuple[str, int], Path]:
    """Train (or find) one network per condition and seed.

    A finished run (``summary.json`` present) is reused without loading the trainer, if
    its ``config.yaml`` agrees with the current settings (see :func:`config_differences`);
    an unfinished one is resumed by :func:`kdexplain.train.train_triplet`.

    Parameters
    ----------
    cfg : SpuriousConfig
    work_dir : str or Path
        Runs go to ``work_dir / "<condition>-seed<s>"``; a finished run is reused, an
        interrupted one resumed.
    reused : list, optional
        Receives the names of the runs that were finished already.

    Returns
    -------
    dict (condition, seed) -> run directory
    """
    work_dir = Path(work_dir)
    runs = {}
    for seed in cfg.seeds:
        for condition in CONDITIONS:
            exp = experiment_config(cfg, condition, seed, work_dir)
            run_dir = work_dir / condition_name(condition, seed)
            done = (run_dir / "summary.json").is_file() and (run_dir / "config.yaml").is_file()
            log(f"{'found' if done else 'training'} {run_dir.name} "
                f"(spurious_background={cfg.p_of(condition)}, {cfg.epochs} epochs)")
            if done:
                # a finished run is reused as it is, if its settings are the current ones
                stored = read_yaml((run_dir / "config.yaml").read_text(encoding="utf-8"),
                                   str(run_dir / "config.yaml"))
                changed, unknown = config_differences(stored, exp.model_dump(mode="json"))
                if changed:
                    raise ConfigError(f"{run_dir} was trained with other settings ("
                                      + "; ".join(changed) + "): delete it or pass another "
                                      "--work-dir")
                if unknown:
                    log(f"  (config keys not in both the run and the current kdexplain: "
                        f"{', '.join(unknown)})")
                if reused is not None:
                    reused.append(run_dir.name)
                runs[(condition, seed)] = run_dir
                continue
            try:
                with _quiet_teacher():
                    train_triplet(exp, run_dir, resume=True)
            except ConfigError as e:
                raise ConfigError(f"{e}\n{run_dir} was trained with other settings: delete "
                                  "it or pass another --work-dir") from None
            runs[(condition, seed)] = run_dir
    return runs


def checkpoint_of(run_dir: Path, epoch: int) -> Path:
    """The baseline checkpoint of ``epoch`` in a run (error if it was not kept)."""
    ckpts = dict(list_checkpoints(run_dir / "baseline"))
    if epoch not in ckpts:
        raise FileNotFoundError(f"{run_dir / 'baseline'} has no checkpoint of epoch {epoch}; "
                                f"it has epochs {sorted(ckpts)}")
    return ckpts[epoch]


def final_checkpoints(cfg: SpuriousConfig, work_dir: str | Path, train: bool
                      ) -> dict[tuple[str, int], Path]:
    """The last checkpoint of each (condition, seed)'s network: trained or reused
    (:func:`train_networks`) with ``train``, else found in ``work_dir`` (an error names the
    runs that are missing)."""
    work_dir = Path(work_dir)
    if train:
        runs = train_networks(cfg, work_dir)
    else:
        runs = {(c, s): work_dir / condition_name(c, s) for s in cfg.seeds
                for c in ("neutral", "spurious")}
        missing = [str(p) for p in runs.values() if not (p / "summary.json").is_file()]
        if missing:
            raise FileNotFoundError(f"no trained spurious networks in {', '.join(missing)}: "
                                    "run python -m analyses.spurious")
    return {key: checkpoint_of(run, cfg.epochs) for key, run in runs.items()}


# --------------------------------------------------------------------------- accuracy

@torch.no_grad()
def _predict(model: torch.nn.Module, images: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    dev = next(model.parameters()).device
    out = [model(images[i:i + batch].to(dev)).argmax(1).cpu() for i in range(0, len(images), batch)]
    return torch.cat(out).numpy()


def accuracy_table(cfg: SpuriousConfig, runs: dict[tuple[str, int], Path],
                   tied_split: ImageSet, neutral_split: ImageSet) -> pd.DataFrame:
    """Accuracy of every final network on the test images, by background.

    Returns
    -------
    DataFrame
        One row per (seed, condition, test_set): ``test_set`` is ``tied`` (the ``p = 1``
        rendering), ``neutral`` (the ``p = 0`` rendering, all images),
        ``neutral/unrelated`` and ``neutral/conflicting`` (its images whose background is
        tied to no class / to another class); ``n``, ``accuracy``, and ``val_acc`` (the
        run's own validation accuracy at the end of training, on its own rendering).
    """
    rows = []
    for (condition, seed), run_dir in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        model = load_model(checkpoint_of(run_dir, cfg.epochs))
        summary = read_json(run_dir / "summary.json")
        val_acc = summary["models"]["baseline"].get("final_val_acc")
        pred_t = _predict(model, tied_split.images)
        pred_n = _predict(model, neutral_split.images)
        sets = {
            "tied": (pred_t, tied_split.labels, np.ones(len(tied_split), dtype=bool)),
            "neutral": (pred_n, neutral_split.labels, np.ones(len(neutral_split), dtype=bool)),
            "neutral/unrelated": (pred_n, neutral_split.labels,
                                  neutral_split.relation == "unrelated"),
            "neutral/conflicting": (pred_n, neutral_split.labels,
                                    neutral_split.relation == "conflicting"),
        }
        for name, (pred, labels, sel) in sets.items():
            n = int(sel.sum())
            acc = float((pred[sel] == labels[sel]).mean()) if n else float("nan")
            rows.append({"seed": seed, "condition": condition, "test_set": name, "n": n,
                         "accuracy": acc, "val_acc": val_acc})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- quantification

def weights_digest(model: torch.nn.Module) -> str:
    """A hash of a model's parameters and buffers (names, shapes and values)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        arr = t.detach().cpu().contiguous().numpy()
        h.update(name.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _settings_digest(cfg: SpuriousConfig, layer: str, images: ImageSet) -> str:
    blob = {"layer": layer, "grid": cfg.grid, "samples": cfg.samples, "steps": cfg.steps,
            "seed": cfg.quantify_seed,
            "keys": images.keys,
            "pixels": hashlib.sha256(images.images.numpy().tobytes()).hexdigest()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _concat(sets: dict[str, ImageSet]) -> tuple[ImageSet, dict[str, slice]]:
    parts = [sets[n] for n in SET_ORDER]
    spans, start = {}, 0
    for s in parts:
        spans[s.name] = slice(start, start + len(s))
        start += len(s)
    joined = ImageSet(
        name="+".join(SET_ORDER),
        images=torch.cat([s.images for s in parts]),
        masks=torch.cat([s.masks for s in parts]),
        foreground=np.concatenate([s.foreground for s in parts]),
        labels=np.concatenate([s.labels for s in parts]),
        families=np.concatenate([s.families for s in parts]),
        relation=np.concatenate([s.relation for s in parts]),
        indices=np.concatenate([s.indices for s in parts]),
        keys=[k for s in parts for k in s.keys],
    )
    return joined, spans


def quantify_runs(cfg: SpuriousConfig, runs: dict[tuple[str, int], Path],
                  sets: dict[str, ImageSet], cache_dir: str | Path,
                  show_progress: bool | None = None, stats: dict | None = None
                  ) -> tuple[dict[tuple[int, str, str, int], np.ndarray], dict[str, slice],
                             dict[tuple[int, str, int], str]]:
    """Entropy grids of every quantified checkpoint on both analysed image sets.

    One engine call per (seed, layer) holds every checkpoint whose weights are not yet in
    the cache; checkpoints with equal weights (epoch 0 of both conditions) are computed once.
    Every network sees the same images with the same noise streams (the keys of the sets).

    Parameters
    ----------
    cfg : SpuriousConfig
    runs : dict (condition, seed) -> run directory
    sets : dict name -> ImageSet
        ``tied`` and ``neutral``.
    cache_dir : str or Path
        One file per (weights, layer, images, settings).
    stats : dict, optional
        Receives ``computed`` and ``cached``: engine units (network x layer) computed now
        and read from the cache.

    Returns
    -------
    grids : dict (seed, condition, layer, epoch) -> float array (N_tied + N_neutral, g, g)
        Entropy (nats); NaN grids for images without usable signal.
    spans : dict set name -> slice of the image axis
    digests : dict (seed, condition, epoch) -> weights digest (see :func:`weights_digest`)
    """
    cache_dir = Path(cache_dir)
    joined, spans = _concat(sets)
    grids: dict[tuple[int, str, str, int], np.ndarray] = {}
    digests: dict[tuple[int, str, int], str] = {}
    for seed in cfg.seeds:
        for layer in cfg.layers:
            units: dict[tuple[str, int], tuple[str, Path]] = {}
            models: dict[str, torch.nn.Module] = {}
            for condition in CONDITIONS:
                for epoch in cfg.quantified_epochs():
                    path = checkpoint_of(runs[(condition, seed)], epoch)
                    model = load_model(path)
                    digest = weights_digest(model)
                    units[(condition, epoch)] = (digest, path)
                    digests[(seed, condition, epoch)] = digest
                    models.setdefault(digest, model)
            resolved = resolve_layer_name(next(iter(models.values())), layer, cfg.arch)
            tag = _settings_digest(cfg, resolved, joined)
            files = {d: cache_dir / f"{d}-{resolved}-{tag}.pt" for d in models}
            todo = [d for d in models if not files[d].is_file()]
            if stats is not None:
                stats["computed"] = stats.get("computed", 0) + len(todo)
                stats["cached"] = stats.get("cached", 0) + len(models) - len(todo)
            if todo:
                log(f"quantifying seed {seed}, layer {layer} ({resolved}): {len(todo)} "
                    f"network(s) x {len(joined)} images")
                res = quantify([models[d] for d in todo], joined.images, resolved,
                               grid=cfg.grid, samples=cfg.samples, steps=cfg.steps,
                               seed=cfg.quantify_seed, image_keys=joined.keys, arch=cfg.arch,
                               show_progress=show_progress)
                for k, d in enumerate(todo):
                    atomic_torch_save({"entropy": res.entropy[k].clone(),
                                       "no_signal": res.no_signal[k].clone(),
                                       "d0": res.d0[k].clone(),
                                       "steps_run": res.steps_run[k].clone(),
                                       "keys": joined.keys, "layer": resolved,
                                       "settings": res.settings}, files[d])
            for (condition, epoch), (digest, _) in units.items():
                unit = load_torch_file(files[digest], what="spurious cache unit")
                ent = unit["entropy"].double().numpy().copy()
                ent[unit["no_signal"].numpy()] = np.nan
                grids[(seed, condition, layer, epoch)] = ent
    return grids, spans, digests


def per_image_table(cfg: SpuriousConfig, grids: dict[tuple[int, str, str, int], np.ndarray],
                    sets: dict[str, ImageSet], spans: dict[str, slice]) -> pd.DataFrame:
    """The concept metrics of every (seed, condition, layer, epoch, image set, image).

    ``H_bar`` is pooled per network, checkpoint and image set (docs/method.md section 4). The shared baseline
    of ``N_fg_shared`` / ``N_bg_shared`` is the mean of the two networks' ``H_bar`` (same
    seed, layer, checkpoint and image set).
    """
    rows = []
    units = sorted({(seed, layer, epoch) for seed, _, layer, epoch in grids},
                   key=lambda u: (u[0], cfg.layers.index(u[1]) if u[1] in cfg.layers else 0, u[2]))
    for seed, layer, epoch in units:
        for name in SET_ORDER:
            s = sets[name]
            ents = {c: grids[(seed, c, layer, epoch)][spans[name]] for c in CONDITIONS}
            kw = {"concept_threshold": cfg.concept_threshold,
                  "baseline_entropy": cfg.baseline_entropy}
            own = {c: image_metrics(ents[c], s.foreground, **kw) for c in CONDITIONS}
            shared = np.mean([own[c]["H_bar"] for c in CONDITIONS], axis=0)
            for condition in CONDITIONS:
                m = image_metrics(ents[condition], s.foreground, shared_h_bar=shared, **kw)
                for i in range(len(s)):
                    rows.append({"seed": seed, "condition": condition, "layer": layer,
                                 "epoch": epoch, "image_set": name, "image": i,
                                 "key": s.keys[i], "label": int(s.labels[i]),
                                 "family": int(s.families[i]),
                                 **{k: float(v[i]) for k, v in m.items()},
                                 "H_bar_shared": float(shared[i])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- everything

@dataclass
class ValidationResults:
    """What the validation produced (the input of :func:`analyses.spurious.report.write_report`).

    Attributes
    ----------
    cfg : SpuriousConfig
    accuracy : DataFrame
        See :func:`accuracy_table`.
    per_image : DataFrame
        See :func:`per_image_table`.
    comparison : DataFrame
        See :func:`analyses.spurious.metrics.compare_conditions` (seed level: the verdicts).
    grids : dict (seed, condition, layer, epoch) -> array (N, g, g)
    spans : dict set name -> slice
    sets : dict set name -> ImageSet
    runs : dict (condition, seed) -> run directory
    digests : dict (seed, condition, epoch) -> weights digest of the quantified checkpoints
    timings : dict step -> seconds
    reused : list of str
        Runs found finished in the work folder (not trained now).
    cached_units : int
        Quantifications (network x layer) read from the cache instead of computed.
    within_run : DataFrame
        See :func:`analyses.spurious.metrics.within_run_tests` (per seed: diagnostics).
    """

    cfg: SpuriousConfig
    accuracy: pd.DataFrame
    per_image: pd.DataFrame
    comparison: pd.DataFrame
    grids: dict
    spans: dict
    sets: dict
    runs: dict
    digests: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    reused: list = field(default_factory=list)
    cached_units: int = 0
    within_run: pd.DataFrame = field(default_factory=pd.DataFrame)


def run_validation(cfg: SpuriousConfig, work_dir: str | Path,
                   show_progress: bool | None = None) -> ValidationResults:
    """Train, measure accuracy, quantify and compare (see the module docstring).

    Parameters
    ----------
    cfg : SpuriousConfig
    work_dir : str or Path
        Runs and the quantification cache (``work_dir / "quantify"``).
    """
    work_dir = Path(work_dir)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    log("rendering the test images (tied: p = 1, neutral: p = 0)")
    tied_split = load_test_split(cfg, 1.0, "tied")
    neutral_split = load_test_split(cfg, 0.0, "neutral")
    sets = analysed_sets(cfg, tied_split, neutral_split)
    timings["test images"] = time.perf_counter() - t

    t = time.perf_counter()
    reused: list[str] = []
    runs = train_networks(cfg, work_dir, reused)
    timings["training"] = time.perf_counter() - t

    t = time.perf_counter()
    accuracy = accuracy_table(cfg, runs, tied_split, neutral_split)
    timings["accuracy"] = time.perf_counter() - t

    t = time.perf_counter()
    qstats: dict[str, int] = {}
    grids, spans, digests = quantify_runs(cfg, runs, sets, work_dir / "quantify", show_progress,
                                          qstats)
    timings["quantification"] = time.perf_counter() - t

    t = time.perf_counter()
    per_image = per_image_table(cfg, grids, sets, spans)
    comparison = compare_conditions(per_image)
    within_run = within_run_tests(per_image)
    timings["metrics and tests"] = time.perf_counter() - t
    return ValidationResults(cfg, accuracy, per_image, comparison, grids, spans, sets, runs,
                             digests, timings, reused, qstats.get("cached", 0), within_run)
