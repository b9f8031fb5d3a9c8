"""The experiment config's schema: one pydantic model per section (docs/method.md section 2)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from kdexplain.concepts.settings import BOUND_KEYS, ConceptSettings
from kdexplain.config.errors import ConfigError, format_errors
from kdexplain.config.overrides import apply_overrides
from kdexplain.vocabulary import ALL_ROLES, ARCHS, OPTIMIZERS, ROLES, SCHEDULES

__all__ = [
    "CONCEPT_KEYS",
    "PAPER_CHECKPOINTS",
    "REPORT_ONLY_KEYS",
    "AnalysisConfig",
    "BaselineConfig",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OptimConfig",
    "OptimOverrides",
    "SourceDataConfig",
    "StudentConfig",
    "TeacherConfig",
    "parse_config",
]

#: Checkpoint epochs of the original protocol (docs/method.md section 2).
PAPER_CHECKPOINTS: tuple[int, ...] = (0, 2, 5, 10, 15, 20, 25, 30, 40, 50, 70, 90, 110, 130, 150)

Arch = Literal[ARCHS]  # Literal[("a", "b")] is Literal["a", "b"]
Role = Literal[ALL_ROLES]
Optimizer = Literal[OPTIMIZERS]
Schedule = Literal[SCHEDULES]


class _Strict(BaseModel):
    # NaN and infinity are no setting (``lr: .nan`` would train a network of NaNs)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


#: Seeds seed NumPy's legacy generator too, which takes 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class SourceDataConfig(_Strict):
    """The dataset the teacher is pre-trained on when it has no pretrained weights.

    Stands in for ImageNet, the paper's "larger dataset": e.g. a bigger ``scenes`` variant
    built with another seed. The teacher's head is re-initialised afterwards.
    """

    name: str = "scenes"
    root: str | None = None
    image_size: int | None = Field(None, ge=8, description="None: the target's image size")
    options: dict[str, Any] = Field(default_factory=dict)
    split: str = "train"
    val_split: str | None = Field("val", description="None: no validation during pre-training")
    preload: bool = Field(False, description="hold the images in memory as one tensor "
                                              "(datasets without random augmentation)")


class DataConfig(_Strict):
    """The target dataset, passed to ``kdexplain.data.build_dataset``.

    ``options`` are passed through as keyword arguments (for ``scenes``:
    ``images_per_class``, ``seed``, ``spurious_background``, ``augment``, ...).
    ``preload`` reads every image once into one in-memory tensor, which makes an epoch of a
    small dataset much faster on a CPU; it requires a dataset whose items do not change
    between reads (no ``augment``).
    """

    name: str = "scenes"
    root: str | None = None
    image_size: int = Field(64, ge=8)
    options: dict[str, Any] = Field(default_factory=dict)
    train_split: str = "train"
    val_split: str = "val"
    preload: bool = Field(False, description="hold the images in memory as one tensor, read "
                                             "once (datasets without random augmentation)")
    source: SourceDataConfig | None = None

    @model_validator(mode="after")
    def _preload_needs_fixed_items(self) -> DataConfig:
        for where, spec in (("data", self), ("data.source", self.source)):
            if spec is not None and spec.preload and spec.options.get("augment"):
                raise ValueError(f"{where}.preload holds every image fixed in memory, which "
                                 f"contradicts {where}.options.augment (random per read); "
                                 "turn one of them off")
        return self


class ModelConfig(_Strict):
    """Architecture (the same for teacher, student and baseline) and the distilled layer."""

    arch: Arch = "kdnet"
    kwargs: dict[str, Any] = Field(default_factory=dict,
                                   description="kdnet options: width, hidden, dropout")
    layer: str = Field("fc1", description="distilled and analysed layer L: module path or "
                                          "the paper's alias conv/fc1/fc2/fc3")
    track_layers: list[str] = Field(
        default_factory=list,
        description="further layers whose weight path length is recorded in trajectory.csv")


class OptimOverrides(_Strict):
    """Per-role overrides of :class:`OptimConfig`; ``None`` keeps the shared value."""

    name: Optimizer | None = None
    lr: float | None = Field(None, gt=0)
    momentum: float | None = Field(None, ge=0, lt=1)
    weight_decay: float | None = Field(None, ge=0)
    schedule: Schedule | None = None


class OptimConfig(_Strict):
    """Optimiser, schedule and the knobs of one training step.

    ``batch_size`` is per process; under DDP the global batch is ``batch_size * world_size``
    and the learning rate is scaled by ``lr_scaling``: ``linear`` multiplies it by the world
    size (Goyal et al. 2017), ``sqrt`` by its square root, ``none`` keeps it.
    ``schedule``: ``loglinear`` decays the rate log-linearly by one decade over the epochs
    (epoch ``i`` of ``E`` uses ``lr * 10**(-i/(E-1))``, as the paper), ``cosine`` anneals it
    to 0, ``constant`` keeps it. ``amp`` and ``channels_last`` act on CUDA only.
    """

    name: Optimizer = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int | None = Field(None, ge=1, description="None: 2 x batch_size")
    schedule: Schedule = "loglinear"
    lr_scaling: Literal["linear", "sqrt", "none"] = "linear"
    amp: bool = False
    channels_last: bool = False
    num_workers: int = Field(0, ge=0)
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm; None: no clipping")

    def merged(self, overrides: OptimOverrides) -> OptimConfig:
        """This config with the non-None fields of ``overrides`` applied."""
        return self.model_copy(update=overrides.model_dump(exclude_none=True))


class TeacherConfig(_Strict):
    """The teacher: pretrained weights, or pre-training on ``data.source``; then fine-tuning.

    ``pretrained``: ``null`` (pre-train on ``data.source`` for ``pretrain_epochs``), a path to
    a state-dict file, ``kdexplain:<name>`` (weights that ship with kdexplain, e.g.
    ``kdexplain:scenes_kdnet16``: :mod:`kdexplain.weights`), or ``"torchvision"``
    (torchvision's ImageNet weights; needs the internet or torch's hub cache). The head is re-initialised for the target classes
    before ``epochs`` of fine-tuning on the target data.

    ``per_seed``: with several ``seeds``, ``false`` (the default) trains the teacher once
    (with ``seed``) and shares it by every seed, as the paper's teacher is a given network
    and the randomness under study is that of S and B; ``true`` trains one teacher per seed.
    """

    pretrained: str | None = None
    per_seed: bool = Field(False, description="with several seeds: one teacher per seed "
                                              "(true) or one shared by all (false)")
    pretrain_epochs: int = Field(0, ge=0)
    epochs: int = Field(150, ge=0)
    optim: OptimOverrides = Field(default_factory=OptimOverrides)
    pretrain_optim: OptimOverrides = Field(
        default_factory=OptimOverrides,
        description="overrides for the pre-training on data.source (on top of teacher.optim)")


class StudentConfig(_Strict):
    """The distilled student (docs/method.md sections 1-2).

    ``mode``: ``feature`` = phase 1 distils layer L with MSE to the teacher's pre-activation
    output, phase 2 freezes everything up to and including L and trains the layers above with
    cross-entropy; ``soft`` = Hinton's loss ``a T^2 KL + (1 - a) CE`` (``soft_weight`` = a,
    ``temperature`` = T) for ``phase1_epochs``; ``logit_l2`` = L2 on zero-meaned logits for
    ``phase1_epochs``. ``soft`` and ``logit_l2`` have no phase 2.
    ``same_init_as_baseline``: start from the baseline's initial weights, so S and B differ
    only by how they were trained.
    ``control``: also train the random-teacher control (role ``control``): a student distilled
    by the same procedure from the teacher's architecture at its initial weights, so that
    what S shares with it does not come from the teacher's knowledge.
    """

    mode: Literal["feature", "soft", "logit_l2"] = "feature"
    temperature: float = Field(4.0, gt=0)
    soft_weight: float = Field(0.9, ge=0, le=1)
    phase1_epochs: int = Field(150, ge=0)
    phase2_epochs: int = Field(150, ge=0)
    same_init_as_baseline: bool = True
    control: bool = Field(False, description="also distil a control student, by the same "
                                             "procedure, from an untrained teacher")
    optim: OptimOverrides = Field(default_factory=OptimOverrides)


class BaselineConfig(_Strict):
    """The baseline: the same architecture trained from scratch with labels only."""

    epochs: int = Field(150, ge=0)
    optim: OptimOverrides = Field(default_factory=OptimOverrides)


#: AnalysisConfig keys read only by the report (the statistics of
#: :class:`kdexplain.concepts.ConceptSettings`): changing them needs no new sweep.
REPORT_ONLY_KEYS: tuple[str, ...] = (
    "late_fraction", "count_epoch", "distance", "peak_without_concepts", "empty_rho", "alpha",
    "ci_level", "n_resamples", "n_permutations", "stats_seed", "keep_effective")
#: AnalysisConfig keys that are the settings of :class:`kdexplain.concepts.ConceptSettings`
#: (what ``kdexplain report --set`` may change): that class's fields, in its order.
CONCEPT_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ConceptSettings))


class _AnalysisSection(_Strict):
    """How the sweep quantifies the run and how the report counts and tests concepts.

    The quantification: ``n_images`` drawn from ``split``, the ``models`` and ``checkpoints``,
    ``preset`` ... ``max_batch`` (docs/method.md section 3), ``mask_rule`` (how masks become
    foreground cells). The concepts and statistics (docs/method.md section 4): the fields of
    :class:`kdexplain.concepts.ConceptSettings`, with its types, defaults, bounds and
    documentation (:data:`CONCEPT_KEYS`; :data:`REPORT_ONLY_KEYS` are read by the report
    alone).
    """

    @model_validator(mode="after")
    def _concepts_agree(self) -> _AnalysisSection:
        ConceptSettings.from_mapping(self.concept_settings())  # the settings' own checks
        return self

    def concept_settings(self) -> dict[str, Any]:
        """The :data:`CONCEPT_KEYS` of this section (``ConceptSettings.from_mapping`` reads it)."""
        return {k: getattr(self, k) for k in CONCEPT_KEYS}


#: The quantification's keys of the analysis section; each is placed in the section (and in a
#: saved config.yaml) after the key named by ``_PLACED_AFTER`` or, without one, before the
#: concept settings.
_QUANTIFY_FIELDS: dict[str, tuple[Any, Any]] = {
    "n_images": (int, Field(30, ge=1, description="images analysed (drawn from split by the seed)")),
    "split": (str, "val"),
    "models": (list[Role], Field(default_factory=lambda: list(ROLES))),
    "checkpoints": (Literal["all"] | list[int], "all"),
    "preset": (Literal["default", "paper", "adam", "reference"], "default"),
    "steps": (int | None, Field(None, ge=1)),
    "samples": (int | None, Field(None, ge=1)),
    "grid": (int, Field(16, ge=1)),
    "entropy_weight": (float | None, Field(None, gt=0)),
    "feature_transform": (Literal["relu", "identity"], "relu"),
    "mask_rule": (Literal["fraction", "nearest"], "fraction"),
    "max_batch": (int | None, Field(None, ge=1)),
}
_PLACED_AFTER = {"mask_rule": "baseline_entropy", "max_batch": "keep_effective"}


def _analysis_fields() -> dict[str, tuple[Any, Any]]:
    """The analysis section's fields, the concept settings' built from ConceptSettings."""
    hints = get_type_hints(ConceptSettings)
    concepts = {f.name: (hints[f.name], Field(f.default, **{k: v for k, v in f.metadata.items()
                                                             if k in BOUND_KEYS}))
                for f in dataclasses.fields(ConceptSettings)}
    out = {k: v for k, v in _QUANTIFY_FIELDS.items() if k not in _PLACED_AFTER}
    for name, spec in concepts.items():
        out[name] = spec
        out.update({k: _QUANTIFY_FIELDS[k] for k, after in _PLACED_AFTER.items() if after == name})
    return out


AnalysisConfig = create_model("AnalysisConfig", __base__=_AnalysisSection, __module__=__name__,
                              __doc__=_AnalysisSection.__doc__, **_analysis_fields())


class ExperimentConfig(_Strict):
    """One experiment: data, architecture, the three trainings, checkpoints, analysis.

    ``seeds`` (optional) lists several seeds: each is a run of its own in
    ``out_dir/name/seed_<s>``; without it the run is ``out_dir/name`` with ``seed``.
    ``device``: ``auto`` = CUDA when available, else CPU. ``deterministic``: ask torch for
    deterministic kernels (bit-reproducible runs on one machine; on CUDA set false for
    cuDNN's autotuned, faster kernels). ``checkpoints``: the epochs whose
    weights are kept (must include 0 = before training; the last epoch of every phase is
    always kept too); under a phase's length the others are ignored.
    """

    name: str = "experiment"
    seed: Seed = 0
    seeds: list[Seed] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = Field(True, description="deterministic kernels where torch has them; "
                                                  "false lets cuDNN pick the fastest ones")
    out_dir: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    checkpoints: list[int] = Field(default_factory=lambda: list(PAPER_CHECKPOINTS))
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    variants: dict[str, list[str]] | None = Field(
        None, description="named override sets (key=value items): `kdexplain run` runs each "
                          "as an experiment of its own and writes one report per variant")

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("give at least one variant, or null")
        for name, items in v.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
                raise ValueError(f"variant name {name!r} must be a folder name: letters, "
                                 "digits and _ . + -")
            bad = [i for i in items if "=" not in i]
            if bad:
                raise ValueError(f"variant {name!r}: {bad} are not key.sub=value overrides")
        return v

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", v):
            raise ValueError("must be a folder name: letters, digits and _ . + - "
                             "(no spaces or slashes), not starting with a dot")
        return v

    @field_validator("checkpoints")
    @classmethod
    def _checkpoints(cls, v: list[int]) -> list[int]:
        if any(e < 0 for e in v):
            raise ValueError(f"epochs must be >= 0, got {sorted(e for e in v if e < 0)}")
        if 0 not in v:
            raise ValueError("must include 0 (the weights before training), e.g. "
                             "[0, 2, 5, 10, 15, 20, 25, 30, 40, 50, 70, 90, 110, 130, 150]")
        return sorted(set(v))

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if not v:
                raise ValueError("give at least one seed, or null for the single `seed`")
            if len(set(v)) != len(v):
                raise ValueError(f"seeds repeat: {v}")
        return v

    @model_validator(mode="after")
    def _teacher_source(self) -> ExperimentConfig:
        if (self.teacher.pretrained is None and self.teacher.pretrain_epochs > 0
                and self.data.source is None):
            raise ValueError(
                "teacher.pretrain_epochs > 0 needs data.source (the dataset the teacher is "
                "pre-trained on), e.g. `source: {name: scenes, options: {seed: 1}}`; or set "
                "teacher.pretrained to a weights file")
        if self.teacher.pretrained is not None and self.teacher.pretrain_epochs > 0:
            raise ValueError("teacher.pretrained and teacher.pretrain_epochs > 0 exclude each "
                             "other: pretrained weights replace the pre-training")
        return self

    def run_seeds(self) -> list[int]:
        """The seeds this experiment runs: ``seeds`` or ``[seed]``."""
        return list(self.seeds) if self.seeds else [self.seed]

    def for_variant(self, variant: str) -> ExperimentConfig:
        """The experiment of one variant: its overrides applied, ``name`` = the variant,
        ``out_dir`` = ``out_dir/name`` (so its runs go to ``out_dir/name/<variant>``)."""
        if not self.variants or variant not in self.variants:
            raise ConfigError(f"no variant {variant!r}; the config has "
                              f"{sorted(self.variants or {})}")
        raw = self.model_dump(mode="json")
        overrides = raw.pop("variants")[variant]
        raw = apply_overrides(raw, overrides)
        raw["out_dir"] = str(Path(self.out_dir) / self.name)
        raw["name"] = variant
        return parse_config(raw, f"variant {variant!r} of {self.name}")

    def for_seed(self, seed: int) -> ExperimentConfig:
        """This config for one seed of a multi-seed experiment (``seeds`` cleared)."""
        return self.model_copy(update={"seed": int(seed), "seeds": None}, deep=True)


def parse_config(raw: dict[str, Any] | None, source: str = "<dict>") -> ExperimentConfig:
    """Validate a raw mapping into an :class:`ExperimentConfig` (errors as :class:`ConfigError`)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config {source} must be a mapping of sections, got {type(raw).__name__}")
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e, source, ExperimentConfig)) from None
