"""Networks, images, maps and Quantus scores of the localisation analysis."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from analyses.localisation.methods import MapResult, MethodSettings, methods, run_method
from kdexplain.train.checkpoints import load_checkpoint
from kdexplain.utils.io import load_torch_file
from kdexplain.vocabulary import ROLES

#: Quantus localisation metrics (higher = more of the map on the object).
METRICS = ("PointingGame", "RelevanceRankAccuracy", "RelevanceMassAccuracy")


def log(msg: str) -> None:
    print(f"[localisation] {msg}", file=sys.stderr, flush=True)


@dataclass
class Network:
    """One analysed network and the images it is scored on."""

    group: str           # "quickstart" or "spurious"
    name: str            # role (teacher/student/baseline) or condition (neutral/spurious)
    seed: int
    model: torch.nn.Module
    layer: str           # the perturbation entropy's layer
    sets: dict[str, dict] = field(default_factory=dict)  # set name -> images, labels, masks, keys


def quickstart_run_dirs(paths: list[Path]) -> list[Path]:
    """Each seed's run folder: a multi-seed run (``runs/quickstart`` with ``seed_*``
    folders, as ``kdexplain run`` writes it) is expanded to its seeds."""
    out = []
    for p in map(Path, paths):
        if not (p / "sweep" / "images.pt").is_file():
            seeds = sorted(q for q in p.glob("seed_*") if (q / "sweep" / "images.pt").is_file())
            if seeds:
                out += seeds
                continue
        out.append(p)
    return out


def quickstart_networks(run_dir: Path, n_images: int, seen: set[Path] | None = None
                        ) -> list[Network]:
    """T, S and B of one quickstart run (one seed) at their last state, on the run's sweep
    images. A teacher shared by several seeds (``teacher.json``) is analysed once: with the
    first seed whose run is given (``seen`` holds the shared teachers already taken)."""
    from kdexplain.train.triplet import shared_teacher_of

    run_dir = Path(run_dir)
    images_pt = run_dir / "sweep" / "images.pt"
    if not images_pt.is_file():
        raise FileNotFoundError(f"{images_pt} does not exist: give a finished quickstart run "
                                "(kdexplain run configs/quickstart.yaml writes runs/quickstart)")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    saved = load_torch_file(images_pt, what="sweep image file")
    n = min(n_images, len(saved["labels"]))
    images = {"images": saved["images"][:n].float(), "labels": saved["labels"][:n].long(),
              "masks": saved["masks"][:n].bool(), "keys": list(saved["keys"][:n])}
    shared = shared_teacher_of(run_dir)
    seen = set() if seen is None else seen
    out = []
    for role in ROLES:
        where = run_dir / role / "last.pt"
        if role == "teacher" and shared is not None:
            if shared in seen:
                continue
            seen.add(shared)
            where = shared / "teacher" / "last.pt"
        model, ckpt = load_checkpoint(where)
        out.append(Network("quickstart", role, int(cfg.get("seed", 0)), model.eval(),
                           str(ckpt.get("layer") or cfg["model"]["layer"]), {"val": images}))
    return out


def spurious_networks(work_dir: Path, quick: bool, n_images: int | None,
                      train: bool) -> list[Network]:
    """The final neutral and spurious networks of ``analyses.spurious``, on its two sets."""
    from analyses.spurious import final_checkpoints, load_analysed_sets, make_config

    cfg = make_config(quick=quick)
    if n_images is not None:
        from dataclasses import replace
        cfg = replace(cfg, images_per_set=n_images)
    checkpoints = final_checkpoints(cfg, work_dir, train)
    sets = load_analysed_sets(cfg)
    # the tied set only: there the truth is known (the background names the class)
    packed = {name: {"images": s.images.float(), "labels": torch.as_tensor(s.labels).long(),
                     "masks": s.masks.bool(), "keys": list(s.keys)} for name, s in sets.items()
              if name == "tied"}
    out = []
    for (condition, seed), path in sorted(checkpoints.items(),
                                          key=lambda kv: (kv[0][1], kv[0][0])):
        model, _ = load_checkpoint(path)
        out.append(Network("spurious", condition, seed, model.eval(), cfg.layers[0], packed))
    return out


def quantus_scores(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   masks: torch.Tensor, maps: torch.Tensor) -> dict[str, np.ndarray]:
    """Quantus's localisation metrics of precomputed maps against exact masks."""
    import quantus

    kw = {"model": model, "x_batch": x.numpy(), "y_batch": y.numpy(),
          "a_batch": maps[:, None].numpy().astype(np.float64),
          "s_batch": masks[:, None].numpy().astype(np.float64), "device": "cpu"}
    common = {"abs": True, "normalise": True, "disable_warnings": True}
    return {name: np.asarray(getattr(quantus, name)(**common)(**kw), dtype=float)
            for name in METRICS}


def score_networks(networks: list[Network], settings: MethodSettings,
                   keep_maps: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every method on every network and image set.

    Returns
    -------
    per_image : DataFrame
        One row per (group, network, seed, set, method, image) with the three metrics and
        the mask's share of the image (the chance level of all three).
    cost : DataFrame
        One row per (group, network, seed, set, method): images, forward rows, seconds.
    maps : dict
        (group, name, seed, set, method) -> the first ``keep_maps`` maps (for the figures).
    """
    rows, cost, kept = [], [], {}
    for net in networks:
        for set_name, data in net.sets.items():
            x, y, m, keys = data["images"], data["labels"], data["masks"], data["keys"]
            for method, fn in methods(net.layer).items():
                res: MapResult = run_method(fn, net.model, x, y, keys, settings)
                scores = quantus_scores(net.model, x, y, m, res.maps)
                share = m.flatten(1).float().mean(1).numpy()
                for i in range(len(y)):
                    rows.append({"group": net.group, "network": net.name, "seed": net.seed,
                                 "set": set_name, "method": method, "image": i,
                                 "label": int(y[i]), "mask_share": float(share[i]),
                                 **{k: float(v[i]) for k, v in scores.items()}})
                cost.append({"group": net.group, "network": net.name, "seed": net.seed,
                             "set": set_name, "method": method, "images": len(y),
                             "forward_rows": res.forward_rows, "seconds": res.seconds})
                kept[(net.group, net.name, net.seed, set_name, method)] = res.maps[:keep_maps]
                log(f"{net.group} {net.name} seed {net.seed} {set_name}: {method} "
                    f"{res.seconds:.1f} s, {res.forward_rows} rows")
    return pd.DataFrame(rows), pd.DataFrame(cost), kept
