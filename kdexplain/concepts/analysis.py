"""From the entropy grids of one or several runs to the three hypotheses' numbers and verdicts.

The sweep hands over one :class:`RunEntropies` per trained run (seed);
:func:`analyze_concepts` selects the images, computes the concepts of every model, summarises
each metric over images and seeds with bootstrap intervals, and tests S against B.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from kdexplain.concepts.hypotheses import control_tests, hypothesis_tests
from kdexplain.concepts.metrics import ModelConcepts, model_concepts
from kdexplain.concepts.result import ConceptAnalysis
from kdexplain.concepts.runs import RunEntropies
from kdexplain.concepts.selection import select_images
from kdexplain.concepts.settings import ConceptSettings
from kdexplain.concepts.summary import summarise
from kdexplain.vocabulary import ALL_ROLES, COMPARED_ROLES, CONTROL

__all__ = ["analyze_concepts"]


def _extras(run: RunEntropies, role: str, mc: ModelConcepts) -> dict[str, np.ndarray]:
    """Per-image columns beyond the metrics: hypothesis 1's counts at epoch 0 (the untrained
    control, where S and B share their weights) and ``d(m^)`` and the total path ``d(M)``
    under both distance forms (per step and per epoch)."""
    n = mc.n_fg.shape[1]
    out: dict[str, np.ndarray] = {}
    at0 = np.flatnonzero(mc.epochs == 0)
    nan = np.full(n, np.nan)
    if at0.size:
        fg, bg = (mc.n_fg[at0[0]].astype(np.float64), mc.n_bg[at0[0]].astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(fg + bg > 0, fg / (fg + bg), 0.0)
        out.update({"N_fg_epoch0": fg, "N_bg_epoch0": bg, "fg_ratio_epoch0": ratio})
    else:
        out.update({"N_fg_epoch0": nan, "N_bg_epoch0": nan, "fg_ratio_epoch0": nan})
    excluded = ~np.isfinite(mc.peak_distance)
    for form, source in (("step", run.distance), ("epoch", run.distance_epoch)):
        if source is None:
            out[f"peak_distance_{form}"] = out[f"total_distance_{form}"] = nan
            continue
        d = np.asarray(source[role], dtype=np.float64)
        out[f"peak_distance_{form}"] = np.where(excluded, np.nan, d[mc.peak_index])
        out[f"total_distance_{form}"] = np.full(n, d[-1])
    return out


def _analyse_run(run: RunEntropies, seed: int, settings: ConceptSettings, notes: list[str]
                 ) -> tuple[dict, dict, pd.DataFrame, list[pd.DataFrame], list[pd.DataFrame]]:
    """Concepts of every model of one run: (models, used keys, image table, per-image
    frames, trajectory frames)."""
    used, table = select_images(run, seed, settings)
    models: dict[str, ModelConcepts] = {}
    used_keys: dict[str, list[str]] = {}
    per_image, traj = [], []
    for role in run.roles:
        idx = np.flatnonzero(used[role])
        if idx.size == 0:
            reasons = table[(table["role"] == role) & ~table["used"]]["reason"]
            counts = reasons.str.replace(r" at epoch \d+", "", regex=True).value_counts()
            raise ValueError(
                f"seed {seed}: no image is left for the {role} (of {run.n_images}); "
                + "; ".join(f"{n} x {why}" for why, n in counts.items()))
        if settings.distance == "epoch" and run.distance_epoch is None:
            raise ValueError("distance='epoch' needs RunEntropies.distance_epoch "
                             "(the per-epoch weight distance); it was not given")
        if np.isnan(run.distance[role]).all():
            if settings.distance == "step":
                raise ValueError(f"the per-step weight distance of the {role} was not recorded "
                                 "(a run assembled from per-epoch state dicts): set "
                                 "analysis.distance=epoch (kdexplain report --set distance=epoch)")
            note = ("only the per-epoch form of the weight distance is available (a run "
                    "assembled from per-epoch state dicts): hypothesis 2 uses d_epoch and "
                    "the per-step columns are empty")
            if note not in notes:
                notes.append(note)
        dist = run.distance_epoch[role] if settings.distance == "epoch" else run.distance[role]
        count_epoch = settings.count_epoch
        if count_epoch is not None and count_epoch not in run.epochs[role]:
            if role != "teacher":
                raise ValueError(f"count_epoch {count_epoch} is not a checkpoint of the "
                                 f"{role} (epochs {run.epochs[role].tolist()})")
            count_epoch = None  # the teacher trains on its own schedule
            note = (f"count_epoch {settings.count_epoch} is not a teacher checkpoint; the "
                    "teacher's hypothesis-1 numbers are read at its last checkpoint")
            if note not in notes:
                notes.append(note)
        mc = model_concepts(
            run.entropy[role][:, idx], run.foreground[idx], run.epochs[role], dist,
            concept_threshold=settings.concept_threshold,
            baseline_entropy=settings.baseline_entropy, count_epoch=count_epoch,
            peak_without_concepts=settings.peak_without_concepts,
            empty_rho=settings.empty_rho)
        models[role] = mc
        keys = [run.image_keys[i] for i in idx]
        used_keys[role] = keys
        per_image.append(pd.DataFrame({
            "seed": seed, "role": role, "image_key": keys,
            "count_epoch": mc.count_epoch, **mc.image_metrics(),
            "peak_epoch": mc.epochs[mc.peak_index],
        })[["seed", "role", "image_key", "N_fg", "N_bg", "fg_ratio", "count_epoch",
            "peak_epoch", "peak_distance", "rho"]].assign(**_extras(run, role, mc)))
        m, n = mc.n_fg.shape
        traj.append(pd.DataFrame({
            "seed": seed, "role": role,
            "checkpoint": np.repeat(np.arange(m), n),
            "epoch": np.repeat(mc.epochs, n),
            "distance": np.repeat(mc.distance, n),
            "image_key": np.tile(np.asarray(keys, dtype=object), m),
            "H_bar": mc.h_bar.ravel(), "N_fg": mc.n_fg.ravel(), "N_bg": mc.n_bg.ravel(),
        }))
    return models, used_keys, table, per_image, traj


def analyze_concepts(runs: RunEntropies | Sequence[RunEntropies],
                     settings: ConceptSettings | None = None, *,
                     teacher: RunEntropies | None = None, **overrides: Any
                     ) -> ConceptAnalysis:
    """Concepts, the three hypotheses' metrics, their statistics and verdicts.

    Parameters
    ----------
    runs : RunEntropies or list of them
        One per trained run (seed). Pairs S-B are matched by (seed, image key).
    settings : ConceptSettings, optional
    teacher : RunEntropies, optional
        A teacher trained once and shared by every seed (only the ``teacher`` role, with the
        teacher's own seed): analysed once, on its own images. The runs must then hold no
        teacher of their own.
    **overrides
        Single settings, e.g. ``select_effective=True`` (applied over ``settings``).

    Returns
    -------
    ConceptAnalysis

    Raises
    ------
    ValueError
        For inconsistent inputs, or when no image is left for a model (the message gives
        the reasons images were left out).
    """
    if isinstance(runs, RunEntropies):
        runs = [runs]
    runs = list(runs)
    if not runs:
        raise ValueError("analyze_concepts needs at least one RunEntropies")
    base = settings.to_dict() if settings is not None else {}
    settings = ConceptSettings(**{**base, **overrides})
    seeds = [r.seed if r.seed is not None else i for i, r in enumerate(runs)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"runs share a seed: {seeds}; give each run its own seed")
    todo = list(zip(seeds, runs, strict=True))
    if teacher is not None:
        if teacher.roles != ["teacher"]:
            raise ValueError(f"the shared teacher's RunEntropies must hold only the teacher, "
                             f"got {teacher.roles}")
        own = [s for s, r in todo if "teacher" in r.roles]
        if own:
            raise ValueError(f"runs of seeds {own} have a teacher of their own besides the "
                             "shared teacher; give one or the other")
        todo.append((teacher.seed if teacher.seed is not None else 0, teacher))
    models: dict[int, dict[str, ModelConcepts]] = {}
    used_keys: dict[int, dict[str, list[str]]] = {}
    image_tables, per_image, traj = [], [], []
    notes: list[str] = []
    for seed, run in todo:
        m, u, table, pi, tr = _analyse_run(run, seed, settings, notes)
        models.setdefault(seed, {}).update(m)
        used_keys.setdefault(seed, {}).update(u)
        image_tables.append(table)
        per_image += pi
        traj += tr
    per_image_df = pd.concat(per_image, ignore_index=True)
    roles = [r for r in ALL_ROLES if r in set(per_image_df["role"])]
    summary = summarise(per_image_df, roles, settings)
    if set(COMPARED_ROLES) <= set(roles):
        tests, verdicts = hypothesis_tests(per_image_df, settings)
    else:
        tests, verdicts = pd.DataFrame(), pd.DataFrame()
        notes.append("the hypotheses compare the student with the baseline; one of them is "
                     "missing, so nothing was tested")
    if teacher is not None:
        notes.append(f"the teacher was trained once (seed {todo[-1][0]}) and shared by every "
                     "seed; its numbers come from that one network")
    controls = (control_tests(per_image_df, settings)
                if {*COMPARED_ROLES, CONTROL} <= set(roles) else pd.DataFrame())
    return ConceptAnalysis(
        settings=settings, runs=runs, seeds=seeds, models=models, used_keys=used_keys,
        images=pd.concat(image_tables, ignore_index=True), per_image=per_image_df,
        trajectories=pd.concat(traj, ignore_index=True), summary=summary, tests=tests,
        verdicts=verdicts, notes=notes, teacher_run=teacher, control_tests=controls)
