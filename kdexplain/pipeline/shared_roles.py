"""Train a network once when several variants of a study would train it alike.

A study's variants differ in the analysed layer and the student's objective. The networks
whose training does not depend on the layer -- the teacher, the baseline, and the soft-target
(Hinton) student and its random-teacher control -- come out the same in every variant that
shares their recipe, so :func:`adopt_finished_roles` copies a finished one from an earlier
variant's run instead of training it again. What decides is a model's *recipe*: the parts of
the resolved config that its training reads (:func:`role_recipe`), plus, for a distilled
student, the sha256 of its teacher's weights. A feature-distilled student (or control) is
trained at its layer and is never shared.

A shared network is analysed at each variant's layer. Its weight distance at that layer
comes from the layers it tracked while training (``model.track_layers``): a study that shares
networks between layers tracks the other layer (``configs/study.yaml``), and the sweep refuses
a copied network that did not (:func:`kdexplain.pipeline.sweeps.sweep`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from kdexplain.config import ExperimentConfig
from kdexplain.vocabulary import CONTROL
from kdexplain.weights import sha256_of

__all__ = ["SHARED_ROLES", "adopt_finished_roles", "layer_bound", "role_recipe"]

log = logging.getLogger(__name__)

#: the roles a variant may take from an earlier one (the teacher is shared by its own folder)
SHARED_ROLES: tuple[str, ...] = ("baseline", "student", CONTROL)
_NOT_TRAINING = ("name", "seeds", "out_dir", "analysis", "variants")


def layer_bound(config: ExperimentConfig, role: str) -> bool:
    """Whether ``role``'s training depends on the analysed layer (feature distillation)."""
    return role in ("student", CONTROL) and config.student.mode == "feature"


def role_recipe(config: ExperimentConfig, role: str, teacher_sha256: str | None = None
                ) -> str | None:
    """A digest of what training ``role`` under ``config`` reads; None if layer-bound.

    Two configs with one recipe for a role train it to the same weights (bit for bit with
    ``deterministic: true`` on one machine). The layer enters only through the set of layers
    whose weight path is recorded (``model.layer`` and ``model.track_layers``).

    Parameters
    ----------
    config : ExperimentConfig
        One seed's config (``seed`` set).
    role : {"teacher", "baseline", "student", "control"}
    teacher_sha256 : str, optional
        The teacher's ``last.pt`` digest; a student's recipe includes it.
    """
    if layer_bound(config, role):
        return None
    raw: dict[str, Any] = config.model_dump(mode="json")
    for key in _NOT_TRAINING:
        raw.pop(key, None)
    model = raw["model"]
    model["tracked"] = sorted({model.pop("layer"), *model.pop("track_layers")})
    student = raw.pop("student")
    if role == "teacher":
        raw.pop("baseline")
    elif role == "baseline":
        raw.pop("teacher")
        raw["same_init_as_baseline"] = student["same_init_as_baseline"]
    else:
        raw.pop("baseline")
        raw.pop("teacher")
        student.pop("control")
        raw["student"] = student
        if role == "student":
            raw["teacher_sha256"] = teacher_sha256
    raw["role"] = role
    blob = json.dumps(raw, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _finished(model_dir: Path) -> bool:
    """A model folder whose run has finished (its run folder's ``summary.json`` is written
    when every model of the run is trained)."""
    return ((model_dir / "last.pt").is_file() and (model_dir / "weight_distance.csv").is_file()
            and (model_dir.parent / "summary.json").is_file())


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a finished model folder (through a temporary name: a kill leaves no half copy)."""
    tmp = dst.with_name(f".{dst.name}.copy")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    tmp.rename(dst)


def adopt_finished_roles(config: ExperimentConfig, base: Path,
                         earlier: list[tuple[ExperimentConfig, Path]]) -> list[str]:
    """Copy into ``base`` (a variant's run folder) every finished model an earlier variant
    trained with the same recipe; returns what was copied (``seed_<s>/<role>``).

    Parameters
    ----------
    config : ExperimentConfig
        The variant's config (with ``seeds``).
    base : Path
        The variant's run folder (``seed_<s>/`` per seed).
    earlier : list of (config, run folder)
        The variants that ran before this one.
    """
    adopted: list[str] = []
    if not config.teacher.per_seed:
        adopted += _adopt_teacher(config, base, earlier)
    hashes: dict[tuple[Path, int], str | None] = {}  # each teacher file is hashed once

    def teacher_sha(folder: Path, seed: int) -> str | None:
        if (folder, seed) not in hashes:
            hashes[folder, seed] = _teacher_sha(folder, seed)
        return hashes[folder, seed]

    for seed in config.run_seeds():
        mine = config.for_seed(seed)
        for role in SHARED_ROLES:
            target = base / f"seed_{seed}" / role
            # a folder this variant has begun itself is resumed, never overwritten
            if target.exists() or (role == CONTROL and not config.student.control):
                continue
            recipe = role_recipe(mine, role,
                                 teacher_sha(base, seed) if role == "student" else None)
            if recipe is None:
                continue
            for other_cfg, other_base in earlier:
                source = other_base / f"seed_{seed}" / role
                if not _finished(source):
                    continue
                t_other = teacher_sha(other_base, seed) if role == "student" else None
                if recipe != role_recipe(other_cfg.for_seed(seed), role, t_other):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy_tree(source, target)
                adopted.append(f"seed_{seed}/{role}")
                break
    if adopted:
        log.info("%s: %d model(s) trained alike by an earlier variant were copied, not "
                 "retrained: %s", config.name, len(adopted), ", ".join(adopted))
    return adopted


def _adopt_teacher(config: ExperimentConfig, base: Path,
                   earlier: list[tuple[ExperimentConfig, Path]]) -> list[str]:
    """The shared teacher's model folder (not its run's config.yaml, which names the variant)."""
    from kdexplain.train.triplet import SHARED_TEACHER

    target = base / SHARED_TEACHER / "teacher"
    if target.exists():
        return []
    recipe = role_recipe(config.for_seed(config.seed), "teacher")
    for other_cfg, other_base in earlier:
        source = other_base / SHARED_TEACHER / "teacher"
        if (not other_cfg.teacher.per_seed and _finished(source)
                and role_recipe(other_cfg.for_seed(other_cfg.seed), "teacher") == recipe):
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_tree(source, target)
            return [f"{SHARED_TEACHER}/teacher"]
    return []


def _teacher_sha(base: Path, seed: int) -> str | None:
    """The digest of the teacher a seed of a variant distils from (None: not trained yet)."""
    from kdexplain.train.triplet import SHARED_TEACHER

    for path in (base / SHARED_TEACHER / "teacher" / "last.pt",
                 base / f"seed_{seed}" / "teacher" / "last.pt"):
        if path.is_file():
            return sha256_of(path)
    return None
