"""A dry run of ``kdexplain run``: validate a config end to end and estimate its cost.

Nothing is written: the datasets are opened (data root, splits, analysis images), the
architecture is built and its layer resolved, the checkpoints the analysis asks for are
checked against those the training keeps, the quantification settings and grid are
checked, and the output folders are checked for writing. Then a short probe times a few
training steps and one quantification (a couple of images, few samples) on this machine,
and the counts are multiplied out.

The estimate is linear in the measured per-image costs: it leaves out data loading,
evaluation overheads beyond a forward pass, and the speed-up a large batch gets over the
probe's small one (so on a GPU it is an upper bound).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from kdexplain.config import ExperimentConfig
from kdexplain.data import build_dataset, readable_items
from kdexplain.models import build_model, resolve_layer_name
from kdexplain.quantification import quantify
from kdexplain.quantification.settings import resolve_settings
from kdexplain.utils import check_writable_folder
from kdexplain.utils.device import resolve_device

__all__ = ["VariantPlan", "format_plan", "plan_experiment", "plan_variant"]

#: Checkpoints the sweep quantifies in one engine call (``kdexplain sweep``'s default).
SWEEP_CHECKPOINTS_PER_CALL = 4


@dataclass
class VariantPlan:
    """What one experiment (a config, or one variant of it) will do, and its measured cost.

    ``epochs``: training epochs per model kind, over all seeds (``teacher`` includes its
    pre-training). ``units``: quantified (model, checkpoint) pairs; each quantifies
    ``images`` images. ``seconds``: estimated seconds per device, ``{"cpu": {"training": s,
    "quantification": s}}``.
    """

    name: str
    seeds: int
    layer: str
    epochs: dict[str, int]
    train_images: int
    val_images: int
    source_images: tuple[int, int]
    units: dict[str, int]
    images: int
    passes_per_image: int
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs.values())

    @property
    def total_units(self) -> int:
        return sum(self.units.values())


def plan_experiment(cfg: ExperimentConfig, *, report_dir: str | Path | None = None,
                    device: str | None = None, probe: bool = True) -> list[VariantPlan]:
    """Validate ``cfg`` (each variant) and estimate its cost; writes nothing.

    Parameters
    ----------
    cfg : ExperimentConfig
    report_dir : str or Path, optional
        The report folder ``run`` would write (default ``reports/<name>``).
    device : str, optional
        Overrides the config's device. Where CUDA is present and the device is not CUDA,
        the GPU is probed too.
    probe : bool
        Time the probe (False: counts only).

    Raises
    ------
    FileNotFoundError, ValueError
        The first problem found (data root, layer, checkpoints, settings, folders).
    """
    out = Path(report_dir) if report_dir is not None else Path("reports") / cfg.name
    check_writable_folder(out, "report folder")
    check_writable_folder(Path(cfg.out_dir), "run folder (out_dir)")
    subs = [cfg.for_variant(v) for v in cfg.variants] if cfg.variants else [cfg]
    return [plan_variant(sub, device=device, probe=probe) for sub in subs]


def _open(name: str, split: str, root, image_size: int, **options):
    """A dataset as the run opens it, without writing: ``scenes`` draws its images on
    demand instead of writing its cache file."""
    if name == "scenes":
        options = {**options, "cache": False}
    return build_dataset(name, split=split, root=root, image_size=image_size, **options)


def _kept(checkpoints: list[int], epochs: int) -> list[int]:
    """The epochs a phase of ``epochs`` keeps: those listed up to its end, and its end."""
    return sorted({e for e in checkpoints if e <= epochs} | {epochs})


def plan_variant(cfg: ExperimentConfig, *, device: str | None = None,
                 probe: bool = True) -> VariantPlan:
    """:func:`plan_experiment` for one experiment without variants."""
    d, m, a = cfg.data, cfg.model, cfg.analysis
    train_set = _open(d.name, split=d.train_split, root=d.root, image_size=d.image_size,
                      **d.options)
    val_set = _open(d.name, split=d.val_split, root=d.root, image_size=d.image_size,
                    **d.options)
    analysis_set = _open(d.name, split=a.split, root=d.root, image_size=d.image_size,
                         **d.options)  # as the sweep opens it
    num_classes = int(getattr(train_set, "num_classes", 0) or 0)
    if num_classes < 2:
        raise ValueError(f"dataset {d.name!r} ({d.train_split}) has {num_classes} class(es); "
                         "training needs at least 2")
    model = build_model(m.arch, num_classes, **m.kwargs)
    layer = resolve_layer_name(model, m.layer, m.arch)
    for t in m.track_layers:
        resolve_layer_name(model, t, m.arch)
    settings = resolve_settings(a.preset, steps=a.steps, samples=a.samples,
                                feature_transform=a.feature_transform,
                                entropy_weight=a.entropy_weight)
    if a.grid > d.image_size:
        raise ValueError(f"analysis.grid {a.grid} exceeds data.image_size {d.image_size}")
    notes = _check_teacher(cfg)

    seeds = len(cfg.seeds) if cfg.seeds else 1
    t, s = cfg.teacher, cfg.student
    teachers = seeds if t.per_seed else 1  # else one teacher shared by the seeds
    student_epochs = s.phase1_epochs + (s.phase2_epochs if s.mode == "feature" else 0)
    pretrain = t.pretrain_epochs if t.pretrained is None else 0
    epochs = {"teacher pre-training": teachers * pretrain, "teacher": teachers * t.epochs,
              "baseline": seeds * cfg.baseline.epochs, "student": seeds * student_epochs}
    source_images = _source_images(cfg) if pretrain else (0, 0)
    analysed = {"teacher": (t.epochs, teachers), "baseline": (cfg.baseline.epochs, seeds),
                "student": (s.phase1_epochs, seeds)}
    units = {}
    for role in a.models:
        end, copies = analysed[role]
        kept = _kept(cfg.checkpoints, end)
        if a.checkpoints != "all":
            missing = sorted(set(a.checkpoints) - set(kept))
            if missing:
                raise ValueError(f"analysis.checkpoints asks for epochs {missing} that the "
                                 f"{role} does not keep (it keeps {kept})")
            kept = [e for e in kept if e in a.checkpoints]
        units[role] = copies * len(kept)
    images = min(a.n_images, len(analysis_set))
    if images < a.n_images:
        notes.append(f"analysis.split {a.split!r} has {len(analysis_set)} images: "
                     f"{images} analysed, not {a.n_images}")
    passes = settings.d0_samples + (settings.probes if settings.optimizer == "newton_log"
                                    else 0) + settings.steps * settings.samples
    plan = VariantPlan(name=cfg.name, seeds=seeds, layer=layer, epochs=epochs,
                       train_images=len(train_set), val_images=len(val_set),
                       source_images=source_images, units=units, images=images,
                       passes_per_image=passes, notes=notes)
    if probe:
        for dev in _probe_devices(device or cfg.device):
            plan.seconds[dev] = _probe(cfg, model, layer, train_set, analysis_set, settings,
                                       plan, torch.device(dev))
    return plan


def _source_images(cfg: ExperimentConfig) -> tuple[int, int]:
    """Training and validation images of the teacher's pre-training data (``data.source``)."""
    src, d = cfg.data.source, cfg.data
    if src is None:
        raise ValueError("teacher.pretrain_epochs > 0 with teacher.pretrained null needs "
                         "data.source (the pre-training data)")
    size = src.image_size or d.image_size
    n_train = len(_open(src.name, split=src.split, root=src.root, image_size=size,
                        **src.options))
    n_val = 0 if src.val_split is None else len(_open(
        src.name, split=src.val_split, root=src.root, image_size=size, **src.options))
    return n_train, n_val


def _check_teacher(cfg: ExperimentConfig) -> list[str]:
    pretrained = cfg.teacher.pretrained
    if pretrained is None:
        return []
    if pretrained == "torchvision":
        return ["teacher.pretrained: torchvision's ImageNet weights (downloaded on first use "
                "unless in torch's hub cache)"]
    if not Path(pretrained).is_file():
        raise FileNotFoundError(f"teacher.pretrained: weights file {pretrained} does not exist")
    return []


def _probe_devices(device: str | None) -> list[str]:
    main = resolve_device(device or "auto")
    devices = ["cuda" if main.type == "cuda" else "cpu"]
    if devices[0] == "cpu" and torch.cuda.is_available():
        devices.append("cuda")
    return devices


def _batch(dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    items = readable_items(dataset, range(len(dataset)), limit=n)
    if not items:
        raise ValueError("no readable images in the dataset")
    return (torch.stack([it["image"] for it in items]).float(),
            torch.tensor([int(it["label"]) for it in items]))


def _timed(fn, repeats: int, device: torch.device, warm_up: bool = True) -> float:
    """Seconds of one call of ``fn``: the fastest of ``repeats`` calls, after a warm-up call
    (the fastest, as other work on the machine only ever slows a call down)."""
    if warm_up:
        fn()
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _probe(cfg: ExperimentConfig, model: nn.Module, layer: str, train_set, analysis_set,
           settings, plan: VariantPlan, device: torch.device) -> dict[str, float]:
    """Estimated seconds of the training and of the quantification on ``device``."""
    per_image_train, per_image_eval = _training_seconds(model, train_set, cfg.optim.batch_size,
                                                        device)
    # an epoch: a training step per image, and the validation pass (forward only)
    epoch = plan.train_images * per_image_train + plan.val_images * per_image_eval
    src_train, src_val = plan.source_images
    pretrain = plan.epochs["teacher pre-training"]
    training = ((plan.total_epochs - pretrain) * epoch
                + pretrain * (src_train * per_image_train + src_val * per_image_eval))

    images, _ = _batch(analysis_set, 2)
    per_image = _quantify_seconds(model, images, layer, cfg.analysis.grid, settings,
                                  plan.passes_per_image, plan.images, device)
    model.to("cpu")
    return {"training": training, "quantification": plan.total_units * plan.images * per_image,
            "epoch": epoch, "unit_image": per_image, "train_image": per_image_train,
            "eval_image": per_image_eval}


def _training_seconds(model: nn.Module, dataset, batch_size: int,
                      device: torch.device) -> tuple[float, float]:
    """Seconds per image of a training step and of an evaluation forward pass.

    The probe batch doubles from 2 images while a step takes under a second, up to the
    config's batch size: small networks are timed at a batch where they run as in training
    (per image, a batch of 2 costs several times a batch of 64), large ones stay short.
    """
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    n, per_train, per_eval = 2, 0.0, 0.0
    while True:
        x, y = _batch(dataset, min(n, batch_size))
        x, y = x.to(device), y.to(device)

        def step(x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        def evaluate(x: torch.Tensor = x) -> None:
            with torch.no_grad():
                model(x)

        model.train()
        per_train = _timed(step, 3, device) / len(x)
        model.eval()
        per_eval = _timed(evaluate, 3, device) / len(x)
        if per_train * len(x) >= 1.0 or n >= min(batch_size, len(dataset)):
            return per_train, per_eval
        n *= 2


def _quantify_seconds(model: nn.Module, images: torch.Tensor, layer: str, grid: int, settings,
                      passes: int, n_images: int, device: torch.device) -> float:
    """Seconds per (image, checkpoint) of the quantification.

    Two timed calls (after a warm-up call that also calibrates the chunk size) that differ
    only in their optimisation steps give the cost of one noise pass per image and
    checkpoint (the slope) and the fixed cost of a call; the estimate is ``passes`` noise
    passes plus the fixed cost shared by a sweep call's images and checkpoints. A cheap
    network (that probe would take under 20 s) is probed as the sweep runs it (the
    checkpoints of a call, up to 8 images, the settings' samples: its speed depends on the
    batch); an expensive one on a CPU with 2 images and few samples, scaled by the passes.
    """
    def mini() -> None:  # D0, one probe, one sample: about 3 passes of one image
        quantify(model, images[:1], layer, grid=grid, preset=settings.preset, steps=1,
                 samples=1, d0_samples=1, probes=1, seed=0, device=device, show_progress=False)

    per_pass = _timed(mini, 1, device) / 3
    n = min(n_images, 8)
    full = 3 * (settings.d0_samples + settings.probes + 3 * settings.samples) * n
    small = device.type == "cpu" and per_pass * full * SWEEP_CHECKPOINTS_PER_CALL > 20.0
    models = [model] if small else [model] * SWEEP_CHECKPOINTS_PER_CALL
    if not small:
        images = torch.cat([images] * -(-n // len(images)))[:n]
    samples = min(settings.samples, 4) if small else settings.samples
    options = {"d0_samples": min(settings.d0_samples, 4) if small else settings.d0_samples,
               "probes": min(settings.probes, 2) if small else settings.probes}

    def call(steps: int, warm_up: bool) -> float:
        def run() -> None:
            quantify(models, images, layer, grid=grid, preset=settings.preset, steps=steps,
                     samples=samples, seed=0, device=device, show_progress=False, **options)
        return _timed(run, 1, device, warm_up)

    one = call(1, warm_up=True)  # the warm-up calibrates the chunk size (cached)
    three = call(3, warm_up=False)
    units = len(models) * len(images)
    first = options["d0_samples"] + (options["probes"] if settings.optimizer == "newton_log"
                                     else 0) + samples
    slope = (three - one) / (2 * samples * units)
    if not slope > 0:  # timing noise on a busy machine: the upper bound of the first call
        slope = one / (first * units)
    fixed = max(one - slope * first * units, 0.0)
    return slope * passes + fixed / (max(n_images, 1) * len(models))


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"


def format_plan(plans: list[VariantPlan], threads: int | None = None) -> str:
    """The dry run's printout: what each experiment does, and the estimated time."""
    lines = []
    threads = threads or torch.get_num_threads()
    for p in plans:
        lines.append(f"{p.name}: {p.seeds} seed(s), layer {p.layer}")
        lines.append("  training epochs: " + ", ".join(f"{k} {v}" for k, v in p.epochs.items())
                     + f" (total {p.total_epochs}; {p.train_images} training images)")
        lines.append("  quantification units (model x checkpoint): "
                     + ", ".join(f"{k} {v}" for k, v in p.units.items())
                     + f" (total {p.total_units}), each on {p.images} images, "
                       f"{p.passes_per_image} noise passes per image")
        for dev, sec in p.seconds.items():
            where = f"{dev}, {threads} thread(s)" if dev == "cpu" else dev
            lines.append(f"  estimate on {where}: training {_duration(sec['training'])} "
                         f"({_duration(sec['epoch'])} per epoch), quantification "
                         f"{_duration(sec['quantification'])} "
                         f"({sec['unit_image']:.3g} s per image and checkpoint); total "
                         f"{_duration(sec['training'] + sec['quantification'])}")
            lines.append(f"    measured per image: training step {sec['train_image']:.3g} s, "
                         f"evaluation {sec['eval_image']:.3g} s, quantification "
                         f"{sec['unit_image']:.3g} s ({p.passes_per_image} passes)")
        lines += [f"  note: {n}" for n in p.notes]
    if len(plans) > 1 and all(p.seconds for p in plans):
        for dev in plans[0].seconds:
            total = sum(p.seconds[dev]["training"] + p.seconds[dev]["quantification"]
                        for p in plans if dev in p.seconds)
            lines.append(f"all {len(plans)} variants on {dev}: {_duration(total)}")
    lines.append("dry run: nothing was written (probe: a few training steps and one short "
                 "quantification, timed; data loading not included)")
    return "\n".join(lines)
