"""The perturbation engine: how much information from each image cell a layer uses.

docs/method.md section 3 (Cheng et al. 2020, after Guan et al. 2019). For an image ``x`` and the
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
gradients and the forward pass stops at the layer. Each image has its own noise stream
(:mod:`kdexplain.quantification.noise`), so an image's result does not depend on which other
images share its call, nor on ``max_batch``.

The parts: :mod:`~kdexplain.quantification.settings` (options and presets),
:mod:`~kdexplain.quantification.noise` (the streams and the row chunks),
:mod:`~kdexplain.quantification.distortion` (frozen truncated models, clean features, D0),
:mod:`~kdexplain.quantification.optimizers` (one class per preset),
:mod:`~kdexplain.quantification.chunking` (layout and chunk size) and
:mod:`~kdexplain.quantification.result`. This module puts them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace

import torch
from torch import nn

from kdexplain.quantification.chunking import (  # noqa: F401  (re-exported)
    CPU_CHUNK_BYTES,
    GPU_CHUNK_BYTES,
    MAX_DEFAULT_ROWS,
    MIN_CALIBRATED_ROWS,
    ChunkSizer,
    activation_bytes_per_row,
    calibration_key,
    default_max_batch,
    memory_rows,
    resolve_memory_format,
)
from kdexplain.quantification.distortion import Distortion
from kdexplain.quantification.features import FEATURE_TRANSFORMS
from kdexplain.quantification.noise import NOISE_BLOCK, NoiseStreams, row_chunks  # noqa: F401
from kdexplain.quantification.optimizers import (
    SigmaOptimizer,
    Traces,
    build_optimizer,
    closed_form_log_sigma,
    mean_entropy,
)
from kdexplain.quantification.result import (  # noqa: F401  (re-exported)
    ENTROPY_OFFSET,
    QuantifyResult,
    image_key,
    sigma_to_entropy,
    upsample_grid,
)
from kdexplain.quantification.settings import (  # noqa: F401  (re-exported)
    PRESETS,
    QuantifySettings,
    default_entropy_weight,
    resolve_settings,
)
from kdexplain.utils.progressbar import progress


def quantify(
    model: nn.Module | Sequence[nn.Module],
    images: torch.Tensor,
    layer: str,
    grid: int = 16,
    *,
    settings: QuantifySettings | None = None,
    seed: int = 0, device: str | torch.device | None = None,
    max_batch: int | None = None, memory_format: str = "auto",
    stack_checkpoints: bool | None = None,
    image_keys: Sequence[str] | None = None,
    arch: str | None = None,
    show_progress: bool | None = False,
    **overrides,
) -> QuantifyResult:
    """Learn, per image, the largest noise each grid cell can take before the layer's
    feature changes (docs/method.md section 3).

    Parameters
    ----------
    model : nn.Module or sequence of nn.Module
        The network, or several checkpoints of one architecture, quantified together
        (then every result tensor gets a leading checkpoint dimension K).
    images : Tensor (B, C, H, W)
        Images in the network's (normalised) input space.
    layer : str
        Module path (``fc``, ``features.28``, ``layer4.1.conv2``) or the paper's alias
        (``conv``, ``fc1``, ...); the feature is the module's output.
    grid : int
        Cells per side of sigma (the original: 16).
    settings : QuantifySettings, optional
        The estimator's settings (:class:`QuantifySettings`; :func:`resolve_settings` builds
        one from a preset and overrides). Default: the ``"default"`` preset.
    **overrides
        :class:`QuantifySettings` fields that replace those of ``settings`` (``None`` values
        are ignored): ``preset`` (without ``settings``: ``"default"``, the linearised closed
        form then Newton steps of 16 samples until ``result.precision`` <= 0.045, 250
        sample-passes on a wide feature; ``"adam"``, Adam on log sigma with a convergence
        stop; ``"paper"``, the reference's rule with 16 samples per step, each unit stopped
        once its mean entropy passes -2.8, about 640 sample-passes; ``"reference"``, the
        original step for step), ``steps``, ``samples``, ``lr``,
        ``entropy_weight`` (``lambda_H``; default 7 for VGG, AlexNet, kdnet, 6 for ResNet),
        ``feature_transform`` (``"relu"``, the original, or ``"identity"``), ``sigma_init``
        (0.01), ``d0_samples``, ``probes``, ``clamp``, ... An unknown name is a ``TypeError``
        that lists the known ones.
    seed : int
        Seed of the noise streams.
    device : str or torch.device, optional
        Default: the device of the model's first parameter.
    max_batch : int, optional
        Most perturbed images in one forward pass (bounds memory). Default: calibrated on
        the first chunks (doubling from the activation-footprint rule while the time per
        row falls) and cached per model, layer, input size and device
        (:class:`~kdexplain.quantification.chunking.ChunkSizer`).
    memory_format : "auto", "channels_last" or "contiguous"
        Layout of the perturbed images (``"auto"``: channels-last on a CPU for a CNN,
        where oneDNN runs about twice as fast). Results agree to float rounding.
    stack_checkpoints : bool, optional
        Run the K checkpoints as one batched forward (weights stacked, ``vmap`` over
        ``functional_call``). None: on a GPU when K > 1 (a CPU runs the loop faster).
    image_keys : sequence of str, optional
        Names of the images' noise streams (default: a hash of each image's pixels).
    arch : str, optional
        Architecture, for layer aliases and lambda (default ``model.kdexplain_arch``).
    show_progress : bool, optional
        Progress over the steps: a bar, or off a terminal a line with rate and ETA every 30 s.

    Returns
    -------
    QuantifyResult
    """
    models, single = _as_models(model)
    arch = arch or getattr(models[0], "kdexplain_arch", None)
    settings = _settings(settings, arch, overrides)
    x, keys, device = _inputs(images, grid, image_keys, device, models[0])
    layout = resolve_memory_format(memory_format, models[0], device)
    streams = NoiseStreams(keys, seed, tuple(x.shape[1:]), device)

    with ExitStack() as stack, torch.enable_grad():
        dist = Distortion(models, layer, arch, x, FEATURE_TRANSFORMS[settings.feature_transform],
                          layout, stack, stacked=_stacks(stack_checkpoints, models, device)
                          and not settings.control_variate)
        sizer = _chunk_sizer(dist, models[0], x, layout, max_batch, len(x) * settings.samples)
        dist.compute_clean(sizer.size)
        if settings.control_variate:
            dist.sensitivities = dist.exact_sensitivity(grid, sizer.size)
        d0, d0_rel_se = _normaliser(dist, streams, settings, grid, sizer.size)
        no_signal = ~(d0 > 0) | ~torch.isfinite(d0)
        opt, traces = _optimise(dist, settings, streams, keys, seed, d0, no_signal, grid, sizer,
                                show_progress, 0.5 * d0_rel_se)
        sigma_out, selected = opt.kept(traces)
        sigma_out[no_signal.cpu()] = settings.sigma_init

    result = _result(sigma_out, selected, d0, no_signal, traces, opt, keys, dist.layer,
                     {**settings.to_dict(), "grid": grid, "seed": seed, "arch": arch})
    return result.squeeze_checkpoints() if single else result


def _result(sigma: torch.Tensor, selected: torch.Tensor, d0: torch.Tensor,
            no_signal: torch.Tensor, traces: Traces, opt: SigmaOptimizer, keys: list[str],
            layer: str, settings: dict) -> QuantifyResult:
    """The result, on the CPU, with the traces cut to the steps that ran."""
    T_run = max(int(traces.steps_run.max()), 1)
    se = opt.log_sigma_se()
    se[no_signal.cpu()] = float("nan")
    return QuantifyResult(
        sigma=sigma, entropy=sigma_to_entropy(sigma), d0=d0.cpu(), no_signal=no_signal.cpu(),
        loss_trace=traces.loss[:T_run], distortion_trace=traces.distortion[:T_run],
        entropy_trace=traces.entropy[:T_run], steps_run=traces.steps_run,
        selected_step=selected.cpu(), entropy_weight=opt.lam.cpu(), image_keys=keys,
        layer=layer, settings=settings, log_sigma_se=se)


#: ``precision`` set: D0 draws up to this many more blocks of ``d0_samples`` while its
#: relative standard error exceeds ``precision / 2``. Its error moves every cell of a unit
#: alike (log sigma by half of it), so it gets a quarter of the unit's precision.
D0_EXTENSIONS = 15


def _normaliser(dist: Distortion, streams: NoiseStreams, settings: QuantifySettings, grid: int,
                max_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``D0`` ``(K, B)`` and the relative standard error of its estimate ``(K, B)``.

    ``d0_samples`` samples; with ``settings.precision``, further blocks of as many for the
    units whose ``D0`` is not yet known to a relative error of ``precision / 2`` (a narrow
    feature's per-sample distortion varies a lot; ``sigma`` scales with ``sqrt(D0)``). The
    further blocks come from a stream of their own, so that a unit's ``D0`` and its steps'
    noise do not depend on the other checkpoints of the call.
    """
    n0 = settings.d0_samples
    s1, s2 = dist.normaliser_moments(streams, settings.sigma_init, grid, n0, max_rows,
                                     range(dist.x.shape[0]))
    n = torch.full_like(s1, float(n0))
    rel = _relative_se(s1, s2, n)
    if settings.precision is None:
        return s1 / n, rel
    more = NoiseStreams(streams.keys, streams.seed, streams.shape, streams.device,
                        stream="d0-noise")
    for _ in range(D0_EXTENSIONS):
        units = rel > settings.precision / 2
        todo = units.any(0).nonzero().flatten().tolist()
        if not todo:
            break
        a1, a2 = dist.normaliser_moments(more, settings.sigma_init, grid, n0, max_rows, todo,
                                         units)
        s1, s2 = s1 + a1, s2 + a2
        n += n0 * units
        rel = _relative_se(s1, s2, n)
    return s1 / n, rel


def _relative_se(s1: torch.Tensor, s2: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Standard error of a mean over its value, from the sum and the sum of squares."""
    mean = s1 / n
    var = ((s2 / n - mean**2) * n / (n - 1).clamp(min=1)).clamp(min=0)
    return torch.where(mean > 0, (var / n).sqrt() / mean.clamp(min=1e-30), torch.zeros_like(mean))


def _optimise(dist: Distortion, settings: QuantifySettings, streams: NoiseStreams,
              keys: list[str], seed: int, d0: torch.Tensor, no_signal: torch.Tensor, grid: int,
              sizer: ChunkSizer, show_progress: bool | None,
              d0_log_se: torch.Tensor) -> tuple[SigmaOptimizer, Traces]:
    """Build the preset's optimiser, start it, and run its steps until every unit stops.
    ``d0_log_se`` ``(K, B)``: the standard error that ``D0`` gives every log sigma."""
    K, B = d0.shape
    # off a terminal: a line with rate and ETA at least every 30 s (the start included)
    bar = progress(range(settings.steps), desc=f"quantify {dist.layer}", enable=show_progress,
                   unit="step", log_lines=True)
    opt = build_optimizer(settings, (K, B, grid, grid), d0.device)
    opt.d0_log_se = d0_log_se
    if opt.needs_sensitivity:
        _closed_form_start(opt, dist, keys, seed, d0, settings, grid, sizer.size)
    keep = settings.target_entropy is not None
    traces = Traces(settings.steps, K, B, grid, keep_sigma=keep,
                    keep_noise=keep and opt.tracks_noise)
    active = ~no_signal
    for t in bar:
        if not bool(active.any()):
            break
        active = _step(t, dist, opt, streams, traces, active, d0, settings.samples, sizer)
    bar.close()  # the final line now, also after an early stop
    return opt, traces


def _settings(settings: QuantifySettings | None, arch: str | None,
              overrides: dict) -> QuantifySettings:
    """The settings with the overrides, ``lambda_H`` by architecture unless given."""
    settings = resolve_settings(settings if settings is not None
                                else overrides.pop("preset", None) or "default", **overrides)
    if settings.entropy_weight is None:
        settings = replace(settings, entropy_weight=default_entropy_weight(arch))
    return settings


def _inputs(images: torch.Tensor, grid: int, image_keys: Sequence[str] | None,
            device: str | torch.device | None,
            model: nn.Module) -> tuple[torch.Tensor, list[str], torch.device]:
    """The checked images on the device, their noise-stream keys, and the device."""
    _check_images(images, grid)
    device = _resolve_device(device, model)
    keys = [str(k) for k in (image_keys if image_keys is not None else map(image_key, images))]
    if len(keys) != images.shape[0]:
        raise ValueError(f"got {len(keys)} image keys for {images.shape[0]} images")
    return images.detach().to(device, torch.float32), keys, device


def _step(t: int, dist: Distortion, opt: SigmaOptimizer, streams: NoiseStreams,
          traces: Traces, active: torch.Tensor, d0: torch.Tensor, S: int,
          sizer: ChunkSizer) -> torch.Tensor:
    """One optimisation step of every active unit; returns the units still active."""
    with torch.no_grad():
        opt.prepare()
        sigma = opt.sigma().detach().clone()
        mean_h = mean_entropy(sigma)  # (K, B)
    if traces.sigma is not None:
        traces.sigma[t] = sigma.cpu()
    opt.zero_grad()
    K, B = d0.shape
    d_sum = torch.zeros(K, B, device=d0.device)
    # the sampling noise of the step's gradient, for optimisers that report it: the sums of
    # each sample's gradient (of its distortion / D0 in the cells' sigma) and of its square
    track = dist.track_rows = opt.tracks_noise
    g1 = torch.zeros_like(opt.theta) if track else None
    g2 = torch.zeros_like(opt.theta) if track else None
    grid = opt.theta.shape[-1]
    images = active.any(0).nonzero().flatten().tolist()
    for chunk in row_chunks(images, S, iter(lambda: sizer.size, 0)):
        with sizer.timed() as timer:
            timer.rows = sum(s1 - s0 for _, s0, s1 in chunk)
            noise = streams.rows(chunk, S)
            if dist.stacked:  # all checkpoints in one forward; stopped units count zero
                idx, sq = dist.rows_stacked(opt.sigma(), chunk, noise)
                sq = sq * active[:, idx]
                (sq / (S * d0[:, idx])).sum().backward()
                with torch.no_grad():
                    d_sum.index_add_(1, idx, sq.detach())
                    if track:
                        G = dist.row_gradients(grid) * S  # (K, R, g, g)
                        g1.index_add_(1, idx, G)
                        g2.index_add_(1, idx, G * G)
                continue
            for k in range(K):
                keep = [i for i, r in enumerate(chunk) if active[k, r[0]]]
                if not keep:
                    continue
                rows = [chunk[i] for i in keep]
                sig_k = opt.sigma()[k]
                idx, sq = dist.rows(k, {b: sig_k[b] for b, _, _ in rows}, rows,
                                    [noise[i] for i in keep])
                (sq / (S * d0[k, idx])).sum().backward()
                with torch.no_grad():
                    d_sum[k].index_add_(0, idx, sq.detach())
                    if track:
                        G = dist.row_gradients(grid) * S  # (R, g, g)
                        g1[k].index_add_(0, idx, G)
                        g2[k].index_add_(0, idx, G * G)
    # the entropy term, for the active units only
    (-(opt.lam * active * mean_entropy(opt.sigma())).sum()).backward()
    with torch.no_grad():
        distortion = d_sum / S / torch.where(active, d0, torch.ones_like(d0))
        traces.record(t, active, distortion, opt.lam, mean_h)
        if track:
            opt.record_noise(t, g1, g2, S, active, traces)
    return opt.step(t, active, traces)


def _closed_form_start(opt: SigmaOptimizer, dist: Distortion, keys: list[str], seed: int,
                       d0: torch.Tensor, settings: QuantifySettings, grid: int,
                       max_rows: int) -> None:
    """Start ``opt`` at the optimum of the linearised objective, from the per-cell
    sensitivities (:meth:`Distortion.sensitivity`) of ``settings.probes`` probes."""
    x = dist.x
    dim = dist.f0[0][0].numel()
    noise = NoiseStreams(keys, seed, tuple(x.shape[1:]), x.device, stream="probe-noise")
    signs = NoiseStreams(keys, seed, tuple(dist.f0[0].shape[1:]), x.device, stream="probe")
    c = dist.sensitivity(noise, signs, settings.sigma_init, grid, settings.probes, max_rows)
    opt.start(closed_form_log_sigma(c, d0.clamp(min=1e-30), opt.lam, dim))


def _stacks(wanted: bool | None, models: Sequence[nn.Module], device: torch.device) -> bool:
    """Whether the checkpoints run as one batched forward (see ``stack_checkpoints``)."""
    can = len(models) > 1 and len({type(m) for m in models}) == 1
    if wanted and not can:
        raise ValueError("stack_checkpoints needs two or more checkpoints of one architecture")
    return can and (device.type == "cuda" if wanted is None else bool(wanted))


def _check_images(images: torch.Tensor, grid: int) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got shape {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        bad = (~torch.isfinite(images)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(f"images contain NaN or infinite values (images {bad[:10]})")
    B, _, H, W = images.shape
    if B == 0:
        raise ValueError("images is empty: pass at least one (C, H, W) image")
    if grid < 1 or grid > min(H, W):
        raise ValueError(f"grid must lie in [1, min(H, W)] = [1, {min(H, W)}], got {grid}")


def _resolve_device(device: str | torch.device | None, model: nn.Module) -> torch.device:
    if device is None:
        first = next(iter(model.parameters()), None)
        return first.device if first is not None else torch.device("cpu")
    return torch.device(device)


def _chunk_sizer(dist: Distortion, model: nn.Module, x: torch.Tensor,
                 layout: torch.memory_format, max_batch: int | None, step_rows: int) -> ChunkSizer:
    """A fixed chunk when ``max_batch`` is given; otherwise one calibrated on the first
    chunks (:class:`~kdexplain.quantification.chunking.ChunkSizer`), starting from the rows whose
    activations fit the device's budget."""
    if max_batch is not None and int(max_batch) < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    if max_batch:
        return ChunkSizer(int(max_batch), int(max_batch), key=None)
    probe = x[:1].contiguous(memory_format=layout)
    per_row = activation_bytes_per_row(dist.feats[0], model, probe)
    limit = min(step_rows, memory_rows(x.device, per_row))
    sync = torch.cuda.synchronize if x.device.type == "cuda" else None
    key = calibration_key(model, dist.layer, x, layout, dist.checkpoints)
    start = max(default_max_batch(x.device, per_row), MIN_CALIBRATED_ROWS)
    return ChunkSizer(start, limit, key, sync=sync)


def _as_models(model: nn.Module | Sequence[nn.Module]) -> tuple[list[nn.Module], bool]:
    if isinstance(model, nn.Module):
        return [model], True
    models = list(model)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise TypeError("model must be an nn.Module or a non-empty sequence of nn.Modules "
                        "(checkpoints of one architecture)")
    return models, False
