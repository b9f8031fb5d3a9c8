"""The perturbation engine: how much information from each image cell a layer uses.

SPEC section 3 (Cheng et al. 2020, after Guan et al. 2019). For an image ``x`` and the
feature ``phi(x)`` of a layer, a grid ``sigma`` (g x g cells) of noise scales is learnt:

* perturbation ``x~ = x + up(sigma) * eps``, ``eps ~ N(0, I)`` per pixel and channel;
* distortion ``D(sigma) = E_eps mean_d (phi_d(x~) - phi_d(x))^2`` (``S`` samples);
* normaliser ``D0 = D(sigma_init * 1)`` per image and model;
* entropy of cell i ``H_i = log sigma_i + 0.5 log(2 pi e)`` (nats, per dimension);
* objective ``L(sigma) = D(sigma) / D0 - lambda_H * mean_i H_i`` (``lambda_H`` =
  ``entropy_weight``), minimised over sigma.

Low entropy = the feature is sensitive to that cell = the network uses information there.

All images, noise samples and checkpoints of a call are optimised together; forward passes
are chunked to at most ``max_batch`` perturbed images; the model's weights never get
gradients and the forward pass stops at the layer.

Random numbers: each image has its own noise stream, seeded by
``derive_seed(seed, "noise", key)`` where ``key`` is the image's key (by default a hash of
its pixels). The stream draws ``d0_samples`` noise images for ``D0`` first, then
``samples`` noise images per optimisation step, each draw in blocks of
:data:`NOISE_BLOCK`. The same noise is shared by every checkpoint. Hence an image's result
does not depend on which other images share its call, nor on ``max_batch``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from kdexplain.quantify.features import FEATURE_TRANSFORMS, LayerFeature, frozen
from kdexplain.utils.progress import progress
from kdexplain.utils.seed import derive_seed
from kdexplain.vocabulary import renamed_keys

#: Entropy of N(0, 1) per dimension: ``H = log sigma + ENTROPY_OFFSET``.
ENTROPY_OFFSET = 0.5 * math.log(2 * math.pi * math.e)
#: Noise images are drawn in blocks of this many samples (see the module docstring).
NOISE_BLOCK = 16


def sigma_to_entropy(sigma: torch.Tensor) -> torch.Tensor:
    """``H = log sigma + 0.5 log(2 pi e)`` (nats per dimension), elementwise."""
    return torch.log(sigma) + ENTROPY_OFFSET


def default_entropy_weight(arch: str | None) -> float:
    """The original's ``lambda_H``: 6 for ResNets, 7 otherwise (VGG, AlexNet, kdnet)."""
    return 6.0 if arch and arch.startswith("resnet") else 7.0


@dataclass(frozen=True)
class QuantifySettings:
    """Resolved settings of one quantification (a preset plus the user's overrides).

    Attributes
    ----------
    preset : "default" or "reference"
    optimizer : "adam_log" (Adam on log sigma) or "sgd_clamp" (SGD on raw sigma clamped to
        ``clamp``, the original).
    steps : int
        Maximum optimisation steps.
    samples : int
        Noise samples per step (S).
    d0_samples : int
        Noise samples for the normaliser D0.
    lr : float
        Learning rate (of log sigma for ``adam_log``; of sigma for ``sgd_clamp``).
    entropy_weight : float or None
        ``lambda_H``; None = by architecture (:func:`default_entropy_weight`).
    sigma_init : float
        Initial sigma, and the sigma of the normaliser D0 (``sigma0``).
    feature_transform : "relu" or "identity"
        Applied to the layer's output before comparing (the original uses ReLU).
    clamp : (float, float)
        Bounds of sigma (``sgd_clamp`` clamps every step; ``adam_log`` bounds log sigma).
    patience : int
        ``adam_log``: window (steps) of the plateau test and of the iterate average that is
        returned.
    plateau : float
        ``adam_log``: a unit is on a plateau when the mean over cells of the change of its
        window-averaged log sigma between two consecutive windows is below
        ``plateau * patience * lr_unit`` (a steadily moving unit changes by about
        ``patience * lr_unit``; a noise-dominated one by much less).
    lr_decay : float
        ``adam_log``: on a plateau the unit's learning rate is multiplied by this.
    min_lr_factor : float
        ``adam_log``: a unit stops (converged) once its learning rate would fall below
        ``min_lr_factor * lr``.
    entropy_weight_step : int or None
        ``sgd_clamp``: the step after which the original either stops (mean entropy has
        exceeded ``target_entropy``) or multiplies the entropy weight (lambda_H) by
        ``entropy_weight_factor``. (``lambda_rule_step`` before 0.2.)
    entropy_weight_factor : float
        That multiplier (original: 1.5). (``lambda_factor`` before 0.2.)
    target_entropy : float or None
        Keep the iterate whose mean entropy is closest to it (original: -2.8). None: keep
        the final (averaged) iterate.
    """

    preset: str = "default"
    optimizer: Literal["adam_log", "sgd_clamp"] = "adam_log"
    steps: int = 100
    samples: int = 16
    d0_samples: int = 64
    lr: float = 0.1
    entropy_weight: float | None = None
    sigma_init: float = 0.01
    feature_transform: Literal["relu", "identity"] = "relu"
    clamp: tuple[float, float] = (1e-4, 10.0)
    patience: int = 10
    plateau: float = 0.25
    lr_decay: float = 0.5
    min_lr_factor: float = 0.125
    entropy_weight_step: int | None = None
    entropy_weight_factor: float = 1.5
    target_entropy: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, QuantifySettings] = {
    # Adam on log sigma, a decaying step and a convergence stop; settings justified by
    # benchmarks/bench_quantify.py (reports/performance.md).
    "default": QuantifySettings(),
    # The original algorithm (SPEC section 3), step for step.
    "reference": QuantifySettings(
        preset="reference", optimizer="sgd_clamp", steps=80, samples=96, d0_samples=96,
        lr=1e-4, clamp=(1e-3, 1.0), patience=1, entropy_weight_step=59,
        target_entropy=-2.8),
}


#: Old names of QuantifySettings fields (accepted for one release, with a warning).
_RENAMED_SETTINGS = {"lambda_rule_step": "entropy_weight_step",
                     "lambda_factor": "entropy_weight_factor"}


def resolve_settings(preset: str = "default", **overrides) -> QuantifySettings:
    """A preset with the given overrides (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    overrides = renamed_keys({k: v for k, v in overrides.items() if v is not None},
                             _RENAMED_SETTINGS)
    unknown = set(overrides) - set(QuantifySettings.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown quantify option(s): {', '.join(sorted(unknown))}")
    s = replace(PRESETS[preset], **overrides)
    if s.feature_transform not in FEATURE_TRANSFORMS:
        raise ValueError(f"feature_transform must be one of {', '.join(FEATURE_TRANSFORMS)}, "
                         f"got {s.feature_transform!r}")
    if s.steps < 1 or s.samples < 1 or s.d0_samples < 1:
        raise ValueError("steps, samples and d0_samples must be >= 1")
    if not s.sigma_init > 0:
        raise ValueError(f"sigma_init must be > 0, got {s.sigma_init}")
    return s


@dataclass
class QuantifyResult:
    """What :func:`quantify` returns.

    Shapes use ``K`` checkpoints (absent when a single model was given), ``B`` images and
    a ``grid x grid`` sigma.

    Attributes
    ----------
    sigma : Tensor ([K,] B, grid, grid)
        The learnt noise scale per cell (in the model's input units).
    entropy : Tensor ([K,] B, grid, grid)
        ``H_i = log sigma_i + 0.5 log(2 pi e)``, nats per dimension.
    d0 : Tensor ([K,] B)
        The normaliser ``D(sigma_init)``.
    no_signal : BoolTensor ([K,] B)
        ``d0 == 0``: the layer's feature does not react to noise at all for that image (e.g.
        every unit is dead after the ReLU). Such images are not optimised; their sigma stays
        at ``sigma_init`` and they must be excluded from statistics.
    loss_trace, distortion_trace, entropy_trace : Tensor (steps, [K,] B)
        Objective ``D/D0 - lambda_H mean H``, ``D/D0`` and mean entropy per step, at the
        iterate before the step; NaN once a unit has stopped.
    steps_run : LongTensor ([K,] B)
        Steps each unit ran.
    selected_step : LongTensor ([K,] B)
        The step whose iterate was kept (reference: closest to the target entropy).
    entropy_weight : Tensor ([K,] B)
        ``lambda_H`` at the end (the reference rule may have raised it).
    image_keys : list of str
        The key of each image (its noise stream).
    layer : str
        The resolved module path.
    settings : dict
        The resolved :class:`QuantifySettings`.
    """

    sigma: torch.Tensor
    entropy: torch.Tensor
    d0: torch.Tensor
    no_signal: torch.Tensor
    loss_trace: torch.Tensor
    distortion_trace: torch.Tensor
    entropy_trace: torch.Tensor
    steps_run: torch.Tensor
    selected_step: torch.Tensor
    entropy_weight: torch.Tensor
    image_keys: list[str]
    layer: str
    settings: dict = field(default_factory=dict)

    def squeeze_checkpoints(self) -> QuantifyResult:
        """The result of a single-model call: drop the checkpoint dimension."""
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, torch.Tensor):
                out[k] = v.squeeze(1) if k.endswith("_trace") else v.squeeze(0)
            else:
                out[k] = v
        return QuantifyResult(**out)


def image_key(image: torch.Tensor) -> str:
    """A stable key of an image's pixels (its default noise-stream name)."""
    arr = image.detach().to("cpu", torch.float32).contiguous().numpy()
    h = hashlib.blake2b(arr.tobytes(), digest_size=10)
    h.update(str(arr.shape).encode())
    return h.hexdigest()


def upsample_grid(sigma: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour upsampling of (..., g, g) grids to (..., H, W) (SPEC section 3)."""
    lead = sigma.shape[:-2]
    up = F.interpolate(sigma.reshape(-1, 1, *sigma.shape[-2:]), size=size, mode="nearest")
    return up.reshape(*lead, *size)


#: Activation bytes per forward chunk when ``max_batch`` is not given. On a CPU the
#: convolutions and their backward are memory-bound: a chunk whose activations fit the last
#: level cache runs about twice as fast per image as one that spills (kdnet at 64 px:
#: 32 rows, reports/performance.md). On a GPU the bound only caps memory.
CPU_CHUNK_BYTES = 32 * 2**20
GPU_CHUNK_BYTES = 2 * 2**30
MAX_DEFAULT_ROWS = 512


def activation_bytes_per_row(phi: Callable[[torch.Tensor], torch.Tensor], model: nn.Module,
                             x: torch.Tensor) -> int:
    """Bytes of every module output on the way to the layer, for one input row."""
    total = 0

    def count(module: nn.Module, args: tuple, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor) and not list(module.children()):
            total += output.numel() * output.element_size()

    handles = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            phi(x[:1])
    finally:
        for h in handles:
            h.remove()
    return max(total, x[:1].numel() * x.element_size())


def default_max_batch(device: str | torch.device, bytes_per_row: int) -> int:
    """Rows per forward pass when ``max_batch`` is not given.

    The rows whose activations (``bytes_per_row`` each) fill :data:`CPU_CHUNK_BYTES` on a
    CPU or :data:`GPU_CHUNK_BYTES` elsewhere, between 1 and :data:`MAX_DEFAULT_ROWS`.
    """
    budget = CPU_CHUNK_BYTES if torch.device(device).type == "cpu" else GPU_CHUNK_BYTES
    return int(min(MAX_DEFAULT_ROWS, max(1, budget // max(1, bytes_per_row))))


def resolve_memory_format(memory_format: str, model: nn.Module,
                          device: str | torch.device) -> torch.memory_format:
    """The layout of the perturbed images (see :func:`quantify`'s ``memory_format``)."""
    if memory_format == "channels_last":
        return torch.channels_last
    if memory_format == "contiguous":
        return torch.contiguous_format
    if memory_format != "auto":
        raise ValueError(f"memory_format must be 'auto', 'channels_last' or 'contiguous', "
                         f"got {memory_format!r}")
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    on_cpu = torch.device(device).type == "cpu"
    return torch.channels_last if (has_conv and on_cpu) else torch.contiguous_format


def _as_models(model: nn.Module | Sequence[nn.Module]) -> tuple[list[nn.Module], bool]:
    if isinstance(model, nn.Module):
        return [model], True
    models = list(model)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise TypeError("model must be an nn.Module or a non-empty sequence of nn.Modules "
                        "(checkpoints of one architecture)")
    return models, False


class _NoiseStreams:
    """One generator per image; draws (n, C, H, W) standard normal noise in fixed blocks."""

    def __init__(self, keys: Sequence[str], seed: int, shape: tuple[int, ...],
                 device: torch.device) -> None:
        self.shape = shape
        self.device = device
        self.gens = []
        for key in keys:
            g = torch.Generator(device=device)
            g.manual_seed(derive_seed(seed, "noise", key))
            self.gens.append(g)

    def draw(self, b: int, n: int) -> torch.Tensor:
        blocks = []
        for start in range(0, n, NOISE_BLOCK):
            m = min(NOISE_BLOCK, n - start)
            blocks.append(torch.randn((m, *self.shape), generator=self.gens[b],
                                      device=self.device))
        return torch.cat(blocks) if len(blocks) > 1 else blocks[0]


def _row_chunks(images: Sequence[int], samples: int, max_rows: int) -> list[list[tuple[int, int, int]]]:
    """Split the (image, sample) rows of ``images`` into chunks of at most ``max_rows`` rows.

    Returns a list of chunks, each a list of ``(image, first_sample, stop_sample)``.
    """
    chunks: list[list[tuple[int, int, int]]] = []
    cur: list[tuple[int, int, int]] = []
    room = max_rows
    for b in images:
        s = 0
        while s < samples:
            take = min(samples - s, room)
            cur.append((b, s, s + take))
            s += take
            room -= take
            if room == 0:
                chunks.append(cur)
                cur, room = [], max_rows
    if cur:
        chunks.append(cur)
    return chunks


def quantify(
    model: nn.Module | Sequence[nn.Module],
    images: torch.Tensor,
    layer: str,
    grid: int = 16,
    *,
    preset: str = "default",
    feature_transform: str | None = None,
    entropy_weight: float | None = None,
    sigma_init: float | None = None,
    steps: int | None = None,
    samples: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    max_batch: int | None = None,
    memory_format: str = "auto",
    image_keys: Sequence[str] | None = None,
    arch: str | None = None,
    show_progress: bool | None = False,
    **options,
) -> QuantifyResult:
    """Learn, per image, the largest noise each grid cell can take before the layer's
    feature changes (SPEC section 3).

    Parameters
    ----------
    model : nn.Module or sequence of nn.Module
        The network, or several checkpoints of one architecture, quantified together
        (then every result tensor gets a leading checkpoint dimension K).
    images : Tensor (B, C, H, W)
        Images in the network's (normalised) input space.
    layer : str
        Module path (``fc``, ``classifier.4``, ``features.28``, ``layer4.1.conv2``) or the
        paper's alias (``conv``, ``fc1``, ``fc2``, ``fc3``). The feature is the module's
        output, before any following activation.
    grid : int
        Cells per side of sigma (the original: 16).
    preset : "default" or "reference"
        ``"reference"`` reproduces the original algorithm exactly (SGD 1e-4 on clamped
        sigma, 96 samples, 80 steps, lambda by architecture, the x1.5 rule, the iterate
        closest to entropy -2.8). ``"default"`` minimises the same objective with Adam on
        log sigma and a convergence stop.
    feature_transform : "relu" or "identity", optional
        Applied to the feature before comparing (default ReLU, as the original).
    entropy_weight : float, optional
        ``lambda_H``; default 7 (VGG, AlexNet, kdnet) or 6 (ResNet).
    sigma_init : float, optional
        Initial sigma and the sigma of the normaliser (default 0.01).
    steps, samples, lr : optional
        Override the preset's maximum steps, noise samples per step, learning rate.
    seed : int
        Seed of the noise streams.
    device : str or torch.device, optional
        Default: the device of the model's first parameter.
    max_batch : int, optional
        Most perturbed images in one forward pass (bounds memory). Default: as many as
        keep the activations up to the layer within 32 MiB on a CPU (where chunks that
        stay in cache run fastest per image; kdnet at 64 px: 32) or 2 GiB on a GPU, at
        most 512 (see :func:`default_max_batch`).
    memory_format : "auto", "channels_last" or "contiguous"
        Layout of the perturbed images. ``"auto"``: channels-last on a CPU when the
        model has 2-d convolutions (oneDNN convolutions run about twice as fast in it),
        contiguous otherwise. The weights are never touched. Results agree to float
        rounding.
    image_keys : sequence of str, optional
        Names of the images' noise streams (default: a hash of each image's pixels).
    arch : str, optional
        Architecture, for layer aliases and lambda (default ``model.kdexplain_arch``).
    show_progress : bool, optional
        A progress bar over steps (None: when stderr is a terminal).
    **options
        Further :class:`QuantifySettings` fields (``d0_samples``, ``patience``,
        ``plateau``, ``clamp``, ``target_entropy``, ...).

    Returns
    -------
    QuantifyResult
    """
    models, single = _as_models(model)
    if images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got shape {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        bad = (~torch.isfinite(images)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"images contain NaN or infinite values (images {bad[:10]})")
    B, C, H, W = images.shape
    if B == 0:
        raise ValueError("images is empty: pass at least one (C, H, W) image")
    if grid < 1 or grid > min(H, W):
        raise ValueError(f"grid must lie in [1, min(H, W)] = [1, {min(H, W)}], got {grid}")
    arch = arch or getattr(models[0], "kdexplain_arch", None)
    settings = resolve_settings(
        preset, feature_transform=feature_transform, entropy_weight=entropy_weight,
        sigma_init=sigma_init, steps=steps, samples=samples, lr=lr, **options)
    lam0 = settings.entropy_weight if settings.entropy_weight is not None else default_entropy_weight(arch)
    settings = replace(settings, entropy_weight=lam0)
    if device is None:
        first = next(iter(models[0].parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    if max_batch is not None and int(max_batch) < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    layout = resolve_memory_format(memory_format, models[0], device)
    if image_keys is None:
        image_keys = [image_key(im) for im in images]
    image_keys = [str(k) for k in image_keys]
    if len(image_keys) != B:
        raise ValueError(f"got {len(image_keys)} image keys for {B} images")

    transform = FEATURE_TRANSFORMS[settings.feature_transform]
    x = images.detach().to(device, torch.float32)
    K = len(models)
    S = settings.samples
    streams = _NoiseStreams(image_keys, seed, (C, H, W), device)

    with ExitStack() as stack, torch.enable_grad():
        feats, by_id = [], {}
        for m in models:
            if id(m) not in by_id:  # the same module object given twice shares one hook
                m.to(device)
                stack.enter_context(frozen(m))
                by_id[id(m)] = stack.enter_context(LayerFeature(m, layer, arch))
            feats.append(by_id[id(m)])
        layer_name = feats[0].layer
        if max_batch:
            max_rows = int(max_batch)
        else:
            probe = x[:1].contiguous(memory_format=layout)
            max_rows = default_max_batch(device, activation_bytes_per_row(feats[0], models[0], probe))
        # clean features f0[k]: (B, *feature)
        with torch.no_grad():
            f0 = [torch.cat([transform(phi(x[i:i + max_rows].contiguous(memory_format=layout)))
                             for i in range(0, B, max_rows)]) for phi in feats]

        def distortion_sums(sig_of: dict[int, torch.Tensor], rows: list[tuple[int, int, int]],
                            noise: dict[int, torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor]:
            """mean_d (phi(x~) - phi(x))^2 for every (image, sample) row of ``rows``.

            Returns the image index of each row and the per-row distortion.
            """
            imgs = [b for b, _, _ in rows]
            counts = torch.tensor([s1 - s0 for _, s0, s1 in rows], device=device)
            idx_t = torch.repeat_interleave(torch.tensor(imgs, device=device), counts)
            up = upsample_grid(torch.stack([sig_of[b] for b in imgs]), (H, W))  # (R, H, W)
            eps = torch.cat([noise[b][s0:s1] for b, s0, s1 in rows])  # (rows, C, H, W)
            xt = torch.addcmul(x[idx_t], torch.repeat_interleave(up, counts, 0)[:, None], eps)
            f = transform(feats[k](xt.contiguous(memory_format=layout)))
            sq = (f - f0[k][idx_t]).pow(2).flatten(1).mean(1)  # (rows,)
            return idx_t, sq

        # --- normaliser D0 = D(sigma_init * 1) --------------------------------------
        d0 = torch.zeros(K, B, device=device)
        sig0 = torch.full((grid, grid), settings.sigma_init, device=device)
        n0 = settings.d0_samples
        with torch.no_grad():
            noise: dict[int, torch.Tensor] = {}
            for chunk in _row_chunks(range(B), n0, max_rows):
                _draw_chunk(streams, chunk, n0, noise)
                for k in range(K):
                    idx_t, sq = distortion_sums({b: sig0 for b, _, _ in chunk}, chunk, noise, k)
                    d0[k].index_add_(0, idx_t, sq)
                _release_chunk(chunk, n0, noise)
        d0 /= n0
        no_signal = ~(d0 > 0) | ~torch.isfinite(d0)

        # --- optimisation -------------------------------------------------------------
        init = settings.sigma_init
        if settings.optimizer == "adam_log":
            theta = torch.full((K, B, grid, grid), math.log(init), device=device, requires_grad=True)
            opt = _UnitAdam(theta, settings.lr)
            lo, hi = math.log(settings.clamp[0]), math.log(settings.clamp[1])
        else:
            theta = torch.full((K, B, grid, grid), init, device=device, requires_grad=True)
            opt = torch.optim.SGD([theta], lr=settings.lr)
            lo, hi = settings.clamp
        lam = torch.full((K, B), float(lam0), device=device)
        active = ~no_signal
        T = settings.steps
        loss_tr = torch.full((T, K, B), float("nan"))
        dist_tr = torch.full((T, K, B), float("nan"))
        ent_tr = torch.full((T, K, B), float("nan"))
        steps_run = torch.zeros(K, B, dtype=torch.long)
        keep_trace = settings.target_entropy is not None
        sigma_trace = torch.empty((T, K, B, grid, grid)) if keep_trace else None
        # adam_log: the returned sigma is the average of log sigma over the last `patience`
        # iterates, which removes most of the noise of a stochastic optimiser.
        window = max(1, settings.patience)
        recent = torch.zeros((window, K, B, grid, grid), device=device)
        prev_mean = torch.full((K, B, grid, grid), math.log(init), device=device)

        bar = progress(range(T), desc=f"quantify {layer_name}", enable=show_progress, unit="step")
        t = 0
        for t in bar:
            if not bool(active.any()):
                break
            with torch.no_grad():
                if settings.optimizer == "sgd_clamp":
                    theta.clamp_(lo, hi)
                sigma = theta.exp() if settings.optimizer == "adam_log" else theta.clone()
                mean_h = sigma_to_entropy(sigma).flatten(2).mean(2)  # (K, B)
            if keep_trace:
                sigma_trace[t] = sigma.detach().cpu()
            opt.zero_grad(set_to_none=False)
            d_sum = torch.zeros(K, B, device=device)
            img_active = active.any(0).nonzero().flatten().tolist()
            noise = {}
            for chunk in _row_chunks(img_active, S, max_rows):
                _draw_chunk(streams, chunk, S, noise)
                for k in range(K):
                    rows = [r for r in chunk if active[k, r[0]]]
                    if not rows:
                        continue
                    sig_k = theta[k].exp() if settings.optimizer == "adam_log" else theta[k]
                    idx_t, sq = distortion_sums({b: sig_k[b] for b, _, _ in rows}, rows, noise, k)
                    loss = (sq / (S * d0[k, idx_t])).sum()
                    loss.backward()
                    with torch.no_grad():
                        d_sum[k].index_add_(0, idx_t, sq.detach())
                _release_chunk(chunk, S, noise)
            # entropy term, for active units only
            sig_all = theta.exp() if settings.optimizer == "adam_log" else theta
            h = sigma_to_entropy(sig_all).flatten(2).mean(2)
            (-(lam * active * h).sum()).backward()
            with torch.no_grad():
                dist = d_sum / S / torch.where(active, d0, torch.ones_like(d0))
                obj = dist - lam * mean_h
                a_cpu = active.cpu()
                loss_tr[t] = torch.where(a_cpu, obj.cpu(), torch.nan)
                dist_tr[t] = torch.where(a_cpu, dist.cpu(), torch.nan)
                ent_tr[t] = torch.where(a_cpu, mean_h.cpu(), torch.nan)
                steps_run += a_cpu.long()
                before = theta.detach().clone()
                if not torch.isfinite(theta.grad).all():
                    raise FloatingPointError(
                        "non-finite gradient of sigma: the model's feature is not finite under "
                        "noise; check the inputs' scale or lower sigma_init")
            opt.step()
            with torch.no_grad():
                frozen_units = ~active
                theta[frozen_units] = before[frozen_units]  # stopped units do not move
                if settings.optimizer == "adam_log":
                    theta.clamp_(lo, hi)
                    recent[t % window] = torch.where(active[..., None, None], theta, recent[t % window])
                    if (t + 1) % window == 0:
                        # plateau test once per window; all active units have run t+1 steps
                        cur_mean = recent.mean(0)
                        drift = (cur_mean - prev_mean).abs().flatten(2).mean(2)
                        flat = active & (t + 1 >= 2 * window) & (
                            drift < settings.plateau * window * opt.unit_lr)
                        prev_mean = torch.where(active[..., None, None], cur_mean, prev_mean)
                        opt.unit_lr = torch.where(flat, opt.unit_lr * settings.lr_decay, opt.unit_lr)
                        active &= ~(opt.unit_lr < settings.min_lr_factor * settings.lr * (1 - 1e-6))
                if settings.entropy_weight_step is not None and t == settings.entropy_weight_step:
                    reached = ent_tr[: t + 1].nan_to_num(-float("inf")).amax(0).to(device) > settings.target_entropy
                    stop = active & reached
                    lam = torch.where(active & ~reached, lam * settings.entropy_weight_factor, lam)
                    active &= ~stop

        # --- the sigma that is kept -----------------------------------------------------
        with torch.no_grad():
            if keep_trace:
                # the iterate whose mean entropy is closest to the target (first on ties)
                dev = (ent_tr - settings.target_entropy).abs().nan_to_num(float("inf"))
                selected = dev.argmin(0)  # (K, B)
                sigma_out = torch.gather(
                    sigma_trace, 0, selected[None, ..., None, None].expand(1, K, B, grid, grid))[0]
            elif settings.optimizer == "adam_log":
                n_avg = torch.clamp(steps_run, max=window).to(device)
                # average of the last min(steps, window) iterates
                order = torch.arange(window, device=device)[:, None, None]
                pos = (steps_run.to(device) - 1) % window  # slot of the newest iterate
                age = (pos[None] - order) % window  # 0 = newest
                use = (age < n_avg[None]).float()[..., None, None]
                mean_log = (recent * use).sum(0) / use.sum(0).clamp(min=1)
                never = steps_run.to(device) == 0
                mean_log[never] = math.log(init)
                sigma_out = mean_log.exp().cpu()
                selected = (steps_run - 1).clamp(min=0)
            else:
                sigma_out = theta.detach().clamp(lo, hi).cpu()
                selected = (steps_run - 1).clamp(min=0)
            sigma_out[no_signal.cpu()] = init

    T_run = max(int(steps_run.max()) if steps_run.numel() else 0, 1)
    result = QuantifyResult(
        sigma=sigma_out,
        entropy=sigma_to_entropy(sigma_out),
        d0=d0.cpu(),
        no_signal=no_signal.cpu(),
        loss_trace=loss_tr[:T_run],
        distortion_trace=dist_tr[:T_run],
        entropy_trace=ent_tr[:T_run],
        steps_run=steps_run,
        selected_step=selected.cpu(),
        entropy_weight=lam.cpu(),
        image_keys=list(image_keys),
        layer=layer_name,
        settings={**settings.to_dict(), "grid": grid, "seed": seed, "arch": arch},
    )
    return result.squeeze_checkpoints() if single else result


class _UnitAdam:
    """Adam on a (K, B, g, g) tensor with a learning rate per (checkpoint, image) unit."""

    def __init__(self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.99),
                 eps: float = 1e-8) -> None:
        self.param = param
        self.unit_lr = torch.full(param.shape[:2], float(lr), device=param.device)
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    def zero_grad(self, set_to_none: bool = False) -> None:
        if self.param.grad is not None:
            self.param.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        g = self.param.grad
        self.t += 1
        self.m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        self.param.sub_(self.unit_lr[..., None, None] * m_hat / (v_hat.sqrt() + self.eps))


def _draw_chunk(streams: _NoiseStreams, chunk: list[tuple[int, int, int]], n: int,
                noise: dict[int, torch.Tensor]) -> None:
    """Draw each image's n noise samples when the chunk holds its first rows.

    One draw of n samples per image and step; an image whose rows span several chunks
    keeps its draw in ``noise`` until :func:`_release_chunk` sees its last row.
    """
    for b, s0, _ in chunk:
        if s0 == 0:
            noise[b] = streams.draw(b, n)


def _release_chunk(chunk: list[tuple[int, int, int]], n: int,
                   noise: dict[int, torch.Tensor]) -> None:
    for b, _, s1 in chunk:
        if s1 == n:
            del noise[b]
